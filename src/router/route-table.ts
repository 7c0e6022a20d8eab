// The compiled routing table: host lookup by hash map, then the host's path
// index. Built once per config load, never mutated afterwards, so a request
// can keep using the table it started with while a reload swaps in another.
//
// Rules match the normalised request path (normalize-path.ts), except raw
// ones (the rule's `rawPath`, or every rule with RAW_PATHS), which match the
// path as received. The two kinds are kept in separate indexes; a request is
// looked up in both and, as always, the earliest rule in the file wins.

import type { ProxyConfig, UpstreamConfig } from '../config/schema.ts'
import { normalizePath, PathError } from './normalize-path.ts'
import { PathIndex } from './path-index.ts'
import { compilePathRegex } from './path-regex.ts'
import { earliest, type Route } from './route.ts'
import { compilePolicy } from './route-policy.ts'

export interface RouteTableOptions {
  /** RAW_PATHS: every rule matches and forwards the raw path. */
  rawPaths?: boolean
}

/** Rules by host: exact hosts, one-label wildcards, any host. */
class HostRoutes {
  /** Rules naming one exact host. */
  readonly byHost = new Map<string, PathIndex>()
  /** Rules naming `*.suffix`, keyed by `.suffix`: one label only, so `a.b.suffix` misses. */
  readonly byWildcard = new Map<string, PathIndex>()
  /** Rules with no host, tried for every request. */
  readonly anyHost = new PathIndex()
  size = 0

  add(route: Route): void {
    this.size++
    const host = route.host
    if (host === '') {
      this.anyHost.add(route)
      return
    }
    const wildcard = host.startsWith('*.')
    const map = wildcard ? this.byWildcard : this.byHost
    const key = wildcard ? host.slice(1) : host
    let index = map.get(key)
    if (!index) {
      index = new PathIndex()
      map.set(key, index)
    }
    index.add(route)
  }

  match(host: string, path: string): Route | undefined {
    let best = this.byHost.get(host)?.match(path)
    if (this.byWildcard.size > 0) {
      const dot = host.indexOf('.')
      if (dot > 0) best = earliest(best, this.byWildcard.get(host.slice(dot))?.match(path))
    }
    if (this.anyHost.routes.length > 0) best = earliest(best, this.anyHost.match(path))
    return best
  }
}

/** The compiled rules, as RouteTable keeps them. */
interface CompiledRoutes {
  normal: HostRoutes
  raw: HostRoutes | undefined
}

/**
 * Compiles rules one at a time, so that a large table can be compiled in
 * slices between requests (RouteTable.compile).
 */
class RouteCompiler {
  readonly routes: CompiledRoutes = { normal: new HostRoutes(), raw: undefined }
  private readonly upstreams: Map<string, UpstreamConfig>
  private readonly config: ProxyConfig
  private readonly rawPaths: boolean
  next = 0

  constructor(config: ProxyConfig, options: RouteTableOptions) {
    this.config = config
    this.upstreams = new Map(config.upstreams.map((u) => [u.name, u]))
    this.rawPaths = options.rawPaths === true
  }

  get done(): boolean {
    return this.next >= this.config.rules.length
  }

  /** Compiles the next rule. */
  step(): void {
    const index = this.next++
    const rule = this.config.rules[index]!
    const upstream = rule.upstream === undefined ? undefined : this.upstreams.get(rule.upstream)
    // The loader guarantees the upstream exists; this guards hand-built configs.
    if (!upstream && rule.redirect === undefined) throw new Error(`rule ${index + 1}: unknown upstream "${rule.upstream}"`)
    const isRaw = this.rawPaths || rule.rawPath === true
    // A rule path is normalised like a request path (`/%7Euser` is
    // `/~user`), or it could never match one; a regex is matched as written.
    const regex = rule.matchMode === 'regex'
    const path = isRaw || regex ? rule.path : normalizedRulePath(rule.path)
    const route: Route = {
      index,
      host: rule.host,
      path,
      matchMode: rule.matchMode,
      stripPath: rule.stripPath,
      upstream: upstream ?? REDIRECT_ONLY,
      segmentKey: path.replace(/\/+$/, ''),
      raw: isRaw,
      // The loader checked the pattern; a hand-built config throws here.
      regex: regex ? compilePathRegex(rule.path, rule.ignoreCase === true) : undefined,
      policy: compilePolicy(rule),
    }
    if (isRaw) (this.routes.raw ??= new HostRoutes()).add(route)
    else this.routes.normal.add(route)
  }
}

/** Options of RouteTable.compile. */
export interface CompileOptions {
  /** The longest a slice of work may run before giving way (default 3 ms). */
  sliceMs?: number
  /** Gives way to pending I/O (default: setImmediate). */
  pause?: () => Promise<void>
}

export class RouteTable {
  /** Rules matching the normalised path. */
  private readonly normal: HostRoutes
  /** Rules matching the raw path; undefined when there are none. */
  private readonly raw: HostRoutes | undefined
  readonly size: number

  /**
   * Compiles `config` at once; or takes `compiled`, the same config's rules
   * compiled in slices by RouteTable.compile.
   */
  constructor(config: ProxyConfig, options: RouteTableOptions = {}, compiled?: CompiledRoutes) {
    let routes = compiled
    if (!routes) {
      const compiler = new RouteCompiler(config, options)
      while (!compiler.done) compiler.step()
      routes = compiler.routes
    }
    this.normal = routes.normal
    this.raw = routes.raw
    this.size = config.rules.length
  }

  /**
   * Compiles `config` in slices of at most `sliceMs`, giving way to the
   * event loop between them, so that requests keep being served (with the
   * table in force) while a large table is built: 20,000 rules take 15-45 ms
   * of CPU, which in one piece would stall every request for as long.
   */
  static async compile(config: ProxyConfig, options: RouteTableOptions = {}, { sliceMs = 3, pause = yieldToEventLoop }: CompileOptions = {}): Promise<RouteTable> {
    const compiler = new RouteCompiler(config, options)
    while (!compiler.done) {
      const until = performance.now() + sliceMs
      // performance.now() is read every 64 rules: a rule takes about a microsecond.
      do {
        for (let i = 0; i < 64 && !compiler.done; i++) compiler.step()
      } while (!compiler.done && performance.now() < until)
      if (!compiler.done) await pause()
    }
    return new RouteTable(config, options, compiler.routes)
  }

  /** Whether some rule matches normalised paths (otherwise requests need no normalising). */
  get normalizes(): boolean {
    return this.normal.size > 0 || this.raw === undefined
  }

  /** Whether some rule matches raw paths. */
  get hasRaw(): boolean {
    return this.raw !== undefined
  }

  /**
   * The first rule, in file order, matching `host` (see routingHost) and the
   * request path (without its query string): `normalized` for ordinary
   * rules (undefined when the path could not be normalised: then only raw
   * rules can match), `raw` for raw rules (the same path when omitted).
   */
  match(host: string, normalized: string | undefined, raw: string = normalized ?? ''): Route | undefined {
    let best = normalized === undefined ? undefined : this.normal.match(host, normalized)
    if (this.raw !== undefined) best = earliest(best, this.raw.match(host, raw))
    return best
  }

  /**
   * The table as an operator reads it: for each host the rules that can
   * answer it, in the order they are tried. Exact hosts first, then wildcard
   * hosts, then '*' (any other host).
   */
  describe(): { host: string; routes: Route[] }[] {
    const parts = this.raw === undefined ? [this.normal] : [this.normal, this.raw]
    const merge = (...lists: Route[][]) => lists.flat().sort((a, b) => a.index - b.index)
    const any = merge(...parts.map((p) => p.anyHost.routes))
    const wildcard = (suffix: string): Route[] => merge(...parts.map((p) => p.byWildcard.get(suffix)?.routes ?? []))
    const hosts = new Set(parts.flatMap((p) => [...p.byHost.keys()]))
    const suffixes = new Set(parts.flatMap((p) => [...p.byWildcard.keys()]))
    const groups: { host: string; routes: Route[] }[] = []
    for (const host of [...hosts].sort((a, b) => a.localeCompare(b))) {
      const dot = host.indexOf('.')
      const exact = merge(...parts.map((p) => p.byHost.get(host)?.routes ?? []))
      groups.push({ host, routes: merge(exact, dot > 0 ? wildcard(host.slice(dot)) : [], any) })
    }
    for (const suffix of [...suffixes].sort((a, b) => a.localeCompare(b))) {
      groups.push({ host: `*${suffix}`, routes: merge(wildcard(suffix), any) })
    }
    groups.push({ host: '*', routes: any })
    return groups
  }
}

function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve))
}

/** The upstream of a rule that only redirects: never connected to. */
const REDIRECT_ONLY = { name: '', servers: [], scheme: 'http', noHostRewrite: false } as const satisfies ProxyConfig['upstreams'][number]

function normalizedRulePath(path: string): string {
  try {
    return normalizePath(path)
  } catch (err) {
    // A rule path that is not a valid normalised path (`/..`, `/a\b`) keeps
    // its bytes: it matches nothing a client can send.
    if (err instanceof PathError) return path
    throw err
  }
}
