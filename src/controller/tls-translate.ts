// spec.tls of the Ingresses this controller owns → the config's
// `certificates` section, with the problems found as Warning Events.
// Pure, like translate.ts: the same Ingresses and Secrets always give the
// same certificates, so the writer skips unchanged output.
//
// Rules (kubernetes.io/docs/concepts/services-networking/ingress/#tls):
// - `secretName` names a Secret in the Ingress's namespace, of type
//   kubernetes.io/tls, holding `tls.crt` and `tls.key` (PEM).
// - A host in `hosts` gets that certificate; a host named by two Ingresses
//   with different Secrets gets the older Ingress's (Conflict on the other).
// - A missing Secret (cert-manager has not issued it yet) is not an error of
//   the config: its hosts get the default certificate until it appears.
// - A certificate whose names do not cover a host is still served for it,
//   as ingress-nginx does, with a CertificateMismatch Event.

import { createHash, X509Certificate } from 'node:crypto'
import { createSecureContext } from 'node:tls'
import type { CertificateConfig } from '../config/schema.ts'
import { keyOf, type HstsPolicy, type Ingress, type Secret } from './snapshot.ts'

export const TLS_SECRET_TYPE = 'kubernetes.io/tls'

export interface TlsDiagnostic {
  namespace: string
  name: string
  reason: 'SecretNotFound' | 'InvalidCertificate' | 'CertificateMismatch' | 'Conflict'
  message: string
}

/** One certificate file pair to write: named by the hash of its content. */
export interface CertificatePair {
  /** `<hash>`: the files are `<hash>.crt` and `<hash>.key`. */
  id: string
  cert: Buffer
  key: Buffer
}

export interface TlsTranslation {
  /** The config's `certificates` entries, paths relative to the config file's directory. */
  certificates: CertificateConfig[]
  pairs: CertificatePair[]
  diagnostics: TlsDiagnostic[]
}

/** The directory, next to the config file, the certificate files go into. */
export const CERTIFICATE_DIR = 'certs'

interface Checked {
  pair: CertificatePair
  x509: X509Certificate
}

/**
 * `owned`: the Ingresses this controller serves, oldest first (as
 * translate() returns them). `defaultSecret`: `namespace/name` of the
 * default certificate (DEFAULT_TLS_SECRET), if any. `hsts`: the HSTS
 * header every host in spec.tls gets over HTTPS (the HSTS settings).
 */
export function translateTls(owned: readonly Ingress[], secrets: readonly Secret[], defaultSecret?: string, hsts?: HstsPolicy): TlsTranslation {
  const byKey = new Map(secrets.map((s) => [keyOf(s.metadata), s]))
  const diagnostics: TlsDiagnostic[] = []
  const checked = new Map<string, Checked | undefined>()
  const check = (key: string): Checked | string => {
    const secret = byKey.get(key)
    if (secret === undefined || (secret.type !== undefined && secret.type !== TLS_SECRET_TYPE)) return `no Secret of type ${TLS_SECRET_TYPE} named ${key}`
    if (!checked.has(key)) checked.set(key, parseSecret(secret))
    return checked.get(key) ?? `Secret ${key} does not hold a usable certificate and key in tls.crt and tls.key`
  }

  // Host → the Secret that serves it, first claim (oldest Ingress) wins.
  const hostOwner = new Map<string, { secret: string; ingress: string }>()
  const hostsBySecret = new Map<string, string[]>()
  // Hosts in spec.tls without a usable Secret: still served over HTTPS, with
  // the default certificate, and redirected there, as ingress-nginx does
  // (it gives such a server its default certificate). A Secret another
  // Ingress names for the host wins over none.
  const withoutSecret = new Set<string>()
  const hostsOf = (hosts: readonly string[] | undefined): string[] => (hosts ?? []).map((h) => h.toLowerCase().replace(/\.$/, '')).filter((h) => h !== '')
  for (const ingress of owned) {
    const namespace = ingress.metadata.namespace ?? 'default'
    const name = ingress.metadata.name ?? ''
    const report = (reason: TlsDiagnostic['reason'], message: string): void => {
      diagnostics.push({ namespace, name, reason, message })
    }
    ;(ingress.spec?.tls ?? []).forEach((tls, t) => {
      const where = `spec.tls[${t}]`
      if (!tls.secretName) {
        // No Secret: the hosts get the default certificate (SNI fallback).
        for (const host of hostsOf(tls.hosts)) withoutSecret.add(host)
        return
      }
      const key = `${namespace}/${tls.secretName}`
      const result = check(key)
      if (typeof result === 'string') {
        const secret = byKey.get(key)
        if (secret === undefined) report('SecretNotFound', `${where}: ${result}; its hosts get the default certificate until it exists`)
        else report('InvalidCertificate', `${where}: ${result}; its hosts get the default certificate`)
        for (const host of hostsOf(tls.hosts)) withoutSecret.add(host)
        return
      }
      for (const host of hostsOf(tls.hosts)) {
        const holder = hostOwner.get(host)
        if (holder !== undefined) {
          if (holder.secret !== key) {
            report('Conflict', `${where}: host ${JSON.stringify(host)} already has Secret ${holder.secret} from Ingress ${holder.ingress}, which is older; Secret ${key} is not used for it`)
          }
          continue
        }
        hostOwner.set(host, { secret: key, ingress: `${namespace}/${name}` })
        const list = hostsBySecret.get(key) ?? []
        list.push(host)
        hostsBySecret.set(key, list)
        const probe = host.startsWith('*.') ? `x${host.slice(1)}` : host
        if (result.x509.checkHost(probe) === undefined) {
          report('CertificateMismatch', `${where}: the certificate in Secret ${key} does not cover host ${JSON.stringify(host)} (it names ${result.x509.subjectAltName ?? result.x509.subject}); served anyway`)
        }
      }
    })
  }

  const pairs = new Map<string, CertificatePair>()
  const certificates: TlsTranslation['certificates'] = []
  const hstsFields = hsts === undefined ? {} : { hstsMaxAge: hsts.maxAge, ...(hsts.includeSubDomains ? { hstsIncludeSubDomains: true } : {}), ...(hsts.preload ? { hstsPreload: true } : {}) }
  const entry = (c: Checked, hosts: string[], isDefault: boolean): void => {
    pairs.set(c.pair.id, c.pair)
    certificates.push({ hosts, certFile: `${CERTIFICATE_DIR}/${c.pair.id}.crt`, keyFile: `${CERTIFICATE_DIR}/${c.pair.id}.key`, default: isDefault, ...(hosts.length > 0 ? hstsFields : {}) })
  }
  let defaultUsed = false
  for (const key of [...hostsBySecret.keys()].sort()) {
    const c = checked.get(key)!
    const isDefault = key === defaultSecret
    defaultUsed ||= isDefault
    entry(c, hostsBySecret.get(key)!.sort(), isDefault)
  }
  if (defaultSecret !== undefined && !defaultUsed) {
    const c = check(defaultSecret)
    // Problems with the default Secret have no Ingress to be reported on: the caller logs them.
    if (typeof c !== 'string') entry(c, [], true)
  }
  // Last, without files: the proxy serves these with its default
  // certificate. Not a host a certificate covers after all, by name or by a
  // wildcard one label up (SNI serves it that one).
  const covered = (h: string): boolean => {
    const dot = h.indexOf('.')
    return hostOwner.has(h) || (dot > 0 && !h.startsWith('*.') && hostOwner.has(`*${h.slice(dot)}`))
  }
  const byDefault = [...withoutSecret].filter((h) => !covered(h)).sort()
  if (byDefault.length > 0) certificates.push({ hosts: byDefault, default: false, ...hstsFields })
  return { certificates, pairs: [...pairs.values()].sort((a, b) => (a.id < b.id ? -1 : 1)), diagnostics }
}

/** Why the DEFAULT_TLS_SECRET cannot be used, or undefined when it can. */
export function defaultSecretProblem(secrets: readonly Secret[], defaultSecret: string): string | undefined {
  const secret = secrets.find((s) => keyOf(s.metadata) === defaultSecret)
  if (secret === undefined) return `DEFAULT_TLS_SECRET: no Secret of type ${TLS_SECRET_TYPE} named ${defaultSecret}`
  return parseSecret(secret) === undefined ? `DEFAULT_TLS_SECRET: Secret ${defaultSecret} does not hold a usable certificate and key` : undefined
}

/** The pair in a TLS Secret, checked as the proxy will load it; undefined when unusable. */
function parseSecret(secret: Secret): Checked | undefined {
  const crt = secret.data?.['tls.crt']
  const key = secret.data?.['tls.key']
  if (!crt || !key) return undefined
  const cert = Buffer.from(crt, 'base64')
  const keyBytes = Buffer.from(key, 'base64')
  try {
    // Parses both and checks that the key belongs to the certificate.
    createSecureContext({ cert, key: keyBytes })
    const x509 = new X509Certificate(cert)
    const id = createHash('sha256').update(cert).update('\0').update(keyBytes).digest('hex').slice(0, 32)
    return { pair: { id, cert, key: keyBytes }, x509 }
  } catch {
    return undefined
  }
}
