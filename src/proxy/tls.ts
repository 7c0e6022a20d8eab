// TLS termination: the certificate and key from CERT_PATH (cert.pem and
// key.pem, PEM, as the original NanoProxy reads them).
//
// Unlike the original, a CERT_PATH that does not hold a usable pair stops
// start-up: silently serving plain HTTP on a port clients reach with https://
// is a failure nobody notices until it matters. Certificates renewed on disk
// (cert-manager updating a Secret volume) are picked up without a restart via
// server.setSecureContext(), which leaves open connections alone.

import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type * as Tls from 'node:tls'
import type { SecureContextOptions } from 'node:tls'
import { ERROR_CODES, NanoProxyError } from '../errors.ts'

export const CERT_FILE = 'cert.pem'
export const KEY_FILE = 'key.pem'

/** Server-side TLS policy: TLS 1.2+ and HTTP/1.1 over ALPN. */
export const TLS_POLICY = {
  minVersion: 'TLSv1.2',
  ALPNProtocols: ['http/1.1'],
} as const

export function certificateFiles(certPath: string): [string, string] {
  return [join(certPath, CERT_FILE), join(certPath, KEY_FILE)]
}

/** Reads and checks the pair in `certPath`; throws TLS_CERT_INVALID with the reason. */
export function loadCertificate(certPath: string): SecureContextOptions {
  const [certFile, keyFile] = certificateFiles(certPath)
  let cert: Buffer
  let key: Buffer
  try {
    cert = readFileSync(certFile)
    key = readFileSync(keyFile)
  } catch (err) {
    throw new NanoProxyError(ERROR_CODES.TLS_CERT_INVALID, `CERT_PATH=${certPath}: ${(err as Error).message}`, { cause: err })
  }
  return checkCertificate(cert, key, certPath)
}

/** Validates a cert/key pair (parses both and checks that they match). */
export function checkCertificate(cert: Buffer, key: Buffer, certPath: string): SecureContextOptions {
  const options = { cert, key }
  try {
    // Throws on unparsable PEM and on a key that does not match the certificate.
    loadTls().createSecureContext({ ...options, ...TLS_POLICY })
  } catch (err) {
    throw new NanoProxyError(
      ERROR_CODES.TLS_CERT_INVALID,
      `CERT_PATH=${certPath}: ${CERT_FILE}/${KEY_FILE} are not a usable certificate and key: ${(err as Error).message}`,
      { cause: err },
    )
  }
  return options
}

/**
 * `node:tls`, loaded on first use: it brings OpenSSL's initialisation and
 * `node:crypto` with it, about 4 MB of memory a proxy serving plain HTTP
 * to plain HTTP upstreams never needs.
 */
export function loadTls(): typeof Tls {
  return process.getBuiltinModule('node:tls')
}
