// The snapshot of the proxy running in this process.

import type { ProxyLifecycle } from '../proxy/proxy-lifecycle.ts'
import { VERSION } from '../version.ts'
import type { ProcessSnapshot, SnapshotSource } from './snapshot.ts'

export function proxySnapshotSource(proxy: ProxyLifecycle): SnapshotSource {
  return { snapshot: () => Promise.resolve(proxySnapshot(proxy)) }
}

export function proxySnapshot(proxy: ProxyLifecycle): ProcessSnapshot {
  const metrics = proxy.ctx.metrics
  if (metrics === undefined) throw new Error('metrics are off (ADMIN_PORT unset)')
  const gauges = proxy.gauges()
  const { config } = proxy.ctx.state
  const upstreams = config.upstreams.map((u) => ({
    name: u.name,
    servers: gauges.servers.filter((s) => s.upstream === u.name).map((s) => ({ server: s.server, healthy: s.healthy, open: s.open, idle: s.idle })),
  }))
  return {
    families: metrics.families(),
    info: {
      version: VERSION,
      routes: config.rules.map((r) => ({ host: r.host, path: r.path, match: r.matchMode, upstream: r.upstream ?? '' })),
      upstreams,
      reloads: [...metrics.reloads],
      certificates: [...gauges.certificates].map(([host, expires]) => ({ host, expires })),
    },
  }
}
