// `npm run bench -- --only endpoints`: endpoint churn at scale (issue 12),
// against a real kube-apiserver + etcd (test/helpers/kube-cluster.ts):
// 1,000 Services, each with one EndpointSlice of 10 ready endpoints and an
// Ingress naming it. The test API server runs no controller-manager, so the
// bench writes the slices itself, as the EndpointSlice controller would.
// The API server refuses loopback addresses in slices: the endpoints get
// addresses from the benchmarking range 198.18.0.0/15, which nothing
// connects to (the proxy only loads them).
//
// Measured:
// - start-up: controller spawn → first config write; controller RSS after it;
// - the proxy's reload of that config (read + parse + validate + compile:
//   the `duration_ms` of its "config reloaded" line), p50 over the bursts;
// - bursts: the endpoints of 100 Services change at once, as in a rolling
//   update of 100 Deployments:
//   * "replace": one slice update per Service, every endpoint replaced
//     (100 API writes, 16 in flight);
//   * "rolling": one endpoint replaced at a time, 10 updates per Service
//     (1,000 API writes, 16 in flight), which lasts longer than the
//     debounce's 1 s ceiling;
//   for each: the controller's config writes, and the time from the first
//   API write to the proxy's reload of a config that has every new address.
//
// Both processes run from dist/ (NANOPROXY_DIST=1).

import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { CoreV1Api, DiscoveryV1Api, NetworkingV1Api, PatchStrategy, setHeaderOptions, type KubernetesObject } from '@kubernetes/client-node'
import { KubeCluster } from '../test/helpers/kube-cluster.ts'
import { percentile, pool, rssMiB, run, sleep, stop, type Proc } from './cluster-scale.ts'

const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch)
const SERVICES = 1000
const PER_SERVICE = 10
const BURST = 100
const PORT = 8080

/** Endpoint k of Service i in generation g: 198.18.0.0/15 has 131,072 addresses. */
function address(g: number, i: number, k: number): string {
  const n = g * SERVICES * PER_SERVICE + i * PER_SERVICE + k
  return `198.${18 + (n >> 16)}.${(n >> 8) & 255}.${n & 255}`
}

const endpoints = (ips: string[]) => ips.map((ip) => ({ addresses: [ip], conditions: { ready: true, serving: true, terminating: false } }))

export async function runEndpointsBench(): Promise<Record<string, number>> {
  const out: Record<string, number> = {}
  const cluster = new KubeCluster()
  await cluster.start()
  const kubeconfig = await cluster.controllerKubeconfig()
  const net = cluster.adminConfig.makeApiClient(NetworkingV1Api)
  const core = cluster.adminConfig.makeApiClient(CoreV1Api)
  const discovery = cluster.adminConfig.makeApiClient(DiscoveryV1Api)
  const configFile = join(cluster.dir, 'config.yaml')
  const procs: Proc[] = []
  const ns = 'eps'
  try {
    await cluster.apply([
      { apiVersion: 'networking.k8s.io/v1', kind: 'IngressClass', metadata: { name: 'nanoproxy' }, spec: { controller: 'benc-uk/nanoproxy' } } as KubernetesObject,
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } },
    ])
    let t = performance.now()
    const ids = [...Array(SERVICES).keys()]
    // Headless: the test API server's Service address range has 254 addresses.
    await pool(ids, 16, (i) => core.createNamespacedService({ namespace: ns, body: { metadata: { name: `s${i}` }, spec: { clusterIP: 'None', ports: [{ name: 'http', port: 80, targetPort: PORT }] } } }))
    await pool(ids, 16, (i) =>
      discovery.createNamespacedEndpointSlice({
        namespace: ns,
        body: {
          metadata: { name: `s${i}-1`, labels: { 'kubernetes.io/service-name': `s${i}` } },
          addressType: 'IPv4',
          ports: [{ name: 'http', port: PORT, protocol: 'TCP' }],
          endpoints: endpoints([...Array(PER_SERVICE).keys()].map((k) => address(0, i, k))),
        },
      }),
    )
    await pool(ids, 16, (i) =>
      net.createNamespacedIngress({
        namespace: ns,
        body: {
          metadata: { name: `i${i}` },
          spec: { ingressClassName: 'nanoproxy', rules: [{ host: `h${i}.eps.test`, http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: `s${i}`, port: { number: 80 } } } }] } }] },
        },
      }),
    )
    console.error(`endpoints: ${SERVICES} Services, slices and Ingresses created in ${((performance.now() - t) / 1000).toFixed(1)} s`)

    t = performance.now()
    const controller = run(['controller', '-c', configFile], { KUBECONFIG: kubeconfig, PORT: '0' })
    procs.push(controller)
    const first = await controller.wait((l) => l.msg === 'config written', 120_000)
    out.startup_to_first_write_ms = Number(first.at) - t
    out.first_write_upstreams = Number(first.upstreams)
    const text = readFileSync(configFile, 'utf8')
    out.config_file_KiB = text.length / 1024
    // Every endpoint made it into the file.
    out.first_write_has_every_endpoint = ids.every((i) => text.includes(`"${address(0, i, PER_SERVICE - 1)}"`)) ? 1 : 0
    await sleep(3000)
    out.controller_rss_after_sync_MiB = rssMiB(controller.child.pid!)

    const proxy = run(['proxy', '-c', configFile], { PORT: '0', WORKERS: '1', ACCESS_LOG: 'off' })
    procs.push(proxy)
    await proxy.wait((l) => typeof l.port === 'number', 60_000)
    await sleep(1000)

    /** One burst; `writes` are the API writes, run 16 at a time from the same instant. */
    const burst = async (label: string, services: number[], generation: number, writes: { i: number; ips: string[] }[]): Promise<void> => {
      const fromC = controller.lines.length
      const fromP = proxy.lines.length
      const started = performance.now()
      await pool(writes, 16, (w) => discovery.patchNamespacedEndpointSlice({ name: `s${w.i}-1`, namespace: ns, body: { endpoints: endpoints(w.ips) } }, merge))
      out[`${label}_api_writes`] = writes.length
      out[`${label}_api_writes_ms`] = performance.now() - started
      // The proxy serves the new servers once it has reloaded a file that has them all.
      const want = services.flatMap((i) => [...Array(PER_SERVICE).keys()].map((k) => `"${address(generation, i, k)}"`))
      for (;;) {
        const last = controller.lines.slice(fromC).findLast((l) => l.msg === 'config written')
        if (last !== undefined) {
          const file = readFileSync(configFile, 'utf8')
          if (want.every((a) => file.includes(a))) {
            // The two processes' lines reach the bench through separate pipes: allow the
            // proxy's line to arrive a little before the controller's (writes are ≥ 200 ms apart).
            const reload = await proxy.wait((l) => l.msg === 'config reloaded' && Number(l.at) >= Number(last.at) - 20, 30_000, fromP)
            out[`${label}_to_proxy_serving_ms`] = Number(reload.at) - started
            break
          }
        }
        if (performance.now() - started > 60_000) throw new Error(`${label}: the new endpoints never reached the proxy`)
        await sleep(10)
      }
      await sleep(3000) // anything still pending would show as a further write
      out[`${label}_config_writes`] = controller.lines.slice(fromC).filter((l) => l.msg === 'config written').length
      out[`${label}_proxy_reloads`] = proxy.lines.slice(fromP).filter((l) => l.msg === 'config reloaded').length
    }
    const services = (b: number) => [...Array(BURST).keys()].map((j) => b * BURST + j)
    const all = (g: number, i: number) => [...Array(PER_SERVICE).keys()].map((k) => address(g, i, k))
    for (let round = 1; round <= 3; round++) {
      const ss = services(round)
      await burst(`replace${round}`, ss, round, ss.map((i) => ({ i, ips: all(round, i) })))
    }
    for (let round = 4; round <= 5; round++) {
      const ss = services(round)
      // Pod k of every Service replaced in turn: ten updates per slice, each one endpoint newer.
      const writes = [...Array(PER_SERVICE).keys()].flatMap((k) => ss.map((i) => ({ i, ips: [...all(round, i).slice(0, k + 1), ...all(0, i).slice(k + 1)] })))
      await burst(`rolling${round}`, ss, round, writes)
    }
    const reloads = proxy.lines.filter((l) => l.msg === 'config reloaded').map((l) => Number(l.duration_ms))
    out.proxy_reloads = reloads.length
    out.proxy_reload_p50_ms = percentile(reloads, 50)
    out.proxy_reload_max_ms = Math.max(...reloads)
    out.controller_rss_after_bursts_MiB = rssMiB(controller.child.pid!)
    out.proxy_rss_MiB = rssMiB(proxy.child.pid!)
  } finally {
    for (const p of procs) await stop(p)
    await cluster.stop()
  }
  console.error(`endpoints: ${JSON.stringify(out, (_k, v: unknown) => (typeof v === 'number' ? Math.round(v * 100) / 100 : v))}`)
  return out
}
