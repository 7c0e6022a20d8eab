// HTTPRoutes to proxy config: a pure function, like translate.ts, from the
// attachments gateway-status.ts found (route → listener, with the effective
// hostnames) to one route table per Gateway and port, each an ordinary
// ProxyConfig. One table per port is how docs/gateway-api.md's data plane
// keeps the routes of one Gateway from answering on another; serving the
// tables side by side in one proxy needs the config's `listeners`
// (proposed there, not built yet).
//
// What the existing config model can express is translated: path matches
// Exact and PathPrefix, and Service backendRefs (their endpoints, by
// EndpointSlices; several refs with their weights). A rule that needs more
// (header, query or method matches, filters, RegularExpression paths)
// is left out and reported, never served more broadly than written.
//
// Precedence (httproute_types.go, HTTPRouteRule): an Exact path before any
// PathPrefix, then the longest prefix; ties go to the oldest route, then
// namespace/name, then rule order. Exact hostnames before wildcards before
// rules for every host.

import type { ProxyConfig, RuleConfig, ServerConfig, UpstreamConfig } from '../config/schema.ts'
import { MAX_WEIGHT } from '../config/schema.ts'
import { endpointServers, slicesByService } from './endpoints.ts'
import type { GatewaySnapshot, HTTPRouteMatch } from './gateway-objects.ts'
import { backendProblem, type Attachment } from './gateway-status.ts'
import { keyOf, type EndpointSlice, type Service } from './snapshot.ts'

export interface GatewayTable {
  /** `namespace/name` of the Gateway. */
  gateway: string
  port: number
  config: ProxyConfig
}

export interface SkippedRule {
  route: string
  rule: number
  reason: string
}

export interface GatewayTranslation {
  tables: GatewayTable[]
  skipped: SkippedRule[]
}

interface Candidate {
  rule: RuleConfig
  hostRank: number
  exact: boolean
  length: number
  seq: number
}

export function translateGateways(
  attachments: readonly Attachment[],
  snapshot: Pick<GatewaySnapshot, 'services' | 'referenceGrants'> & { endpointSlices?: readonly EndpointSlice[] },
): GatewayTranslation {
  const services = new Map<string, Service>(snapshot.services.map((s) => [keyOf(s.metadata), s]))
  const slices = slicesByService(snapshot.endpointSlices)
  const tables = new Map<string, { gateway: string; port: number; upstreams: Map<string, UpstreamConfig>; candidates: Candidate[] }>()
  const skipped = new Map<string, SkippedRule>()
  let seq = 0
  for (const a of attachments) {
    const gateway = keyOf(a.gateway.metadata)
    const routeKey = keyOf(a.route.metadata)
    const routeNs = a.route.metadata.namespace ?? 'default'
    const tableKey = `${gateway}:${a.listener.port}`
    let table = tables.get(tableKey)
    if (!table) tables.set(tableKey, (table = { gateway, port: a.listener.port, upstreams: new Map(), candidates: [] }))
    for (const [r, rule] of (a.route.spec?.rules ?? []).entries()) {
      const skip = (reason: string): void => void skipped.set(`${routeKey}#${r}`, { route: routeKey, rule: r, reason })
      if ((rule.filters ?? []).length > 0) {
        skip('filters need the per-route policy model')
        continue
      }
      const matches: HTTPRouteMatch[] = rule.matches && rule.matches.length > 0 ? rule.matches : [{ path: { type: 'PathPrefix', value: '/' } }]
      if (matches.some((m) => (m.headers ?? []).length > 0 || (m.queryParams ?? []).length > 0 || m.method !== undefined)) {
        skip('header, query parameter and method matches need the per-route policy model')
        continue
      }
      if (matches.some((m) => (m.path?.type ?? 'PathPrefix') === 'RegularExpression')) {
        skip('RegularExpression paths are not supported')
        continue
      }
      const upstream = upstreamFor(rule.backendRefs ?? [], `${routeKey}/rules/${r}`, routeNs, snapshot, services, slices)
      table.upstreams.set(upstream.name, upstream)
      for (const m of matches) {
        const exact = m.path?.type === 'Exact'
        const path = m.path?.value || '/'
        const key = exact ? path : path.replace(/\/+$/, '')
        for (const host of a.hostnames ?? ['']) {
          table.candidates.push({
            rule: { upstream: upstream.name, path, host, matchMode: exact ? 'exact' : 'pathPrefix', stripPath: false },
            hostRank: host === '' ? 2 : host.startsWith('*.') ? 1 : 0,
            exact,
            length: key.length,
            seq: seq++,
          })
        }
      }
    }
  }
  const out: GatewayTable[] = []
  for (const t of [...tables.values()].sort((x, y) => compare(x.gateway, y.gateway) || x.port - y.port)) {
    t.candidates.sort((x, y) => x.hostRank - y.hostRank || Number(y.exact) - Number(x.exact) || y.length - x.length || x.seq - y.seq)
    // One rule per host + mode + path: the first (highest precedence) wins.
    const seen = new Set<string>()
    const rules = t.candidates.map((c) => c.rule).filter((r) => {
      const k = `${r.host}\n${r.matchMode}\n${r.path}`
      if (seen.has(k)) return false
      seen.add(k)
      return true
    })
    const used = new Set(rules.map((r) => r.upstream))
    const upstreams = [...t.upstreams.values()].filter((u) => used.has(u.name)).sort((x, y) => compare(x.name, y.name))
    out.push({ gateway: t.gateway, port: t.port, config: { upstreams, rules } })
  }
  return { tables: out, skipped: [...skipped.values()] }
}

/**
 * The upstream of a rule: the endpoints of its usable backendRefs. Refs
 * that cannot be used (gateway-status.ts reports them in ResolvedRefs) and
 * weight 0 get no share; with none left the upstream has no servers, so the
 * proxy answers 503 (the spec asks for 500: a later status-code rule).
 * Several refs: each server's weight is its ref's weight spread over the
 * ref's servers, so every ref gets its share whatever its number of pods.
 */
function upstreamFor(
  refs: readonly { name: string; namespace?: string; port?: number; weight?: number; group?: string; kind?: string }[],
  ruleName: string,
  routeNs: string,
  snapshot: Pick<GatewaySnapshot, 'referenceGrants'>,
  services: Map<string, Service>,
  slices: Map<string, EndpointSlice[]>,
): UpstreamConfig {
  const usable = refs.filter((ref) => (ref.weight ?? 1) > 0 && backendProblem(ref, routeNs, snapshot, services) === undefined)
  const groups = usable.map((ref) => {
    const ns = ref.namespace ?? routeNs
    const service = services.get(`${ns}/${ref.name}`)!
    const port = service.spec!.ports!.find((p) => p.port === ref.port)!
    return { key: `${ns}/${ref.name}:${ref.port}`, weight: ref.weight ?? 1, servers: endpointServers(slices.get(`${ns}/${ref.name}`), port) }
  })
  const common = { scheme: 'http' as const, noHostRewrite: false }
  if (groups.length === 1) return { name: `gateway:${groups[0]!.key}`, servers: groups[0]!.servers, ...common }
  const withServers = groups.filter((g) => g.servers.length > 0)
  const lcm = withServers.reduce((acc, g) => (acc * g.servers.length) / gcd(acc, g.servers.length), 1)
  const raw = withServers.map((g) => (g.weight * lcm) / g.servers.length)
  const scale = Math.max(1, ...raw) > MAX_WEIGHT ? MAX_WEIGHT / Math.max(...raw) : 1
  const servers: ServerConfig[] = withServers.flatMap((g, i) => g.servers.map((s) => ({ ...s, weight: Math.max(1, Math.round(raw[i]! * scale)) })))
  return { name: `gateway:${ruleName}`, servers, ...common }
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b)
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}
