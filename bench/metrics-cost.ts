// `npm run bench -- --only metrics`: what metrics cost on the hot path. The
// small-response scenario (50 connections, keep-alive, 12-byte body) against
// NanoProxy with ADMIN_PORT unset (nothing counted) and set (every request
// counted, and /metrics scraped once a second meanwhile, as a busy
// Prometheus would), alternating off/on/off/on so that a machine whose load
// changes during the run affects both alike. Target (issue 13): on >= 0.95x
// of off, in requests per second and in requests per CPU-second.

import { request } from 'node:http'
import { join } from 'node:path'
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
    },
  }
}

function scrape(port: number): void {
  request({ host: '127.0.0.1', port, path: '/metrics', agent: false }, (res) => res.resume()).on('error', () => {}).end()
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2
}
