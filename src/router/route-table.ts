// The compiled routing table: host lookup by hash map, then the host's path
// index. Built once per config load, never mutated afterwards, so a request
// can keep using the table it started with while a reload swaps in another.

import type { ProxyConfig } from '../config/schema.ts'
import { PathIndex } from './path-index.ts'
import { earliest, type Route } from './route.ts'

export class RouteTable {
  /** Rules naming one exact host. */
  private readonly byHost = new Map<string, PathIndex>()
  /** Rules naming `*.suffix`, keyed by `.suffix`: one label only, so `a.b.suffix` misses. */
  private readonly byWildcard = new Map<string, PathIndex>()
  /** Rules with no host, tried for every request. */
  private readonly anyHost = new PathIndex()
  readonly size: number

  constructor(config: ProxyConfig) {
    const upstreams = new Map(config.upstreams.map((u) => [u.name, u]))
    config.rules.forEach((rule, index) => {
      const upstream = upstreams.get(rule.upstream)
      // The loader guarantees the upstream exists; this guards hand-built configs.
      if (!upstream) throw new Error(`rule ${index + 1}: unknown upstream "${rule.upstream}"`)
      const route: Route = {
        index,
        host: rule.host,
        path: rule.path,
        matchMode: rule.matchMode,
        stripPath: rule.stripPath,
        upstream,
        segmentKey: rule.path.replace(/\/+$/, ''),
      }
      this.indexFor(rule.host).add(route)
    })
    this.size = config.rules.length
  }

  private indexFor(host: string): PathIndex {
    if (host === '') return this.anyHost
    const wildcard = host.startsWith('*.')
    const map = wildcard ? this.byWildcard : this.byHost
    const key = wildcard ? host.slice(1) : host
    let index = map.get(key)
    if (!index) {
      index = new PathIndex()
      map.set(key, index)
    }
    return index
  }

  /**
   * The first rule, in file order, matching `host` (see routingHost) and
   * `path` (the request path without its query string).
   */
  match(host: string, path: string): Route | undefined {
    let best = this.byHost.get(host)?.match(path)
    if (this.byWildcard.size > 0) {
      const dot = host.indexOf('.')
      if (dot > 0) best = earliest(best, this.byWildcard.get(host.slice(dot))?.match(path))
    }
    if (this.anyHost.routes.length > 0) best = earliest(best, this.anyHost.match(path))
    return best
  }

  /**
   * The table as an operator reads it: for each host the rules that can
   * answer it, in the order they are tried. Exact hosts first, then wildcard
   * hosts, then '*' (any other host).
   */
  describe(): { host: string; routes: Route[] }[] {
    const any = this.anyHost.routes
    const merge = (...lists: Route[][]) => lists.flat().sort((a, b) => a.index - b.index)
    const groups: { host: string; routes: Route[] }[] = []
    for (const [host, index] of [...this.byHost].sort(([a], [b]) => a.localeCompare(b))) {
      const dot = host.indexOf('.')
      const wild = dot > 0 ? (this.byWildcard.get(host.slice(dot))?.routes ?? []) : []
      groups.push({ host, routes: merge(index.routes, wild, any) })
    }
    for (const [suffix, index] of [...this.byWildcard].sort(([a], [b]) => a.localeCompare(b))) {
      groups.push({ host: `*${suffix}`, routes: merge(index.routes, any) })
    }
    groups.push({ host: '*', routes: any })
    return groups
  }
}
