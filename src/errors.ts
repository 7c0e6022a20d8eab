// Typed errors with stable codes.
//
// Every failure the proxy reports to a client or an operator carries a code
// from ERROR_CODES. Codes are part of the public surface (they appear in logs
// and are what alerting matches on), so they never change meaning. The HTTP
// status a client sees for a code is decided here and nowhere else.

export const ERROR_CODES = {
  /** No rule matched the request's host and path. */
  NO_ROUTE: 'NP_ERR_NO_ROUTE',
  /** The request itself is unacceptable (bad target, duplicate Host...). */
  BAD_REQUEST: 'NP_ERR_BAD_REQUEST',
  /** The client's address is not allowed by its rule's `allow`/`deny` lists. */
  FORBIDDEN: 'NP_ERR_FORBIDDEN',
  /** The request body is larger than its rule's `maxBodySize` (RFC 9110 §15.5.14). */
  BODY_TOO_LARGE: 'NP_ERR_BODY_TOO_LARGE',
  /** An `Expect` the proxy cannot meet (anything but 100-continue, RFC 9110 §10.1.1). */
  EXPECTATION_FAILED: 'NP_ERR_EXPECTATION_FAILED',
  /** The upstream refused the connection or its name did not resolve. */
  UPSTREAM_CONNECT: 'NP_ERR_UPSTREAM_CONNECT',
  /** The upstream closed or reset the connection before answering. */
  UPSTREAM_RESET: 'NP_ERR_UPSTREAM_RESET',
  /** The TLS handshake with an HTTPS upstream failed (certificate, protocol). */
  UPSTREAM_TLS: 'NP_ERR_UPSTREAM_TLS',
  /** Connecting, or waiting for the response headers, took longer than TIMEOUT. */
  UPSTREAM_TIMEOUT: 'NP_ERR_UPSTREAM_TIMEOUT',
  /** The upstream sent something that is not valid HTTP/1.1. */
  UPSTREAM_PROTOCOL: 'NP_ERR_UPSTREAM_PROTOCOL',
  /** The upstream sent more interim (1xx) responses to one request than the proxy relays. */
  UPSTREAM_TOO_MANY_INTERIM: 'NP_ERR_UPSTREAM_TOO_MANY_INTERIM',
  /** The upstream has no server to send to (an empty `servers` list: a Service without endpoints). */
  UPSTREAM_NO_SERVERS: 'NP_ERR_UPSTREAM_NO_SERVERS',
  /** The config file could not be read or failed validation. */
  CONFIG_INVALID: 'NP_ERR_CONFIG_INVALID',
  /** An environment variable or command-line flag has an unusable value. */
  SETTINGS_INVALID: 'NP_ERR_SETTINGS_INVALID',
  /** CERT_PATH does not hold a usable certificate and key. */
  TLS_CERT_INVALID: 'NP_ERR_TLS_CERT_INVALID',
} as const

export type ErrorCode = (typeof ERROR_CODES)[keyof typeof ERROR_CODES]

/**
 * The one mapping from error code to the HTTP status a client receives.
 * 502 vs 504 follows RFC 9110 §15.6.3 / §15.6.5: 502 when the upstream gave
 * an invalid (or no) response, 504 when it did not answer in time.
 */
const HTTP_STATUS: Partial<Record<ErrorCode, number>> = {
  NP_ERR_NO_ROUTE: 404,
  NP_ERR_BAD_REQUEST: 400,
  NP_ERR_EXPECTATION_FAILED: 417,
  NP_ERR_BODY_TOO_LARGE: 413,
  NP_ERR_FORBIDDEN: 403,
  NP_ERR_UPSTREAM_CONNECT: 502,
  NP_ERR_UPSTREAM_RESET: 502,
  NP_ERR_UPSTREAM_TLS: 502,
  NP_ERR_UPSTREAM_PROTOCOL: 502,
  NP_ERR_UPSTREAM_TOO_MANY_INTERIM: 502,
  NP_ERR_UPSTREAM_TIMEOUT: 504,
  // RFC 9110 §15.6.4: nothing is there to serve it now, which may change
  // (nginx and Envoy answer 503 for an upstream without endpoints).
  NP_ERR_UPSTREAM_NO_SERVERS: 503,
}

export function httpStatusFor(code: ErrorCode): number {
  return HTTP_STATUS[code] ?? 500
}

export class NanoProxyError extends Error {
  readonly code: ErrorCode

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'NanoProxyError'
    this.code = code
  }
}

/** One problem found in a config file, positioned for `file:line:column` output. */
export interface ConfigProblem {
  line: number
  column: number
  message: string
}

export class ConfigError extends NanoProxyError {
  readonly file: string
  readonly problems: readonly ConfigProblem[]

  constructor(file: string, problems: readonly ConfigProblem[]) {
    super(ERROR_CODES.CONFIG_INVALID, formatProblems(file, problems))
    this.name = 'ConfigError'
    this.file = file
    this.problems = problems
  }
}

export function formatProblems(file: string, problems: readonly ConfigProblem[]): string {
  return problems.map((p) => `${file}:${p.line}:${p.column}: ${p.message}`).join('\n')
}

/** Error codes of system calls and TLS that mean "could not connect". */
const CONNECT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL'])
const RESET_CODES = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED'])
const TIMEOUT_CODES = new Set(['ETIMEDOUT'])

/**
 * Classify an error raised while talking to an upstream. The original error
 * stays attached as `cause` so the log line keeps the low-level reason.
 */
export function upstreamError(err: unknown, upstream: string): NanoProxyError {
  if (err instanceof NanoProxyError) return err
  const e = err as { code?: string; message?: string }
  const code = e?.code ?? ''
  const detail = e?.message ?? String(err)
  if (TIMEOUT_CODES.has(code)) {
    return new NanoProxyError(ERROR_CODES.UPSTREAM_TIMEOUT, `upstream ${upstream} timed out: ${detail}`, { cause: err })
  }
  if (CONNECT_CODES.has(code)) {
    return new NanoProxyError(ERROR_CODES.UPSTREAM_CONNECT, `cannot connect to upstream ${upstream}: ${detail}`, { cause: err })
  }
  if (isTlsError(code, detail)) {
    return new NanoProxyError(ERROR_CODES.UPSTREAM_TLS, `TLS handshake with upstream ${upstream} failed: ${detail}`, { cause: err })
  }
  if (RESET_CODES.has(code)) {
    return new NanoProxyError(ERROR_CODES.UPSTREAM_RESET, `upstream ${upstream} closed the connection: ${detail}`, { cause: err })
  }
  return new NanoProxyError(ERROR_CODES.UPSTREAM_PROTOCOL, `invalid response from upstream ${upstream}: ${detail}`, { cause: err })
}

function isTlsError(code: string, message: string): boolean {
  return (
    code.startsWith('ERR_TLS') ||
    code.startsWith('ERR_SSL') ||
    code.includes('CERT') ||
    code === 'DEPTH_ZERO_SELF_SIGNED_CERT' ||
    code === 'SELF_SIGNED_CERT_IN_CHAIN' ||
    code === 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' ||
    code === 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY' ||
    /\bSSL\b|\bTLS\b|certificate/i.test(message)
  )
}
