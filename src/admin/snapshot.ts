// What one proxy process tells the admin server: its metric families, and
// what the dashboard shows beside them (routes, servers, reloads,
// certificates). Plain data, so that a worker can send it over IPC. It
// never holds key material or Secret contents: certificates are listed by
// host and expiry only.

import type { Family } from '../metrics/metric-families.ts'
import type { ReloadEvent } from '../metrics/proxy-metrics.ts'

export interface DashboardInfo {
  version: string
  routes: { host: string; path: string; match: string; upstream: string }[]
  upstreams: { name: string; servers: { server: string; healthy: boolean; open: number; idle: number }[] }[]
  reloads: ReloadEvent[]
  certificates: { host: string; expires: number }[]
}

export interface ProcessSnapshot {
  families: Family[]
  info: DashboardInfo
}

/** Where the admin server gets its data: this process, or every worker (WORKERS > 1). */
export interface SnapshotSource {
  snapshot(): Promise<ProcessSnapshot>
}
