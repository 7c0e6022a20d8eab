// One compiled rule: what it matches and where it sends the request.

import type { MatchMode, UpstreamConfig } from '../config/schema.ts'
import { normalizePath } from './normalize-path.ts'
import type { RoutePolicy } from './route-policy.ts'

export interface Route {
  /** Position of the rule in the config file (0-based); the earliest match wins. */
  readonly index: number
  /** '' for any host, `*.example.com` for one wildcard label, else a lower-case name. */
  readonly host: string
  readonly path: string
  readonly matchMode: MatchMode
  readonly stripPath: boolean
  readonly upstream: UpstreamConfig
  /** The path without trailing slashes: the key Kubernetes Prefix matching compares. */
  readonly segmentKey: string
  /**
   * Matched against the raw request path, which is forwarded byte for byte
   * (the rule's `rawPath`, or RAW_PATHS); otherwise against the normalised
   * path (see normalize-path.ts), which is what the upstream then receives.
   */
  readonly raw: boolean
  /** `matchMode: regex`: the compiled pattern (path-regex.ts). */
  readonly regex: RegExp | undefined
  /** The rule's policies; undefined for a rule without any (route-policy.ts). */
  readonly policy: RoutePolicy | undefined
}

/**
 * The request target sent upstream, from `path`, the path the route matched
 * (normalised, or raw for a raw route): with stripPath, the matched prefix
 * is removed and the result always starts with '/'. The query string (with
 * its '?') is appended byte for byte.
 *
 * A string `prefix` can end inside a segment: `/api` strips `/api../admin`
 * to `/../admin`, a path that climbs above the root. Outside raw routes the
 * stripped path is normalised again, so that the upstream never receives a
 * dot-segment (a PathError, then 400, for one that climbs above `/`).
 */
export function upstreamTarget(route: Route, path: string, query: string): string {
  if (!route.stripPath) return query === '' ? path : path + query
  const cut = route.matchMode === 'prefix' ? route.path.length : route.matchMode === 'pathPrefix' ? route.segmentKey.length : path.length
  let rest = path.slice(cut)
  if (rest.charCodeAt(0) !== 47 /* '/' */) {
    rest = '/' + rest
    if (!route.raw) rest = normalizePath(rest)
  }
  return query === '' ? rest : rest + query
}

/** Of two matches, the one from the rule that comes first in the file. */
export function earliest(a: Route | undefined, b: Route | undefined): Route | undefined {
  if (a === undefined) return b
  if (b === undefined) return a
  return b.index < a.index ? b : a
}
