// Requests through the whole chain, on real sockets: EndpointSlices the test
// writes to a real kube-apiserver → the controller → the config file → the
// proxy → upstream servers listening on 198.18.20.x inside a network
// namespace the test creates (the API server refuses loopback endpoint
// addresses). Needs root; skipped with the reason otherwise.

import assert from 'node:assert/strict'
import { Agent, request } from 'node:http'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import type { KubernetesObject } from '@kubernetes/client-node'
import { KubeCluster } from '../helpers/kube-cluster.ts'
import { Netns, netnsUnavailable, SUBNET, type NetnsServer } from '../helpers/netns.ts'
import { startProxy, tempDir, type ProxyProcess } from '../helpers/proxy-process.ts'

const CLUSTER_DNS = new URL('../helpers/cluster-dns.ts', import.meta.url).pathname
const skip = netnsUnavailable()

let cluster: KubeCluster
let netns: Netns
let controller: ProxyProcess
let proxy: ProxyProcess

type Endpoint = { ip: string; ready?: boolean; serving?: boolean; terminating?: boolean }

function slice(ns: string, name: string, svc: string, port: number, endpoints: Endpoint[]): KubernetesObject {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name, namespace: ns, labels: { 'kubernetes.io/service-name': svc } },
    addressType: 'IPv4',
    ports: [{ name: 'http', port, protocol: 'TCP' }],
    endpoints: endpoints.map((e) => ({ addresses: [e.ip], conditions: { ready: e.ready ?? true, serving: e.serving ?? e.ready ?? true, terminating: e.terminating ?? false } })),
  } as KubernetesObject
}

function site(ns: string, host: string, extra: { annotations?: Record<string, string>; serviceSpec?: Record<string, unknown>; port?: number } = {}): KubernetesObject[] {
  return [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } },
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: ns }, spec: extra.serviceSpec ?? { ports: [{ name: 'http', port: 80, targetPort: 'http' }] } },
    {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'Ingress',
      metadata: { name: 'site', namespace: ns, annotations: extra.annotations },
      spec: { ingressClassName: 'nanoproxy', rules: [{ host, http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'web', port: { number: extra.port ?? 80 } } } }] } }] },
    },
  ] as KubernetesObject[]
}

/** One GET through the proxy with Host `host`; `agent` keeps connections alive. */
function get(host: string, agent?: Agent): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: proxy.port, path: '/', headers: { host }, agent: agent ?? false, timeout: 10_000 }, (res) => {
      let body = ''
      res.setEncoding('utf8').on('data', (c: string) => (body += c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
    req.on('timeout', () => req.destroy(new Error('client timeout')))
    req.on('error', reject)
    req.end()
  })
}

/** Sends GETs until `done` says stop; counts answers by body, failures by reason. */
async function traffic(host: string, n: number, concurrency: number, agent?: Agent): Promise<{ counts: Map<string, number>; failures: string[] }> {
  const counts = new Map<string, number>()
  const failures: string[] = []
  let sent = 0
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (sent < n) {
        sent++
        try {
          const r = await get(host, agent)
          if (r.status === 200) counts.set(r.body, (counts.get(r.body) ?? 0) + 1)
          else failures.push(`${r.status} ${r.body.trim()}`)
        } catch (err) {
          failures.push(String(err))
        }
      }
    }),
  )
  return { counts, failures }
}

/** Polls until `check` holds for a GET's body (5 s at most). */
async function until(host: string, check: (status: number, body: string) => boolean, what: string, limitMs = 5000): Promise<number> {
  const started = Date.now()
  for (;;) {
    const r = await get(host).catch((err: unknown) => ({ status: 0, body: String(err) }))
    if (check(r.status, r.body)) return Date.now() - started
    if (Date.now() - started > limitMs) assert.fail(`never saw ${what} within ${limitMs} ms (last: ${r.status} ${r.body})`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

describe('traffic to EndpointSlice endpoints in a network namespace', { skip }, () => {
  const servers: NetnsServer[] = []
  const serve = async (name: string, last: number, delayMs = 0): Promise<NetnsServer> => {
    const s = await netns.start(name, `${SUBNET}.${last}`, 8080, delayMs)
    servers.push(s)
    return s
  }

  before(
    async () => {
      netns = new Netns()
      netns.create()
      cluster = new KubeCluster()
      await cluster.start()
      const kubeconfig = await cluster.controllerKubeconfig()
      const configFile = join(tempDir(), 'config.yaml')
      await cluster.apply([{ apiVersion: 'networking.k8s.io/v1', kind: 'IngressClass', metadata: { name: 'nanoproxy' }, spec: { controller: 'benc-uk/nanoproxy' } } as KubernetesObject])
      controller = await startProxy({ args: ['controller', '-c', configFile], env: { KUBECONFIG: kubeconfig }, noWait: true })
      await controller.waitForLog((l) => typeof l.health_port === 'number', 10_000)
      proxy = await startProxy({
        args: ['proxy', '-c', configFile],
        env: { NODE_OPTIONS: `--import=${CLUSTER_DNS}`, NANOPROXY_TEST_HOSTS: `api.external.test=${SUBNET}.61,${SUBNET}.62;web.legacy.svc.cluster.local=${SUBNET}.71` },
      })
    },
    { timeout: 15 * 60_000 },
  )

  after(async () => {
    await proxy?.stop()
    await controller?.stop()
    await cluster?.stop()
    await netns?.remove()
  })

  it('spreads 1,000 requests over three ready endpoints, each within 10 % of its share', async () => {
    const ns = 'spread'
    for (const [name, last] of [['a', 11], ['b', 12], ['c', 13]] as const) await serve(name, last)
    await cluster.apply([...site(ns, 'spread.test'), slice(ns, 'web-1', 'web', 8080, [{ ip: `${SUBNET}.11` }, { ip: `${SUBNET}.12` }, { ip: `${SUBNET}.13` }])])
    await until('spread.test', (s) => s === 200, 'the first answer')
    const { counts, failures } = await traffic('spread.test', 1000, 4)
    assert.deepEqual(failures, [])
    for (const name of ['a', 'b', 'c']) {
      const got = counts.get(name) ?? 0
      assert.ok(Math.abs(got - 1000 / 3) <= 1000 / 3 / 10, `${name} got ${got} of 1000`)
    }
  })

  it('gives a new endpoint its share within 5 s while kept-alive clients keep their connections', async () => {
    const ns = 'scale'
    await serve('s1', 21)
    await serve('s2', 22)
    await cluster.apply([...site(ns, 'scale.test'), slice(ns, 'web-1', 'web', 8080, [{ ip: `${SUBNET}.21` }, { ip: `${SUBNET}.22` }])])
    await until('scale.test', (s) => s === 200, 'the first answer')
    const agent = new Agent({ keepAlive: true, maxSockets: 4 })
    let sockets = 0
    const originalCreate = agent.createConnection.bind(agent)
    agent.createConnection = ((...args: Parameters<Agent['createConnection']>) => {
      sockets++
      return originalCreate(...args)
    })
    try {
      await traffic('scale.test', 40, 4, agent)
      const socketsBefore = sockets
      await serve('s3', 23)
      const scaledAt = Date.now()
      await cluster.apply([slice(ns, 'web-1', 'web', 8080, [{ ip: `${SUBNET}.21` }, { ip: `${SUBNET}.22` }, { ip: `${SUBNET}.23` }])])
      // Keep-alive clients carry on; the new pod must get its share.
      let third = 0
      while (Date.now() - scaledAt < 5000) {
        const { counts, failures } = await traffic('scale.test', 60, 4, agent)
        assert.deepEqual(failures, [])
        third = counts.get('s3') ?? 0
        if (third >= 15) break
      }
      assert.ok(third >= 15, `the new endpoint got ${third} of 60 requests 5 s after it was added`)
      assert.equal(sockets, socketsBefore, 'the clients had to open new connections to the proxy')
    } finally {
      agent.destroy()
    }
  })

  it('ejects a killed endpoint and retries its requests elsewhere: no GET fails', async () => {
    const ns = 'kill'
    await serve('k1', 31)
    await serve('k2', 32)
    const doomed = await serve('k3', 33)
    await cluster.apply([...site(ns, 'kill.test'), slice(ns, 'web-1', 'web', 8080, [31, 32, 33].map((n) => ({ ip: `${SUBNET}.${n}` })))])
    await until('kill.test', (s) => s === 200, 'the first answer')
    const agent = new Agent({ keepAlive: true, maxSockets: 4 })
    try {
      const warm = await traffic('kill.test', 60, 4, agent)
      assert.deepEqual(warm.failures, [])
      assert.ok((warm.counts.get('k3') ?? 0) > 0)
      // The pod dies; its EndpointSlice still lists it (as until the kubelet notices).
      const load = traffic('kill.test', 300, 4, agent)
      await new Promise((r) => setTimeout(r, 100))
      await doomed.kill()
      const { failures } = await load
      assert.deepEqual(failures, [])
      const ejected = await proxy.waitForLog((l) => l.msg === 'upstream server ejected after consecutive connection failures' && l.server === `http://${SUBNET}.33:8080`)
      assert.equal(ejected.level, 'warn')
      assert.ok(proxy.logs.some((l) => l.msg === 'request' && l.host === 'kill.test' && (l.attempts as number) > 1 && l.status === 200), 'no request was retried')
    } finally {
      agent.destroy()
    }
  })

  it('keeps serving from serving+terminating endpoints when none is ready, and answers 503 when none serves', async () => {
    const ns = 'drain'
    await serve('old', 41)
    await cluster.apply([...site(ns, 'drain.test'), slice(ns, 'web-1', 'web', 8080, [{ ip: `${SUBNET}.41` }])])
    await until('drain.test', (s, b) => s === 200 && b === 'old', 'the ready endpoint')
    await cluster.apply([slice(ns, 'web-1', 'web', 8080, [{ ip: `${SUBNET}.41`, ready: false, serving: true, terminating: true }])])
    // The config changes (same server, from the fallback now): requests keep flowing.
    const { failures } = await traffic('drain.test', 50, 2)
    assert.deepEqual(failures, [])
    await cluster.apply([slice(ns, 'web-1', 'web', 8080, [{ ip: `${SUBNET}.41`, ready: false, serving: false, terminating: true }])])
    await until('drain.test', (s, b) => s === 503 && b.includes('NP_ERR_UPSTREAM_NO_SERVERS'), '503 without servers')
  })

  it('least request sends most requests to the idle endpoint when the other is slow', async () => {
    await serve('slow', 51, 200)
    await serve('quick', 52)
    const own = await startProxy({
      config: `upstreams:\n  - name: app\n    balance: leastRequest\n    servers: [{ host: ${SUBNET}.51, port: 8080 }, { host: ${SUBNET}.52, port: 8080 }]\nrules:\n  - { upstream: app }\n`,
    })
    const shared = proxy
    proxy = own
    try {
      const { counts, failures } = await traffic('any.test', 200, 4)
      assert.deepEqual(failures, [])
      // Round robin would give each 100.
      assert.ok((counts.get('quick') ?? 0) >= 180, JSON.stringify(Object.fromEntries(counts)))
    } finally {
      proxy = shared
      await own.stop()
    }
  })

  it('sends an ExternalName Service to every address of its external name', async () => {
    const ns = 'external'
    await serve('x1', 61)
    await serve('x2', 62)
    await cluster.apply(site(ns, 'external.test', { serviceSpec: { type: 'ExternalName', externalName: 'api.external.test', ports: [{ name: 'http', port: 8080 }] }, port: 8080 }))
    await until('external.test', (s) => s === 200, 'the first answer')
    // Until the name's first answer the proxy may connect to the name itself; then both addresses.
    await new Promise((r) => setTimeout(r, 300))
    const { counts, failures } = await traffic('external.test', 40, 2)
    assert.deepEqual(failures, [])
    assert.ok((counts.get('x1') ?? 0) >= 10 && (counts.get('x2') ?? 0) >= 10, JSON.stringify(Object.fromEntries(counts)))
  })

  it('sends a service-upstream Ingress to the Service name, not to its endpoints', async () => {
    const ns = 'legacy'
    await serve('cluster-ip', 71)
    await serve('pod', 72)
    await cluster.apply([
      ...site(ns, 'legacy.test', { annotations: { 'nanoproxy/service-upstream': 'true' }, serviceSpec: { ports: [{ name: 'http', port: 8080 }] }, port: 8080 }),
      slice(ns, 'web-1', 'web', 8080, [{ ip: `${SUBNET}.72` }]),
    ])
    await until('legacy.test', (s) => s === 200, 'the first answer')
    const { counts, failures } = await traffic('legacy.test', 20, 2)
    assert.deepEqual(failures, [])
    assert.deepEqual(Object.fromEntries(counts), { 'cluster-ip': 20 })
  })
})
