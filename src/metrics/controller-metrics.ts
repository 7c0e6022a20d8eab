// The controller's metrics, served on its health port next to /healthz and
// /readyz (docs/operations.md, "Metrics and dashboard"): how long a rebuild
// takes, config writes, watch restarts, Events sent, objects cached, and
// whether this replica leads.

import type { Histogram } from './histogram.ts'
import { LATENCY_BOUNDS } from './histogram.ts'
import type { Family } from './metric-families.ts'

/** What the controller exposes to its metrics (ingress-controller.ts). */
export interface ControllerCounts {
  writes: number
  eventsSent: number
  eventsFailed: number
  watches: { kind: string; restarts: number; cached: number }[]
}

export class ControllerMetrics {
  /**
   * 1 while this replica is the leader (sets Ingress status, sends Events).
   * Every replica leads until leader election sets it (setLeader).
   */
  private leader = 1
  private readonly counts: () => ControllerCounts
  private readonly syncDuration: Histogram

  constructor(source: { readonly counts: ControllerCounts; readonly syncDuration: Histogram }) {
    this.counts = () => source.counts
    this.syncDuration = source.syncDuration
  }

  setLeader(leading: boolean): void {
    this.leader = leading ? 1 : 0
  }

  families(): Family[] {
    const c = this.counts()
    return [
      {
        type: 'histogram',
        name: 'nanoproxy_controller_sync_duration_seconds',
        help: 'Rebuilds of the proxy config from the caches (translate, write, report), by duration.',
        merge: 'sum',
        bounds: LATENCY_BOUNDS,
        samples: [{ labels: {}, counts: [...this.syncDuration.counts], sum: this.syncDuration.sum }],
      },
      { type: 'counter', name: 'nanoproxy_controller_config_writes_total', help: 'Config files written (the content changed).', merge: 'sum', samples: [{ labels: {}, value: c.writes }] },
      {
        type: 'counter',
        name: 'nanoproxy_controller_watch_restarts_total',
        help: 'Watches restarted after a failure, by kind.',
        merge: 'sum',
        samples: c.watches.map((w) => ({ labels: { kind: w.kind }, value: w.restarts })),
      },
      {
        type: 'counter',
        name: 'nanoproxy_controller_events_total',
        help: 'Warning Events on Ingresses, by result (sent, failed).',
        merge: 'sum',
        samples: [
          { labels: { result: 'sent' }, value: c.eventsSent },
          { labels: { result: 'failed' }, value: c.eventsFailed },
        ],
      },
      {
        type: 'gauge',
        name: 'nanoproxy_controller_cached_objects',
        help: 'Objects in the watch caches, by kind.',
        merge: 'sum',
        samples: c.watches.map((w) => ({ labels: { kind: w.kind }, value: w.cached })),
      },
      { type: 'gauge', name: 'nanoproxy_controller_leader', help: '1 while this replica is the leader, else 0.', merge: 'max', samples: [{ labels: {}, value: this.leader }] },
    ]
  }
}
