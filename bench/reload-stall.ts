// Reload stall scenario of `npm run bench` (`--only reload`): how long a
// request can wait while the proxy reloads a large config. A steady client
// (one connection, one request at a time) runs while the 10,000-rule config
// is rewritten 20 times, each time waiting for the proxy's "config reloaded"
// line; its worst request latency is the figure (target: at most 20 ms,
// issue 16). The same client over as long without reloads gives the
// machine's own noise. Two formats: the hand-written YAML (1,000 hosts x 10
// paths, flow mappings) and the controller's JSON (src/controller/config-writer.ts).
//
// NanoProxy is pinned alone on the proxy CPU (run.ts's nanoproxyWithLogs);
// the client and the upstream run in this process.

import { writeFileSync } from 'node:fs'
import { Agent, createServer, request } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import type { BenchKit } from './tls-scenarios.ts'

type Kit = Pick<BenchKit, 'work' | 'nanoproxyWithLogs' | 'waitForPort' | 'freePort' | 'stop' | 'reloadTime'>

const RELOADS = 20
const HOSTS = 1000
const PATHS = 10

function yamlConfig(upstreamPort: number, tag: string): string {
  let text = `# ${tag}\nupstreams:\n  - {name: up, host: 127.0.0.1, port: ${upstreamPort}}\nrules:\n`
  for (let h = 0; h < HOSTS; h++) for (let p = 0; p < PATHS; p++) text += `  - {upstream: up, host: h${h}.example, path: /p${p}, matchMode: pathPrefix}\n`
  return text
}

/** The controller's form: its header, then JSON with one entry per line. */
function controllerConfig(upstreamPort: number, tag: string): string {
  const upstreams = [{ name: 'up', host: '127.0.0.1', port: upstreamPort, scheme: 'http', noHostRewrite: false }]
  const rules: object[] = []
  for (let h = 0; h < HOSTS; h++) for (let p = 0; p < PATHS; p++) rules.push({ upstream: 'up', path: `/p${p}`, host: `h${h}.example`, matchMode: 'pathPrefix', stripPath: false })
  const list = (items: object[]): string => `[\n    ${items.map((i) => JSON.stringify(i)).join(',\n    ')}\n  ]`
  return `# Written by the NanoProxy ingress controller from Ingress objects.\n# ${tag}\n{\n  "upstreams": ${list(upstreams)},\n  "rules": ${list(rules)}\n}\n`
}

export async function reloadStall(kit: Kit): Promise<Record<string, number>> {
  const out: Record<string, number> = {}
  const upstream = createServer((_req, res) => res.end('ok\n'))
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve))
  const upstreamPort = (upstream.address() as AddressInfo).port
  const agent = new Agent({ keepAlive: true, maxSockets: 1 })
  try {
    for (const [format, make] of [
      ['yaml', yamlConfig],
      ['json', controllerConfig],
    ] as const) {
      const file = join(kit.work, `reload-stall.${format}`)
      writeFileSync(file, make(upstreamPort, 'start'))
      const port = await kit.freePort()
      const { process: p, logs } = kit.nanoproxyWithLogs(file, { PORT: String(port) })
      await kit.waitForPort(port)
      const get = (): Promise<number> =>
        new Promise((resolve, reject) => {
          const started = performance.now()
          request({ host: '127.0.0.1', port, path: '/p5/x', headers: { host: 'h500.example' }, agent }, (res) => {
            res.resume()
            res.on('end', () => (res.statusCode === 200 ? resolve(performance.now() - started) : reject(new Error(`status ${res.statusCode}`))))
          })
            .on('error', reject)
            .end()
        })
      const steadyClient = (): (() => Promise<{ worst: number; requests: number }>) => {
        let stopped = false
        let worst = 0
        let requests = 0
        const done = (async () => {
          while (!stopped) {
            worst = Math.max(worst, await get())
            requests++
          }
        })()
        return async () => {
          stopped = true
          await done
          return { worst, requests }
        }
      }
      for (let i = 0; i < 500; i++) await get() // warm-up
      let finish = steadyClient()
      const started = performance.now()
      const works: number[] = []
      for (let k = 0; k < RELOADS; k++) {
        works.push((await kit.reloadTime(logs, file, make(upstreamPort, `reload ${k}`))).work)
        await new Promise((r) => setTimeout(r, 100))
      }
      const during = await finish()
      finish = steadyClient()
      await new Promise((r) => setTimeout(r, performance.now() - started))
      const quiet = await finish()
      works.sort((a, b) => a - b)
      out[`reload_stall_${format}_worst_request_ms`] = during.worst
      out[`reload_stall_${format}_no_reload_worst_request_ms`] = quiet.worst
      out[`reload_stall_${format}_requests`] = during.requests
      out[`reload_stall_${format}_reload_p50_ms`] = works[Math.floor(works.length / 2)]!
      await kit.stop(p)
    }
  } finally {
    agent.destroy()
    upstream.close()
  }
  return out
}
