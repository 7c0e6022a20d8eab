// What the proxy counts, per process: plain numbers bumped on the request
// path, turned into metric families only when someone scrapes.
//
// Labels stay bounded (Prometheus, "Instrumentation: use labels" warns
// against unbounded values): a request is counted under its rule's identity
// (host, path, match mode, upstream) as written in the config, never its URL;
// requests no rule matched share host="" path="" match="" upstream="", so a
// scan of random Host headers adds no series. Methods outside the standard
// ones count as OTHER; statuses by class (2xx...).

import type { RuleConfig } from '../config/schema.ts'
import { Histogram, LATENCY_BOUNDS } from './histogram.ts'
import type { CounterFamily, Family, HistogramFamily, Sample } from './metric-families.ts'

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'TRACE', 'CONNECT', 'OTHER'] as const
const CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx'] as const

function methodIndex(method: string): number {
  switch (method) {
    case 'GET':
      return 0
    case 'HEAD':
      return 1
    case 'POST':
      return 2
    case 'PUT':
      return 3
    case 'PATCH':
      return 4
    case 'DELETE':
      return 5
    case 'OPTIONS':
      return 6
    case 'TRACE':
      return 7
    case 'CONNECT':
      return 8
    default:
      return 9
  }
}

/** The counters of one rule (or of every unmatched request). */
export class RouteStats {
  readonly host: string
  readonly path: string
  readonly match: string
  readonly upstream: string
  /** Requests by method × status class. */
  readonly requests = new Float64Array(METHODS.length * CLASSES.length)
  readonly duration = new Histogram()
  /** Time from the request head to the upstream's response head. */
  readonly upstreamHead = new Histogram()
  bytesIn = 0
  bytesOut = 0

  constructor(host: string, path: string, match: string, upstream: string) {
    this.host = host
    this.path = path
    this.match = match
    this.upstream = upstream
  }

  get labels(): Record<string, string> {
    return { host: this.host, path: this.path, match: this.match, upstream: this.upstream }
  }
}

/** One upstream server (one address and port) as the proxy sees it, read at scrape time. */
export interface ServerGauges {
  upstream: string
  server: string
  open: number
  idle: number
  connectFailures: number
  retries: number
  ejections: number
  /** Not ejected by passive health now. */
  healthy: boolean
}

/** What is read from the running proxy at scrape time (proxy-lifecycle.ts provides it). */
export interface ProxyGauges {
  openConnections: number
  rules: number
  upstreams: number
  servers: ServerGauges[]
  /** Certificate expiry (ms since the epoch) by host name; `(default)` for the certificate served without SNI. */
  certificates: ReadonlyMap<string, number>
}

/** A config reload as the dashboard lists it. */
export interface ReloadEvent {
  /** ms since the epoch */
  time: number
  ok: boolean
  rules?: number
  /** The problems of a rejected config, each with its file:line:column. */
  problems?: string[]
}

const RECENT_RELOADS = 20

function statsKey(host: string, path: string, match: string, upstream: string): string {
  return `${host}\0${path}\0${match}\0${upstream}`
}

export class ProxyMetrics {
  /** Requests no rule matched (404s, requests refused before routing). */
  readonly unmatched = new RouteStats('', '', '', '')
  private byKey = new Map<string, RouteStats>()
  /** The current config's rule objects → their stats (a reload makes new rule objects). */
  private byRule = new WeakMap<RuleConfig, RouteStats>()
  tunnelsOpen = 0
  tlsHandshakes = 0
  tlsFailures = 0
  reloadsOk = 0
  reloadsFailed = 0
  /** ms since the epoch of the last config that was loaded (at start or by a reload). */
  lastGoodReload = Date.now()
  readonly reloads: ReloadEvent[] = []
  /** Read at scrape time. */
  gauges: () => ProxyGauges = () => ({ openConnections: 0, rules: 0, upstreams: 0, servers: [], certificates: new Map() })

  /** The stats a request routed by `rule` counts in. */
  statsFor(rule: RuleConfig): RouteStats {
    let stats = this.byRule.get(rule)
    if (stats === undefined) {
      const key = statsKey(rule.host, rule.path, rule.matchMode, rule.upstream ?? '')
      stats = this.byKey.get(key)
      if (stats === undefined) {
        stats = new RouteStats(rule.host, rule.path, rule.matchMode, rule.upstream ?? '')
        this.byKey.set(key, stats)
      }
      this.byRule.set(rule, stats)
    }
    return stats
  }

  /**
   * A new config is in force: the stats of rules it no longer has are
   * dropped (a series that stops is a normal end for Prometheus), so that
   * months of Ingress churn do not grow the scrape.
   */
  configLoaded(rules: readonly RuleConfig[]): void {
    const keep = new Map<string, RouteStats>()
    for (const rule of rules) {
      const key = statsKey(rule.host, rule.path, rule.matchMode, rule.upstream ?? '')
      const stats = this.byKey.get(key) ?? new RouteStats(rule.host, rule.path, rule.matchMode, rule.upstream ?? '')
      keep.set(key, stats)
    }
    this.byKey = keep
    this.byRule = new WeakMap()
  }

  /** One request done: the hot path, a few additions. `headSeconds` < 0 when no upstream answered. */
  request(stats: RouteStats, method: string, status: number, seconds: number, headSeconds: number, bytesIn: number, bytesOut: number): void {
    const cls = status < 200 ? 0 : status < 300 ? 1 : status < 400 ? 2 : status < 500 ? 3 : 4
    stats.requests[methodIndex(method) * CLASSES.length + cls]!++
    stats.duration.observe(seconds)
    if (headSeconds >= 0) stats.upstreamHead.observe(headSeconds)
    stats.bytesIn += bytesIn
    stats.bytesOut += bytesOut
  }

  reloaded(ok: boolean, detail: { rules?: number; problems?: string[] }): void {
    const time = Date.now()
    if (ok) {
      this.reloadsOk++
      this.lastGoodReload = time
    } else this.reloadsFailed++
    this.reloads.push({ time, ok, ...detail })
    if (this.reloads.length > RECENT_RELOADS) this.reloads.shift()
  }

  /** Every route's stats, unmatched last (for the dashboard). */
  routes(): RouteStats[] {
    return [...this.byKey.values(), this.unmatched]
  }

  families(): Family[] {
    const g = this.gauges()
    const requests: Sample[] = []
    const duration: HistogramFamily = histogram('nanoproxy_request_duration_seconds', 'Time from the request head to the last byte of the response, by route.')
    const head: HistogramFamily = histogram('nanoproxy_upstream_response_head_seconds', "Time from the request head to the upstream's response head (connecting and retries included), by route.")
    const bytesIn: Sample[] = []
    const bytesOut: Sample[] = []
    for (const stats of this.routes()) {
      const labels = stats.labels
      for (let m = 0; m < METHODS.length; m++) {
        for (let c = 0; c < CLASSES.length; c++) {
          const value = stats.requests[m * CLASSES.length + c]!
          if (value > 0) requests.push({ labels: { ...labels, method: METHODS[m]!, status: CLASSES[c]! }, value })
        }
      }
      const seen = stats.duration.counts.some((n) => n > 0)
      if (seen) duration.samples.push({ labels, counts: [...stats.duration.counts], sum: stats.duration.sum })
      if (stats.upstreamHead.counts.some((n) => n > 0)) head.samples.push({ labels, counts: [...stats.upstreamHead.counts], sum: stats.upstreamHead.sum })
      if (seen) {
        bytesIn.push({ labels, value: stats.bytesIn })
        bytesOut.push({ labels, value: stats.bytesOut })
      }
    }
    const server = (s: ServerGauges, extra?: Record<string, string>): Record<string, string> => ({ upstream: s.upstream, server: s.server, ...extra })
    return [
      counter('nanoproxy_requests_total', 'Requests answered, by route (rule host, path, match mode), upstream, method and status class.', requests),
      duration,
      head,
      counter('nanoproxy_request_body_bytes_total', 'Request body bytes received from clients, by route.', bytesIn),
      counter('nanoproxy_response_body_bytes_total', 'Response body bytes sent to clients (tunnels: bytes from the upstream), by route.', bytesOut),
      gauge('nanoproxy_client_connections', 'Client connections open.', [{ labels: {}, value: g.openConnections }]),
      gauge('nanoproxy_websocket_tunnels', 'Upgraded connections (WebSocket tunnels) open.', [{ labels: {}, value: this.tunnelsOpen }]),
      gauge(
        'nanoproxy_upstream_connections',
        'Connections to upstream servers, by state (open: all of them; idle: kept alive, waiting for a request).',
        g.servers.flatMap((s) => [
          { labels: server(s, { state: 'open' }), value: s.open },
          { labels: server(s, { state: 'idle' }), value: s.idle },
        ]),
      ),
      counter('nanoproxy_upstream_connect_failures_total', 'Connections to an upstream server that failed (refused, unreachable, TLS, timeout).', g.servers.map((s) => ({ labels: server(s), value: s.connectFailures }))),
      counter('nanoproxy_upstream_retries_total', 'Requests tried again on another connection or server after this server failed.', g.servers.map((s) => ({ labels: server(s), value: s.retries }))),
      counter('nanoproxy_upstream_ejections_total', 'Times passive health took this server out of balancing.', g.servers.map((s) => ({ labels: server(s), value: s.ejections }))),
      gaugeMax('nanoproxy_upstream_server_healthy', '1 while the server is in balancing, 0 while ejected (in any worker).', g.servers.map((s) => ({ labels: server(s), value: s.healthy ? 1 : 0 }))),
      counter('nanoproxy_tls_handshakes_total', 'TLS handshakes completed with clients.', [{ labels: {}, value: this.tlsHandshakes }]),
      counter('nanoproxy_tls_handshake_failures_total', 'TLS handshakes with clients that failed or timed out.', [{ labels: {}, value: this.tlsFailures }]),
      gaugeMax(
        'nanoproxy_certificate_expiry_timestamp_seconds',
        'When the certificate served for a host expires (Unix time).',
        [...g.certificates].map(([host, expires]) => ({ labels: { host }, value: Math.floor(expires / 1000) })),
      ),
      counter('nanoproxy_config_reloads_total', 'Config reloads, by result (success, failure).', [
        { labels: { result: 'success' }, value: this.reloadsOk },
        { labels: { result: 'failure' }, value: this.reloadsFailed },
      ]),
      gaugeMax('nanoproxy_config_last_reload_success_timestamp_seconds', 'When the config in force was loaded (Unix time).', [{ labels: {}, value: Math.floor(this.lastGoodReload / 1000) }]),
      gaugeMax('nanoproxy_config_rules', 'Rules in the config in force.', [{ labels: {}, value: g.rules }]),
      gaugeMax('nanoproxy_config_upstreams', 'Upstreams in the config in force.', [{ labels: {}, value: g.upstreams }]),
    ]
  }
}

function counter(name: string, help: string, samples: Sample[]): CounterFamily {
  return { type: 'counter', name, help, merge: 'sum', samples }
}
function gauge(name: string, help: string, samples: Sample[]): CounterFamily {
  return { type: 'gauge', name, help, merge: 'sum', samples }
}
function gaugeMax(name: string, help: string, samples: Sample[]): CounterFamily {
  return { type: 'gauge', name, help, merge: 'max', samples }
}
function histogram(name: string, help: string): HistogramFamily {
  return { type: 'histogram', name, help, merge: 'sum', bounds: LATENCY_BOUNDS, samples: [] }
}
