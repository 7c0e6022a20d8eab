// How an upstream picks the server for a request, whatever the policy.

import type { UpstreamPool } from './upstream-pool.ts'

export interface BalancedServer {
  readonly pool: UpstreamPool
  readonly weight: number
}

export interface Balancer {
  readonly servers: readonly BalancedServer[]
  /**
   * The server for the next attempt of a request: one not in `tried` and
   * not ejected; if every one left is ejected, one of those anyway (Envoy's
   * panic mode: a guess beats a certain 502); if every server was tried, any
   * server. Undefined only when there is no server at all.
   */
  pick(tried: readonly UpstreamPool[] | undefined, now: number): UpstreamPool | undefined
  /** New server list (a reload, a DNS answer); state of servers that stay is kept. */
  setServers(servers: readonly BalancedServer[]): void
}

/** Whether `pool` may take an attempt: not tried yet and, unless panicking, not ejected. */
export function eligible(pool: UpstreamPool, tried: readonly UpstreamPool[] | undefined, now: number, panic: boolean): boolean {
  if (tried !== undefined && tried.includes(pool)) return false
  return panic || pool.health.available(now)
}
