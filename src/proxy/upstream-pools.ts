// The upstreams of the running config: each a balancer over its servers,
// each server (one address and port) with its own keep-alive pool.
//
// Pools outlive config reloads when the server's address and TLS settings
// are unchanged, so a reload, or a changed server list (a scale-up, a
// rollout), does not throw away warm connections to the servers that stay,
// nor their passive-health state. A pool whose server disappears is closed
// gracefully: requests already running on it finish, new ones go elsewhere.
// Servers given by DNS name are expanded to one server per address
// (dns-resolver.ts); until a name's first answer, its one server is the name.

import { isIP } from 'node:net'
import type { SecureContext } from 'node:tls'
import { DEFAULT_BALANCE, serversOf, type UpstreamConfig } from '../config/schema.ts'
import type { Logger } from '../log.ts'
import { LeastRequestBalancer } from './balancer-least-request.ts'
import { RoundRobinBalancer } from './balancer-round-robin.ts'
import type { BalancedServer, Balancer } from './balancer.ts'
import type { DeadlineSweeper } from './deadlines.ts'
import { DnsResolver } from './dns-resolver.ts'
import { loadTls } from './tls.ts'
import { UpstreamPool } from './upstream-pool.ts'

export interface Upstream {
  readonly config: UpstreamConfig
  /** Picks the server of each attempt. */
  readonly balancer: Balancer
  /** Host header sent when noHostRewrite is set: the (first) server's `host:port`. */
  readonly authority: string
}

export interface PoolSettings {
  timeoutMs: number
  idleTimeoutMs: number
  tlsSkipVerify: boolean
}

let clientContext: SecureContext | undefined

/**
 * HTTPS upstreams are verified against the operating system's CA store
 * (what the original Go proxy used), plus Node's bundled Mozilla list and
 * NODE_EXTRA_CA_CERTS. Built once and shared: the system store is a few
 * hundred certificates, too many to parse for every connection.
 */
function upstreamTlsContext(): SecureContext {
  const { createSecureContext, getCACertificates } = loadTls()
  clientContext ??= createSecureContext({ ca: [...new Set([...getCACertificates('default'), ...getCACertificates('system')])] })
  return clientContext
}

export class UpstreamPools {
  /** Live pools by server key (poolKey()). */
  private pools = new Map<string, UpstreamPool>()
  private upstreams: Upstream[] = []
  private readonly settings: PoolSettings
  private readonly log: Logger
  private readonly sweeper: DeadlineSweeper
  private readonly dns: DnsResolver

  constructor(settings: PoolSettings, log: Logger, sweeper: DeadlineSweeper) {
    this.settings = settings
    this.log = log
    this.sweeper = sweeper
    this.dns = new DnsResolver(() => this.refresh(), log)
  }

  /** Returns upstreams by name for `configs`, reusing the pools of servers that stay. */
  update(configs: readonly UpstreamConfig[]): Map<string, Upstream> {
    const byName = new Map<string, Upstream>()
    const names = new Set<string>()
    this.upstreams = configs.map((config) => {
      const servers = serversOf(config)
      for (const s of servers) if (isIP(s.host) === 0) names.add(s.host)
      const first = servers[0]
      const authority = first === undefined ? config.name : `${first.host.includes(':') ? `[${first.host}]` : first.host}:${first.port}`
      const balancer = (config.balance ?? DEFAULT_BALANCE) === 'leastRequest' ? new LeastRequestBalancer() : new RoundRobinBalancer()
      const upstream: Upstream = { config, balancer, authority }
      byName.set(config.name, upstream)
      return upstream
    })
    this.dns.watch(names)
    this.refresh()
    return byName
  }

  /** Gives every upstream its current server list (after a reload or a DNS answer); closes the pools left over. */
  private refresh(): void {
    const next = new Map<string, UpstreamPool>()
    for (const upstream of this.upstreams) {
      const { config } = upstream
      const list: BalancedServer[] = []
      for (const server of serversOf(config)) {
        const addresses = isIP(server.host) === 0 ? (this.dns.addresses(server.host) ?? [server.host]) : [server.host]
        for (const address of addresses) {
          const tls = config.scheme === 'https'
          // SNI and certificate checks use the name the server was given by, never the address it resolved to.
          const servername = !tls ? undefined : (config.serverName ?? (isIP(server.host) === 0 ? server.host : undefined))
          const key = `${config.scheme}://${address.includes(':') ? `[${address}]` : address}:${server.port}${servername !== undefined ? ` ${servername}` : ''}`
          let pool = next.get(key) ?? this.pools.get(key)
          if (pool === undefined) {
            pool = this.createPool(config.name, key, address, server.port, tls, servername)
            this.log.debug({ upstream: config.name, server: key }, 'upstream pool created')
          }
          pool.name = config.name
          next.set(key, pool)
          list.push({ pool, weight: server.weight })
        }
      }
      upstream.balancer.setServers(list)
    }
    for (const [key, pool] of this.pools) {
      // close() lets running requests finish, then drops the sockets.
      if (!next.has(key)) void pool.close()
    }
    this.pools = next
  }

  private createPool(name: string, origin: string, host: string, port: number, tls: boolean, servername: string | undefined): UpstreamPool {
    const { timeoutMs, idleTimeoutMs, tlsSkipVerify } = this.settings
    return new UpstreamPool({
      name,
      origin,
      target: { host, port, secureContext: tls ? upstreamTlsContext() : undefined, servername },
      // TIMEOUT bounds connecting and the wait for response headers, never
      // a whole response: a long download or an event stream runs as long
      // as data keeps flowing, up to IDLE_TIMEOUT of silence.
      timeoutMs,
      idleTimeoutMs,
      verify: !tlsSkipVerify,
      sweeper: this.sweeper,
    })
  }

  /** Closes every pool once running requests finish (used at shutdown). */
  async closeAll(): Promise<void> {
    this.dns.stop()
    const pools = [...this.pools.values()]
    this.pools = new Map()
    await Promise.allSettled(pools.map((p) => p.close()))
  }

  /** Drops every upstream connection at once (end of the shutdown grace period). */
  destroyAll(): Promise<void> {
    this.dns.stop()
    const pools = [...this.pools.values()]
    this.pools = new Map()
    for (const p of pools) p.destroy()
    return Promise.resolve()
  }
}
