// Ingress annotations: ours (`nanoproxy/*`) and ingress-nginx's
// (`nginx.ingress.kubernetes.io/*`, its names and value syntax), read into
// the settings translate.ts applies to every path of the Ingress.
//
// Fail closed (docs/ingress-nginx.md): an annotation that cannot be
// honoured leaves the whole Ingress out, with a Warning Event naming it.
// Serving the Ingress without it could open what it closed: a snippet may
// implement access control, and so may whitelist-source-range or auth-url
// until NanoProxy implements them. The same for any unknown name under
// either prefix (a typo must not silently do nothing) and for known values
// NanoProxy cannot serve (backend-protocol GRPC before HTTP/2).

import { isHostName, type Scheme, type TimeoutsPolicy } from '../config/schema.ts'
import { cidrProblem } from '../router/cidr-list.ts'

export const NANOPROXY_PREFIX = 'nanoproxy/'
export const NGINX_PREFIX = 'nginx.ingress.kubernetes.io/'

/** What the annotations of one Ingress ask for. */
export interface IngressSettings {
  scheme: Scheme
  stripPath: boolean
  /** False: plain HTTP is served even for a host with a certificate (ssl-redirect "false"). */
  sslRedirect: boolean
  forceSslRedirect: boolean
  serviceUpstream: boolean
  /** Paths are regular expressions (use-regex, or implied by rewrite-target as in ingress-nginx). */
  regex: boolean
  /** rewrite-target: the path sent upstream, `$1`.. from the path's groups. */
  rewriteTarget: string | undefined
  /** app-root: `/` of each host of the Ingress redirects (302) here. */
  appRoot: string | undefined
  /** proxy-body-size in bytes; undefined: no limit (absent, or "0"). */
  maxBodySize: number | undefined
  /** upstream-vhost: the Host sent upstream. */
  upstreamVhost: string | undefined
  /** x-forwarded-prefix: the X-Forwarded-Prefix header sent upstream. */
  forwardedPrefix: string | undefined
  /** proxy-connect/read/send-timeout; undefined when none is given. */
  timeouts: TimeoutsPolicy | undefined
  /** whitelist-source-range (allow) and denylist-source-range (deny): CIDRs. */
  allow: string[] | undefined
  deny: string[] | undefined
}

/** One annotation's verdict, for the Warning Event and `nanoproxy migrate`. */
export interface AnnotationProblem {
  annotation: string
  /** `unsupported`: a name NanoProxy cannot honour; `invalid`: a value it cannot read or serve. */
  kind: 'unsupported' | 'invalid'
  message: string
}

/** The names NanoProxy honours, under either prefix (strip-path is ours only). */
export const SUPPORTED_ANNOTATIONS = [
  'backend-protocol',
  'ssl-redirect',
  'force-ssl-redirect',
  'service-upstream',
  'rewrite-target',
  'use-regex',
  'app-root',
  'proxy-body-size',
  'upstream-vhost',
  'x-forwarded-prefix',
  'proxy-connect-timeout',
  'proxy-read-timeout',
  'proxy-send-timeout',
  'whitelist-source-range',
  'denylist-source-range',
] as const
const OURS_ONLY = ['strip-path']

/** Raw nginx configuration or Lua: never portable (and the source of ingress-nginx's CVEs). */
const NOT_PORTABLE = /^(configuration-snippet|server-snippet|stream-snippet|auth-snippet|modsecurity-snippet|lua-resty-waf.*)$/

/** ingress-nginx annotations known to exist, not honoured by this version (docs/ingress-nginx.md). */
const NOT_YET = new Set([
  'enable-cors',
  'cors-allow-origin',
  'cors-allow-methods',
  'cors-allow-headers',
  'cors-expose-headers',
  'cors-allow-credentials',
  'cors-max-age',
  'auth-type',
  'auth-secret',
  'auth-secret-type',
  'auth-realm',
  'auth-url',
  'auth-signin',
  'auth-response-headers',
  'auth-method',
  'affinity',
  'affinity-mode',
  'session-cookie-name',
  'session-cookie-path',
  'session-cookie-max-age',
  'session-cookie-expires',
  'session-cookie-samesite',
  'session-cookie-secure',
  'canary',
  'canary-by-header',
  'canary-by-header-value',
  'canary-by-header-pattern',
  'canary-by-cookie',
  'canary-weight',
  'canary-weight-total',
  'limit-rps',
  'limit-rpm',
  'limit-connections',
  'limit-burst-multiplier',
  'limit-whitelist',
  'permanent-redirect',
  'permanent-redirect-code',
  'temporal-redirect',
  'from-to-www-redirect',
  'custom-headers',
  'ssl-passthrough',
  'proxy-buffering',
  'proxy-buffer-size',
  'client-body-buffer-size',
  'enable-access-log',
  'ssl-ciphers',
  'upstream-hash-by',
  'load-balance',
])

const BOOLEAN = ['true', 'false'] as const
/** backend-protocol values ingress-nginx accepts that need what NanoProxy does not have yet. */
const UNSUPPORTED_PROTOCOLS = ['grpc', 'grpcs', 'auto_http', 'fcgi']

/**
 * Reads the annotations; `problems` empty means the Ingress can be served
 * with `settings`. Values are ingress-nginx's: booleans "true"/"false",
 * protocol names in any case.
 */
export function readAnnotations(annotations: Readonly<Record<string, string>>): { settings: IngressSettings; problems: AnnotationProblem[] } {
  const problems: AnnotationProblem[] = []
  const values = new Map<string, { value: string; annotation: string }>()
  for (const [annotation, value] of Object.entries(annotations)) {
    const ours = annotation.startsWith(NANOPROXY_PREFIX)
    if (!ours && !annotation.startsWith(NGINX_PREFIX)) continue
    const name = annotation.slice(ours ? NANOPROXY_PREFIX.length : NGINX_PREFIX.length)
    const verdict = knownName(name, ours)
    if (verdict !== undefined) {
      problems.push({ annotation, kind: 'unsupported', message: `annotation ${annotation} ${verdict}; this Ingress is not served` })
      continue
    }
    const other = values.get(name)
    if (other !== undefined && other.value.trim() !== value.trim()) {
      problems.push({ annotation, kind: 'invalid', message: `annotations ${other.annotation} and ${annotation} disagree (${JSON.stringify(other.value)}, ${JSON.stringify(value)}); this Ingress is not served` })
      continue
    }
    values.set(name, { value, annotation })
  }

  /** One of `accepted` (any case, trimmed); `fallback` when absent. */
  const oneOf = <T extends string>(name: string, accepted: readonly T[], fallback: T): T => {
    const entry = values.get(name)
    if (entry === undefined) return fallback
    const v = entry.value.trim().toLowerCase()
    if ((accepted as readonly string[]).includes(v)) return v as T
    problems.push({
      annotation: entry.annotation,
      kind: 'invalid',
      message: `annotation ${entry.annotation}: ${JSON.stringify(entry.value)} is not valid (accepted: ${accepted.join(', ')}); this Ingress is not served`,
    })
    return fallback
  }
  /** A path value (rewrite-target, app-root): starts with '/', no whitespace. */
  const pathOf = (name: string): string | undefined => {
    const entry = values.get(name)
    if (entry === undefined) return undefined
    const v = entry.value.trim()
    if (/^\/\S*$/.test(v) && !v.includes('#')) return v
    problems.push({ annotation: entry.annotation, kind: 'invalid', message: `annotation ${entry.annotation}: ${JSON.stringify(entry.value)} must be a path starting with "/" (no spaces); this Ingress is not served` })
    return undefined
  }

  const protocol = values.get('backend-protocol')
  let scheme: Scheme = 'http'
  if (protocol !== undefined && UNSUPPORTED_PROTOCOLS.includes(protocol.value.trim().toLowerCase())) {
    problems.push({
      annotation: protocol.annotation,
      kind: 'unsupported',
      message: `annotation ${protocol.annotation}: ${JSON.stringify(protocol.value)} is not supported yet (NanoProxy speaks HTTP/1.1 to backends: HTTP or HTTPS); this Ingress is not served`,
    })
  } else {
    scheme = oneOf<Scheme>('backend-protocol', ['http', 'https'], 'http')
  }
  const rewriteTarget = pathOf('rewrite-target')
  const appRoot = pathOf('app-root')
  if (appRoot !== undefined && appRoot.includes('?')) {
    problems.push({ annotation: values.get('app-root')!.annotation, kind: 'invalid', message: `annotation ${values.get('app-root')!.annotation}: ${JSON.stringify(appRoot)} must be a path without a query; this Ingress is not served` })
  }
  // nginx's size syntax (client_max_body_size): bytes, or k/m/g (×1024).
  // "0" turns the check off, as in nginx.
  let maxBodySize: number | undefined
  const bodySize = values.get('proxy-body-size')
  if (bodySize !== undefined) {
    const m = /^(\d{1,15})([kKmMgG]?)$/.exec(bodySize.value.trim())
    if (m === null) {
      problems.push({ annotation: bodySize.annotation, kind: 'invalid', message: `annotation ${bodySize.annotation}: ${JSON.stringify(bodySize.value)} is not a size (bytes, or a number with k, m or g: "8m"); this Ingress is not served` })
    } else {
      const unit = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g']
      const bytes = Number(m[1]) * unit
      if (bytes > 0) maxBodySize = Math.min(bytes, Number.MAX_SAFE_INTEGER)
    }
  }
  const vhost = values.get('upstream-vhost')
  let upstreamVhost: string | undefined
  if (vhost !== undefined) {
    const v = vhost.value.trim()
    // A host name (nginx sends it as the Host value).
    if (isHostName(v)) upstreamVhost = v
    else problems.push({ annotation: vhost.annotation, kind: 'invalid', message: `annotation ${vhost.annotation}: ${JSON.stringify(vhost.value)} is not a host name (no port; nginx variables are not supported); this Ingress is not served` })
  }
  const prefix = values.get('x-forwarded-prefix')
  let forwardedPrefix: string | undefined
  if (prefix !== undefined) {
    const v = prefix.value.trim()
    // A header value: visible characters and spaces inside (RFC 9110 §5.5).
    if (/^[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?$/.test(v) && !v.includes('$')) forwardedPrefix = v
    else problems.push({ annotation: prefix.annotation, kind: 'invalid', message: `annotation ${prefix.annotation}: ${JSON.stringify(prefix.value)} is not a header value NanoProxy can send (no control characters, no nginx variables); this Ingress is not served` })
  }
  // Seconds, as ingress-nginx writes them ("60"; "60s" accepted too).
  const seconds = (name: string): number | undefined => {
    const entry = values.get(name)
    if (entry === undefined) return undefined
    const m = /^(\d{1,5})s?$/.exec(entry.value.trim())
    if (m !== null && Number(m[1]) > 0 && Number(m[1]) <= 86400) return Number(m[1])
    problems.push({ annotation: entry.annotation, kind: 'invalid', message: `annotation ${entry.annotation}: ${JSON.stringify(entry.value)} is not a number of seconds from 1 to 86400; this Ingress is not served` })
    return undefined
  }
  const connect = seconds('proxy-connect-timeout')
  const read = seconds('proxy-read-timeout')
  const send = seconds('proxy-send-timeout')
  // nginx's read timeout is the wait for the response head and between two
  // reads of its body, its send timeout between two writes of the request
  // body; NanoProxy has one idle timeout for both bodies: the larger.
  const idle = read === undefined ? send : send === undefined ? read : Math.max(read, send)
  const timeouts: TimeoutsPolicy | undefined =
    connect === undefined && read === undefined && idle === undefined
      ? undefined
      : { ...(connect !== undefined ? { connect } : {}), ...(read !== undefined ? { response: read } : {}), ...(idle !== undefined ? { idle } : {}) }
  // Comma-separated CIDRs, as ingress-nginx reads them. One bad entry
  // leaves the Ingress out: serving it with a shorter list would refuse
  // too much (allow) or too little (deny).
  const cidrs = (name: string): string[] | undefined => {
    const entry = values.get(name)
    if (entry === undefined) return undefined
    const list = entry.value.split(',').map((c) => c.trim()).filter((c) => c !== '')
    const bad = list.map(cidrProblem).find((p) => p !== undefined)
    if (list.length > 0 && bad === undefined) return list
    problems.push({ annotation: entry.annotation, kind: 'invalid', message: `annotation ${entry.annotation}: ${bad ?? 'no address given'}; this Ingress is not served` })
    return undefined
  }
  const allow = cidrs('whitelist-source-range')
  const deny = cidrs('denylist-source-range')
  const settings: IngressSettings = {
    scheme,
    stripPath: oneOf('strip-path', BOOLEAN, 'false') === 'true',
    sslRedirect: oneOf('ssl-redirect', BOOLEAN, 'true') === 'true',
    forceSslRedirect: oneOf('force-ssl-redirect', BOOLEAN, 'false') === 'true',
    serviceUpstream: oneOf('service-upstream', BOOLEAN, 'false') === 'true',
    // ingress-nginx: "use-regex … is enforced when rewrite-target is used".
    regex: oneOf('use-regex', BOOLEAN, 'false') === 'true' || rewriteTarget !== undefined,
    rewriteTarget,
    appRoot,
    maxBodySize,
    upstreamVhost,
    forwardedPrefix,
    timeouts,
    allow,
    deny,
  }
  if (settings.stripPath && settings.regex) {
    problems.push({
      annotation: values.get('strip-path')!.annotation,
      kind: 'invalid',
      message: `annotation ${values.get('strip-path')!.annotation} cannot be combined with regex paths (use-regex, rewrite-target): use rewrite-target with a capture group; this Ingress is not served`,
    })
  }
  return { settings, problems }
}

/** Undefined for a name NanoProxy honours; otherwise why it cannot. */
function knownName(name: string, ours: boolean): string | undefined {
  if ((SUPPORTED_ANNOTATIONS as readonly string[]).includes(name)) return undefined
  if (ours && OURS_ONLY.includes(name)) return undefined
  if (NOT_PORTABLE.test(name)) return 'is raw nginx configuration (a snippet or Lua), which NanoProxy cannot run and will not ignore (it may implement access control)'
  if (NOT_YET.has(name)) return 'is not supported by this version of NanoProxy (docs/ingress-nginx.md)'
  return 'is not an annotation NanoProxy knows'
}
