// NanoProxy as users run it: its image built from the Dockerfile (buildah),
// the chart installed with helm as docs/kubernetes.md#install says, on a real
// one-node cluster (helpers/node-cluster.ts: kubelet, containerd, kube-proxy,
// controller-manager, scheduler), with traffic sent through its Service to
// backend pods. The cluster is started once for the whole file and stopped
// by the last test, which checks that nothing was left on the machine.
// Runs as root with the Debian packages .ci/run installs; otherwise the
// suite is skipped with the reason (one line).

import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, it, type TestContext } from 'node:test'
import { CHART, helmBinary } from '../helpers/helm.ts'
import { Load, type LoadResult } from '../helpers/load.ts'
import { leftovers, NODE_IP, NodeCluster, nodeClusterSkipReason, runAsync, type CommandResult } from '../helpers/node-cluster.ts'
import { send } from '../helpers/http-client.ts'

const ROOT = new URL('../../', import.meta.url).pathname
const NS = 'nanoproxy'
const APP_NS = 'shop'
const HOST = 'echo.example.test'
const skip = nodeClusterSkipReason()

let cluster: NodeCluster
let clusterIp = ''
let nodePort = 0

function helm(args: string[]): Promise<CommandResult> {
  const home = join(ROOT, '.cache/helm/home')
  return runAsync(helmBinary(), [...args, '--kubeconfig', cluster.adminKubeconfigFile], {
    PATH: process.env.PATH,
    HOME: home,
    HELM_CACHE_HOME: join(home, 'cache'),
    HELM_CONFIG_HOME: join(home, 'config'),
    HELM_DATA_HOME: join(home, 'data'),
  })
}

async function helmOk(args: string[]): Promise<string> {
  const r = await helm(args)
  if (r.code !== 0) throw new Error(`helm ${args.join(' ')} failed (${r.code}):\n${r.stderr}`)
  return r.stdout
}

async function json<T>(args: string[]): Promise<T> {
  return JSON.parse(await cluster.kubectlOk([...args, '-o', 'json'])) as T
}

interface Pod {
  metadata: { name: string; deletionTimestamp?: string }
  spec: {
    automountServiceAccountToken?: boolean
    securityContext?: Record<string, unknown>
    containers: { name: string; env?: { name: string; value?: string }[]; securityContext?: Record<string, unknown>; volumeMounts?: { name: string; mountPath: string }[] }[]
    volumes?: { name: string; projected?: { sources: Record<string, unknown>[] } }[]
  }
  status: { podIP?: string; containerStatuses?: { name: string; ready: boolean; restartCount: number }[] }
}

async function pods(ns: string, selector: string): Promise<Pod[]> {
  return (await json<{ items: Pod[] }>(['get', 'pods', '-n', ns, '-l', selector])).items
}

async function until<T>(what: string, timeoutMs: number, fn: () => Promise<T | undefined | false>): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let last: unknown
  for (;;) {
    try {
      const v = await fn()
      if (v) return v
    } catch (e) {
      last = e
    }
    if (Date.now() > deadline) throw new Error(`${what}: not after ${timeoutMs / 1000} s${last instanceof Error ? ` (${last.message})` : ''}`)
    await new Promise((r) => setTimeout(r, 250))
  }
}

/** GET through NanoProxy at `base` until the backend answers (kube-proxy needs a moment after a Service appears). */
async function getEcho(base: string): Promise<{ pod: string; host: string; path: string; headers: Record<string, string[]> }> {
  return until(`a backend answer through ${base}`, 60_000, async () => {
    const r = await send(`${base}/shop/items?x=1`, { headers: { host: HOST }, timeoutMs: 5000 })
    return r.status === 200 ? (JSON.parse(r.body) as { pod: string; host: string; path: string; headers: Record<string, string[]> }) : undefined
  })
}

function report(t: TestContext, what: string, r: LoadResult): void {
  t.diagnostic(`${what}: ${r.requests} requests in ${(r.durationMs / 1000).toFixed(1)} s (${r.requestsPerSecond}/s), ${r.failed} failed, ${r.retried} retried on a closed keep-alive connection; per pod ${JSON.stringify(r.byKey)}${r.errors.length ? `; errors ${JSON.stringify(r.errors)}` : ''}`)
}

const restricted = {
  runAsNonRoot: true,
  allowPrivilegeEscalation: false,
  capabilities: { drop: ['ALL'] },
  seccompProfile: { type: 'RuntimeDefault' },
}

describe('NanoProxy installed with its chart on a one-node cluster', { skip: skip && `needs a one-node cluster: ${skip}` }, () => {
  before(
    async () => {
      cluster = await NodeCluster.start()
    },
    { timeout: 40 * 60_000 },
  )
  after(() => cluster?.stop())

  it('helm install as the docs say: both containers become Ready through their probes, as uid 10001 on a read-only root filesystem', { timeout: 240_000 }, async (t) => {
    t.diagnostic(`cluster start-up (ms since start): ${JSON.stringify(cluster.timings)}`)
    await cluster.kubectlOk(['create', 'namespace', NS])
    await cluster.kubectlOk(['label', 'namespace', NS, 'pod-security.kubernetes.io/enforce=restricted'])
    const nodeIp = await cluster.kubectlOk(['get', 'nodes', '-o', 'jsonpath={.items[0].status.addresses[?(@.type=="InternalIP")].address}'])
    assert.equal(nodeIp, NODE_IP)
    // docs/kubernetes.md#install: a buildah build, no load-balancer
    // provider (NodePort + publishAddress); two replicas and the PDB for the
    // rolling-restart test below.
    await helmOk([
      'install', 'nanoproxy', CHART, '--namespace', NS,
      '--set', 'image.repository=localhost/nanoproxy',
      '--set', 'service.type=NodePort', '--set', `publishAddress={${nodeIp}}`,
      '--set', 'replicaCount=2', '--set', 'podDisruptionBudget.enabled=true',
    ])
    await cluster.kubectlOk(['-n', NS, 'rollout', 'status', 'deployment/nanoproxy', '--timeout=180s'])

    const ps = await pods(NS, 'app.kubernetes.io/instance=nanoproxy')
    assert.equal(ps.length, 2)
    for (const p of ps) {
      assert.deepEqual(
        p.status.containerStatuses?.map((c) => [c.name, c.ready, c.restartCount]).sort(),
        [['controller', true, 0], ['proxy', true, 0]],
      )
      for (const c of ['proxy', 'controller']) {
        assert.equal((await cluster.kubectlOk(['-n', NS, 'exec', p.metadata.name, '-c', c, '--', 'id', '-u'])).trim(), '10001')
        const write = await cluster.kubectl(['-n', NS, 'exec', p.metadata.name, '-c', c, '--', 'touch', '/app/x'])
        assert.notEqual(write.code, 0)
        assert.match(write.stderr, /Read-only file system/)
      }
    }
    const svc = await json<{ spec: { clusterIP: string; ports: { nodePort: number }[] } }>(['get', 'service', 'nanoproxy', '-n', NS])
    clusterIp = svc.spec.clusterIP
    nodePort = svc.spec.ports[0]!.nodePort
  })

  it("the controller uses the pod's projected ServiceAccount token; the proxy container has none", { timeout: 60_000 }, async () => {
    const [p] = await pods(NS, 'app.kubernetes.io/instance=nanoproxy')
    assert.ok(p)
    assert.equal(p.spec.automountServiceAccountToken, false)
    const vol = p.spec.volumes?.find((v) => v.projected?.sources.some((s) => 'serviceAccountToken' in s))
    assert.ok(vol, 'a projected serviceAccountToken volume')
    const token = await cluster.kubectlOk(['-n', NS, 'exec', p.metadata.name, '-c', 'controller', '--', 'cat', '/var/run/secrets/kubernetes.io/serviceaccount/token'])
    const claims = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { sub: string; 'kubernetes.io': { pod: { name: string } } }
    assert.equal(claims.sub, 'system:serviceaccount:nanoproxy:nanoproxy')
    // A bound (projected) token names its pod; a legacy Secret token does not.
    assert.equal(claims['kubernetes.io'].pod.name, p.metadata.name)
    const none = await cluster.kubectl(['-n', NS, 'exec', p.metadata.name, '-c', 'proxy', '--', 'ls', '/var/run/secrets/kubernetes.io/serviceaccount'])
    assert.notEqual(none.code, 0)
    // The API server saw the controller authenticate as that ServiceAccount
    // (its list/watch is what made the pod Ready): can-i as that identity.
    assert.equal((await cluster.kubectlOk(['auth', 'can-i', 'watch', 'ingresses', '--all-namespaces', '--as', 'system:serviceaccount:nanoproxy:nanoproxy'])).trim(), 'yes')
  })

  it('an Ingress to a 3-replica backend: requests through the ClusterIP and the NodePort reach every pod, and the Ingress status shows the node address', { timeout: 180_000 }, async () => {
    const manifests = [
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: APP_NS, labels: { 'pod-security.kubernetes.io/enforce': 'restricted' } } },
      {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'echo', namespace: APP_NS },
        spec: {
          replicas: 3,
          // docs/kubernetes.md "Rollouts without failed requests": never fewer ready pods than wanted.
          strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
          selector: { matchLabels: { app: 'echo' } },
          template: {
            metadata: { labels: { app: 'echo' } },
            spec: {
              terminationGracePeriodSeconds: 10,
              containers: [
                {
                  name: 'echo',
                  image: cluster.imageName('echo'),
                  imagePullPolicy: 'Never',
                  env: [
                    { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
                    { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
                  ],
                  ports: [{ containerPort: 8080, name: 'http' }],
                  readinessProbe: { httpGet: { path: '/healthz', port: 'http' }, periodSeconds: 1 },
                  // Serve on while the EndpointSlice change reaches the proxy (the image has no shell: the sleep action).
                  lifecycle: { preStop: { sleep: { seconds: 5 } } },
                  securityContext: restricted,
                },
              ],
            },
          },
        },
      },
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'echo', namespace: APP_NS }, spec: { selector: { app: 'echo' }, ports: [{ port: 80, targetPort: 'http' }] } },
      {
        apiVersion: 'networking.k8s.io/v1',
        kind: 'Ingress',
        metadata: { name: 'echo', namespace: APP_NS },
        spec: { ingressClassName: 'nanoproxy', rules: [{ host: HOST, http: { paths: [{ path: '/shop', pathType: 'Prefix', backend: { service: { name: 'echo', port: { number: 80 } } } }] } }] },
      },
    ]
    const file = join(cluster.dir, 'echo.json')
    writeFileSync(file, JSON.stringify({ apiVersion: 'v1', kind: 'List', items: manifests }))
    await cluster.kubectlOk(['apply', '-f', file])
    await cluster.kubectlOk(['-n', APP_NS, 'rollout', 'status', 'deployment/echo', '--timeout=120s'])
    const backends = (await pods(APP_NS, 'app=echo')).map((p) => p.metadata.name).sort()

    for (const base of [`http://${clusterIp}`, `http://${NODE_IP}:${nodePort}`]) {
      const first = await getEcho(base)
      assert.equal(first.host, HOST)
      assert.equal(first.path, '/shop/items?x=1')
      assert.ok(first.headers['X-Forwarded-For'], 'X-Forwarded-For is set by the proxy')
      // The proxy balances each request over the EndpointSlice's ready pods.
      const seen = await until(`every backend pod answering through ${base}`, 60_000, async () => {
        const load = new Load({ url: `${base}/shop/`, host: HOST, workers: 6, pickKey: (b) => (JSON.parse(b) as { pod: string }).pod })
        await new Promise((r) => setTimeout(r, 1500))
        const r = await load.stop()
        return Object.keys(r.byKey).length === backends.length ? Object.keys(r.byKey).sort() : undefined
      })
      assert.deepEqual(seen, backends)
    }

    const status = await until('the Ingress status', 30_000, async () => {
      const ing = await json<{ status?: { loadBalancer?: { ingress?: { ip?: string }[] } } }>(['get', 'ingress', 'echo', '-n', APP_NS])
      return ing.status?.loadBalancer?.ingress?.length ? ing.status.loadBalancer.ingress : undefined
    })
    assert.deepEqual(status, [{ ip: NODE_IP }])
  })

  it('kubectl rollout restart of NanoProxy (2 replicas, PDB) under load: no request fails', { timeout: 240_000 }, async (t) => {
    const load = new Load({ url: `http://${clusterIp}/shop/`, host: HOST, workers: 8 })
    const started = Date.now()
    await new Promise((r) => setTimeout(r, 2000))
    const before = (await pods(NS, 'app.kubernetes.io/instance=nanoproxy')).map((p) => p.metadata.name)
    await cluster.kubectlOk(['-n', NS, 'rollout', 'restart', 'deployment/nanoproxy'])
    await cluster.kubectlOk(['-n', NS, 'rollout', 'status', 'deployment/nanoproxy', '--timeout=180s'])
    // Until the old pods are gone (their drain included), and ~20 s at least.
    await until('the old NanoProxy pods to be gone', 120_000, async () => {
      const now = (await pods(NS, 'app.kubernetes.io/instance=nanoproxy')).map((p) => p.metadata.name)
      return !now.some((n) => before.includes(n))
    })
    while (Date.now() - started < 20_000) await new Promise((r) => setTimeout(r, 250))
    await new Promise((r) => setTimeout(r, 2000))
    const r = await load.stop()
    report(t, 'NanoProxy rolling restart', r)
    assert.ok(r.requests > 100, `only ${r.requests} requests were sent`)
    assert.equal(r.failed, 0, `failed requests: ${JSON.stringify(r.errors)}`)
  })

  it('kubectl rollout restart of a 3-replica backend (readiness probe, preStop delay) under load for ~20 s: no request fails', { timeout: 240_000 }, async (t) => {
    const load = new Load({ url: `http://${clusterIp}/shop/`, host: HOST, workers: 8, pickKey: (b) => (JSON.parse(b) as { pod: string }).pod })
    const started = Date.now()
    await new Promise((r) => setTimeout(r, 2000))
    const before = (await pods(APP_NS, 'app=echo')).map((p) => p.metadata.name)
    await cluster.kubectlOk(['-n', APP_NS, 'rollout', 'restart', 'deployment/echo'])
    await cluster.kubectlOk(['-n', APP_NS, 'rollout', 'status', 'deployment/echo', '--timeout=120s'])
    await until('the old backend pods to be gone', 120_000, async () => !(await pods(APP_NS, 'app=echo')).some((p) => before.includes(p.metadata.name)))
    while (Date.now() - started < 20_000) await new Promise((r) => setTimeout(r, 250))
    await new Promise((r) => setTimeout(r, 2000))
    const r = await load.stop()
    report(t, 'backend rolling update', r)
    assert.ok(r.requests > 100, `only ${r.requests} requests were sent`)
    // The EndpointSlices come from the cluster's EndpointSlice controller; the
    // proxy drops a terminating pod within about a second, retries refused
    // connections elsewhere, and the preStop delay covers the gap.
    assert.equal(r.failed, 0, `failed requests: ${JSON.stringify(r.errors)}`)
    // Traffic goes on once the new pods took over.
    const answer = await getEcho(`http://${clusterIp}`)
    assert.ok((await pods(APP_NS, 'app=echo')).some((p) => p.metadata.name === answer.pod))
  })

  it('helm upgrade with changed values rolls the pods to the new settings and keeps serving', { timeout: 240_000 }, async () => {
    await helmOk(['upgrade', 'nanoproxy', CHART, '--namespace', NS, '--reuse-values', '--set', 'proxy.timeout=7'])
    await cluster.kubectlOk(['-n', NS, 'rollout', 'status', 'deployment/nanoproxy', '--timeout=180s'])
    const ps = (await pods(NS, 'app.kubernetes.io/instance=nanoproxy')).filter((p) => !p.metadata.deletionTimestamp)
    assert.ok(ps.length >= 2)
    for (const p of ps) {
      const proxy = p.spec.containers.find((c) => c.name === 'proxy')
      assert.equal(proxy?.env?.find((e) => e.name === 'TIMEOUT')?.value, '7')
    }
    const answer = await getEcho(`http://${clusterIp}`)
    assert.equal(answer.host, HOST)
  })

  it('helm uninstall leaves none of its objects behind', { timeout: 180_000 }, async () => {
    await helmOk(['uninstall', 'nanoproxy', '--namespace', NS, '--wait', '--timeout=150s'])
    const kinds = 'deployments,replicasets,pods,services,endpointslices,serviceaccounts,configmaps,secrets,poddisruptionbudgets,roles,rolebindings'
    await until('the release namespace to be empty', 120_000, async () => {
      const items = (await json<{ items: { kind: string; metadata: { name: string } }[] }>(['get', kinds, '-n', NS])).items.filter(
        // What every namespace has, whoever installed what.
        (o) => !(o.kind === 'ServiceAccount' && o.metadata.name === 'default') && !(o.kind === 'ConfigMap' && o.metadata.name === 'kube-root-ca.crt'),
      )
      return items.length === 0 ? true : undefined
    })
    const cluster_wide = (await json<{ items: { kind: string; metadata: { name: string } }[] }>(['get', 'ingressclasses,clusterroles,clusterrolebindings', '-l', 'app.kubernetes.io/instance=nanoproxy'])).items
    assert.deepEqual(cluster_wide, [])
    assert.equal((await cluster.kubectl(['get', 'ingressclass', 'nanoproxy'])).code, 1)
  })

  it('stopping the cluster leaves no process, mount, interface, iptables chain, cgroup, sysctl change or directory behind', { timeout: 120_000 }, (t) => {
    const state = cluster.startState
    cluster.stop()
    t.diagnostic(cluster.logLines.filter((l) => l.startsWith('teardown')).join('; '))
    assert.deepEqual(leftovers(state), { processes: [], mounts: [], links: [], chains: [], cgroups: [], paths: [], sysctls: [] })
  })
})
