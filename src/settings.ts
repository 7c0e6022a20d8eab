// Process settings from the environment.
//
// The variable names and defaults are those of the original NanoProxy (Go):
// PORT, TIMEOUT, DEBUG, CERT_PATH, TLS_SKIP_VERIFY, CONFIG_B64, CONF_FILE.
// As there, DEBUG and TLS_SKIP_VERIFY are switched on by any non-empty value.
// Unlike there, a value that cannot be used stops start-up with a message
// naming the variable: silently falling back to a default hides mistakes.

import { BlockList } from 'node:net'
import { availableParallelism } from 'node:os'
import { ERROR_CODES, NanoProxyError } from './errors.ts'
import { addCidr } from './router/cidr-list.ts'

export interface ProxySettings {
  /** TCP port to listen on; 0 picks a free port (used by tests). */
  port: number
  /**
   * HTTPS_PORT: the TLS listener's port, next to plain HTTP on `port`.
   * Undefined when unset: then CERT_PATH alone makes `port` TLS (the
   * original behaviour), and a config with certificates opens 8443.
   */
  httpsPort: number | undefined
  /** HTTPS_REDIRECT_PORT: the HTTPS port clients see, for 308 redirects (443 is left out of the URL). */
  httpsRedirectPort: number
  /** Bounds reading request headers, connecting upstream and waiting for response headers (ms). */
  timeoutMs: number
  /** Longest silence allowed on a stream in either direction once it is flowing (ms). */
  idleTimeoutMs: number
  /** Grace period for in-flight requests on SIGTERM/SIGINT (ms). */
  shutdownTimeoutMs: number
  debug: boolean
  /** Directory holding cert.pem and key.pem; enables TLS termination. */
  certPath: string | undefined
  tlsSkipVerify: boolean
  /** Clients whose X-Forwarded-For is extended rather than replaced. */
  trustedProxies: BlockList | undefined
  /** The CIDRs as written, for logs. */
  trustedProxiesText: string[]
  /** Base64 config written over the config file at start-up. */
  configB64: string | undefined
  /** Whether to write one access-log line per request. */
  accessLog: boolean
  /**
   * Whether requests answered by /.nanoproxy/health get access-log lines too.
   * Off by default: kubelet probes and load-balancer checks would otherwise
   * write several lines every few seconds (ingress-nginx turns the access
   * log off for its health endpoints likewise).
   */
  accessLogHealth: boolean
  /** ACCESS_LOG_FORMAT: `json` (one pino object per request) or nginx's `combined` line. */
  accessLogFormat: AccessLogFormat
  /** REQUEST_ID: send X-Request-ID upstream and log it (request-id.ts); on by default. */
  requestId: boolean
  /** Worker processes sharing the listening port (SO_REUSEPORT). */
  workers: number
  /** RAW_PATHS: match and forward request paths as received, never normalised (docs/routing.md). */
  rawPaths: boolean
  /** ALLOW_UNDERSCORES_IN_HEADERS: pass on request headers whose names contain `_` (dropped by default). */
  allowUnderscoresInHeaders: boolean
  /**
   * ADMIN_PORT: the port of /metrics and the dashboard (docs/operations.md,
   * "Metrics and dashboard"); undefined when unset or `off`, and then
   * nothing is counted. 0 picks a free port (tests).
   */
  adminPort: number | undefined
}

type Env = Record<string, string | undefined>

export type AccessLogFormat = 'json' | 'combined'
const ACCESS_LOG_FORMATS: readonly AccessLogFormat[] = ['json', 'combined']

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']

export function readProxySettings(env: Env): ProxySettings {
  const problems: string[] = []
  const num = (name: string, fallback: number, check: (n: number) => boolean, what: string): number => {
    const raw = env[name]
    if (raw === undefined || raw.trim() === '') return fallback
    const n = Number(raw)
    if (!Number.isFinite(n) || !check(n)) {
      problems.push(`${name}=${JSON.stringify(raw)} is not valid: expected ${what}`)
      return fallback
    }
    return n
  }

  const port = num('PORT', 8080, (n) => Number.isInteger(n) && n >= 0 && n <= 65535, 'a port number 0-65535')
  const timeout = num('TIMEOUT', 5, (n) => n > 0, 'a number of seconds greater than 0')
  const idle = num('IDLE_TIMEOUT', 60, (n) => n > 0, 'a number of seconds greater than 0')
  const shutdown = num('SHUTDOWN_TIMEOUT', 25, (n) => n >= 0, 'a number of seconds, 0 or more')
  const httpsPortText = env.HTTPS_PORT?.trim() ?? ''
  const httpsPort = httpsPortText === '' ? undefined : num('HTTPS_PORT', 8443, (n) => Number.isInteger(n) && n >= 0 && n <= 65535, 'a port number 0-65535')
  const httpsRedirectPort = num('HTTPS_REDIRECT_PORT', 443, (n) => Number.isInteger(n) && n >= 1 && n <= 65535, 'a port number 1-65535')
  const adminText = (env.ADMIN_PORT ?? '').trim().toLowerCase()
  const adminPort = adminText === '' || adminText === 'off' || adminText === 'false' || adminText === 'no' ? undefined : num('ADMIN_PORT', 0, (n) => Number.isInteger(n) && n >= 0 && n <= 65535, 'a port number 0-65535, or off')
  const workers = num('WORKERS', availableParallelism(), (n) => Number.isInteger(n) && n >= 1 && n <= 256, 'a whole number of processes, 1-256')

  const trustedProxiesText = (env.TRUSTED_PROXIES ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
  let trustedProxies: BlockList | undefined
  if (trustedProxiesText.length > 0) {
    trustedProxies = new BlockList()
    for (const cidr of trustedProxiesText) {
      const problem = addCidr(trustedProxies, cidr)
      if (problem) problems.push(`TRUSTED_PROXIES: ${problem}`)
    }
  }

  // New switches take an explicit yes or no: unlike DEBUG (any value turns
  // it on, as in the Go original), `RAW_PATHS=false` must not turn off a
  // security default.
  const flag = (name: string, fallback = false): boolean => {
    const raw = (env[name] ?? '').trim().toLowerCase()
    if (raw === '') return fallback
    if (FALSE_WORDS.includes(raw)) return false
    if (TRUE_WORDS.includes(raw)) return true
    problems.push(`${name}=${JSON.stringify(env[name])} is not valid: expected on or off (true/false, yes/no, 1/0)`)
    return false
  }
  const accessLogHealth = flag('ACCESS_LOG_HEALTH')
  const rawPaths = flag('RAW_PATHS')
  const allowUnderscoresInHeaders = flag('ALLOW_UNDERSCORES_IN_HEADERS')
  const requestId = flag('REQUEST_ID', true)
  const formatText = (env.ACCESS_LOG_FORMAT ?? '').trim().toLowerCase() || 'json'
  const accessLogFormat = ACCESS_LOG_FORMATS.find((f) => f === formatText)
  if (accessLogFormat === undefined) problems.push(`ACCESS_LOG_FORMAT=${JSON.stringify(env.ACCESS_LOG_FORMAT)} is not valid: expected ${ACCESS_LOG_FORMATS.join(' or ')}`)

  const certPath = nonEmpty(env.CERT_PATH)
  const logProblem = logLevelProblem(env)
  if (logProblem) problems.push(logProblem)

  if (httpsPort !== undefined && httpsPort !== 0 && httpsPort === port) problems.push(`HTTPS_PORT=${httpsPort} is the same as PORT: plain HTTP and HTTPS need a port each`)
  if (adminPort !== undefined && adminPort !== 0 && (adminPort === port || adminPort === httpsPort)) problems.push(`ADMIN_PORT=${adminPort} is the same as PORT or HTTPS_PORT: the admin port is separate from traffic`)
  if (problems.length > 0) {
    throw new NanoProxyError(ERROR_CODES.SETTINGS_INVALID, problems.join('\n'))
  }

  return {
    port,
    httpsPort,
    httpsRedirectPort,
    timeoutMs: timeout * 1000,
    idleTimeoutMs: idle * 1000,
    shutdownTimeoutMs: shutdown * 1000,
    debug: nonEmpty(env.DEBUG) !== undefined,
    certPath,
    tlsSkipVerify: nonEmpty(env.TLS_SKIP_VERIFY) !== undefined,
    trustedProxies,
    trustedProxiesText,
    configB64: nonEmpty(env.CONFIG_B64),
    accessLog: !['off', 'false', '0'].includes((env.ACCESS_LOG ?? '').toLowerCase()),
    accessLogHealth,
    accessLogFormat: accessLogFormat ?? 'json',
    requestId,
    workers,
    rawPaths,
    allowUnderscoresInHeaders,
    adminPort,
  }
}

const TRUE_WORDS = ['true', '1', 'on', 'yes']
const FALSE_WORDS = ['false', '0', 'off', 'no']

/** The HTTPS port when HTTPS_PORT is unset and the config has certificates. */
export const DEFAULT_HTTPS_PORT = 8443

/** LOG_LEVEL is shared by the proxy and the controller. */
export function logLevelProblem(env: Env): string | undefined {
  const level = nonEmpty(env.LOG_LEVEL)
  if (level === undefined || LOG_LEVELS.includes(level)) return undefined
  return `LOG_LEVEL=${JSON.stringify(level)} is not valid: expected one of ${LOG_LEVELS.join(', ')}`
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v === '' ? undefined : v
}

