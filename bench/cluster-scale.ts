// `npm run bench -- --only cluster`: the controller and the proxy at cluster
// scale, against a real kube-apiserver + etcd (test/helpers/kube-cluster.ts),
// with 1,000 and 10,000 Ingresses (one host and two Prefix paths each, one
// headless Service per ten Ingresses: the test API server's Service address
// range has 254 addresses), as an operator of a large cluster would see it:
//
// - start-up: controller spawn → first config write;
// - update latency: an Ingress gets a new path → the proxy answers it (p50,
//   p99 of sequential changes), quiet; while an unrelated Service changes
//   every 100 ms; while a Service our Ingresses use changes every 100 ms
//   (every one of those is a real config change: the worst case);
// - status storm: the load balancer's address changes → every Ingress's
//   status is patched; how long that takes, and the update latency of a
//   path change made during it;
// - no-op events: controller CPU per event that changes nothing in the
//   output (an unrelated Service; an Ingress label), idle CPU subtracted;
// - controller RSS: watching nothing, at N Ingresses, after the storm;
// - reload stall: the worst latency a steady client sees across 20 reloads.
//
// Both processes run from dist/ (NANOPROXY_DIST=1), unpinned: the API server
// and etcd need the CPU too. Figures on a shared machine are noisy.

import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { Agent, request } from 'node:http'
import { join } from 'node:path'
import { CoreV1Api, DiscoveryV1Api, NetworkingV1Api, PatchStrategy, setHeaderOptions, type KubernetesObject } from '@kubernetes/client-node'
import { KubeCluster } from '../test/helpers/kube-cluster.ts'
import { Netns } from '../test/helpers/netns.ts'

const ROOT = new URL('..', import.meta.url).pathname
const CLUSTER_DNS = join(ROOT, 'test/helpers/cluster-dns.ts')
const ENV = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', NANOPROXY_DIST: '1' }
const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch)
/** The upstream's network (test/helpers/netns.ts): a /24 of 198.18.0.0/15 that no test uses. */
const UPSTREAM_SUBNET = '198.18.23'
const UPSTREAM_PORT = 8080

export interface Proc {
  child: ChildProcess
  lines: Record<string, unknown>[]
  wait(pred: (l: Record<string, unknown>) => boolean, ms: number, from?: number): Promise<Record<string, unknown>>
}

export function run(args: string[], env: Record<string, string>): Proc {
  const child = spawn(join(ROOT, 'bin/nanoproxy'), args, { env: { ...ENV, ...env }, stdio: ['ignore', 'pipe', 'inherit'] })
  const lines: Record<string, unknown>[] = []
  let buf = ''
  child.stdout.setEncoding('utf8').on('data', (c: string) => {
    buf += c
    const parts = buf.split('\n')
    buf = parts.pop() ?? ''
    for (const p of parts) {
      try {
        // at: when the bench saw the line (for latencies measured from log lines).
        lines.push({ ...(JSON.parse(p) as Record<string, unknown>), at: performance.now() })
      } catch {
        // not a log line
      }
    }
  })
  return {
    child,
    lines,
    async wait(pred, ms, from = 0) {
      const started = performance.now()
      for (;;) {
        const found = lines.slice(from).find(pred)
        if (found) return found
        if (child.exitCode !== null) throw new Error(`${args[0]} exited with ${child.exitCode}`)
        if (performance.now() - started > ms) throw new Error(`${args[0]}: no matching log line within ${ms} ms`)
        await sleep(10)
      }
    },
  }
}

export async function stop(p: Proc): Promise<void> {
  if (p.child.exitCode !== null) return
  p.child.kill('SIGTERM')
  await once(p.child, 'exit')
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

export function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m ? Number(m[1]) / 1024 : NaN
}

/** User + system CPU seconds of a process (Linux /proc). */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
  return (Number(fields[11]) + Number(fields[12])) / 100
}

/** The node process behind bin/nanoproxy (a shell wrapper may sit in between). */
function nodePid(p: Proc): number {
  return p.child.pid!
}

export function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] ?? NaN
}

export async function pool<T>(items: T[], n: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0
  await Promise.all(Array.from({ length: n }, async () => {
    while (next < items.length) await fn(items[next++]!)
  }))
}

const agent = new Agent({ keepAlive: true, maxSockets: 4 })

/** One GET through the proxy (node:http: fetch may not set Host); the status code and how long it took. */
function get(port: number, host: string, path: string): Promise<{ status: number; ms: number }> {
  const started = performance.now()
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path, headers: { host }, agent }, (res) => {
      res.resume()
      res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: performance.now() - started }))
    })
      .on('error', reject)
      .end()
  })
}

export async function runClusterBench(sizes: number[] = [1000, 10_000]): Promise<Record<string, number>> {
  const out: Record<string, number> = {}
  for (const n of sizes) Object.assign(out, await benchAt(n))
  return out
}

async function benchAt(n: number): Promise<Record<string, number>> {
  const out: Record<string, number> = {}
  const key = (k: string): string => `n${n}_${k}`
  const cluster = new KubeCluster()
  await cluster.start()
  const kubeconfig = await cluster.controllerKubeconfig()
  const net = cluster.adminConfig.makeApiClient(NetworkingV1Api)
  const core = cluster.adminConfig.makeApiClient(CoreV1Api)
  const discovery = cluster.adminConfig.makeApiClient(DiscoveryV1Api)
  // The upstream: one server in a network namespace of its own, at an
  // address the API server accepts in an EndpointSlice (not loopback). The
  // test API server runs no EndpointSlice controller: the bench writes one
  // slice per Service, as it would, or every request would get 503 (no servers).
  const netns = new Netns(UPSTREAM_SUBNET)
  const upAddress = `${UPSTREAM_SUBNET}.2`
  const dir = cluster.dir
  const configFile = join(dir, 'config.yaml')
  const procs: Proc[] = []
  try {
    netns.create()
    await netns.start('scale', upAddress, UPSTREAM_PORT)
    await cluster.apply([
      { apiVersion: 'networking.k8s.io/v1', kind: 'IngressClass', metadata: { name: 'nanoproxy' }, spec: { controller: 'benc-uk/nanoproxy' } } as KubernetesObject,
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'nanoproxy', namespace: 'nanoproxy' }, spec: { type: 'LoadBalancer', ports: [{ port: 80 }] } } as KubernetesObject,
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'scale' } },
    ])
    const setLb = (ip: string) =>
      core.patchNamespacedServiceStatus({ name: 'nanoproxy', namespace: 'nanoproxy', body: { status: { loadBalancer: { ingress: [{ ip }] } } } }, merge)
    await setLb('203.0.113.1')

    // Idle: the controller watching an empty cluster.
    {
      const idle = run(['controller', '-c', join(dir, 'idle.yaml')], { KUBECONFIG: kubeconfig, PORT: '0' })
      procs.push(idle)
      await idle.wait((l) => l.msg === 'config written', 60_000)
      await sleep(2000)
      out.controller_idle_rss_MiB = rssMiB(nodePid(idle))
      await stop(idle)
    }

    // The objects: n Ingresses, n/10 Services.
    const services = Math.max(1, n / 10)
    let t = performance.now()
    await pool([...Array(services).keys()], 16, (i) =>
      core.createNamespacedService({ namespace: 'scale', body: { metadata: { name: `s${i}` }, spec: { clusterIP: 'None', ports: [{ name: 'http', port: 80, targetPort: UPSTREAM_PORT }] } } }),
    )
    await pool([...Array(services).keys()], 16, (i) =>
      discovery.createNamespacedEndpointSlice({
        namespace: 'scale',
        body: {
          metadata: { name: `s${i}-1`, labels: { 'kubernetes.io/service-name': `s${i}` } },
          addressType: 'IPv4',
          ports: [{ name: 'http', port: UPSTREAM_PORT, protocol: 'TCP' }],
          endpoints: [{ addresses: [upAddress], conditions: { ready: true } }],
        },
      }),
    )
    const ingress = (i: number, paths: string[]) => ({
      metadata: { name: `i${i}` },
      spec: {
        ingressClassName: 'nanoproxy',
        rules: [{ host: `h${i}.scale.test`, http: { paths: paths.map((path) => ({ path, pathType: 'Prefix', backend: { service: { name: `s${i % services}`, port: { name: 'http' } } } })) } }],
      },
    })
    await pool([...Array(n).keys()], 16, (i) => net.createNamespacedIngress({ namespace: 'scale', body: ingress(i, ['/a', '/b']) }))
    console.error(`cluster: ${n} Ingresses created in ${((performance.now() - t) / 1000).toFixed(1)} s`)

    /** Waits until every Ingress shows `ip` in its status. */
    const allStatus = async (ip: string, since: number): Promise<void> => {
      for (;;) {
        const list = await net.listNamespacedIngress({ namespace: 'scale' })
        if (list.items.every((i) => i.status?.loadBalancer?.ingress?.[0]?.ip === ip)) return
        if (performance.now() - since > 900_000) throw new Error('the status storm never ended')
        await sleep(500)
      }
    }

    // Start-up to first write.
    t = performance.now()
    const controller = run(['controller', '-c', configFile], { KUBECONFIG: kubeconfig, PORT: '0', PUBLISH_SERVICE: 'nanoproxy/nanoproxy' })
    procs.push(controller)
    await controller.wait((l) => l.msg === 'config written', 120_000)
    out[key('startup_to_first_write_ms')] = performance.now() - t
    const proxy = run(['proxy', '-c', configFile], { PORT: '0', WORKERS: '1', ACCESS_LOG: 'off', NODE_OPTIONS: `--import=${CLUSTER_DNS}` })
    procs.push(proxy)
    const port = (await proxy.wait((l) => typeof l.port === 'number', 60_000)).port as number
    // The initial status storm: until every Ingress shows the address (from the controller's start).
    await allStatus('203.0.113.1', t)
    out[key('initial_status_s')] = (performance.now() - t) / 1000
    await sleep(3000)
    out[key('controller_rss_MiB')] = rssMiB(nodePid(controller))

    // Update latency: Ingress i gets path /c; the proxy answers /c on its host.
    let round = 0
    const latency = async (): Promise<number> => {
      const i = (round++ * 7919) % n
      const started = performance.now()
      await net.patchNamespacedIngress({ name: `i${i}`, namespace: 'scale', body: ingress(i, ['/a', '/b', `/c${round}`]) }, merge)
      for (;;) {
        if ((await get(port, `h${i}.scale.test`, `/c${round}`)).status === 200) return performance.now() - started
        if (performance.now() - started > 60_000) throw new Error('an update never went live')
        await sleep(10)
      }
    }
    const measure = async (label: string, count: number): Promise<void> => {
      const xs: number[] = []
      for (let k = 0; k < count; k++) {
        xs.push(await latency())
        await sleep(200)
      }
      out[key(`${label}_p50_ms`)] = percentile(xs, 50)
      out[key(`${label}_p99_ms`)] = percentile(xs, 99)
    }
    const churning = async (label: string, count: number, change: (k: number) => Promise<unknown>): Promise<void> => {
      let stopChurn = false
      const churn = (async () => {
        for (let k = 0; !stopChurn; k++) {
          await change(k)
          await sleep(100)
        }
      })()
      try {
        await sleep(1000)
        await measure(label, count)
      } finally {
        stopChurn = true
        await churn
      }
    }
    const samples = 20
    await measure('update_quiet', samples)
    await core.createNamespacedService({ namespace: 'scale', body: { metadata: { name: 'unrelated' }, spec: { ports: [{ port: 1 }] } } })
    await churning('update_unrelated_churn', samples, (k) =>
      core.patchNamespacedService({ name: 'unrelated', namespace: 'scale', body: { spec: { ports: [{ port: 2 + (k % 1000) }] } } }, merge),
    )
    // A Service one of our Ingresses uses: each change of its port is a real config change (rebuild, write, reload).
    await core.createNamespacedService({ namespace: 'scale', body: { metadata: { name: 'churny' }, spec: { ports: [{ name: 'http', port: 1000 }] } } })
    await net.createNamespacedIngress({
      namespace: 'scale',
      body: { metadata: { name: 'churny' }, spec: { ingressClassName: 'nanoproxy', rules: [{ host: 'churny.scale.test', http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'churny', port: { name: 'http' } } } }] } }] } },
    })
    await churning('update_backend_churn', samples, (k) =>
      core.patchNamespacedService({ name: 'churny', namespace: 'scale', body: { spec: { ports: [{ name: 'http', port: 1001 + (k % 1000) }] } } }, merge),
    )

    // No-op events: CPU per event, idle CPU over the same time subtracted.
    const pid = nodePid(controller)
    const cpuOver = async (events: number, send: ((k: number) => Promise<unknown>) | undefined): Promise<number> => {
      const before = cpuSeconds(pid)
      for (let k = 0; k < events; k++) {
        if (send) await send(k)
        await sleep(50)
      }
      await sleep(1500) // the debounce and anything it started
      return cpuSeconds(pid) - before
    }
    const events = 40
    const idleCpu = await cpuOver(events, undefined)
    const unrelatedCpu = await cpuOver(events, (k) => core.patchNamespacedService({ name: 'unrelated', namespace: 'scale', body: { spec: { ports: [{ port: 3000 + k }] } } }, merge))
    const labelCpu = await cpuOver(events, (k) => net.patchNamespacedIngress({ name: 'i1', namespace: 'scale', body: { metadata: { labels: { touched: String(k) } } } }, merge))
    out[key('noop_unrelated_service_cpu_ms_per_event')] = (Math.max(0, unrelatedCpu - idleCpu) / events) * 1000
    out[key('noop_ingress_label_cpu_ms_per_event')] = (Math.max(0, labelCpu - idleCpu) / events) * 1000

    // Status storm: a new load-balancer address, and a path change made during it.
    const from = controller.lines.length
    t = performance.now()
    await setLb('203.0.113.2')
    await sleep(300)
    out[key('update_during_status_storm_ms')] = await latency()
    await allStatus('203.0.113.2', t)
    out[key('status_storm_s')] = (performance.now() - t) / 1000
    const storm = controller.lines.slice(from).filter((l) => l.msg === 'ingress status updated')
    out[key('status_storm_patches')] = storm.reduce((sum, l) => sum + Number(l.patches ?? 0), 0)
    await sleep(3000)
    out[key('controller_rss_after_storm_MiB')] = rssMiB(pid)

    // Reload stall: a steady client (sequential requests) across 20 reloads,
    // and for comparison over as long without reloads (the machine's own noise).
    const proxyPid = nodePid(proxy)
    const steadyClient = () => {
      let worst = 0
      let stopClient = false
      const done = (async () => {
        while (!stopClient) worst = Math.max(worst, (await get(port, 'h1.scale.test', '/a')).ms)
      })()
      return async () => {
        stopClient = true
        await done
        return worst
      }
    }
    const reloadsBefore = proxy.lines.filter((l) => l.msg === 'config reloaded').length
    t = performance.now()
    let finish = steadyClient()
    for (let k = 0; k < 20; k++) await latency()
    const worst = await finish()
    finish = steadyClient()
    await sleep(performance.now() - t)
    out[key('no_reload_worst_request_ms')] = await finish()
    out[key('reloads_seen')] = proxy.lines.filter((l) => l.msg === 'config reloaded').length - reloadsBefore
    out[key('reload_worst_request_ms')] = worst
    const works = proxy.lines.filter((l) => l.msg === 'config reloaded').map((l) => Number(l.duration_ms))
    out[key('reload_work_p50_ms')] = percentile(works, 50)
    out[key('proxy_rss_MiB')] = rssMiB(proxyPid)
  } finally {
    for (const p of procs) await stop(p)
    await netns.remove()
    await cluster.stop()
  }
  console.error(`cluster ${n}: ${JSON.stringify(out, (_k, v: unknown) => (typeof v === 'number' ? Math.round(v * 100) / 100 : v))}`)
  return out
}
