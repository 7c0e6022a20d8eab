// Kept-alive connections to one upstream server (one address and port).
//
// Idle connections are reused last-in first-out: the most recently used
// one is the least likely to have been closed by the upstream meanwhile.
// An idle connection is closed after 4 s (undici's default; shorter than
// Node's 5 s server keep-alive), or 1 s before the upstream's announced
// `Keep-Alive: timeout=N`, so the proxy closes first and never writes on a
// connection the upstream is closing.

import type { SecureContext } from 'node:tls'
import type { DeadlineSweeper } from './deadlines.ts'
import { PassiveHealth } from './passive-health.ts'
import { UpstreamConnection } from './upstream-connection.ts'

const IDLE_MS = 4000

export interface PoolTarget {
  host: string
  port: number
  /** Set for HTTPS upstreams. */
  secureContext: SecureContext | undefined
  /** SNI name: the upstream host unless it is an IP address. */
  servername: string | undefined
}

export class UpstreamPool {
  /** The upstream's name in the config, for messages. */
  name: string
  readonly origin: string
  readonly target: PoolTarget
  readonly timeoutMs: number
  readonly idleTimeoutMs: number
  readonly verify: boolean
  readonly sweeper: DeadlineSweeper
  /** What this server's traffic says of it (passive-health.ts). */
  readonly health = new PassiveHealth()
  /** Requests in progress on this server (least-request balancing reads it). */
  active = 0
  /** Metrics: connections that could not be made. */
  connectFailures = 0
  /** Metrics: requests that failed here and were tried again. */
  retries = 0
  /** Metrics: times passive health ejected this server. */
  ejections = 0
  private readonly idle: UpstreamConnection[] = []
  private readonly all = new Set<UpstreamConnection>()
  private closing = false
  private onEmpty: (() => void) | undefined

  constructor(opts: {
    name: string
    origin: string
    target: PoolTarget
    timeoutMs: number
    idleTimeoutMs: number
    verify: boolean
    sweeper: DeadlineSweeper
  }) {
    this.name = opts.name
    this.origin = opts.origin
    this.target = opts.target
    this.timeoutMs = opts.timeoutMs
    this.idleTimeoutMs = opts.idleTimeoutMs
    this.verify = opts.verify
    this.sweeper = opts.sweeper
  }

  /** An idle connection, or a new one; `fresh` skips the idle ones (a retry, an upgrade). */
  acquire(fresh = false): UpstreamConnection {
    if (!fresh) {
      let conn = this.idle.pop()
      while (conn !== undefined) {
        if (conn.usable) return conn
        conn = this.idle.pop()
      }
    }
    const conn = new UpstreamConnection(this)
    this.all.add(conn)
    return conn
  }

  /** Connections open, busy or idle (metrics). */
  get openCount(): number {
    return this.all.size
  }

  /** Connections kept alive, waiting for a request (metrics). */
  get idleCount(): number {
    return this.idle.length
  }

  /** Takes back a connection whose response completed; `keepAliveS` is the upstream's Keep-Alive timeout hint. */
  release(conn: UpstreamConnection, keepAliveS: number): void {
    if (this.closing) {
      conn.destroy()
      return
    }
    const idleMs = keepAliveS >= 0 ? Math.min(IDLE_MS, keepAliveS * 1000 - 1000) : IDLE_MS
    if (idleMs <= 0) {
      conn.destroy()
      return
    }
    conn.deadline = Date.now() + idleMs
    this.idle.push(conn)
  }

  /** A connection closed or was handed over (upgrade): no longer the pool's. */
  forget(conn: UpstreamConnection): void {
    this.all.delete(conn)
    const i = this.idle.indexOf(conn)
    if (i !== -1) this.idle.splice(i, 1)
    if (this.all.size === 0) this.onEmpty?.()
  }

  /** Stops reusing connections; resolves when the busy ones have finished. */
  close(): Promise<void> {
    this.closing = true
    for (const conn of [...this.idle]) conn.destroy()
    if (this.all.size === 0) return Promise.resolve()
    return new Promise((resolve) => {
      this.onEmpty = resolve
    })
  }

  /** Drops every connection now. */
  destroy(): void {
    this.closing = true
    for (const conn of [...this.all]) conn.destroy()
  }
}
