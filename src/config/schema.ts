// The config file's schema and the typed config it produces.
//
// Field names and defaults are those of the original NanoProxy README:
// upstream port 80/443 by scheme, scheme http, matchMode prefix,
// stripPath false, an empty rule host matches every host.

export type Scheme = 'http' | 'https'

/**
 * - `prefix`: the original NanoProxy's plain string prefix (`/api` matches `/apix`).
 * - `exact`: the whole path is equal (case-sensitive).
 * - `pathPrefix`: Kubernetes `Prefix`, element-wise on `/`-separated segments
 *   (kubernetes.io/docs/concepts/services-networking/ingress/#path-types).
 */
export type MatchMode = 'prefix' | 'exact' | 'pathPrefix' | 'regex'

/**
 * How requests are spread over an upstream's servers (docs/routing.md,
 * "Balancing"): `roundRobin` is nginx's smooth weighted round robin,
 * `leastRequest` Envoy's least request with two random choices.
 */
export type Balance = 'roundRobin' | 'leastRequest'

export const MATCH_MODES: readonly MatchMode[] = ['prefix', 'exact', 'pathPrefix', 'regex']
/** Redirect status codes: those of Gateway API's RequestRedirect plus 303, 307 and 308 (RFC 9110 §15.4). */
export const REDIRECT_CODES = [301, 302, 303, 307, 308] as const
export type RedirectCode = (typeof REDIRECT_CODES)[number]
export const SCHEMES: readonly Scheme[] = ['http', 'https']
export const BALANCES: readonly Balance[] = ['roundRobin', 'leastRequest']
/** Weights as in Envoy (1-128 there); nginx has no upper bound. */
export const MAX_WEIGHT = 1000

export interface ServerConfig {
  /** DNS name (resolved to all its addresses), IPv4 or IPv6 address (without brackets). */
  host: string
  port: number
  /** Share of the requests relative to the other servers (1 unless given). */
  weight: number
}

/**
 * An upstream is either one server (`host`, `port`: the original form) or a
 * list of `servers` (possibly empty: requests get 503). Exactly one of the
 * two forms is present after loading; use serversOf() to read either.
 */
export interface UpstreamConfig {
  name: string
  host?: string
  port?: number
  servers?: ServerConfig[]
  /** Absent: roundRobin (DEFAULT_BALANCE). */
  balance?: Balance
  /**
   * HTTPS: the name sent as SNI and checked in the servers' certificates
   * (nginx's proxy_ssl_name, Envoy's sni). Absent: each server's host when it
   * is a name; none for an address.
   */
  serverName?: string
  scheme: Scheme
  noHostRewrite: boolean
}

export const DEFAULT_BALANCE: Balance = 'roundRobin'

/** The servers of an upstream, whichever form it was written in. */
export function serversOf(u: UpstreamConfig): ServerConfig[] {
  if (u.servers !== undefined) return u.servers
  if (u.host === undefined) return []
  return [{ host: u.host, port: u.port ?? (u.scheme === 'https' ? 443 : 80), weight: 1 }]
}

/** One header field to set or add (Gateway API's HTTPHeader). */
export interface HeaderValue {
  /** As written; compared case-insensitively. */
  name: string
  value: string
}

/** Header changes (Gateway API's RequestHeaderModifier / ResponseHeaderModifier). */
export interface HeaderEdits {
  set?: HeaderValue[]
  add?: HeaderValue[]
  /** Lower-case names. */
  remove?: string[]
}

/**
 * A redirect answered by the proxy (Gateway API's RequestRedirect). Each
 * field present replaces that part of the request's URL; `path` replaces
 * the whole path (`$1`..`$9`: the rule's regex groups), `prefix` the part
 * the rule matched.
 */
export interface RedirectPolicy {
  scheme?: Scheme
  hostname?: string
  port?: number
  path?: string
  prefix?: string
  statusCode: RedirectCode
}

/**
 * A rule's upstream deadlines, in seconds: `connect` (TCP/TLS connection),
 * `response` (from the request's last byte to the response head), `idle`
 * (silence in the middle of a request or response body).
 */
export interface TimeoutsPolicy {
  connect?: number
  response?: number
  idle?: number
}

/** Changes to the forwarded request (Gateway API's URLRewrite). */
export interface RewritePolicy {
  hostname?: string
  path?: string
  prefix?: string
}

export interface RuleConfig {
  /** Absent only on a rule with `redirect` (which forwards nothing). */
  upstream?: string
  path: string
  /** Lower-case host without port; '' matches every host; `*.example.com` one label. */
  host: string
  matchMode: MatchMode
  stripPath: boolean
  /**
   * Match and forward the path exactly as received, without normalising it
   * (docs/routing.md, "Path normalisation"). Absent means false; the
   * controller never sets it.
   */
  rawPath?: boolean
  /**
   * `false`: a plain-HTTP request for a host that has a certificate is
   * forwarded instead of getting a 308 to https (docs/configuration.md,
   * "certificates"). Absent means true.
   */
  sslRedirect?: boolean
  /** `matchMode: regex`: case-insensitive. */
  ignoreCase?: boolean
  /** Plain HTTP always gets 308 to https (ingress-nginx's force-ssl-redirect). */
  forceSslRedirect?: boolean
  redirect?: RedirectPolicy
  rewrite?: RewritePolicy
  requestHeaders?: HeaderEdits
  responseHeaders?: HeaderEdits
  /** Seconds; each absent: TIMEOUT (connect, response) or IDLE_TIMEOUT (idle). */
  timeouts?: TimeoutsPolicy
  /** Client addresses (CIDRs) allowed; absent: any. Checked after `deny`. */
  allow?: string[]
  /** Client addresses (CIDRs) refused with 403. */
  deny?: string[]
  /** Largest request body in bytes (413 above it); absent: no limit. */
  maxBodySize?: number
}

/**
 * A certificate chain and its private key, by file path (relative paths
 * from the config file's directory), served by SNI for `hosts` (exact names
 * and one-label `*.` wildcards). Files, not inline PEM: private keys stay out
 * of the config file (which is dumped by DEBUG, logged on errors, and
 * re-parsed on every reload), and 1,000 certificates do not make every
 * reload parse megabytes of text.
 */
export interface CertificateConfig {
  /** Lower-case, without trailing dot; may be empty for a default-only certificate. */
  hosts: string[]
  /**
   * Both or neither. Neither: `hosts` are served over HTTPS with the default
   * certificate (a Secret not issued yet, as ingress-nginx serves its
   * default certificate for them), and are redirected and get HSTS like
   * hosts with a certificate of their own.
   */
  certFile?: string
  keyFile?: string
  /** Served to handshakes without SNI and for names no certificate covers. */
  default: boolean
  /** HSTS max-age in seconds for these hosts' HTTPS responses (RFC 6797 §6.1); absent: no header. */
  hstsMaxAge?: number
  /** Adds `includeSubDomains` to the HSTS header. */
  hstsIncludeSubDomains?: boolean
  /** Adds `preload` to the HSTS header (hstspreload.org's list; not part of RFC 6797). */
  hstsPreload?: boolean
}

export interface ProxyConfig {
  upstreams: UpstreamConfig[]
  rules: RuleConfig[]
  /** Absent when the file has no `certificates` section. */
  certificates?: CertificateConfig[]
}

// A DNS name (labels of letters, digits, '-', '_'), an IPv4 address, or an
// IPv6 address (unbracketed, as in the Go original's url building we bracket it).
const HOSTNAME = String.raw`[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?`
const IPV6 = String.raw`\[?[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*\]?`
// RFC 9110 §5.1 field-name (a token) and §5.5 field-value (no CR, LF or NUL;
// no leading or trailing whitespace).
const FIELD_NAME = "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"
const FIELD_VALUE = '^([^\\s\\x00-\\x1f\\x7f]([^\\x00-\\x08\\x0a-\\x1f\\x7f]*[^\\s\\x00-\\x1f\\x7f])?)?$'
/** A path to send or redirect to: starts with '/', no whitespace, '?' or '#'. */
const TARGET_PATH = '^/[^\\s?#]*$'

const headerList = {
  type: 'array',
  items: {
    type: 'object',
    additionalProperties: false,
    required: ['name', 'value'],
    properties: {
      name: { type: 'string', pattern: FIELD_NAME },
      value: { type: 'string', pattern: FIELD_VALUE },
    },
  },
} as const
const headerEdits = {
  type: 'object',
  additionalProperties: false,
  properties: {
    set: headerList,
    add: headerList,
    remove: { type: 'array', items: { type: 'string', pattern: FIELD_NAME } },
  },
} as const

/** Whether `s` is a DNS name or IPv4 address as the config file accepts them (the controller checks what it writes). */
export function isHostName(s: string): boolean {
  return new RegExp(`^${HOSTNAME}$`).test(s)
}

/** JSON Schema (draft 2020-12 subset understood by Ajv) of the file as written. */
export const configSchema = {
  type: ['object', 'null'],
  additionalProperties: false,
  properties: {
    upstreams: {
      type: ['array', 'null'],
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name'],
        properties: {
          name: { type: 'string', minLength: 1 },
          host: { type: 'string', pattern: `^(${HOSTNAME}|${IPV6})$` },
          port: { type: 'integer', minimum: 1, maximum: 65535 },
          servers: {
            type: 'array',
            items: {
              type: 'object',
              additionalProperties: false,
              required: ['host'],
              properties: {
                host: { type: 'string', pattern: `^(${HOSTNAME}|${IPV6})$` },
                port: { type: 'integer', minimum: 1, maximum: 65535 },
                weight: { type: 'integer', minimum: 1, maximum: MAX_WEIGHT },
              },
            },
          },
          balance: { enum: BALANCES },
          serverName: { type: 'string', pattern: `^${HOSTNAME}$` },
          scheme: { enum: SCHEMES },
          noHostRewrite: { type: 'boolean' },
        },
      },
    },
    rules: {
      type: ['array', 'null'],
      items: {
        type: 'object',
        additionalProperties: false,
        properties: {
          upstream: { type: 'string', minLength: 1 },
          // `?` and `#` are refused outside regex rules (load.ts): in a
          // regex they are syntax.
          path: { type: 'string', pattern: '^/\\S*$' },
          host: { type: 'string', pattern: `^((\\*\\.)?${HOSTNAME}|${IPV6})?$` },
          matchMode: { enum: MATCH_MODES },
          stripPath: { type: 'boolean' },
          rawPath: { type: 'boolean' },
          sslRedirect: { type: 'boolean' },
          ignoreCase: { type: 'boolean' },
          forceSslRedirect: { type: 'boolean' },
          redirect: {
            type: 'object',
            additionalProperties: false,
            properties: {
              scheme: { enum: SCHEMES },
              hostname: { type: 'string', pattern: `^(${HOSTNAME}|${IPV6})$` },
              port: { type: 'integer', minimum: 1, maximum: 65535 },
              path: { type: 'string', pattern: TARGET_PATH },
              prefix: { type: 'string', pattern: TARGET_PATH },
              statusCode: { enum: REDIRECT_CODES },
            },
          },
          rewrite: {
            type: 'object',
            additionalProperties: false,
            properties: {
              hostname: { type: 'string', pattern: `^(${HOSTNAME}|${IPV6})$` },
              path: { type: 'string', pattern: TARGET_PATH },
              prefix: { type: 'string', pattern: TARGET_PATH },
            },
          },
          requestHeaders: headerEdits,
          responseHeaders: headerEdits,
          maxBodySize: { type: 'integer', minimum: 0 },
          allow: { type: 'array', items: { type: 'string' } },
          deny: { type: 'array', items: { type: 'string' } },
          timeouts: {
            type: 'object',
            additionalProperties: false,
            properties: {
              connect: { type: 'number', exclusiveMinimum: 0, maximum: 86400 },
              response: { type: 'number', exclusiveMinimum: 0, maximum: 86400 },
              idle: { type: 'number', exclusiveMinimum: 0, maximum: 86400 },
            },
          },
        },
      },
    },
    certificates: {
      type: ['array', 'null'],
      items: {
        type: 'object',
        additionalProperties: false,
        properties: {
          hosts: { type: 'array', items: { type: 'string', pattern: `^(\\*\\.)?${HOSTNAME}$` } },
          certFile: { type: 'string', minLength: 1 },
          keyFile: { type: 'string', minLength: 1 },
          default: { type: 'boolean' },
          hstsMaxAge: { type: 'integer', minimum: 0 },
          hstsIncludeSubDomains: { type: 'boolean' },
          hstsPreload: { type: 'boolean' },
        },
      },
    },
  },
} as const

/** Friendlier words for schema patterns than "must match pattern ^...$". */
export const PATTERN_HINTS: Record<string, string> = {
  host: 'must be a hostname or IP address, without scheme, port or path',
  serverName: 'must be a DNS name',
  path: 'must start with "/" and contain no spaces',
  hostname: 'must be a hostname or IP address, without scheme, port or path',
  prefix: 'must start with "/" and contain no spaces, "?" or "#"',
  name: 'must be a header field name (letters, digits and !#$%&\'*+.^_`|~-)',
  remove: 'must be a header field name (letters, digits and !#$%&\'*+.^_`|~-)',
  value: 'must be a header field value: no control characters, no leading or trailing space',
  hosts: 'must be a host name or a one-label wildcard (*.example.com), without scheme, port or path',
}
