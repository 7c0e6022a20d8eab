// Certificates made at test time with openssl: a CA, and leaf certificates
// it signs for the names a test needs.

import { execFileSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { tempDir } from './proxy-process.ts'

export interface Pki {
  dir: string
  caCertFile: string
  caCert: string
  /** Issues a certificate for `names` (DNS names or IPs) into `outDir` as cert.pem/key.pem. */
  issue(names: string[], outDir?: string): { cert: string; key: string; dir: string }
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] })
}

export function createPki(): Pki {
  const dir = tempDir('nanoproxy-pki-')
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=NanoProxy Test CA'], dir)
  let serial = 0
  return {
    dir,
    caCertFile: join(dir, 'ca.pem'),
    caCert: readFileSync(join(dir, 'ca.pem'), 'utf8'),
    issue(names, outDir = tempDir('nanoproxy-cert-')) {
      serial++
      const san = names.map((n) => (/^[\d.]+$|:/.test(n) ? `IP:${n}` : `DNS:${n}`)).join(',')
      const ext = join(dir, `ext${serial}.cnf`)
      writeFileSync(ext, `subjectAltName=${san}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n`)
      openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(outDir, 'key.pem'), '-out', join(dir, `leaf${serial}.csr`), '-subj', `/CN=${names[0]}`], dir)
      openssl(['x509', '-req', '-in', join(dir, `leaf${serial}.csr`), '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', join(outDir, 'cert.pem'), '-days', '2', '-extfile', ext], dir)
      return { cert: readFileSync(join(outDir, 'cert.pem'), 'utf8'), key: readFileSync(join(outDir, 'key.pem'), 'utf8'), dir: outDir }
    },
  }
}
