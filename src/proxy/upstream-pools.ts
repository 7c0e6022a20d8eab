// One keep-alive connection pool per upstream origin.
//
// Pools outlive config reloads when the upstream's address and TLS settings
// are unchanged, so a reload does not throw away warm connections. A pool
// whose upstream disappears is closed gracefully: requests already running on
// it finish, new ones go to the new config's pools.

import { isIP } from 'node:net'
import type { SecureContext } from 'node:tls'
import type { UpstreamConfig } from '../config/schema.ts'
import type { Logger } from '../log.ts'
import type { DeadlineSweeper } from './deadlines.ts'
import { loadTls } from './tls.ts'
import { UpstreamPool } from './upstream-pool.ts'

export interface Upstream {
  readonly config: UpstreamConfig
  readonly pool: UpstreamPool
  /** `scheme://host:port`, for logs. */
  readonly origin: string
  /** Host header sent when noHostRewrite is set: the upstream's `host:port`. */
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
  /** Live pools by `scheme://host:port`. */
  private pools = new Map<string, UpstreamPool>()
  private readonly settings: PoolSettings
  private readonly log: Logger
  private readonly sweeper: DeadlineSweeper

  constructor(settings: PoolSettings, log: Logger, sweeper: DeadlineSweeper) {
    this.settings = settings
    this.log = log
    this.sweeper = sweeper
  }

  /** Returns upstreams by name for `configs`, reusing pools whose address did not change. */
  update(configs: readonly UpstreamConfig[]): Map<string, Upstream> {
    const next = new Map<string, UpstreamPool>()
    const byName = new Map<string, Upstream>()
    for (const config of configs) {
      const host = config.host.includes(':') ? `[${config.host}]` : config.host
      const authority = `${host}:${config.port}`
      const origin = `${config.scheme}://${authority}`
      let pool = next.get(origin) ?? this.pools.get(origin)
      if (pool === undefined) {
        pool = this.createPool(config, origin)
        this.log.debug({ upstream: config.name, origin }, 'upstream pool created')
      }
      pool.name = config.name
      next.set(origin, pool)
      byName.set(config.name, { config, pool, origin, authority })
    }
    for (const [origin, pool] of this.pools) {
      // close() lets running requests finish, then drops the sockets.
      if (!next.has(origin)) void pool.close()
    }
    this.pools = next
    return byName
  }

  private createPool(config: UpstreamConfig, origin: string): UpstreamPool {
    const { timeoutMs, idleTimeoutMs, tlsSkipVerify } = this.settings
    const tls = config.scheme === 'https'
    return new UpstreamPool({
      name: config.name,
      origin,
      target: {
        host: config.host,
        port: config.port,
        secureContext: tls ? upstreamTlsContext() : undefined,
        servername: tls && isIP(config.host) === 0 ? config.host : undefined,
      },
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
    const pools = [...this.pools.values()]
    this.pools = new Map()
    await Promise.allSettled(pools.map((p) => p.close()))
  }

  /** Drops every upstream connection at once (end of the shutdown grace period). */
  destroyAll(): Promise<void> {
    const pools = [...this.pools.values()]
    this.pools = new Map()
    for (const p of pools) p.destroy()
    return Promise.resolve()
  }
}
