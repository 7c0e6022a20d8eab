// Three controller replicas against a real kube-apiserver, each running as
// the ServiceAccount of deploy/rbac.yaml (so the Lease Role is what lets
// them elect), each writing its own config file. Only the leader sets
// Ingress status and sends Events; killing it hands over within the lease
// duration plus a retry period, stopping it gracefully hands over at once.
// Short timings (lease 5 s, renew deadline 3 s, retry 1 s) keep the file quick.

import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { CoordinationV1Api, CoreV1Api, NetworkingV1Api, PatchStrategy, setHeaderOptions, type KubernetesObject } from '@kubernetes/client-node'
import { KubeCluster } from '../helpers/kube-cluster.ts'
import { startProxy, tempDir, type LogLine, type ProxyProcess } from '../helpers/proxy-process.ts'

const LEASE_S = 5
const RETRY_S = 1
const NS = 'leader-test'

let cluster: KubeCluster
let kubeconfig: string
const replicas = new Map<string, ProxyProcess>()

async function startReplica(name: string): Promise<ProxyProcess> {
  const dir = tempDir()
  const p = await startProxy({
    dir,
    args: ['controller', '-c', join(dir, 'config.yaml')],
    env: {
      KUBECONFIG: kubeconfig,
      PUBLISH_SERVICE: 'nanoproxy/nanoproxy',
      POD_NAME: name,
      POD_NAMESPACE: 'nanoproxy',
      LEADER_ELECTION_LEASE_DURATION: String(LEASE_S),
      LEADER_ELECTION_RENEW_DEADLINE: '3',
      LEADER_ELECTION_RETRY_PERIOD: String(RETRY_S),
    },
    noWait: true,
  })
  await p.waitForLog((l) => typeof l.health_port === 'number', 10_000)
  replicas.set(name, p)
  return p
}

const leads = (l: LogLine): boolean => l.msg === 'leader election: this replica now leads'

/** The replica that leads now: the last to log that it leads, not stopped and not since stepped down. */
function currentLeaders(): string[] {
  const out: string[] = []
  for (const [name, p] of replicas) {
    if (p.child.exitCode !== null || p.child.signalCode !== null) continue
    const changes = p.logs.filter((l) => leads(l) || l.msg === 'leader election: this replica stopped leading')
    if (changes.length > 0 && leads(changes.at(-1)!)) out.push(name)
  }
  return out
}

/** Resolves with the name of the first replica (among `names`) to log that it leads from log index `from` on. */
function nextLeader(names: string[], from: Map<string, number>, timeoutMs: number): Promise<string> {
  return Promise.any(
    names.map((n) => {
      const p = replicas.get(n)!
      const start = from.get(n) ?? 0
      return p.waitForLog((l) => leads(l) && p.logs.indexOf(l) >= start, timeoutMs).then(() => n)
    }),
  )
}

function logMarks(): Map<string, number> {
  return new Map([...replicas].map(([n, p]) => [n, p.logs.length]))
}

async function lease(): Promise<{ holder: string; transitions: number }> {
  const l = await cluster.adminConfig.makeApiClient(CoordinationV1Api).readNamespacedLease({ name: 'nanoproxy-leader', namespace: 'nanoproxy' })
  return { holder: l.spec?.holderIdentity ?? '', transitions: l.spec?.leaseTransitions ?? 0 }
}

async function setLoadBalancerIp(ip: string): Promise<void> {
  await cluster.adminConfig.makeApiClient(CoreV1Api).patchNamespacedServiceStatus(
    { name: 'nanoproxy', namespace: 'nanoproxy', body: { status: { loadBalancer: { ingress: [{ ip }] } } } },
    setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
  )
}

async function waitFor<T>(read: () => Promise<T>, ok: (v: T) => boolean, what: string, limitMs = 5000): Promise<T> {
  const started = Date.now()
  for (;;) {
    const v = await read()
    if (ok(v)) return v
    if (Date.now() - started > limitMs) assert.fail(`${what} within ${limitMs} ms; last: ${JSON.stringify(v)}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

async function ingressIps(name: string): Promise<string[]> {
  const ing = await cluster.adminConfig.makeApiClient(NetworkingV1Api).readNamespacedIngress({ name, namespace: NS })
  return (ing.status?.loadBalancer?.ingress ?? []).map((e) => e.ip ?? '')
}

async function warningEvents(name: string): Promise<string[]> {
  const list = await cluster.adminConfig.makeApiClient(CoreV1Api).listNamespacedEvent({ namespace: NS })
  return list.items.filter((e) => e.involvedObject.name === name && e.type === 'Warning').map((e) => `${e.reason}: ${e.message}`)
}

/** PATCH requests for Ingress status sent by every replica since `from` (each pass logs its count). */
function statusPatches(from: Map<string, number>): number {
  let n = 0
  for (const [name, p] of replicas) {
    for (const l of p.logs.slice(from.get(name) ?? 0)) if (l.msg === 'ingress status updated' && typeof l.patches === 'number') n += l.patches
  }
  return n
}

function ingress(name: string, service: string): KubernetesObject {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'Ingress',
    metadata: { name, namespace: NS },
    spec: {
      ingressClassName: 'nanoproxy',
      rules: [{ host: `${name}.leader.test`, http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: service, port: { number: 80 } } } }] } }],
    },
  } as KubernetesObject
}

before(
  async () => {
    cluster = new KubeCluster()
    await cluster.start()
    kubeconfig = await cluster.controllerKubeconfig()
    await cluster.apply([
      { apiVersion: 'networking.k8s.io/v1', kind: 'IngressClass', metadata: { name: 'nanoproxy' }, spec: { controller: 'benc-uk/nanoproxy' } } as KubernetesObject,
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'nanoproxy', namespace: 'nanoproxy' }, spec: { type: 'LoadBalancer', ports: [{ port: 80 }] } } as KubernetesObject,
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } },
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: NS }, spec: { ports: [{ port: 80 }] } } as KubernetesObject,
    ])
    await setLoadBalancerIp('203.0.113.10')
    await Promise.all(['replica-a', 'replica-b', 'replica-c'].map((n) => startReplica(n)))
  },
  { timeout: 15 * 60_000 },
)

after(async () => {
  await Promise.all([...replicas.values()].map((p) => p.stop('SIGKILL')))
  await cluster?.stop()
})

describe('leader election among three controller replicas', { timeout: 120_000 }, () => {
  it('elects exactly one leader, whose pod name is the Lease holder', async () => {
    const first = await nextLeader([...replicas.keys()], new Map(), 10_000)
    // Two more retry periods: nobody else takes a valid lease.
    await new Promise((r) => setTimeout(r, 2 * RETRY_S * 1000 + 500))
    assert.deepEqual(currentLeaders(), [first])
    assert.equal((await lease()).holder, first)
  })

  it('sets Ingress status with one request and sends one Event per problem, not three; every replica writes its own config', async () => {
    const marks = logMarks()
    await cluster.apply([ingress('good', 'web'), ingress('bad', 'missing')])
    await waitFor(() => ingressIps('good'), (ips) => ips.join() === '203.0.113.10', 'status of good set')
    await waitFor(() => warningEvents('bad'), (e) => e.length > 0, 'a Warning event on bad')
    // A few more rebuilds and status passes' worth of time for any duplicate to show.
    await new Promise((r) => setTimeout(r, 3000))
    const events = await warningEvents('bad')
    assert.equal(events.length, 1, JSON.stringify(events))
    assert.match(events[0]!, /^BackendNotFound: .*Service leader-test\/missing does not exist/)
    assert.equal(statusPatches(marks), 2, 'one status PATCH per Ingress (good and bad), from the leader only')
    for (const [name, p] of replicas) {
      const config = readFileSync(join(p.dir, 'config.yaml'), 'utf8')
      assert.match(config, /good\.leader\.test/, `${name} wrote its config`)
    }
  })

  it('hands over within lease duration + retry period when the leader is killed with SIGKILL, and status updates resume', async (t) => {
    const [leader] = currentLeaders()
    assert.ok(leader)
    const before = await lease()
    const others = [...replicas.keys()].filter((n) => n !== leader)
    const marks = logMarks()
    const killed = Date.now()
    await replicas.get(leader)!.stop('SIGKILL')
    const next = await nextLeader(others, marks, 20_000)
    const elapsed = (Date.now() - killed) / 1000
    t.diagnostic(`${next} took over ${elapsed} s after the SIGKILL`)
    // Lease + 1.2 × retry (the followers' jitter), + 1.5 s for a busy machine.
    assert.ok(elapsed <= LEASE_S + 1.2 * RETRY_S + 1.5, `took over after ${elapsed} s`)
    assert.deepEqual(await lease(), { holder: next, transitions: before.transitions + 1 })
    await setLoadBalancerIp('203.0.113.20')
    await waitFor(() => ingressIps('good'), (ips) => ips.join() === '203.0.113.20', 'status of good updated by the new leader')
  })

  it('hands over at its next try, not after the lease duration, when the leader stops gracefully (it releases the Lease)', async (t) => {
    const [leader] = currentLeaders()
    assert.ok(leader)
    const live = [...replicas.keys()].filter((n) => n !== leader && replicas.get(n)!.child.exitCode === null && replicas.get(n)!.child.signalCode === null)
    assert.equal(live.length, 1)
    const marks = logMarks()
    const stopped = Date.now()
    const exit = await replicas.get(leader)!.stop('SIGTERM')
    assert.equal(exit.code, 0)
    assert.ok(replicas.get(leader)!.logs.some((l) => l.msg === 'leader election: lease released'))
    const next = await nextLeader(live, marks, 20_000)
    const elapsed = (Date.now() - stopped) / 1000
    t.diagnostic(`${next} took over ${elapsed} s after the SIGTERM`)
    // Waiting for the lease to expire would take at least LEASE_S - 1.2 × RETRY_S = 3.8 s.
    assert.ok(elapsed < 3, `took over after ${elapsed} s`)
    assert.equal((await lease()).holder, next)
    await setLoadBalancerIp('203.0.113.30')
    await waitFor(() => ingressIps('good'), (ips) => ips.join() === '203.0.113.30', 'status of good updated by the last replica')
  })
})
