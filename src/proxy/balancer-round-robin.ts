// Smooth weighted round robin, as nginx does it (ngx_http_upstream_round_robin.c,
// "smooth weighted round-robin balancing", nginx 1.7.8): on each pick every
// eligible server's current weight grows by its weight, the largest wins and
// gives back the sum of the weights. Weights 5, 1, 1 give a a b a c a a,
// not a a a a a b c: heavy servers are interleaved, never served in a burst.

import { eligible, type BalancedServer, type Balancer } from './balancer.ts'
import type { UpstreamPool } from './upstream-pool.ts'

interface Entry {
  pool: UpstreamPool
  weight: number
  current: number
}

export class RoundRobinBalancer implements Balancer {
  private entries: Entry[] = []

  get servers(): readonly BalancedServer[] {
    return this.entries
  }

  setServers(servers: readonly BalancedServer[]): void {
    const old = new Map(this.entries.map((e) => [e.pool, e.current]))
    this.entries = servers.map((s) => ({ pool: s.pool, weight: s.weight, current: old.get(s.pool) ?? 0 }))
  }

  pick(tried: readonly UpstreamPool[] | undefined, now: number): UpstreamPool | undefined {
    const entries = this.entries
    if (entries.length <= 1) return entries[0]?.pool
    return this.select(tried, now, false) ?? this.select(tried, now, true) ?? this.select(undefined, now, true)
  }

  private select(tried: readonly UpstreamPool[] | undefined, now: number, panic: boolean): UpstreamPool | undefined {
    let best: Entry | undefined
    let total = 0
    for (const e of this.entries) {
      if (!eligible(e.pool, tried, now, panic)) continue
      e.current += e.weight
      total += e.weight
      if (best === undefined || e.current > best.current) best = e
    }
    if (best === undefined) return undefined
    best.current -= total
    return best.pool
  }
}
