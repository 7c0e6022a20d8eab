// The certificates the HTTPS listener serves, by SNI host name.
//
// One immutable lookup (exact names, one-label wildcards, the default) is
// built per config and swapped whole: a handshake reads whichever lookup is
// current when its ClientHello arrives, so a reload never changes anything
// for connections already established. Node's server.addContext() is not
// used: a context added there can never be removed (nodejs/node#34451), so a
// host taken out of the config would keep its certificate until a restart.
//
// Building a SecureContext parses PEM and checks the key: ~1 ms of CPU per
// certificate. Contexts are cached by the bytes of their chain and key, so a
// reload re-reads the files (cheap) but parses only what changed: a reload
// of 1,000 unchanged certificates does no OpenSSL work at all.

import { createHash, X509Certificate } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { isAbsolute, join } from 'node:path'
import type { SecureContext } from 'node:tls'
import type { CertificateConfig } from '../config/schema.ts'
import type { Logger } from '../log.ts'
import { loadTls, TLS_POLICY } from './tls.ts'

/** A certificate chain and key as bytes. */
export interface KeyPair {
  cert: Buffer
  key: Buffer
}

interface Loaded {
  context: SecureContext
  pair: KeyPair
  /** When the certificate expires (ms since the epoch). */
  expires: number
}

/** What one update did, for the reload log line. */
export interface CertificateUpdate {
  /** Certificates in the config (entries with files). */
  total: number
  /** Parsed because they were new or changed. */
  parsed: number
  /** Left out (unreadable, unparsable, key mismatch). */
  failed: number
}

interface Lookup {
  readonly exact: ReadonlyMap<string, SecureContext>
  /** Keyed by `.suffix` (`*.example.com` → `.example.com`). */
  readonly wildcard: ReadonlyMap<string, SecureContext>
  readonly fallback: Loaded | undefined
}

const EMPTY: Lookup = { exact: new Map(), wildcard: new Map(), fallback: undefined }

export class CertificateStore {
  private readonly log: Logger
  private lookup: Lookup = EMPTY
  /** Contexts by the hash of their bytes, from the last update. */
  private cache = new Map<string, Loaded>()
  /** The pair from CERT_PATH, the default unless the config names one. */
  private certPathPair: Loaded | undefined
  private entries: readonly CertificateConfig[] = []
  private baseDir = '.'
  /** Called when the default certificate changes (the listener's own context must follow). */
  onDefaultChange: ((pair: KeyPair | undefined) => void) | undefined
  /** Expiry (ms since the epoch) of the certificate each host gets; `(default)` for the one served without SNI (metrics, dashboard). */
  expiries: ReadonlyMap<string, number> = new Map()

  constructor(log: Logger) {
    this.log = log
  }

  /** The context for a ClientHello's server name: exact, then `*.` one label up, then the default. */
  contextFor(servername: string | undefined): SecureContext | undefined {
    const lookup = this.lookup
    if (servername) {
      // SNI names are case-insensitive (RFC 6066 §3) and never carry a trailing dot.
      const name = servername.toLowerCase()
      const exact = lookup.exact.get(name)
      if (exact) return exact
      const dot = name.indexOf('.')
      if (dot > 0) {
        const wildcard = lookup.wildcard.get(name.slice(dot))
        if (wildcard) return wildcard
      }
    }
    return lookup.fallback?.context
  }

  /**
   * What the listener's SNICallback answers: the context for `servername`,
   * or undefined when that is the default certificate's. The listener's own
   * context already holds the default (onDefaultChange keeps it so), and
   * handing Node a context makes it switch the handshake over to it
   * (SSL_set_SSL_CTX, then the certificate, key and chain installed again):
   * work on every handshake that gets the default, for nothing.
   */
  sniContextFor(servername: string): SecureContext | undefined {
    const context = this.contextFor(servername)
    return context === this.lookup.fallback?.context ? undefined : context
  }

  /** The default certificate's bytes (served without SNI), if there is one. */
  get defaultPair(): KeyPair | undefined {
    return this.lookup.fallback?.pair
  }

  /** The CERT_PATH pair (checked by the caller), or undefined to drop it. */
  setCertPathPair(pair: KeyPair | undefined): void {
    this.certPathPair = pair ? this.load(pair, new Map()) : undefined
    this.rebuild(this.cache)
  }

  /**
   * Loads the certificates a config names (relative paths from `baseDir`,
   * the config file's directory) and swaps the lookup. A certificate that
   * cannot be loaded is left out with an error naming it and its hosts,
   * which then get the default certificate: one bad file never takes TLS
   * down for the other hosts.
   */
  update(entries: readonly CertificateConfig[] | undefined, baseDir: string): CertificateUpdate {
    this.entries = entries ?? []
    this.baseDir = baseDir
    return this.rebuild(new Map())
  }

  private rebuild(next: Map<string, Loaded>): CertificateUpdate {
    const exact = new Map<string, SecureContext>()
    const wildcard = new Map<string, SecureContext>()
    let fallback: Loaded | undefined
    const expiries = new Map<string, number>()
    let parsed = 0
    let failed = 0
    const fresh = next !== this.cache
    for (const entry of this.entries) {
      // No files: its hosts are served with the default certificate, which
      // is what a name missing from the lookup gets.
      if (entry.certFile === undefined || entry.keyFile === undefined) continue
      const certFile = this.resolve(entry.certFile)
      const keyFile = this.resolve(entry.keyFile)
      let loaded: Loaded
      try {
        const pair = { cert: readFileSync(certFile), key: readFileSync(keyFile) }
        const known = this.cache.has(fingerprint(pair)) || next.has(fingerprint(pair))
        loaded = this.load(pair, next)
        if (!known) parsed++
      } catch (err) {
        failed++
        // The message is OpenSSL's or the file system's: it names files and
        // reasons, never key material.
        this.log.error(
          { cert_file: certFile, key_file: keyFile, hosts: entry.hosts, reason: (err as Error).message },
          'certificate left out: its hosts get the default certificate',
        )
        continue
      }
      for (const host of entry.hosts) {
        expiries.set(host, loaded.expires)
        if (host.startsWith('*.')) wildcard.set(host.slice(1), loaded.context)
        else exact.set(host, loaded.context)
      }
      if (entry.default) fallback = loaded
    }
    fallback ??= this.certPathPair
    if (fresh) this.cache = next
    const previous = this.lookup.fallback?.pair
    this.lookup = { exact, wildcard, fallback }
    if (fallback !== undefined) expiries.set('(default)', fallback.expires)
    this.expiries = expiries
    if (previous !== fallback?.pair) this.onDefaultChange?.(fallback?.pair)
    return { total: this.entries.filter((e) => e.certFile !== undefined).length, parsed, failed }
  }

  /** The cached context for `pair`, or a new one (throws when the pair is unusable). */
  private load(pair: KeyPair, next: Map<string, Loaded>): Loaded {
    const key = fingerprint(pair)
    const cached = this.cache.get(key) ?? next.get(key)
    if (cached) {
      next.set(key, cached)
      return cached
    }
    // Throws on unparsable PEM and on a key that does not match the certificate.
    const context = loadTls().createSecureContext({ ...pair, ...TLS_POLICY })
    const expires = this.warnIfOutOfDate(pair.cert)
    const loaded = { context, pair, expires }
    next.set(key, loaded)
    return loaded
  }

  /** Returns the expiry (ms since the epoch). */
  private warnIfOutOfDate(cert: Buffer): number {
    // Served anyway: an expired certificate is the operator's to replace,
    // and taking the host off TLS would not help its clients.
    const x509 = new X509Certificate(cert)
    const now = Date.now()
    if (Date.parse(x509.validTo) < now) this.log.warn({ subject: x509.subject, valid_to: x509.validTo }, 'certificate has expired')
    else if (Date.parse(x509.validFrom) > now) this.log.warn({ subject: x509.subject, valid_from: x509.validFrom }, 'certificate is not valid yet')
    return Date.parse(x509.validTo)
  }

  private resolve(file: string): string {
    return isAbsolute(file) ? file : join(this.baseDir, file)
  }
}

function fingerprint(pair: KeyPair): string {
  return createHash('sha256').update(pair.cert).update('\0').update(pair.key).digest('hex')
}
