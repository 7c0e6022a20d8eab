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
export type MatchMode = 'prefix' | 'exact' | 'pathPrefix'

export const MATCH_MODES: readonly MatchMode[] = ['prefix', 'exact', 'pathPrefix']
export const SCHEMES: readonly Scheme[] = ['http', 'https']

export interface UpstreamConfig {
  name: string
  host: string
  port: number
  scheme: Scheme
  noHostRewrite: boolean
}

export interface RuleConfig {
  upstream: string
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
  certFile: string
  keyFile: string
  /** Served to handshakes without SNI and for names no certificate covers. */
  default: boolean
  /** HSTS max-age in seconds for these hosts' HTTPS responses (RFC 6797 §6.1); absent: no header. */
  hstsMaxAge?: number
  /** Adds `includeSubDomains` to the HSTS header. */
  hstsIncludeSubDomains?: boolean
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
        required: ['name', 'host'],
        properties: {
          name: { type: 'string', minLength: 1 },
          host: { type: 'string', pattern: `^(${HOSTNAME}|${IPV6})$` },
          port: { type: 'integer', minimum: 1, maximum: 65535 },
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
        required: ['upstream'],
        properties: {
          upstream: { type: 'string', minLength: 1 },
          path: { type: 'string', pattern: '^/[^\\s?#]*$' },
          host: { type: 'string', pattern: `^((\\*\\.)?${HOSTNAME}|${IPV6})?$` },
          matchMode: { enum: MATCH_MODES },
          stripPath: { type: 'boolean' },
          rawPath: { type: 'boolean' },
          sslRedirect: { type: 'boolean' },
        },
      },
    },
    certificates: {
      type: ['array', 'null'],
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['certFile', 'keyFile'],
        properties: {
          hosts: { type: 'array', items: { type: 'string', pattern: `^(\\*\\.)?${HOSTNAME}$` } },
          certFile: { type: 'string', minLength: 1 },
          keyFile: { type: 'string', minLength: 1 },
          default: { type: 'boolean' },
          hstsMaxAge: { type: 'integer', minimum: 0 },
          hstsIncludeSubDomains: { type: 'boolean' },
        },
      },
    },
  },
} as const

/** Friendlier words for schema patterns than "must match pattern ^...$". */
export const PATTERN_HINTS: Record<string, string> = {
  host: 'must be a hostname or IP address, without scheme, port or path',
  path: 'must start with "/" and contain no spaces, "?" or "#"',
  hosts: 'must be a host name or a one-label wildcard (*.example.com), without scheme, port or path',
}
