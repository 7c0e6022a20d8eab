// Least request with two random choices, as Envoy does it (envoyproxy.io,
// "Load balancers", LEAST_REQUEST; Mitzenmacher, "The Power of Two Choices
// in Randomized Load Balancing", 2001): two distinct servers drawn at
// random, the one with fewer requests in progress (relative to its
// weight) wins. Nearly as good as scanning every server for the least
// loaded, in constant time, and without every proxy replica herding onto
// the same "least loaded" server at once.

import { eligible, type BalancedServer, type Balancer } from './balancer.ts'
import type { UpstreamPool } from './upstream-pool.ts'

export class LeastRequestBalancer implements Balancer {
  private list: BalancedServer[] = []

  get servers(): readonly BalancedServer[] {
    return this.list
  }

  setServers(servers: readonly BalancedServer[]): void {
    this.list = [...servers]
  }

  pick(tried: readonly UpstreamPool[] | undefined, now: number): UpstreamPool | undefined {
    const list = this.list
    if (list.length <= 1) return list[0]?.pool
    if (tried === undefined) {
      // The common case: two draws from the whole list, both healthy.
      const i = Math.floor(Math.random() * list.length)
      let j = Math.floor(Math.random() * (list.length - 1))
      if (j >= i) j++
      const a = list[i]!
      const b = list[j]!
      if (a.pool.health.available(now) && b.pool.health.available(now)) return lesser(a, b).pool
    }
    return this.among(list.filter((s) => eligible(s.pool, tried, now, false))) ?? this.among(list.filter((s) => eligible(s.pool, tried, now, true))) ?? this.among(list)
  }

  private among(candidates: BalancedServer[]): UpstreamPool | undefined {
    if (candidates.length <= 1) return candidates[0]?.pool
    const i = Math.floor(Math.random() * candidates.length)
    let j = Math.floor(Math.random() * (candidates.length - 1))
    if (j >= i) j++
    return lesser(candidates[i]!, candidates[j]!).pool
  }
}

/** The server with fewer requests in progress per unit of weight; ties go to the first drawn. */
function lesser(a: BalancedServer, b: BalancedServer): BalancedServer {
  return b.pool.active * a.weight < a.pool.active * b.weight ? b : a
}
