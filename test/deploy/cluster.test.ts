// The chart and the plain manifests against a real kube-apiserver
// (helpers/kube-cluster.ts): a server-side dry run, the real apply in a fresh
// namespace, the pod checked against the "restricted" Pod Security Standard,
// then `nanoproxy controller` run as the installation's own ServiceAccount
// (a TokenRequest token) with the environment its container gets. The
// controller must list and watch (its config is written), publish Ingress
// status and record Warning events, without a failed watch: each of the
// ClusterRole's rules is needed by one of those checks, so a missing
// permission fails the test. Then `nanoproxy proxy` runs with the proxy
// container's args and env (and the TLS Secret's items as its volume would
// mount them) on the file the controller wrote. The API server runs no
// controller-manager: Deployments are stored but no Pod ever runs, so both
// commands run here, next to the test.

import assert from 'node:assert/strict'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import {
  ApiException,
  CoreV1Api,
  KubernetesObjectApi,
  NetworkingV1Api,
  PatchStrategy,
  setHeaderOptions,
  type KubernetesObject,
  type V1Container,
  type V1Deployment,
} from '@kubernetes/client-node'
import { parseConfig } from '../../src/config/load.ts'
import type { ProxyConfig } from '../../src/config/schema.ts'
import { serializeConfigJson } from '../../src/controller/config-writer.ts'
import { createPki } from '../helpers/certs.ts'
import { parseManifests, renderChart } from '../helpers/helm.ts'
import { send } from '../helpers/http-client.ts'
import { KubeCluster } from '../helpers/kube-cluster.ts'
import { startProxy, tempDir, type ProxyProcess } from '../helpers/proxy-process.ts'

const ROOT = new URL('../../', import.meta.url).pathname
const FIELD_MANAGER = 'nanoproxy-deploy-tests'

let cluster: KubeCluster
let objectApi: KubernetesObjectApi
let core: CoreV1Api
let net: NetworkingV1Api
const running: ProxyProcess[] = []

before(
  async () => {
    cluster = new KubeCluster()
    await cluster.start()
    objectApi = KubernetesObjectApi.makeApiClient(cluster.adminConfig)
    core = cluster.adminConfig.makeApiClient(CoreV1Api)
    net = cluster.adminConfig.makeApiClient(NetworkingV1Api)
  },
  { timeout: 15 * 60_000 },
)

after(async () => {
  for (const p of running) await p.stop()
  await cluster?.stop()
})

function describeError(obj: KubernetesObject, err: unknown): Error {
  const detail = err instanceof ApiException ? `${err.code}: ${typeof err.body === 'string' ? err.body : JSON.stringify(err.body)}` : String(err)
  return new Error(`${obj.kind} ${obj.metadata?.namespace ?? ''}/${obj.metadata?.name}: ${detail}`)
}

/** `kubectl apply --server-side --dry-run=server`: validated and admitted, not stored. */
async function dryRunApply(objects: KubernetesObject[]): Promise<void> {
  for (const obj of objects) {
    try {
      await objectApi.patch(obj, undefined, 'All', FIELD_MANAGER, true, PatchStrategy.ServerSideApply)
    } catch (err) {
      throw describeError(obj, err)
    }
  }
}

/** `kubectl apply --server-side`. */
async function apply(objects: KubernetesObject[]): Promise<void> {
  for (const obj of objects) {
    try {
      await objectApi.patch(obj, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply)
    } catch (err) {
      throw describeError(obj, err)
    }
  }
}

async function exists(obj: KubernetesObject): Promise<boolean> {
  try {
    await objectApi.read({ apiVersion: obj.apiVersion!, kind: obj.kind!, metadata: { name: obj.metadata!.name!, namespace: obj.metadata?.namespace } })
    return true
  } catch (err) {
    if (err instanceof ApiException && err.code === 404) return false
    throw err
  }
}

function namespace(name: string, labels: Record<string, string> = {}): KubernetesObject {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } }
}

const RESTRICTED = { 'pod-security.kubernetes.io/enforce': 'restricted' }

/**
 * A Pod made from the Deployment's template passes the namespace's Pod
 * Security admission (dry run); the same Pod stripped of its security
 * settings is refused, which shows the check is enforced.
 */
async function assertPodAdmitted(deployment: V1Deployment): Promise<void> {
  const ns = deployment.metadata!.namespace!
  const spec = deployment.spec!.template.spec!
  const pod = (podSpec: unknown): KubernetesObject => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'admission-check', namespace: ns }, spec: podSpec }) as KubernetesObject
  await objectApi.create(pod(spec), undefined, 'All').catch((err: unknown) => {
    throw describeError(pod(spec), err)
  })
  const insecure = { ...spec, securityContext: {}, containers: spec.containers.map((c: V1Container) => ({ ...c, securityContext: {} })) }
  await assert.rejects(objectApi.create(pod(insecure), undefined, 'All'), (err: unknown) => err instanceof ApiException && err.code === 403 && String(err.body).includes('violates PodSecurity'))
}

/** A kubeconfig for a ServiceAccount, with a token from the TokenRequest API. */
async function serviceAccountKubeconfig(ns: string, name: string): Promise<string> {
  const token = await core.createNamespacedServiceAccountToken({ name, namespace: ns, body: { spec: { audiences: [], expirationSeconds: 3600 } } })
  const ca = readFileSync(join(cluster.dir, 'pki/ca.crt'))
  const file = join(tempDir('nanoproxy-sa-'), 'kubeconfig')
  writeFileSync(
    file,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'test', cluster: { server: cluster.server, 'certificate-authority-data': ca.toString('base64') } }],
      users: [{ name: ns, user: { token: token.status?.token } }],
      contexts: [{ name: 'test', context: { cluster: 'test', user: ns } }],
      'current-context': 'test',
    }),
  )
  return file
}

/** Starts bin/nanoproxy controller with the env of the Deployment's controller container. */
async function startController(deployment: V1Deployment, kubeconfig: string, configFile: string): Promise<ProxyProcess> {
  const c = deployment.spec!.template.spec!.containers.find((c) => c.name === 'controller')!
  assert.deepEqual(c.args, ['controller'])
  const env: Record<string, string> = {}
  // The downward API's pod fields, as the kubelet would fill them in (no
  // pod of that name exists on this API server: the controller's
  // last-replica check finds none and leaves status alone on shutdown).
  const podFields: Record<string, string> = { 'metadata.name': 'nanoproxy-replayed', 'metadata.namespace': deployment.metadata!.namespace! }
  for (const e of c.env ?? []) {
    const field = e.valueFrom?.fieldRef?.fieldPath
    const value = e.value ?? (field === undefined ? undefined : podFields[field])
    assert.ok(value !== undefined, `${e.name}: only literal values and pod fields can be replayed here`)
    env[e.name] = value
  }
  // Where the pod has /conf and port 9090, the test has a temp file and any free port.
  const p = await startProxy({ args: ['controller', '-c', configFile], env: { ...env, CONF_FILE: configFile, PORT: '0', KUBECONFIG: kubeconfig }, noWait: true })
  running.push(p)
  await p.waitForLog((l) => typeof l.health_port === 'number', 10_000)
  return p
}

async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, limitMs = 10_000): Promise<T> {
  const started = Date.now()
  for (;;) {
    const value = await probe()
    if (value !== undefined) return value
    if (Date.now() - started > limitMs) assert.fail(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

function readConfig(file: string): ProxyConfig | undefined {
  try {
    return parseConfig(readFileSync(file, 'utf8'), file)
  } catch {
    return undefined
  }
}

function service(ns: string, name: string): KubernetesObject {
  return { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: ns }, spec: { ports: [{ port: 80 }] } } as KubernetesObject
}

function ingress(ns: string, name: string, host: string, className: string | undefined, annotations: Record<string, string> = {}): KubernetesObject {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'Ingress',
    metadata: { name, namespace: ns, annotations },
    spec: {
      ...(className ? { ingressClassName: className } : {}),
      rules: [{ host, http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'web', port: { number: 80 } } } }] } }],
    },
  } as KubernetesObject
}

interface Installation {
  /** Everything to apply. */
  objects: KubernetesObject[]
  /** Namespaces to create before the dry run (the plain manifests bring their own). */
  namespaces: KubernetesObject[]
  /** Ingresses are made in this namespace (the watched one, if any). */
  appsNamespace: string
  /** ingressClassName for the Ingresses; undefined tests the default class. */
  className: string | undefined
  /** The address the controller must publish in Ingress status. */
  published: string
  /** CLUSTER_DOMAIN of the controller. */
  clusterDomain: string
}

/**
 * Dry run, real apply, Pod Security, then the controller under the
 * installation's ServiceAccount: config written, status published, Warning
 * event recorded. Returns the running controller and its config file.
 */
async function install(inst: Installation): Promise<{ controller: ProxyProcess; configFile: string; deployment: V1Deployment }> {
  await apply(inst.namespaces)
  const namespaces = inst.objects.filter((o) => o.kind === 'Namespace')
  await apply(namespaces) // a dry-run Namespace would not exist for what goes in it
  const rest = inst.objects.filter((o) => o.kind !== 'Namespace')
  const before = await Promise.all(rest.map(exists))
  await dryRunApply(rest)
  for (const [i, obj] of rest.entries()) {
    if (!before[i]) assert.equal(await exists(obj), false, `the dry run must not create ${obj.kind}/${obj.metadata?.name}`)
  }
  await apply(rest)
  for (const obj of rest) assert.equal(await exists(obj), true, `${obj.kind}/${obj.metadata?.name} applied`)

  const deployment = rest.find((o) => o.kind === 'Deployment') as V1Deployment
  await assertPodAdmitted(deployment)
  const ns = deployment.metadata!.namespace!
  const sa = deployment.spec!.template.spec!.serviceAccountName!
  const configFile = join(tempDir('nanoproxy-conf-'), 'config.yaml')
  const controller = await startController(deployment, await serviceAccountKubeconfig(ns, sa), configFile)
  return { controller, configFile, deployment }
}

/**
 * An Ingress with a Service appears in the config, gets the published
 * address, and a bad one gets a Warning event; no watch fails.
 */
async function exercise(inst: Installation, controller: ProxyProcess, configFile: string, tag: string): Promise<void> {
  const ns = inst.appsNamespace
  const host = `${tag}.deploy.test`
  // service-upstream: the upstream is the Service's DNS name, which shows the
  // controller's CLUSTER_DOMAIN (this API server has no EndpointSlice controller).
  await apply([service(ns, 'web'), ingress(ns, tag, host, inst.className, { 'nanoproxy/service-upstream': 'true' }), ingress(ns, `${tag}-bad`, `bad.${host}`, inst.className, { 'nanoproxy/strip-path': 'maybe' })])
  const config = await until(`the Ingress ${ns}/${tag} in ${configFile}`, () => {
    const c = readConfig(configFile)
    return c?.rules.some((r) => r.host === host) ? c : undefined
  })
  const rule = config.rules.find((r) => r.host === host)!
  assert.equal(config.upstreams.find((u) => u.name === rule.upstream)?.host, `web.${ns}.svc.${inst.clusterDomain}`)
  // ingresses/status: patch
  await until(`the published address in the status of ${ns}/${tag}`, async () => {
    const status = (await net.readNamespacedIngressStatus({ name: tag, namespace: ns })).status?.loadBalancer?.ingress ?? []
    return status.some((s) => s.ip === inst.published || s.hostname === inst.published) ? true : undefined
  })
  // events: create
  await until(`a Warning event on ${ns}/${tag}-bad`, async () => {
    const events = await core.listNamespacedEvent({ namespace: ns })
    return events.items.some((e) => e.involvedObject.name === `${tag}-bad` && e.type === 'Warning' && e.reason === 'InvalidAnnotation') ? true : undefined
  })
  // list without watch still gets a config written (the controller re-lists
  // after each failed watch); a forbidden watch shows as a failed one.
  const problems = controller.logs.filter((l) => (l.level === 'warn' || l.level === 'error') && l.reason === undefined)
  assert.deepEqual(problems, [], 'the controller logged no failure (only the Ingress diagnostics are warnings)')
}

/**
 * Starts bin/nanoproxy proxy as the Deployment's proxy container would run:
 * its args and env, the config file the controller wrote, and the TLS
 * Secret's items written where its volume would mount them. Then asks its
 * readiness probe, and sends a request for `host`: a route to the
 * installation's Service (whose name does not resolve here) gives a 502,
 * not the 404 of a proxy without the route.
 */
async function serveThroughProxy(deployment: V1Deployment, configFile: string, host: string, secrets: Record<string, Record<string, string>> = {}, ca?: string): Promise<void> {
  const pod = deployment.spec!.template.spec!
  const c = pod.containers.find((c) => c.name === 'proxy')!
  const env: Record<string, string> = Object.fromEntries((c.env ?? []).map((e) => [e.name, e.value!]))
  env.CONF_FILE = configFile
  env.PORT = '0'
  if (env.CERT_PATH) {
    const mount = c.volumeMounts!.find((m) => m.mountPath === env.CERT_PATH)!
    const secret = pod.volumes!.find((v) => v.name === mount.name)!.secret!
    const dir = join(tempDir('nanoproxy-secret-'), 'certs')
    mkdirSync(dir)
    for (const item of secret.items!) writeFileSync(join(dir, item.path), secrets[secret.secretName!]![item.key]!)
    env.CERT_PATH = dir
  }
  const proxy = await startProxy({ args: c.args!, env })
  running.push(proxy)
  try {
    const probe = c.readinessProbe!.httpGet!
    const base = `${probe.scheme!.toLowerCase()}://127.0.0.1:${proxy.port}`
    assert.equal((await send(`${base}${probe.path}`, { ca })).status, 200)
    const reply = await send(`${base}/`, { headers: { host }, ca })
    // 502 when the name fails to resolve, 504 should the resolver time out.
    assert.ok([502, 504].includes(reply.status), `${reply.status} ${reply.body}`)
    assert.match(reply.body, /NP_ERR_UPSTREAM/)
  } finally {
    await proxy.stop()
  }
}

describe('installing NanoProxy on a real API server', () => {
  it('works from deploy/kubernetes/nanoproxy.yaml: its controller serves the httpbin example exactly as render does', async () => {
    const objects = parseManifests(readFileSync(join(ROOT, 'deploy/kubernetes/nanoproxy.yaml'), 'utf8'))
    const inst: Installation = { objects, namespaces: [], appsNamespace: 'manifests-apps', className: 'nanoproxy', published: '192.0.2.80', clusterDomain: 'cluster.local' }
    const { controller, configFile } = await install(inst)
    // The example, as `kubectl apply -f examples/httpbin/` into the default namespace.
    const example = ['deployment.yaml', 'service.yaml', 'ingress.yaml'].flatMap((f) => parseManifests(readFileSync(join(ROOT, 'examples/httpbin', f), 'utf8')))
    await apply(example.map((o) => ({ ...o, metadata: { ...o.metadata, namespace: 'default' } })))
    // The fixture is render's YAML; the controller writes the same config as JSON (src/controller/config-writer.ts).
    const expected = serializeConfigJson(parseConfig(readFileSync(join(ROOT, 'test/deploy/fixtures/httpbin.expected.yaml'), 'utf8')))
    await until('the httpbin config', () => (existsSync(configFile) && readFileSync(configFile, 'utf8') === expected ? true : undefined))
    // PUBLISH_SERVICE names the manifests' own Service: its load-balancer address reaches Ingress status.
    await core.patchNamespacedServiceStatus(
      { name: 'nanoproxy', namespace: 'nanoproxy', body: { status: { loadBalancer: { ingress: [{ ip: inst.published }] } } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    )
    await apply([namespace('manifests-apps')])
    await exercise(inst, controller, configFile, 'manifests')
    await serveThroughProxy(objects.find((o) => o.kind === 'Deployment') as V1Deployment, configFile, 'manifests.deploy.test')
    await controller.stop()
  })

  it('works from the chart with its default values, in a fresh namespace', async () => {
    const objects = renderChart({ release: 'np', namespace: 'chart-default' })
    const inst: Installation = {
      objects,
      namespaces: [namespace('chart-default', RESTRICTED), namespace('chart-default-apps')],
      appsNamespace: 'chart-default-apps',
      className: 'nanoproxy',
      published: '192.0.2.81',
      clusterDomain: 'cluster.local',
    }
    const { controller, configFile, deployment } = await install(inst)
    const svc = objects.find((o) => o.kind === 'Service')!
    assert.equal(svc.metadata?.name, 'np-nanoproxy')
    assert.equal(deployment.spec?.template.spec?.containers[1]?.env?.find((e) => e.name === 'PUBLISH_SERVICE')?.value, 'chart-default/np-nanoproxy')
    await core.patchNamespacedServiceStatus(
      { name: 'np-nanoproxy', namespace: 'chart-default', body: { status: { loadBalancer: { ingress: [{ ip: inst.published }] } } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    )
    await exercise(inst, controller, configFile, 'chart-default')
    await serveThroughProxy(deployment, configFile, 'chart-default.deploy.test')
    await controller.stop()
  })

  it('works from the chart with every option changed: its own default class, controller name and watched namespace only', async () => {
    const values = {
      replicaCount: 2,
      debug: true,
      tls: { enabled: true, secretName: 'edge-tls' },
      ingressClass: { name: 'edge', default: true },
      controller: { name: 'example.com/edge', watchNamespace: 'edge-apps', clusterDomain: 'k8s.internal' },
      podDisruptionBudget: { enabled: true, minAvailable: 1 },
      publishAddress: ['edge.example.com'],
      proxy: { port: 8443, workers: 2, timeout: 2.5, shutdownTimeout: 40, trustedProxies: ['10.0.0.0/8'] },
      service: { type: 'ClusterIP', port: 443 },
    }
    const objects = renderChart({ release: 'edge', namespace: 'edge', values })
    assert.ok(objects.some((o) => o.kind === 'PodDisruptionBudget'))
    const pki = createPki()
    const cert = pki.issue(['edge.deploy.test', '127.0.0.1'])
    const tlsData = { 'tls.crt': cert.cert, 'tls.key': cert.key }
    const inst: Installation = {
      objects: [
        { apiVersion: 'v1', kind: 'Secret', type: 'kubernetes.io/tls', metadata: { name: 'edge-tls', namespace: 'edge' }, stringData: tlsData } as KubernetesObject,
        ...objects,
      ],
      namespaces: [namespace('edge', RESTRICTED), namespace('edge-apps'), namespace('edge-elsewhere')],
      appsNamespace: 'edge-apps',
      // No ingressClassName: the default class applies (the API server's
      // DefaultIngressClass admission fills it in from the annotation).
      className: undefined,
      published: 'edge.example.com',
      clusterDomain: 'k8s.internal',
    }
    const { controller, configFile, deployment } = await install(inst)
    await exercise(inst, controller, configFile, 'edge')
    await serveThroughProxy(deployment, configFile, 'edge.deploy.test', { 'edge-tls': tlsData }, pki.caCert)
    // Not served: the right class in a namespace not watched, and the other
    // controller's class. An Ingress applied after them shows when the
    // controller has caught up.
    await apply([service('edge-elsewhere', 'web'), ingress('edge-elsewhere', 'outside', 'outside.deploy.test', 'edge'), ingress('edge-apps', 'theirs', 'theirs.deploy.test', 'nanoproxy')])
    await apply([ingress('edge-apps', 'late', 'late.deploy.test', 'edge')])
    const config = await until('the Ingress applied last', () => {
      const c = readConfig(configFile)
      return c?.rules.some((r) => r.host === 'late.deploy.test') ? c : undefined
    })
    assert.deepEqual(
      config.rules.map((r) => r.host).filter((h) => h.endsWith('.deploy.test') && !h.startsWith('bad.')),
      ['edge.deploy.test', 'late.deploy.test'],
    )
    assert.ok(controller.logs.some((l) => l.level === 'debug'), 'DEBUG=1 reached the controller')
    await controller.stop()
  })
})
