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

/**
 * Server-side TLS policy: TLS 1.2+ and Mozilla's "intermediate" cipher list
 * (wiki.mozilla.org/Security/Server_Side_TLS, config generator 5.7): the
 * TLS 1.3 suites, then ECDHE with AES-GCM or ChaCha20-Poly1305 for TLS 1.2.
 * The DHE suites of that list are left out: they need a DH parameter file,
 * and every client that offers them offers ECDHE too. The server does not
 * impose its order (the clients pick, as Mozilla recommends: they know
 * whether they have AES hardware). ALPN offers `http/1.1` only; `h2` is
 * added here when the engine speaks it.
 */
export const TLS_POLICY = {
  minVersion: 'TLSv1.2',
  ciphers: [
    'TLS_AES_128_GCM_SHA256',
    'TLS_AES_256_GCM_SHA384',
    'TLS_CHACHA20_POLY1305_SHA256',
    'ECDHE-ECDSA-AES128-GCM-SHA256',
    'ECDHE-RSA-AES128-GCM-SHA256',
    'ECDHE-ECDSA-AES256-GCM-SHA384',
    'ECDHE-RSA-AES256-GCM-SHA384',
    'ECDHE-ECDSA-CHACHA20-POLY1305',
    'ECDHE-RSA-CHACHA20-POLY1305',
  ].join(':'),
  honorCipherOrder: false,
  ALPNProtocols: ['http/1.1'],
} as const

/** Length of the session ticket keys `tls.Server` takes (RFC 5077 §4: name, HMAC and AES keys). */
export const TICKET_KEYS_BYTES = 48
/** The variable a supervisor passes the shared ticket keys to its workers in (hex). */
export const TICKET_KEYS_ENV = 'NANOPROXY_TLS_TICKET_KEYS'
/**
 * How often the ticket keys are replaced. A ticket made with the old keys is
 * then refused and that client does one full handshake: tickets must not
 * outlive their keys for long (forward secrecy of resumed sessions, as
 * Mozilla's guide and nginx's `ssl_session_ticket_key` advice say).
 */
export const TICKET_KEYS_ROTATION_MS = 12 * 60 * 60 * 1000

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
