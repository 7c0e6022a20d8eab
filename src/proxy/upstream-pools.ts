// One keep-alive connection pool per upstream.
//
// Pools outlive config reloads when the upstream's address and TLS settings
// are unchanged, so a reload does not throw away warm connections. A pool
// whose upstream disappears is closed gracefully: requests already running on
// it finish, new ones go to the new config's pools.

import { getCACertificates } from 'node:tls'
import { Pool } from 'undici'
import type { UpstreamConfig } from '../config/schema.ts'
import type { Logger } from '../log.ts'

export interface Upstream {
  readonly config: UpstreamConfig
  readonly pool: Pool
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

let cas: string[] | undefined

/**
 * HTTPS upstreams are verified against the operating system's CA store
 * (what the original Go proxy used), plus Node's bundled Mozilla list and
 * NODE_EXTRA_CA_CERTS. Read once: the system store is a few hundred files.
 */
function trustedCAs(): string[] {
  cas ??= [...new Set([...getCACertificates('default'), ...getCACertificates('system')])]
  return cas
}

export class UpstreamPools {
  /** Live pools by `scheme://host:port`. */
  private pools = new Map<string, Pool>()
  private readonly settings: PoolSettings
  private readonly log: Logger

  constructor(settings: PoolSettings, log: Logger) {
    this.settings = settings
    this.log = log
  }

  /** Returns upstreams by name for `configs`, reusing pools whose address did not change. */
  update(configs: readonly UpstreamConfig[]): Map<string, Upstream> {
    const next = new Map<string, Pool>()
    const byName = new Map<string, Upstream>()
    for (const config of configs) {
      const host = config.host.includes(':') ? `[${config.host}]` : config.host
      const authority = `${host}:${config.port}`
      const origin = `${config.scheme}://${authority}`
      let pool = next.get(origin) ?? this.pools.get(origin)
      if (pool === undefined) {
        pool = this.createPool(origin)
        this.log.debug({ upstream: config.name, origin }, 'upstream pool created')
      }
      next.set(origin, pool)
      byName.set(config.name, { config, pool, origin, authority })
    }
    for (const [origin, pool] of this.pools) {
      if (!next.has(origin)) {
        // close() lets running requests finish, then drops the sockets.
        pool.close().catch((err: unknown) => this.log.warn({ err, origin }, 'closing upstream pool failed'))
      }
    }
    this.pools = next
    return byName
  }

  private createPool(origin: string): Pool {
    const { timeoutMs, idleTimeoutMs, tlsSkipVerify } = this.settings
    return new Pool(origin, {
      // TIMEOUT bounds connecting and the wait for response headers (which
      // undici re-arms while the request body is still being sent), never a
      // whole response: a long download or an event stream runs as long as
      // data keeps flowing, up to IDLE_TIMEOUT of silence.
      connectTimeout: timeoutMs,
      headersTimeout: timeoutMs,
      bodyTimeout: idleTimeoutMs,
      pipelining: 1,
      connect: {
        rejectUnauthorized: !tlsSkipVerify,
        ca: trustedCAs(),
        ALPNProtocols: ['http/1.1'],
      },
    })
  }

  /** Closes every pool once running requests finish (used at shutdown). */
  async closeAll(): Promise<void> {
    const pools = [...this.pools.values()]
    this.pools = new Map()
    await Promise.allSettled(pools.map((p) => p.close()))
  }

  /** Drops every upstream connection at once (end of the shutdown grace period). */
  async destroyAll(): Promise<void> {
    const pools = [...this.pools.values()]
    this.pools = new Map()
    await Promise.allSettled(pools.map((p) => p.destroy()))
  }
}
