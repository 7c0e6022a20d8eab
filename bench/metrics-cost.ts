// `npm run bench -- --only metrics`: what metrics cost on the hot path. The
// small-response scenario (50 connections, keep-alive, 12-byte body) against
// NanoProxy with ADMIN_PORT unset (nothing counted) and set (every request
// counted, and /metrics scraped once a second meanwhile, as a busy
// Prometheus would), alternating off/on/off/on so that a machine whose load
// changes during the run affects both alike. Target (issue 13): on >= 0.95x
// of off, in requests per second and in requests per CPU-second.

import { request } from 'node:http'
import { join } from 'node:path'
import type { RuleConfig } from '../src/config/schema.ts'
import { ProxyMetrics } from '../src/metrics/proxy-metrics.ts'
import type { BenchKit } from './tls-scenarios.ts'

type Row = Record<string, number>

export async function metricsCost(kit: BenchKit): Promise<{ rows: [string, Row[]][]; extras: Row }> {
  const config = join(kit.work, 'nano.yaml')
  const off: Row[] = []
  const on: Row[] = []
  for (let round = 1; round <= kit.rounds; round++) {
    for (const metrics of [false, true]) {
      const port = await kit.freePort()
      const admin = metrics ? await kit.freePort() : 0
      const p = kit.pinned(kit.proxyCpu, join(kit.root, 'bin/nanoproxy'), ['proxy', '-c', config], {
        ...kit.nanoproxyEnv,
        PORT: String(port),
        ACCESS_LOG: 'off',
        WORKERS: '1',
        ...(metrics ? { ADMIN_PORT: String(admin) } : {}),
      })
      await kit.waitForPort(port)
      const pid = kit.childPids(p.pid!)[0] ?? p.pid!
      await kit.wrk(`http://127.0.0.1:${port}/`, 50, 2)
      const scraper = metrics ? setInterval(() => scrape(admin), 1000) : undefined
      const before = kit.cpuSeconds(pid)
      const r = await kit.wrk(`http://127.0.0.1:${port}/`, 50, kit.duration)
      const cpu = kit.cpuSeconds(pid) - before
      clearInterval(scraper)
      await kit.stop(p)
      const row = { small_50c_rps: r.rps, small_cpu_us_per_req: (cpu / r.requests) * 1e6, errors: r.errors }
      ;(metrics ? on : off).push(row)
      console.error(`metrics round ${round} ${metrics ? 'on' : 'off'}: ${JSON.stringify(row, (_k, v: unknown) => (typeof v === 'number' ? Math.round(v * 100) / 100 : v))}`)
    }
  }
  const hotPathNs = hotPathCost()
  const offCpuUs = median(off.map((r) => r.small_cpu_us_per_req!))
  // Each "on" run against the "off" run just before it.
  const ratios = on.map((row, i) => row.small_50c_rps! / off[i]!.small_50c_rps!)
  const cpuRatios = on.map((row, i) => off[i]!.small_cpu_us_per_req! / row.small_cpu_us_per_req!)
  return {
    rows: [
      ['nanoproxy-metrics-off', off],
      ['nanoproxy-metrics-on', on],
    ],
    extras: {
      metrics_on_vs_off_rps_median: median(ratios),
      metrics_on_vs_off_rps_min: Math.min(...ratios),
      metrics_on_vs_off_rps_max: Math.max(...ratios),
      metrics_on_vs_off_req_per_cpu_median: median(cpuRatios),
      metrics_on_vs_off_req_per_cpu_min: Math.min(...cpuRatios),
      metrics_on_vs_off_req_per_cpu_max: Math.max(...cpuRatios),
      // What metrics add per request, alone (no network, no scheduler), against a whole request's CPU with metrics off.
      metrics_hot_path_ns_per_req: hotPathNs,
      metrics_hot_path_share_of_request_pct: (hotPathNs / (offCpuUs * 1000)) * 100,
    },
  }
}

/**
 * ns per request of what metrics add to the request path: finding the
 * rule's counters, two clock reads (response head, end) and the counting
 * itself, measured in a loop, best of 5. Steadier than the end-to-end
 * comparison on a busy machine, where run-to-run spread is larger than
 * the effect.
 */
function hotPathCost(): number {
  const metrics = new ProxyMetrics()
  const rules: RuleConfig[] = Array.from({ length: 10 }, (_, i) => ({ upstream: 'up', path: `/p${i}`, host: `h${i}.example`, matchMode: 'prefix', stripPath: false }))
  metrics.configLoaded(rules)
  const n = 2_000_000
  let best = Infinity
  for (let round = 0; round < 5; round++) {
    const started = process.hrtime.bigint()
    for (let i = 0; i < n; i++) {
      const stats = metrics.statsFor(rules[i % 10]!)
      const head = performance.now()
      const end = performance.now()
      metrics.request(stats, 'GET', i % 50 === 0 ? 502 : 200, (end - head) / 1000 + (i & 7) * 0.003, 0.0005, 0, 12)
    }
    best = Math.min(best, Number(process.hrtime.bigint() - started) / n)
  }
  return best
}

function scrape(port: number): void {
  request({ host: '127.0.0.1', port, path: '/metrics', agent: false }, (res) => res.resume()).on('error', () => {}).end()
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2
}
