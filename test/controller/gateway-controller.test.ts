// The Gateway API side of `nanoproxy controller` against a real
// kube-apiserver with the standard CRDs of the pinned gateway-api module
// (test/k8s/conformance/build.sh --crds), running as a ServiceAccount with
// exactly the rules the chart grants with gatewayAPI.enabled: the status it
// writes must pass the CRDs' own validation and RBAC.

import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { CustomObjectsApi, type KubernetesObject } from '@kubernetes/client-node'
import { parseAllDocuments } from 'yaml'
import { readFileSync } from 'node:fs'
import { renderChart } from '../helpers/helm.ts'
import { KubeCluster } from '../helpers/kube-cluster.ts'
import { startProxy, tempDir, type ProxyProcess } from '../helpers/proxy-process.ts'

const ROOT = new URL('../../', import.meta.url).pathname
const GROUP = 'gateway.networking.k8s.io'

let cluster: KubeCluster
let kubeconfig: string
let controller: ProxyProcess | undefined

async function startController(): Promise<ProxyProcess> {
  const p = await startProxy({
    args: ['controller', '-c', join(tempDir(), 'config.yaml')],
    env: { KUBECONFIG: kubeconfig, GATEWAY_API: 'true', DEBUG: '1' },
    noWait: true,
  })
  await p.waitForLog((l) => typeof l.health_port === 'number', 10_000)
  return p
}

interface Cond {
  type: string
  status: string
  reason: string
  observedGeneration?: number
  lastTransitionTime?: string
}
type Obj = KubernetesObject & { status?: Record<string, unknown> }

async function get(plural: string, name: string, namespace?: string): Promise<Obj> {
  const api = cluster.adminConfig.makeApiClient(CustomObjectsApi)
  return (namespace
    ? await api.getNamespacedCustomObject({ group: GROUP, version: 'v1', namespace, plural, name })
    : await api.getClusterCustomObject({ group: GROUP, version: 'v1', plural, name })) as Obj
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, limitMs = 15_000): Promise<T> {
  const deadline = Date.now() + limitMs
  let last: unknown
  for (;;) {
    try {
      const v = await fn()
      if (v !== undefined) return v
    } catch (e) {
      last = e
    }
    if (Date.now() > deadline) throw new Error(`${what}: not within ${limitMs} ms${last instanceof Error ? ` (${last.message})` : ''}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

function brief(conditions: unknown): string[] {
  return ((conditions ?? []) as Cond[]).map((c) => `${c.type}=${c.status}/${c.reason}`)
}

before(
  async () => {
    cluster = new KubeCluster()
    await cluster.start()
    kubeconfig = await cluster.controllerKubeconfig()
    // The chart's ClusterRole with the Gateway API on, bound to the same ServiceAccount.
    const role = renderChart({ values: { gatewayAPI: { enabled: true } } }).find((o) => o.kind === 'ClusterRole') as KubernetesObject & { rules: unknown[] }
    await cluster.apply([
      { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name: 'nanoproxy-chart' }, rules: role.rules } as KubernetesObject,
      {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'ClusterRoleBinding',
        metadata: { name: 'nanoproxy-chart' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'nanoproxy-chart' },
        subjects: [{ kind: 'ServiceAccount', name: 'nanoproxy', namespace: 'nanoproxy' }],
      } as KubernetesObject,
    ])
  },
  { timeout: 15 * 60_000 },
)

after(async () => {
  await controller?.stop()
  await cluster?.stop()
})

describe('the Gateway API in nanoproxy controller, against a real API server', () => {
  it('keeps serving Ingresses when the Gateway API CRDs are not installed, and says it will look again', async () => {
    controller = await startController()
    await controller.waitForLog((l) => l.msg === 'Gateway API CRDs not installed; looking again later', 10_000)
    await controller.waitForLog((l) => l.msg === 'config written', 10_000)
    await controller.stop()
    controller = undefined
  })

  it('publishes GatewayClass, Gateway and HTTPRoute status the CRDs accept, with the spec\'s reasons, and leaves other controllers\' objects alone', { timeout: 120_000 }, async () => {
    const dir = execFileSync('bash', [join(ROOT, 'test/k8s/conformance/build.sh'), '--crds'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim().split('\n').at(-1)!
    const crds = parseAllDocuments(readFileSync(join(dir, 'crds.yaml'), 'utf8')).map((d) => d.toJS() as KubernetesObject).filter((o) => o?.kind === 'CustomResourceDefinition')
    await cluster.apply(crds)
    await until('the CRDs are served', async () => ((await get('gatewayclasses', 'none').catch((e: { code?: number }) => (e.code === 404 ? {} : undefined))) ? true : undefined))
    controller = await startController()
    await controller.waitForLog((l) => l.msg.startsWith('Gateway API CRDs found'), 10_000)

    const ns = 'gw-test'
    await cluster.apply([
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } },
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: ns }, spec: { ports: [{ port: 8080 }] } } as KubernetesObject,
      { apiVersion: `${GROUP}/v1`, kind: 'GatewayClass', metadata: { name: 'nanoproxy' }, spec: { controllerName: 'nanoproxy.io/gateway-controller' } } as KubernetesObject,
      { apiVersion: `${GROUP}/v1`, kind: 'GatewayClass', metadata: { name: 'someone-else' }, spec: { controllerName: 'example.com/other' } } as KubernetesObject,
      {
        apiVersion: `${GROUP}/v1`,
        kind: 'Gateway',
        metadata: { name: 'edge', namespace: ns },
        spec: { gatewayClassName: 'nanoproxy', listeners: [{ name: 'http', port: 80, protocol: 'HTTP' }, { name: 'https', port: 443, protocol: 'HTTPS', tls: { certificateRefs: [{ name: 'missing' }] } }] },
      } as KubernetesObject,
      {
        apiVersion: `${GROUP}/v1`,
        kind: 'HTTPRoute',
        metadata: { name: 'shop', namespace: ns },
        spec: { parentRefs: [{ name: 'edge', sectionName: 'http' }], rules: [{ backendRefs: [{ name: 'web', port: 8080 }] }, { backendRefs: [{ name: 'ghost', port: 80 }] }] },
      } as KubernetesObject,
    ])

    const gc = await until('GatewayClass status', async () => {
      const o = await get('gatewayclasses', 'nanoproxy')
      return brief(o.status?.conditions).includes('Accepted=True/Accepted') ? o : undefined
    })
    assert.deepEqual(gc.status?.supportedFeatures, [{ name: 'Gateway' }, { name: 'HTTPRoute' }, { name: 'ReferenceGrant' }])
    assert.equal((gc.status?.conditions as Cond[])[0]!.observedGeneration, 1)

    const gw = await until('Gateway status', async () => {
      const o = await get('gateways', 'edge', ns)
      const listeners = (o.status?.listeners ?? []) as { attachedRoutes: number }[]
      return listeners.length === 2 && listeners[0]!.attachedRoutes === 1 ? o : undefined
    })
    // No data plane for Gateways yet: honest about having no address.
    assert.deepEqual(brief(gw.status?.conditions), ['Accepted=True/ListenersNotValid', 'Programmed=False/AddressNotAssigned'])
    const [http, https] = gw.status?.listeners as { conditions: Cond[]; supportedKinds: unknown[] }[]
    assert.deepEqual(brief(http!.conditions), ['Accepted=True/Accepted', 'ResolvedRefs=True/ResolvedRefs', 'Conflicted=False/NoConflicts', 'Programmed=False/Pending'])
    assert.deepEqual(http!.supportedKinds, [{ group: GROUP, kind: 'HTTPRoute' }])
    assert.deepEqual(brief(https!.conditions), ['Accepted=True/Accepted', 'ResolvedRefs=False/InvalidCertificateRef', 'Conflicted=False/NoConflicts', 'Programmed=False/Invalid'])

    const route = await until('HTTPRoute status', async () => {
      const o = await get('httproutes', 'shop', ns)
      return ((o.status?.parents ?? []) as unknown[]).length > 0 ? o : undefined
    })
    const parents = route.status?.parents as { controllerName: string; parentRef: unknown; conditions: Cond[] }[]
    assert.equal(parents.length, 1)
    assert.equal(parents[0]!.controllerName, 'nanoproxy.io/gateway-controller')
    assert.deepEqual(brief(parents[0]!.conditions), ['Accepted=True/Accepted', 'ResolvedRefs=False/BackendNotFound'])

    // The other controller's class gets no status from us.
    assert.deepEqual(brief((await get('gatewayclasses', 'someone-else')).status?.conditions), [])

    // Creating the missing Service resolves the route's refs; lastTransitionTime of Accepted is kept.
    const acceptedAt = parents[0]!.conditions[0]!.lastTransitionTime
    await cluster.apply([{ apiVersion: 'v1', kind: 'Service', metadata: { name: 'ghost', namespace: ns }, spec: { ports: [{ port: 80 }] } } as KubernetesObject])
    const resolved = await until('ResolvedRefs=True', async () => {
      const o = await get('httproutes', 'shop', ns)
      const c = (o.status?.parents as { conditions: Cond[] }[])[0]!.conditions
      return brief(c).includes('ResolvedRefs=True/ResolvedRefs') ? c : undefined
    })
    assert.equal(resolved[0]!.lastTransitionTime, acceptedAt)
  })
})
