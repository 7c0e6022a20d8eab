// What `nanoproxy validate` says about the certificates a config names:
// errors (the proxy would leave the certificate out) and warnings (served,
// but a client may complain).

import { X509Certificate } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { isAbsolute, join } from 'node:path'
import type { CertificateConfig } from '../config/schema.ts'
import { loadTls, TLS_POLICY } from './tls.ts'

export interface CertificateFinding {
  /** Position in the `certificates` list (0-based). */
  index: number
  hosts: string[]
  severity: 'error' | 'warning'
  message: string
}

export function inspectCertificates(entries: readonly CertificateConfig[], baseDir: string, now = Date.now()): CertificateFinding[] {
  const findings: CertificateFinding[] = []
  entries.forEach((entry, index) => {
    const say = (severity: CertificateFinding['severity'], message: string): void => {
      findings.push({ index, hosts: entry.hosts, severity, message })
    }
    const path = (f: string): string => (isAbsolute(f) ? f : join(baseDir, f))
    // Hosts served with the default certificate: nothing to load.
    if (entry.certFile === undefined || entry.keyFile === undefined) return
    if (entry.hosts.length === 0 && !entry.default) say('warning', 'has no hosts and is not the default: it is never served')
    let cert: Buffer
    let key: Buffer
    try {
      cert = readFileSync(path(entry.certFile))
      key = readFileSync(path(entry.keyFile))
    } catch (err) {
      say('error', (err as Error).message)
      return
    }
    try {
      // Parses both PEM blocks and checks that the key belongs to the certificate.
      loadTls().createSecureContext({ cert, key, ...TLS_POLICY })
    } catch (err) {
      say('error', `${entry.certFile}/${entry.keyFile} are not a usable certificate and key: ${(err as Error).message}`)
      return
    }
    const x509 = new X509Certificate(cert)
    if (Date.parse(x509.validTo) < now) say('warning', `expired on ${x509.validTo}`)
    if (Date.parse(x509.validFrom) > now) say('warning', `not valid before ${x509.validFrom}`)
    // A host the certificate does not name is still served it (as nginx
    // does), but clients will refuse it: worth a warning.
    for (const host of entry.hosts) {
      const probe = host.startsWith('*.') ? `x${host.slice(1)}` : host
      if (x509.checkHost(probe) === undefined) say('warning', `does not cover host "${host}" (subject alternative names: ${x509.subjectAltName ?? 'none'})`)
    }
  })
  return findings
}
