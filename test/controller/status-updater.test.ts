// The Ingress status loop against a real kube-apiserver (helpers/kube-cluster.ts):
// what it sends, what it leaves alone, and how it handles the API's answers.
// The loop reads its Ingresses from a source the test controls, so a test
// can hand it an out-of-date copy, as a lagging watch cache would, and
// provoke a real 409 Conflict from the API server.

import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { CoreV1Api, NetworkingV1Api, PatchStrategy, setHeaderOptions, type KubernetesObject, type V1Ingress } from '@kubernetes/client-node'
import { pino } from 'pino'
import { ingressStatusClient } from '../../src/controller/ingress-status-client.ts'
import { otherReadyReplicas } from '../../src/controller/replica-peers.ts'
import type { Ingress, Service } from '../../src/controller/snapshot.ts'
import { StatusUpdater, type IngressStatusApi, type PublishSettings } from '../../src/controller/status-updater.ts'
import { KubeCluster } from '../helpers/kube-cluster.ts'

let cluster: KubeCluster
let net: NetworkingV1Api
let core: CoreV1Api
const log = pino({ level: 'silent' })

before(
  async () => {
    cluster = new KubeCluster()
    await cluster.start()
    net = cluster.adminConfig.makeApiClient(NetworkingV1Api)
    core = cluster.adminConfig.makeApiClient(CoreV1Api)
  },
  { timeout: 15 * 60_000 },
)

after(async () => {
  await cluster?.stop()
})

function ingress(ns: string, name: string): KubernetesObject {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'Ingress',
    metadata: { name, namespace: ns },
    spec: { ingressClassName: 'nanoproxy', rules: [{ host: `${name}.${ns}.test`, http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'web', port: { number: 80 } } } }] } }] },
  } as KubernetesObject
}

async function makeIngresses(ns: string, names: string[]): Promise<string[]> {
  await cluster.apply([{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } }])
  await cluster.apply(names.map((n) => ingress(ns, n)))
  return names.map((n) => `${ns}/${n}`)
}

const read = (key: string): Promise<V1Ingress> => {
  const [namespace, name] = key.split('/') as [string, string]
  return net.readNamespacedIngressStatus({ name, namespace })
}

/** As plain data (the client returns class instances). */
const statusOf = async (key: string): Promise<unknown[]> => JSON.parse(JSON.stringify((await read(key)).status?.loadBalancer?.ingress ?? [])) as unknown[]

/** The controller's status client (kept-alive connections), counting the calls the loop makes and how many are in flight. */
function countingApi() {
  const calls = { patch: 0, read: 0, inFlight: 0, maxInFlight: 0 }
  const real = ingressStatusClient(cluster.adminConfig, 10)
  assert.ok(real)
  const api: IngressStatusApi = {
    async patchNamespacedIngressStatus(param, options) {
      calls.patch++
      calls.inFlight++
      calls.maxInFlight = Math.max(calls.maxInFlight, calls.inFlight)
      try {
        return await real.patchNamespacedIngressStatus(param, options)
      } finally {
        calls.inFlight--
      }
    },
    async readNamespacedIngressStatus(param) {
      calls.read++
      return real.readNamespacedIngressStatus(param)
    },
  }
  return { api, calls }
}

/** A source holding the copies the test gives it (what a watch cache would hold). */
class TestSource {
  owned = new Set<string>()
  cache = new Map<string, Ingress>()
  services: Service[] = []
  async refresh(keys: Iterable<string>): Promise<void> {
    for (const key of keys) this.cache.set(key, (await read(key)) as Ingress)
  }
  view() {
    return { owned: () => this.owned, ingress: (k: string) => this.cache.get(k), services: () => this.services }
  }
}

function updater(source: TestSource, publish: PublishSettings, extra: { concurrency?: number } = {}) {
  const { api, calls } = countingApi()
  const status = new StatusUpdater({ api, log, publish, source: source.view(), quietMs: 1, maxWaitMs: 5, ...extra })
  const pass = async () => {
    status.schedule()
    await status.idle()
  }
  return { status, calls, pass }
}

describe('the Ingress status loop', () => {
  it("copies the publish Service's load-balancer entries whole: ip and hostname and ports", async () => {
    const keys = await makeIngresses('whole', ['a', 'b'])
    const entries = [{ ip: '203.0.113.7', hostname: 'lb-1.example.com', ipMode: 'VIP', ports: [{ port: 80, protocol: 'TCP' }] }]
    await cluster.apply([{ apiVersion: 'v1', kind: 'Service', metadata: { name: 'np', namespace: 'whole' }, spec: { type: 'LoadBalancer', ports: [{ port: 80 }] } } as KubernetesObject])
    await core.patchNamespacedServiceStatus(
      { name: 'np', namespace: 'whole', body: { status: { loadBalancer: { ingress: entries } } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    )
    const source = new TestSource()
    source.services = [(await core.readNamespacedServiceStatus({ name: 'np', namespace: 'whole' })) as Service]
    source.owned = new Set(keys)
    await source.refresh(keys)
    const { pass } = updater(source, { service: 'whole/np' })
    await pass()
    for (const key of keys) {
      // ipMode is a Service field with no Ingress counterpart.
      assert.deepEqual(await statusOf(key), [{ ip: '203.0.113.7', hostname: 'lb-1.example.com', ports: [{ port: 80, protocol: 'TCP' }] }])
    }
  })

  it('sends nothing when every Ingress already has the wanted status', async () => {
    const keys = await makeIngresses('unchanged', ['a', 'b', 'c'])
    const source = new TestSource()
    source.owned = new Set(keys)
    await source.refresh(keys)
    const first = updater(source, { addresses: ['203.0.113.8'] })
    await first.pass()
    assert.equal(first.calls.patch, 3)
    await source.refresh(keys)
    // A fresh loop (a restarted controller) and the same loop again, many passes.
    const second = updater(source, { addresses: ['203.0.113.8'] })
    for (let i = 0; i < 5; i++) {
      await second.pass()
      await first.pass()
    }
    assert.equal(second.calls.patch + second.calls.read, 0)
    assert.equal(first.calls.patch, 3)
  })

  it('does not send its own write again while the cache still shows the old status', async () => {
    const keys = await makeIngresses('lagging', ['a'])
    const source = new TestSource()
    source.owned = new Set(keys)
    await source.refresh(keys) // and never again: the watch event has not arrived
    const { pass, calls } = updater(source, { addresses: ['203.0.113.9'] })
    await pass()
    await pass()
    await pass()
    assert.equal(calls.patch, 1)
    assert.deepEqual(await statusOf(keys[0]!), [{ ip: '203.0.113.9' }])
  })

  it('re-reads the Ingress and tries again when the API server answers 409 Conflict', async () => {
    const keys = await makeIngresses('conflict', ['a'])
    const source = new TestSource()
    source.owned = new Set(keys)
    await source.refresh(keys)
    // The Ingress changes after the cache saw it: the loop's copy is stale.
    await net.patchNamespacedIngress(
      { name: 'a', namespace: 'conflict', body: { metadata: { labels: { touched: 'yes' } } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    )
    const { status, calls, pass } = updater(source, { addresses: ['203.0.113.10', 'lb.example.com'] })
    await pass()
    assert.equal(status.stats.conflicts, 1)
    assert.deepEqual([calls.patch, calls.read], [2, 1])
    assert.deepEqual(await statusOf(keys[0]!), [{ ip: '203.0.113.10' }, { hostname: 'lb.example.com' }])
    assert.equal((await read(keys[0]!)).metadata?.labels?.touched, 'yes', 'the other change is kept')
  })

  it('clears the status of an Ingress that is no longer ours, but not a status another controller wrote meanwhile', async () => {
    const keys = await makeIngresses('handover', ['mine', 'theirs'])
    const source = new TestSource()
    source.owned = new Set(keys)
    await source.refresh(keys)
    const { status, pass } = updater(source, { addresses: ['203.0.113.11'] })
    await pass()
    await source.refresh(keys)
    // Both move to another class; the other controller is quick on one of them.
    await net.patchNamespacedIngressStatus(
      { name: 'theirs', namespace: 'handover', body: { status: { loadBalancer: { ingress: [{ ip: '198.51.100.99' }] } } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    )
    source.owned = new Set()
    await pass()
    assert.deepEqual(await statusOf('handover/mine'), [])
    assert.deepEqual(await statusOf('handover/theirs'), [{ ip: '198.51.100.99' }])
    assert.equal(status.stats.conflicts, 1, 'the clear of "theirs" was refused by the API server, not skipped by chance')
  })

  it('skips an Ingress deleted since the cache saw it (404), and counts no failure', async () => {
    const keys = await makeIngresses('deleted', ['gone', 'kept'])
    const source = new TestSource()
    source.owned = new Set(keys)
    await source.refresh(keys)
    await net.deleteNamespacedIngress({ name: 'gone', namespace: 'deleted' })
    const { status, calls, pass } = updater(source, { addresses: ['203.0.113.14'] })
    await pass()
    assert.equal(status.stats.failures, 0)
    assert.equal(calls.patch, 2)
    assert.deepEqual(await statusOf('deleted/kept'), [{ ip: '203.0.113.14' }])
  })

  it('keeps at most `concurrency` requests in flight, and uses them', async () => {
    const names = Array.from({ length: 24 }, (_, i) => `i${i}`)
    const keys = await makeIngresses('parallel', names)
    const source = new TestSource()
    source.owned = new Set(keys)
    await source.refresh(keys)
    const { calls, pass } = updater(source, { addresses: ['203.0.113.12'] }, { concurrency: 4 })
    await pass()
    assert.equal(calls.patch, 24)
    assert.equal(calls.maxInFlight, 4)
    for (const key of keys) assert.deepEqual(await statusOf(key), [{ ip: '203.0.113.12' }])
  })

  it('on the last replica, clears the status it published from the Ingresses it owns', async () => {
    const keys = await makeIngresses('shutdown', ['a', 'b'])
    const source = new TestSource()
    source.owned = new Set(keys)
    await source.refresh(keys)
    const { status, pass } = updater(source, { addresses: ['203.0.113.13'] })
    await pass()
    await source.refresh(keys)
    assert.equal(await status.clearPublished(), 2)
    for (const key of keys) assert.deepEqual(await statusOf(key), [])
  })
})

describe('the last-replica check', () => {
  const ns = 'replicas'
  const labels = { app: 'nanoproxy', 'pod-template-hash': 'abc' }
  async function pod(name: string, opts: { ready: boolean; hash?: string; finalizers?: string[] }): Promise<void> {
    await cluster.apply([
      {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name, namespace: ns, labels: { ...labels, 'pod-template-hash': opts.hash ?? 'abc' }, finalizers: opts.finalizers },
        spec: { containers: [{ name: 'c', image: 'nanoproxy:test' }] },
      } as KubernetesObject,
    ])
    await core.patchNamespacedPodStatus(
      { name, namespace: ns, body: { status: { conditions: [{ type: 'Ready', status: opts.ready ? 'True' : 'False' }] } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    )
  }

  it('counts the Ready pods of the same Deployment, across revisions, and not the pod itself or unready ones', async () => {
    await cluster.apply([{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } }])
    await pod('me', { ready: true })
    await pod('unready', { ready: false })
    await cluster.apply([{ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'unrelated', namespace: ns, labels: { app: 'other' } }, spec: { containers: [{ name: 'c', image: 'x' }] } } as KubernetesObject])
    assert.deepEqual(await otherReadyReplicas(core, { name: 'me', namespace: ns }), [])
    await pod('next-revision', { ready: true, hash: 'def' })
    assert.deepEqual(await otherReadyReplicas(core, { name: 'me', namespace: ns }), ['next-revision'])
  })

  it('does not count a Ready pod that is being deleted (helm uninstall stops every pod at once)', async () => {
    // A finalizer keeps the deleted pod visible, with its deletionTimestamp, as a terminating pod is.
    await pod('terminating', { ready: true, finalizers: ['nanoproxy.test/hold'] })
    await core.deleteNamespacedPod({ name: 'terminating', namespace: ns })
    const others = await otherReadyReplicas(core, { name: 'me', namespace: ns })
    assert.ok(!others.includes('terminating'), `counted: ${others.join(', ')}`)
    assert.ok((await core.readNamespacedPod({ name: 'terminating', namespace: ns })).metadata?.deletionTimestamp)
  })

  it('throws when it cannot read its own pod (then nothing is cleared)', async () => {
    await assert.rejects(otherReadyReplicas(core, { name: 'ghost', namespace: ns }))
  })
})
