// deploy/grafana/nanoproxy-dashboard.json: a Grafana dashboard that only
// queries metrics the proxy and the controller export, all documented.

import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { describe, it } from 'node:test'
import { Histogram } from '../../src/metrics/histogram.ts'
import { ControllerMetrics } from '../../src/metrics/controller-metrics.ts'
import { ProxyMetrics } from '../../src/metrics/proxy-metrics.ts'

const ROOT = new URL('../../', import.meta.url).pathname

interface Panel {
  type: string
  title: string
  targets?: { expr: string }[]
  gridPos: { x: number; y: number; w: number; h: number }
}

describe('the Grafana dashboard', () => {
  const dashboard = JSON.parse(readFileSync(`${ROOT}deploy/grafana/nanoproxy-dashboard.json`, 'utf8')) as { uid: string; panels: Panel[]; templating: { list: { name: string }[] } }
  const exprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr))
  const used = new Set(exprs.flatMap((e) => [...e.matchAll(/\bnanoproxy_[a-z_]+/g)].map((m) => m[0].replace(/_(bucket|sum|count)$/, ''))))

  it('queries only metrics the proxy and the controller export', () => {
    const exported = new Set([
      ...new ProxyMetrics().families().map((f) => f.name),
      ...new ControllerMetrics({ counts: { writes: 0, eventsSent: 0, eventsFailed: 0, watches: [] }, syncDuration: new Histogram() }).families().map((f) => f.name),
    ])
    for (const name of used) assert.ok(exported.has(name), `${name} is not exported`)
    assert.ok(used.size >= 20, `the dashboard uses ${used.size} metrics`)
  })

  it('uses only documented metrics, and a data source chosen at import', () => {
    const docs = readFileSync(`${ROOT}docs/operations.md`, 'utf8')
    for (const name of used) assert.ok(docs.includes(`\`${name}\``), `${name} is not in docs/operations.md`)
    assert.ok(dashboard.templating.list.some((v) => v.name === 'datasource'))
    for (const p of dashboard.panels) if (p.type !== 'row') assert.ok((p.targets ?? []).length > 0, `${p.title} has a query`)
  })
})
