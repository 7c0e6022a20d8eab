// The controller against a real kube-apiserver (see helpers/kube-cluster.ts),
// running as the ServiceAccount of deploy/rbac.yaml, objects applied with the
// client library as kubectl would. One controller serves the whole file;
// each test uses its own namespace and hosts so their rules do not meet.

import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { CoreV1Api, NetworkingV1Api, PatchStrategy, setHeaderOptions, type KubernetesObject } from '@kubernetes/client-node'
import { parseConfig } from '../../src/config/load.ts'
import type { ProxyConfig } from '../../src/config/schema.ts'
import { routingHost } from '../../src/router/request-host.ts'
import { RouteTable } from '../../src/router/route-table.ts'
import { send } from '../helpers/http-client.ts'
import { KubeCluster } from '../helpers/kube-cluster.ts'
import { startProxy, tempDir, type ProxyProcess } from '../helpers/proxy-process.ts'
import { startUpstream } from '../helpers/upstreams.ts'

const CLUSTER_DNS = new URL('../helpers/cluster-dns.ts', import.meta.url).pathname

let cluster: KubeCluster
let controller: ProxyProcess
let configFile: string
let controllerKubeconfig: string

async function startController(): Promise<ProxyProcess> {
  const p = await startProxy({
    args: ['controller', '-c', configFile],
    env: { KUBECONFIG: controllerKubeconfig, PUBLISH_SERVICE: 'nanoproxy/nanoproxy', DEBUG: '1' },
    noWait: true,
  })
  await p.waitForLog((l) => typeof l.health_port === 'number', 10_000)
  return p
}

before(
  async () => {
    cluster = new KubeCluster()
    await cluster.start()
    controllerKubeconfig = await cluster.controllerKubeconfig()
    configFile = join(tempDir(), 'config.yaml')
    await cluster.apply([{ apiVersion: 'networking.k8s.io/v1', kind: 'IngressClass', metadata: { name: 'nanoproxy' }, spec: { controller: 'benc-uk/nanoproxy' } } as KubernetesObject])
    // The proxy's own Service, whose load-balancer address the controller publishes.
    await cluster.apply([{ ...service('nanoproxy', 'nanoproxy', [{ port: 80 }]), spec: { type: 'LoadBalancer', ports: [{ port: 80 }] } } as KubernetesObject])
    await setLoadBalancerIp('203.0.113.10')
    controller = await startController()
  },
  { timeout: 15 * 60_000 },
)

after(async () => {
  await controller?.stop()
  await cluster?.stop()
})

/** What a cloud controller would do: give the proxy's Service a load-balancer address. */
async function setLoadBalancerIp(ip: string): Promise<void> {
  const core = cluster.adminConfig.makeApiClient(CoreV1Api)
  await core.patchNamespacedServiceStatus(
    { name: 'nanoproxy', namespace: 'nanoproxy', body: { status: { loadBalancer: { ingress: [{ ip }] } } } },
    setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
  )
}

function readConfig(): ProxyConfig {
  return parseConfig(readFileSync(configFile, 'utf8'), configFile)
}

/** Polls the written config until `check` holds (5 s at most). */
async function waitForConfig(check: (c: ProxyConfig) => boolean, what: string, limitMs = 5000): Promise<ProxyConfig> {
  const started = Date.now()
  for (;;) {
    let config: ProxyConfig | undefined
    try {
      config = readConfig()
    } catch {
      // not written yet
    }
    if (config && check(config)) return config
    if (Date.now() - started > limitMs) assert.fail(`config never showed ${what}; last:\n${readFileSync(configFile, 'utf8')}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

const hasHost = (host: string) => (c: ProxyConfig) => c.rules.some((r) => r.host === host)
const lacksHost = (host: string) => (c: ProxyConfig) => !c.rules.some((r) => r.host === host)

function namespace(name: string): KubernetesObject {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name } }
}

function service(ns: string, name: string, ports: { name?: string; port: number }[]): KubernetesObject {
  return { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: ns }, spec: { ports } } as KubernetesObject
}

interface PathSpec {
  path: string
  pathType?: string
  service: string
  port: number | string
}

function ingress(
  ns: string,
  name: string,
  rules: { host?: string; paths: PathSpec[] }[],
  extra: { className?: string | null; annotations?: Record<string, string>; defaultBackend?: { service: string; port: number } } = {},
): KubernetesObject {
  const backend = (service: string, port: number | string) => ({ service: { name: service, port: typeof port === 'number' ? { number: port } : { name: port } } })
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'Ingress',
    metadata: { name, namespace: ns, annotations: extra.annotations },
    spec: {
      ...(extra.className === null ? {} : { ingressClassName: extra.className ?? 'nanoproxy' }),
      ...(extra.defaultBackend ? { defaultBackend: backend(extra.defaultBackend.service, extra.defaultBackend.port) } : {}),
      rules: rules.map((r) => ({
        ...(r.host ? { host: r.host } : {}),
        http: { paths: r.paths.map((p) => ({ path: p.path, pathType: p.pathType ?? 'Prefix', backend: backend(p.service, p.port) })) },
      })),
    },
  } as KubernetesObject
}

async function warningEvents(ns: string, ingressName: string): Promise<string[]> {
  const core = cluster.adminConfig.makeApiClient(CoreV1Api)
  const list = await core.listNamespacedEvent({ namespace: ns })
  return list.items.filter((e) => e.involvedObject.name === ingressName && e.type === 'Warning').map((e) => `${e.reason}: ${e.message}`)
}

async function waitForEvent(ns: string, ingressName: string, pattern: RegExp): Promise<string> {
  const started = Date.now()
  for (;;) {
    const events = await warningEvents(ns, ingressName)
    const found = events.find((e) => pattern.test(e))
    if (found) return found
    if (Date.now() - started > 5000) assert.fail(`no Warning event matching ${pattern} on ${ns}/${ingressName}; events: ${JSON.stringify(events)}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

describe('the ingress controller', () => {
  it('writes its first config only after the initial lists, and then reports ready', async () => {
    await controller.waitForLog((l) => l.msg === 'config written')
    const kinds = controller.logs.filter((l) => l.msg === 'initial list complete').map((l) => l.kind)
    assert.deepEqual([...kinds].sort(), ['endpointslices', 'ingressclasses', 'ingresses', 'secrets', 'services'])
    const firstWrite = controller.logs.findIndex((l) => l.msg === 'config written')
    const lastList = Math.max(...controller.logs.map((l, i) => (l.msg === 'initial list complete' ? i : -1)))
    assert.ok(firstWrite > lastList, 'the config must be written after every initial list')
    const health = (await controller.waitForLog((l) => typeof l.health_port === 'number')).health_port as number
    const ready = await send(`http://127.0.0.1:${health}/readyz`)
    assert.equal(ready.status, 200)
  })

  it('translates every row of the Kubernetes docs path-matching table', async () => {
    // kubernetes.io/docs/concepts/services-networking/ingress/#examples
    const rows: { rules: [string, string][]; request: string; want: number }[] = [
      { rules: [['Prefix', '/']], request: '/anything', want: 0 },
      { rules: [['Exact', '/foo']], request: '/foo', want: 0 },
      { rules: [['Exact', '/foo']], request: '/bar', want: -1 },
      { rules: [['Exact', '/foo']], request: '/foo/', want: -1 },
      { rules: [['Exact', '/foo/']], request: '/foo', want: -1 },
      { rules: [['Prefix', '/foo']], request: '/foo', want: 0 },
      { rules: [['Prefix', '/foo']], request: '/foo/', want: 0 },
      { rules: [['Prefix', '/foo/']], request: '/foo', want: 0 },
      { rules: [['Prefix', '/foo/']], request: '/foo/', want: 0 },
      { rules: [['Prefix', '/aaa/bb']], request: '/aaa/bbb', want: -1 },
      { rules: [['Prefix', '/aaa/bbb']], request: '/aaa/bbb', want: 0 },
      { rules: [['Prefix', '/aaa/bbb/']], request: '/aaa/bbb', want: 0 },
      { rules: [['Prefix', '/aaa/bbb']], request: '/aaa/bbb/', want: 0 },
      { rules: [['Prefix', '/aaa/bbb']], request: '/aaa/bbb/ccc', want: 0 },
      { rules: [['Prefix', '/aaa/bbb']], request: '/aaa/bbbxyz', want: -1 },
      { rules: [['Prefix', '/'], ['Prefix', '/aaa']], request: '/aaa/ccc', want: 1 },
      { rules: [['Prefix', '/'], ['Prefix', '/aaa'], ['Prefix', '/aaa/bbb']], request: '/aaa/bbb', want: 2 },
      { rules: [['Prefix', '/'], ['Prefix', '/aaa'], ['Prefix', '/aaa/bbb']], request: '/ccc', want: 0 },
      { rules: [['Prefix', '/aaa']], request: '/ccc', want: -1 },
      { rules: [['Prefix', '/foo'], ['Exact', '/foo']], request: '/foo', want: 1 },
    ]
    const ns = 'paths'
    await cluster.apply([namespace(ns), ...[0, 1, 2].map((i) => service(ns, `s${i}`, [{ port: 80 }]))])
    await cluster.apply(
      rows.map((row, n) =>
        ingress(ns, `row${n}`, [{ host: `row${n}.paths.test`, paths: row.rules.map(([pathType, path], i) => ({ path, pathType, service: `s${i}`, port: 80 })) }]),
      ),
    )
    const config = await waitForConfig((c) => rows.every((_, n) => hasHost(`row${n}.paths.test`)(c)), 'every row')
    const table = new RouteTable(config)
    rows.forEach((row, n) => {
      const host = `row${n}.paths.test`
      const route = table.match(routingHost(host), row.request)
      const desc = `row ${n + 1}: ${row.rules.map((r) => r.join(' ')).join(' + ')} with request ${row.request}`
      if (row.want === -1) assert.ok(route === undefined || route.host !== host, `${desc} must not match`)
      else assert.equal(route?.upstream.name, `${ns}/s${row.want}:80`, desc)
    })
  })

  it('matches wildcard hosts on one DNS label, and prefers an exact host', async () => {
    // kubernetes.io/docs/concepts/services-networking/ingress/#hostname-wildcards
    const ns = 'wildcards'
    await cluster.apply([namespace(ns), service(ns, 'wild', [{ port: 80 }]), service(ns, 'exact', [{ port: 80 }])])
    await cluster.apply([
      ingress(ns, 'wild', [{ host: '*.foo.test', paths: [{ path: '/', service: 'wild', port: 80 }] }]),
      ingress(ns, 'exact', [{ host: 'exact.foo.test', paths: [{ path: '/', service: 'exact', port: 80 }] }]),
    ])
    const config = await waitForConfig((c) => hasHost('*.foo.test')(c) && hasHost('exact.foo.test')(c), 'the wildcard and exact hosts')
    const table = new RouteTable(config)
    const upstreamFor = (host: string) => table.match(host, '/')?.upstream.name
    assert.equal(upstreamFor('bar.foo.test'), 'wildcards/wild:80')
    assert.equal(upstreamFor('exact.foo.test'), 'wildcards/exact:80')
    assert.notEqual(upstreamFor('baz.bar.foo.test'), 'wildcards/wild:80')
    assert.notEqual(upstreamFor('foo.test'), 'wildcards/wild:80')
  })

  it('serves Ingresses of its classes only, and re-evaluates them when an IngressClass appears', async () => {
    const ns = 'classes'
    await cluster.apply([
      namespace(ns),
      service(ns, 'web', [{ port: 80 }]),
      { apiVersion: 'networking.k8s.io/v1', kind: 'IngressClass', metadata: { name: 'other' }, spec: { controller: 'example.com/other' } } as KubernetesObject,
    ])
    const path = [{ path: '/', service: 'web', port: 80 }]
    await cluster.apply([
      ingress(ns, 'theirs', [{ host: 'theirs.classes.test', paths: path }], { className: 'other' }),
      ingress(ns, 'legacy', [{ host: 'legacy.classes.test', paths: path }], { className: null, annotations: { 'kubernetes.io/ingress.class': 'nanoproxy' } }),
      ingress(ns, 'late', [{ host: 'late.classes.test', paths: path }], { className: 'late-class' }),
    ])
    await waitForConfig(hasHost('legacy.classes.test'), 'the Ingress with the legacy annotation')
    assert.ok(lacksHost('theirs.classes.test')(readConfig()), "another controller's Ingress must not be served")
    assert.ok(lacksHost('late.classes.test')(readConfig()), 'an Ingress whose class does not exist yet must not be served')
    // The class is created after the Ingress: the Ingress becomes ours.
    await cluster.apply([{ apiVersion: 'networking.k8s.io/v1', kind: 'IngressClass', metadata: { name: 'late-class' }, spec: { controller: 'benc-uk/nanoproxy' } } as KubernetesObject])
    await waitForConfig(hasHost('late.classes.test'), 'the Ingress of the class created later')
    // ...and stops being ours when the class goes.
    await cluster.delete({ apiVersion: 'networking.k8s.io/v1', kind: 'IngressClass', metadata: { name: 'late-class' } })
    await waitForConfig(lacksHost('late.classes.test'), 'the Ingress gone with its class')
  })

  it('serves an Ingress without a class when our IngressClass is the default', async () => {
    const ns = 'defaults'
    await cluster.apply([namespace(ns), service(ns, 'web', [{ port: 80 }])])
    await cluster.apply([ingress(ns, 'classless', [{ host: 'classless.defaults.test', paths: [{ path: '/', service: 'web', port: 80 }] }], { className: null })])
    await new Promise((r) => setTimeout(r, 1000))
    assert.ok(lacksHost('classless.defaults.test')(readConfig()), 'no default class yet')
    await cluster.apply([
      {
        apiVersion: 'networking.k8s.io/v1',
        kind: 'IngressClass',
        metadata: { name: 'nanoproxy-default', annotations: { 'ingressclass.kubernetes.io/is-default-class': 'true' } },
        spec: { controller: 'benc-uk/nanoproxy' },
      } as KubernetesObject,
    ])
    await waitForConfig(hasHost('classless.defaults.test'), 'the class-less Ingress')
    await cluster.delete({ apiVersion: 'networking.k8s.io/v1', kind: 'IngressClass', metadata: { name: 'nanoproxy-default' } })
    await waitForConfig(lacksHost('classless.defaults.test'), 'the class-less Ingress gone with the default class')
  })

  it('applies the backend-protocol and strip-path annotations, and reports invalid values as Warning events', async () => {
    const ns = 'annotations'
    await cluster.apply([namespace(ns), service(ns, 'api', [{ name: 'https', port: 8443 }])])
    await cluster.apply([
      ingress(ns, 'good', [{ host: 'good.annotations.test', paths: [{ path: '/api', service: 'api', port: 'https' }] }], {
        annotations: { 'nanoproxy/backend-protocol': 'https', 'nanoproxy/strip-path': 'true' },
      }),
      ingress(ns, 'bad', [{ host: 'bad.annotations.test', paths: [{ path: '/', service: 'api', port: 'https' }] }], {
        annotations: { 'nanoproxy/strip-path': 'maybe' },
      }),
    ])
    const config = await waitForConfig(hasHost('good.annotations.test'), 'the annotated Ingress')
    const rule = config.rules.find((r) => r.host === 'good.annotations.test')!
    assert.equal(rule.stripPath, true)
    const upstream = config.upstreams.find((u) => u.name === rule.upstream)!
    // No EndpointSlice for api (this API server runs no EndpointSlice controller): no servers yet.
    assert.deepEqual([upstream.name, upstream.scheme, upstream.servers], ['annotations/api:8443/https', 'https', []])
    assert.ok(lacksHost('bad.annotations.test')(config))
    const event = await waitForEvent(ns, 'bad', /InvalidAnnotation/)
    assert.match(event, /nanoproxy\/strip-path: "maybe" is not valid \(accepted: true, false\)/)
  })

  it('resolves a port by name through the Service, and reports a missing Service', async () => {
    const ns = 'ports'
    await cluster.apply([namespace(ns), service(ns, 'named', [{ name: 'web', port: 8080 }, { name: 'admin', port: 9000 }])])
    await cluster.apply([
      ingress(ns, 'by-name', [{ host: 'ports.test', paths: [{ path: '/admin', service: 'named', port: 'admin' }, { path: '/ghost', service: 'ghost', port: 80 }] }]),
    ])
    const config = await waitForConfig(hasHost('ports.test'), 'the port-by-name Ingress')
    const rules = config.rules.filter((r) => r.host === 'ports.test')
    assert.deepEqual(rules.map((r) => r.path), ['/admin'])
    assert.equal(rules[0]!.upstream, 'ports/named:9000')
    await waitForEvent(ns, 'by-name', /BackendNotFound: .*Service ports\/ghost does not exist/)
    // The Service appears: its path is served without touching the Ingress.
    await cluster.apply([service(ns, 'ghost', [{ port: 80 }])])
    await waitForConfig((c) => c.rules.some((r) => r.host === 'ports.test' && r.path === '/ghost'), 'the path of the Service created later')
  })

  it('gives a contested host and path to the older Ingress and tells the newer one why', async () => {
    const ns = 'conflicts'
    await cluster.apply([namespace(ns), service(ns, 'first', [{ port: 80 }]), service(ns, 'second', [{ port: 80 }])])
    await cluster.apply([ingress(ns, 'first', [{ host: 'contested.test', paths: [{ path: '/', service: 'first', port: 80 }] }])])
    await waitForConfig(hasHost('contested.test'), 'the first Ingress')
    await new Promise((r) => setTimeout(r, 1100)) // creationTimestamp has one-second resolution
    await cluster.apply([ingress(ns, 'second', [{ host: 'contested.test', paths: [{ path: '/', service: 'second', port: 80 }] }])])
    const event = await waitForEvent(ns, 'second', /Conflict/)
    assert.match(event, /already served by Ingress conflicts\/first, which is older/)
    const rules = readConfig().rules.filter((r) => r.host === 'contested.test')
    assert.deepEqual(rules.map((r) => r.upstream), ['conflicts/first:80'])
  })

  it("publishes the proxy Service's load-balancer address in the status of its Ingresses, follows changes, and clears it from one no longer ours", async () => {
    const ns = 'status'
    await cluster.apply([namespace(ns), service(ns, 'web', [{ port: 80 }])])
    await cluster.apply([ingress(ns, 'published', [{ host: 'status.test', paths: [{ path: '/', service: 'web', port: 80 }] }])])
    const net = cluster.adminConfig.makeApiClient(NetworkingV1Api)
    const statusOf = async () => (await net.readNamespacedIngressStatus({ name: 'published', namespace: ns })).status?.loadBalancer?.ingress ?? []
    const until = async (check: (s: unknown[]) => boolean) => {
      const started = Date.now()
      while (!check(await statusOf())) {
        if (Date.now() - started > 5000) assert.fail(`status is ${JSON.stringify(await statusOf())}`)
        await new Promise((r) => setTimeout(r, 100))
      }
    }
    await until((s) => JSON.stringify(s) === JSON.stringify([{ ip: '203.0.113.10' }]))
    await setLoadBalancerIp('203.0.113.20')
    await until((s) => JSON.stringify(s) === JSON.stringify([{ ip: '203.0.113.20' }]))
    await cluster.apply([ingress(ns, 'published', [{ host: 'status.test', paths: [{ path: '/', service: 'web', port: 80 }] }], { className: 'other' })])
    await until((s) => s.length === 0)
  })

  it('clears the status it published when the last replica stops, and leaves it while another replica is Ready', async () => {
    // A second controller, of its own class, as the pod `np-a` of a Deployment whose pods carry app=np-second.
    const ns = 'lastreplica'
    const core = cluster.adminConfig.makeApiClient(CoreV1Api)
    const net = cluster.adminConfig.makeApiClient(NetworkingV1Api)
    await cluster.apply([
      namespace(ns),
      service(ns, 'web', [{ port: 80 }]),
      { apiVersion: 'networking.k8s.io/v1', kind: 'IngressClass', metadata: { name: 'second' }, spec: { controller: 'example.com/second' } } as KubernetesObject,
    ])
    await cluster.apply([ingress(ns, 'site', [{ host: 'site.lastreplica.test', paths: [{ path: '/', service: 'web', port: 80 }] }], { className: 'second' })])
    const pod = async (name: string, ready: boolean) => {
      await cluster.apply([{ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'nanoproxy', labels: { app: 'np-second', 'pod-template-hash': name } }, spec: { containers: [{ name: 'c', image: 'x' }] } } as KubernetesObject])
      await core.patchNamespacedPodStatus(
        { name, namespace: 'nanoproxy', body: { status: { conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] } } },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      )
    }
    await pod('np-a', true)
    await pod('np-b', true)
    const statusOf = async () => JSON.stringify((await net.readNamespacedIngressStatus({ name: 'site', namespace: ns })).status?.loadBalancer?.ingress ?? [])
    const start = () =>
      startProxy({
        args: ['controller', '-c', join(tempDir(), 'second.yaml')],
        env: { KUBECONFIG: controllerKubeconfig, CONTROLLER_NAME: 'example.com/second', PUBLISH_ADDRESS: '192.0.2.50', POD_NAME: 'np-a', POD_NAMESPACE: 'nanoproxy', PORT: '0' },
        noWait: true,
      })
    const untilStatus = async (want: string) => {
      const started = Date.now()
      while ((await statusOf()) !== want) {
        if (Date.now() - started > 5000) assert.fail(`status is ${await statusOf()}, want ${want}`)
        await new Promise((r) => setTimeout(r, 100))
      }
    }
    let second = await start()
    await untilStatus('[{"ip":"192.0.2.50"}]')
    assert.equal((await second.stop()).code, 0)
    assert.ok(second.logs.some((l) => l.msg === 'other replicas are running: ingress status left to them'))
    assert.equal(await statusOf(), '[{"ip":"192.0.2.50"}]', 'np-b still serves: the address stays')
    // np-b goes away (its replacement is not Ready yet): np-a is the last one.
    await cluster.delete({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'np-b', namespace: 'nanoproxy' } })
    await pod('np-c', false)
    second = await start()
    await second.waitForLog((l) => l.msg === 'config written')
    assert.equal((await second.stop()).code, 0)
    assert.equal(await statusOf(), '[]')
    assert.ok(second.logs.some((l) => l.msg === 'last replica: ingress status cleared' && l.ingresses === 1))
  })

  it('makes a change live while another Service changes every 100 ms: the debounce has a ceiling', async () => {
    // `noisy` is the backend of one of our Ingresses (a Service no Ingress
    // names would not even start a rebuild): each port change is a change.
    const ns = 'churn'
    await cluster.apply([namespace(ns), service(ns, 'web', [{ port: 80 }]), service(ns, 'noisy', [{ name: 'http', port: 1000 }])])
    await cluster.apply([ingress(ns, 'noisy', [{ host: 'noisy.churn.test', paths: [{ path: '/', service: 'noisy', port: 'http' }] }])])
    await waitForConfig(hasHost('noisy.churn.test'), 'the noisy Ingress')
    let stop = false
    const churn = (async () => {
      for (let port = 1001; !stop; port++) {
        await cluster.apply([service(ns, 'noisy', [{ name: 'http', port }])])
        await new Promise((r) => setTimeout(r, 100))
      }
    })()
    try {
      await new Promise((r) => setTimeout(r, 1500)) // the churn is under way
      const started = Date.now()
      await cluster.apply([ingress(ns, 'live', [{ host: 'live.churn.test', paths: [{ path: '/', service: 'web', port: 80 }] }])])
      // A debounce without a ceiling would wait for the churn to stop (never, here).
      await waitForConfig(hasHost('live.churn.test'), 'the Ingress applied during the churn', 5000)
      const took = Date.now() - started
      assert.ok(took < 2000, `took ${took} ms`)
    } finally {
      stop = true
      await churn
    }
  })

  it('does not rebuild for a Service no Ingress of ours names, nor for status changes', async () => {
    const ns = 'quiet'
    await cluster.apply([namespace(ns), service(ns, 'web', [{ port: 80 }]), service(ns, 'bystander', [{ port: 1 }])])
    await cluster.apply([ingress(ns, 'site', [{ host: 'site.quiet.test', paths: [{ path: '/', service: 'web', port: 80 }] }])])
    await waitForConfig(hasHost('site.quiet.test'), 'the Ingress')
    await new Promise((r) => setTimeout(r, 1500)) // its status write and echo settle
    const seen = controller.logs.length
    for (let port = 2; port < 7; port++) await cluster.apply([service(ns, 'bystander', [{ port }])])
    const net = cluster.adminConfig.makeApiClient(NetworkingV1Api)
    await net.patchNamespacedIngress(
      { name: 'site', namespace: ns, body: { metadata: { labels: { team: 'a' } } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    )
    await new Promise((r) => setTimeout(r, 1500))
    const rebuilds = controller.logs.slice(seen).filter((l) => l.msg === 'rebuilt' || l.msg === 'config written' || l.msg === 'config unchanged')
    assert.deepEqual(rebuilds, [])
  })

  it('removes the rules of a deleted Ingress', async () => {
    const ns = 'deletions'
    await cluster.apply([namespace(ns), service(ns, 'web', [{ port: 80 }])])
    await cluster.apply([ingress(ns, 'doomed', [{ host: 'doomed.test', paths: [{ path: '/', service: 'web', port: 80 }] }])])
    await waitForConfig(hasHost('doomed.test'), 'the Ingress')
    await cluster.delete({ apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { name: 'doomed', namespace: ns } })
    await waitForConfig(lacksHost('doomed.test'), 'the deleted Ingress gone')
  })

  it('recovers from an API server crash and restart, and catches up with changes made meanwhile', async () => {
    const ns = 'restart'
    await cluster.apply([namespace(ns), service(ns, 'web', [{ port: 80 }])])
    await cluster.apply([ingress(ns, 'before', [{ host: 'before.restart.test', paths: [{ path: '/', service: 'web', port: 80 }] }])])
    await waitForConfig(hasHost('before.restart.test'), 'the Ingress made before the restart')
    await cluster.stopApiserver('SIGKILL')
    await controller.waitForLog((l) => l.msg === 'watch failed; retrying' && l.kind === 'ingresses', 10_000)
    await cluster.startApiserver()
    // Changed as soon as the server is back, before the controller's next retry.
    await cluster.apply([ingress(ns, 'after', [{ host: 'after.restart.test', paths: [{ path: '/', service: 'web', port: 80 }] }])])
    await cluster.delete({ apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { name: 'before', namespace: ns } })
    await waitForConfig((c) => hasHost('after.restart.test')(c) && lacksHost('before.restart.test')(c), 'the changes made around the restart', 45_000)
  })

  it('serves the default backend for requests no rule matches, and reports a second one', async () => {
    const ns = 'fallback'
    await cluster.apply([namespace(ns), service(ns, 'catchall', [{ port: 80 }]), service(ns, 'late', [{ port: 80 }])])
    await cluster.apply([ingress(ns, 'catchall', [], { defaultBackend: { service: 'catchall', port: 80 } })])
    const config = await waitForConfig((c) => c.upstreams.some((u) => u.name === 'fallback/catchall:80'), 'the default backend')
    const last = config.rules.at(-1)!
    assert.deepEqual([last.host, last.path, last.upstream], ['', '/', 'fallback/catchall:80'])
    await new Promise((r) => setTimeout(r, 1100))
    await cluster.apply([ingress(ns, 'late', [], { defaultBackend: { service: 'late', port: 80 } })])
    await waitForEvent(ns, 'late', /Conflict: spec.defaultBackend: Ingress fallback\/catchall \(older\) already provides the default backend/)
  })

  it('serves its metrics on the health port: config writes, Events sent, cached objects, watch restarts, sync time and leader', async () => {
    // Runs after the API server restart and the Warning Events of the tests above.
    const { scrape } = await import('../helpers/metrics-scrape.ts')
    const health = (await controller.waitForLog((l) => typeof l.health_port === 'number')).health_port as number
    const m = await scrape(health)
    const writes = controller.logs.filter((l) => l.msg === 'config written').length
    assert.equal(m.value('nanoproxy_controller_config_writes_total'), writes)
    assert.ok(m.value('nanoproxy_controller_events_total', { result: 'sent' })! >= 3, 'the Warning Events of the tests above')
    assert.ok(m.value('nanoproxy_controller_watch_restarts_total', { kind: 'ingresses' })! >= 1, 'the watch restarted after the API server crash')
    const ingresses = await cluster.adminConfig.makeApiClient(NetworkingV1Api).listIngressForAllNamespaces()
    assert.equal(m.value('nanoproxy_controller_cached_objects', { kind: 'ingresses' }), ingresses.items.length)
    assert.ok(m.value('nanoproxy_controller_sync_duration_seconds_count')! >= writes)
    assert.equal(m.value('nanoproxy_controller_leader'), 1)
  })

  describe('EndpointSlices', () => {
    // The API server refuses loopback addresses in EndpointSlices: these use
    // 198.18.22.0/24 (benchmarking range), never connected to here.
    type Endpoint = { ip: string; ready?: boolean; serving?: boolean; terminating?: boolean }
    const slice = (ns: string, name: string, svc: string, ports: { name: string; port: number }[], endpoints: Endpoint[], addressType = 'IPv4'): KubernetesObject =>
      ({
        apiVersion: 'discovery.k8s.io/v1',
        kind: 'EndpointSlice',
        metadata: { name, namespace: ns, labels: { 'kubernetes.io/service-name': svc } },
        addressType,
        ports: ports.map((p) => ({ ...p, protocol: 'TCP' })),
        endpoints: endpoints.map((e) => ({ addresses: [e.ip], conditions: { ready: e.ready ?? true, serving: e.serving ?? e.ready ?? true, terminating: e.terminating ?? false } })),
      }) as KubernetesObject
    const serversOf = (c: ProxyConfig, name: string): string[] =>
      (c.upstreams.find((u) => u.name === name)?.servers ?? []).map((s) => `${s.host.includes(':') ? `[${s.host}]` : s.host}:${s.port}`)
    const servedBy = (name: string, want: string[]) => (c: ProxyConfig) => JSON.stringify(serversOf(c, name)) === JSON.stringify(want)

    it("writes the ready endpoints of every slice of a Service as its servers, each slice's port found by the Service port's name", async () => {
      const ns = 'slices'
      await cluster.apply([namespace(ns), { ...service(ns, 'web', []), spec: { ports: [{ name: 'http', port: 80, targetPort: 'http' }] } } as KubernetesObject])
      await cluster.apply([
        slice(ns, 'web-a', 'web', [{ name: 'http', port: 8080 }], [{ ip: '198.18.22.1' }, { ip: '198.18.22.2', ready: false, serving: false }]),
        slice(ns, 'web-b', 'web', [{ name: 'http', port: 8081 }], [{ ip: '198.18.22.3' }]),
        slice(ns, 'web-v6', 'web', [{ name: 'http', port: 8080 }], [{ ip: '2001:db8::1' }], 'IPv6'),
        slice(ns, 'other-a', 'other', [{ name: 'http', port: 8080 }], [{ ip: '198.18.22.9' }]),
      ])
      await cluster.apply([ingress(ns, 'site', [{ host: 'slices.test', paths: [{ path: '/', service: 'web', port: 80 }] }])])
      await waitForConfig(servedBy('slices/web:80', ['198.18.22.1:8080', '198.18.22.3:8081', '[2001:db8::1]:8080']), 'the ready endpoints')
      // A pod becomes ready, another goes: the servers follow.
      await cluster.apply([slice(ns, 'web-a', 'web', [{ name: 'http', port: 8080 }], [{ ip: '198.18.22.2' }])])
      await waitForConfig(servedBy('slices/web:80', ['198.18.22.2:8080', '198.18.22.3:8081', '[2001:db8::1]:8080']), 'the changed endpoints')
    })

    it('falls back to the serving and terminating endpoints when none is ready, and to no servers when none serves', async () => {
      const ns = 'terminating'
      await cluster.apply([namespace(ns), service(ns, 'app', [{ port: 80 }])])
      await cluster.apply([slice(ns, 'app-1', 'app', [{ name: '', port: 8080 }], [{ ip: '198.18.22.11' }, { ip: '198.18.22.12' }])])
      await cluster.apply([ingress(ns, 'app', [{ host: 'terminating.test', paths: [{ path: '/', service: 'app', port: 80 }] }])])
      await waitForConfig(servedBy('terminating/app:80', ['198.18.22.11:8080', '198.18.22.12:8080']), 'the ready endpoints')
      // Every pod is being replaced: not ready, still serving while it terminates (KEP-1669).
      await cluster.apply([
        slice(ns, 'app-1', 'app', [{ name: '', port: 8080 }], [
          { ip: '198.18.22.11', ready: false, serving: true, terminating: true },
          { ip: '198.18.22.12', ready: false, serving: false, terminating: true },
          { ip: '198.18.22.13', ready: false, serving: false, terminating: false },
        ]),
      ])
      await waitForConfig(servedBy('terminating/app:80', ['198.18.22.11:8080']), 'the serving, terminating endpoint')
      await cluster.apply([slice(ns, 'app-1', 'app', [{ name: '', port: 8080 }], [{ ip: '198.18.22.13', ready: false, serving: false }])])
      await waitForConfig(servedBy('terminating/app:80', []), 'no servers')
    })

    it('sends an ExternalName Service to its DNS name, and a service-upstream Ingress to the Service name', async () => {
      const ns = 'aliases'
      await cluster.apply([
        namespace(ns),
        { apiVersion: 'v1', kind: 'Service', metadata: { name: 'ext', namespace: ns }, spec: { type: 'ExternalName', externalName: 'api.example.net', ports: [{ port: 443 }] } } as KubernetesObject,
        service(ns, 'web', [{ port: 80 }]),
        slice(ns, 'web-1', 'web', [{ name: '', port: 8080 }], [{ ip: '198.18.22.21' }]),
      ])
      await cluster.apply([
        ingress(ns, 'ext', [{ host: 'ext.aliases.test', paths: [{ path: '/', service: 'ext', port: 443 }] }], { annotations: { 'nanoproxy/backend-protocol': 'https' } }),
        ingress(ns, 'legacy', [{ host: 'legacy.aliases.test', paths: [{ path: '/', service: 'web', port: 80 }] }], { annotations: { 'nanoproxy/service-upstream': 'true' } }),
      ])
      const config = await waitForConfig((c) => hasHost('ext.aliases.test')(c) && hasHost('legacy.aliases.test')(c), 'both Ingresses')
      assert.deepEqual(serversOf(config, 'aliases/ext:443/https'), ['api.example.net:443'])
      const legacy = config.upstreams.find((u) => u.name === 'aliases/web:80/service-upstream')
      assert.deepEqual([legacy?.host, legacy?.port, legacy?.servers], ['web.aliases.svc.cluster.local', 80, undefined])
    })

    it('writes once for a burst of slice changes, and never for slices of Services no Ingress of ours names', async () => {
      const ns = 'churn'
      await cluster.apply([namespace(ns), service(ns, 'web', [{ port: 80 }]), service(ns, 'bystander', [{ port: 80 }])])
      await cluster.apply([ingress(ns, 'site', [{ host: 'churn.test', paths: [{ path: '/', service: 'web', port: 80 }] }])])
      await waitForConfig(hasHost('churn.test'), 'the Ingress')
      await new Promise((r) => setTimeout(r, 1500)) // its status write and echo settle
      let seen = controller.logs.length
      for (let i = 1; i <= 10; i++) await cluster.apply([slice(ns, 'bystander-1', 'bystander', [{ name: '', port: 8080 }], [{ ip: `198.18.22.${100 + i}` }])])
      await new Promise((r) => setTimeout(r, 1000))
      const writes = (from: number) => controller.logs.slice(from).filter((l) => l.msg === 'config written' || l.msg === 'config unchanged')
      assert.deepEqual(writes(seen), [], 'slices of a Service no Ingress names started a rebuild')
      seen = controller.logs.length
      // A rollout's worth of changes within the 200 ms quiet time: one write.
      await Promise.all(
        Array.from({ length: 8 }, (_, i) => cluster.apply([slice(ns, `web-${i}`, 'web', [{ name: '', port: 8080 }], [{ ip: `198.18.22.${30 + i}` }])])),
      )
      await waitForConfig((c) => serversOf(c, 'churn/web:80').length === 8, 'all eight endpoints')
      await new Promise((r) => setTimeout(r, 1000))
      assert.equal(writes(seen).filter((l) => l.msg === 'config written').length, 1)
    })
  })

  it('routes a request through the proxy to the right upstream within 2 seconds of applying an Ingress', async () => {
    // Controller and proxy share the config directory, as the two sidecars do.
    const ns = 'e2e'
    const blue = await startUpstream({ handler: (_req, res) => res.end('blue') })
    const green = await startUpstream({ handler: (req, res) => res.end(`green saw ${req.url}`) })
    const proxy = await startProxy({ args: ['proxy', '-c', configFile], env: { NODE_OPTIONS: `--import=${CLUSTER_DNS}` } })
    try {
      // Service ports are where the local upstreams listen; their names resolve to 127.0.0.1 (helpers/cluster-dns.ts).
      await cluster.apply([namespace(ns), service(ns, 'blue', [{ port: blue.port }]), service(ns, 'green', [{ port: green.port }])])
      const started = Date.now()
      await cluster.apply([
        // service-upstream: the Service names, resolved by helpers/cluster-dns.ts
        // (EndpointSlices cannot hold the loopback addresses the upstreams listen on).
        ingress(ns, 'shop', [{ host: 'shop.e2e.test', paths: [{ path: '/', service: 'blue', port: blue.port }, { path: '/api', service: 'green', port: green.port }] }], {
          annotations: { 'nanoproxy/strip-path': 'false', 'nanoproxy/service-upstream': 'true' },
        }),
      ])
      let reply
      for (;;) {
        reply = await send(`${proxy.url}/api/items?x=1`, { headers: { host: 'shop.e2e.test' } })
        if (reply.status === 200 || Date.now() - started > 2000) break
        await new Promise((r) => setTimeout(r, 50))
      }
      const took = Date.now() - started
      assert.equal(reply.body, 'green saw /api/items?x=1')
      assert.ok(took <= 2000, `took ${took} ms`)
      assert.equal((await send(`${proxy.url}/`, { headers: { host: 'shop.e2e.test' } })).body, 'blue')
    } finally {
      await proxy.stop()
      await blue.close()
      await green.close()
    }
  })
})
