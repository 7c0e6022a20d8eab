// The Helm chart deploy/helm/nanoproxy, rendered by a real helm v4
// (helpers/helm.ts): lint, then the objects for default and non-default
// values. cluster.test.ts applies them to a real API server.

import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import type { KubernetesObject, V1ClusterRole, V1Container, V1Role, V1Deployment, V1IngressClass, V1Service } from '@kubernetes/client-node'
import { parse } from 'yaml'
import { CHART, extractZipEntry, HELM_ENTRY, helmBinary, LAYER_ZIP, parseManifests, renderChart, renderChartError, runHelm, unzipMethods } from '../helpers/helm.ts'
import { tempDir } from '../helpers/proxy-process.ts'

const ROOT = new URL('../../', import.meta.url).pathname

/** Every option away from its default at once. */
const CUSTOM_VALUES = {
  replicaCount: 2,
  debug: true,
  tls: { enabled: true, secretName: 'edge-tls' },
  ingressClass: { name: 'edge', default: true },
  controller: { name: 'example.com/edge', watchNamespace: 'edge-apps', clusterDomain: 'k8s.internal' },
  podDisruptionBudget: { enabled: true, minAvailable: 1 },
  publishAddress: ['203.0.113.7', 'edge.example.com'],
  proxy: { port: 8443, workers: 4, timeout: 2.5, shutdownTimeout: 40, preStopDelay: 10, trustedProxies: ['10.0.0.0/8', '192.0.2.1'] },
  service: { type: 'ClusterIP', port: 443 },
}

function find<T>(objects: KubernetesObject[], kind: string): T {
  const found = objects.filter((o) => o.kind === kind)
  assert.equal(found.length, 1, `one ${kind} expected, found ${found.length}`)
  return found[0] as T
}

function container(objects: KubernetesObject[], name: string): V1Container {
  const c = find<V1Deployment>(objects, 'Deployment').spec!.template.spec!.containers.find((c) => c.name === name)
  assert.ok(c, `container ${name}`)
  return c
}

/** A container's plain environment values (entries from the downward API are checked apart). */
function envOf(c: V1Container): Record<string, string | undefined> {
  return Object.fromEntries((c.env ?? []).filter((e) => e.valueFrom === undefined).map((e) => [e.name, e.value]))
}

function kinds(objects: KubernetesObject[]): string[] {
  return objects.map((o) => `${o.kind}/${o.metadata?.name}`)
}

describe('the helm binary', () => {
  it('comes from the npm package and is helm v4', () => {
    const { code, stdout } = runHelm(['version', '--short'])
    assert.equal(code, 0)
    assert.match(stdout, /^v4\./)
  })

  it('comes out the same from every unzip method the helper can fall back on', () => {
    const want = createHash('sha256').update(readFileSync(helmBinary())).digest('hex')
    const dir = tempDir('nanoproxy-unzip-')
    try {
      for (const method of unzipMethods()) {
        const file = join(dir, method)
        extractZipEntry(LAYER_ZIP, HELM_ENTRY, file, method)
        assert.equal(createHash('sha256').update(readFileSync(file)).digest('hex'), want, method)
        rmSync(file)
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('the Helm chart', () => {
  it('passes helm lint --strict with its default values and with every option changed', () => {
    for (const args of [[], ['--namespace', 'edge', '--values', join(tempDir('nanoproxy-helm-'), 'v.yaml')]]) {
      if (args.length > 0) writeFileSync(args.at(-1)!, JSON.stringify(CUSTOM_VALUES))
      const { code, stdout, stderr } = runHelm(['lint', '--strict', CHART, ...args])
      assert.equal(code, 0, stdout + stderr)
      assert.match(stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/)
    }
  })

  it('deploys the version in package.json', () => {
    const chart = parse(readFileSync(join(CHART, 'Chart.yaml'), 'utf8')) as { apiVersion: string; appVersion: string }
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }
    assert.equal(chart.apiVersion, 'v2')
    assert.equal(chart.appVersion, pkg.version)
    assert.equal(container(renderChart(), 'proxy').image, `nanoproxy:${pkg.version}`)
  })

  it('renders, by default, a ServiceAccount, its RBAC, a LoadBalancer Service, the Deployment and the IngressClass, and no PodDisruptionBudget', () => {
    const objects = renderChart({ release: 'nanoproxy', namespace: 'ingress' })
    assert.deepEqual(kinds(objects), [
      'ServiceAccount/nanoproxy',
      'ClusterRole/nanoproxy',
      'ClusterRoleBinding/nanoproxy',
      'Role/nanoproxy-controller',
      'RoleBinding/nanoproxy-controller',
      'Service/nanoproxy',
      'Deployment/nanoproxy',
      'IngressClass/nanoproxy',
    ])
    const service = find<V1Service>(objects, 'Service')
    assert.equal(service.spec?.type, 'LoadBalancer')
    assert.deepEqual(service.spec?.ports, [
      { name: 'http', port: 80, targetPort: 'http', protocol: 'TCP' },
      { name: 'https', port: 443, targetPort: 'https', protocol: 'TCP' },
    ])
    assert.deepEqual(service.spec?.selector, find<V1Deployment>(objects, 'Deployment').spec?.selector.matchLabels)
    const ingressClass = find<V1IngressClass>(objects, 'IngressClass')
    assert.equal(ingressClass.spec?.controller, 'benc-uk/nanoproxy')
    assert.equal(ingressClass.metadata?.annotations, undefined, 'not the default class unless asked')
  })

  it('runs one image as two containers, proxy and controller, sharing the config directory in memory', () => {
    const objects = renderChart({ release: 'nanoproxy', namespace: 'ingress' })
    const pod = find<V1Deployment>(objects, 'Deployment').spec!.template.spec!
    assert.deepEqual(
      pod.containers.map((c) => [c.name, c.image, c.args]),
      [
        ['proxy', 'nanoproxy:0.1.0', ['proxy']],
        ['controller', 'nanoproxy:0.1.0', ['controller']],
      ],
    )
    assert.deepEqual(pod.volumes?.find((v) => v.name === 'config')?.emptyDir, { medium: 'Memory' })
    assert.deepEqual(pod.volumes?.find((v) => v.name === 'tmp')?.emptyDir, {})
    for (const c of pod.containers) {
      assert.deepEqual(
        c.volumeMounts?.filter((m) => m.name !== 'kube-api-access'),
        [
          { name: 'config', mountPath: '/conf' },
          { name: 'tmp', mountPath: '/tmp' },
        ],
        c.name,
      )
      assert.equal(envOf(c).CONF_FILE, '/conf/config.yaml')
      assert.equal(envOf(c).DEBUG, undefined)
    }
    assert.deepEqual(envOf(pod.containers[0]!), { CONF_FILE: '/conf/config.yaml', PORT: '8080', WORKERS: '1', TIMEOUT: '5', SHUTDOWN_TIMEOUT: '25', ADMIN_PORT: '10254', HTTPS_PORT: '8443', HTTPS_REDIRECT_PORT: '443' })
    assert.deepEqual(envOf(pod.containers[1]!), {
      CONF_FILE: '/conf/config.yaml',
      PORT: '9090',
      CONTROLLER_NAME: 'benc-uk/nanoproxy',
      CLUSTER_DOMAIN: 'cluster.local',
      LEADER_ELECTION_LEASE: 'nanoproxy-leader',
      LEADER_ELECTION_LEASE_DURATION: '15',
      LEADER_ELECTION_RENEW_DEADLINE: '10',
      LEADER_ELECTION_RETRY_PERIOD: '2',
      PUBLISH_SERVICE: 'ingress/nanoproxy',
    })
  })

  it('probes the proxy on /.nanoproxy/health and the controller on /readyz and /healthz', () => {
    const objects = renderChart()
    const proxy = container(objects, 'proxy')
    const controller = container(objects, 'controller')
    assert.deepEqual(proxy.ports, [
      { name: 'http', containerPort: 8080, protocol: 'TCP' },
      { name: 'https', containerPort: 8443, protocol: 'TCP' },
      { name: 'admin', containerPort: 10254, protocol: 'TCP' },
    ])
    const health = { path: '/.nanoproxy/health', port: 'http', scheme: 'HTTP' }
    assert.deepEqual([proxy.startupProbe?.httpGet, proxy.readinessProbe?.httpGet, proxy.livenessProbe?.httpGet], [health, health, health])
    assert.deepEqual(controller.ports, [{ name: 'health', containerPort: 9090, protocol: 'TCP' }])
    assert.deepEqual(controller.startupProbe?.httpGet, { path: '/readyz', port: 'health' })
    assert.deepEqual(controller.livenessProbe?.httpGet, { path: '/healthz', port: 'health' })
    assert.equal(proxy.readinessProbe?.periodSeconds, 5)
    const tuned = renderChart({ values: { probes: { controller: { liveness: { periodSeconds: 30, failureThreshold: 6 } } } } })
    assert.deepEqual(container(tuned, 'controller').livenessProbe, { httpGet: { path: '/healthz', port: 'health' }, periodSeconds: 30, timeoutSeconds: 2, failureThreshold: 6 })
  })

  it('raises no probe Warning events at pod start or stop: startup probes first, no readiness probe on the controller, SIGTERM to both containers after the same delay', () => {
    const objects = renderChart()
    const proxy = container(objects, 'proxy')
    const controller = container(objects, 'controller')
    // The kubelet probes readiness the moment a container starts (and
    // liveness soon after) unless a startup probe holds them back. The first
    // startup probes wait for the process to listen: the proxy in about
    // 0.5 s, the controller answers /readyz 200 after about 1.5 s (measured
    // under load on 2 cores; docs in the chart README).
    assert.deepEqual(proxy.startupProbe, {
      httpGet: { path: '/.nanoproxy/health', port: 'http', scheme: 'HTTP' },
      initialDelaySeconds: 1,
      periodSeconds: 1,
      timeoutSeconds: 2,
      failureThreshold: 30,
    })
    assert.deepEqual(controller.startupProbe, { httpGet: { path: '/readyz', port: 'health' }, initialDelaySeconds: 2, periodSeconds: 1, timeoutSeconds: 2, failureThreshold: 300 })
    // The kubelet probes readiness until every container of a terminating
    // pod has exited; the controller would be probed while the proxy drains.
    assert.equal(controller.readinessProbe, undefined)
    assert.deepEqual(proxy.lifecycle, { preStop: { exec: { command: ['sleep', '5'] } } })
    assert.deepEqual(controller.lifecycle, proxy.lifecycle)
  })

  it('runs non-root on a read-only root filesystem with no capabilities, under the RuntimeDefault seccomp profile', () => {
    const pod = find<V1Deployment>(renderChart(), 'Deployment').spec!.template.spec!
    assert.deepEqual(pod.securityContext, { runAsNonRoot: true, runAsUser: 10001, runAsGroup: 10001, fsGroup: 10001, seccompProfile: { type: 'RuntimeDefault' } })
    for (const c of pod.containers) {
      assert.deepEqual(c.securityContext, { readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } }, c.name)
    }
  })

  it('mounts the API token into the controller container only', () => {
    const pod = find<V1Deployment>(renderChart(), 'Deployment').spec!.template.spec!
    assert.equal(pod.automountServiceAccountToken, false)
    const mounts = (name: string) => container(renderChart(), name).volumeMounts?.filter((m) => m.name === 'kube-api-access') ?? []
    assert.deepEqual(mounts('proxy'), [])
    assert.deepEqual(mounts('controller'), [{ name: 'kube-api-access', mountPath: '/var/run/secrets/kubernetes.io/serviceaccount', readOnly: true }])
    const sources = pod.volumes?.find((v) => v.name === 'kube-api-access')?.projected?.sources ?? []
    assert.deepEqual(sources.map((s) => Object.keys(s)[0]), ['serviceAccountToken', 'configMap', 'downwardAPI'])
  })

  it('with gatewayAPI.enabled, adds a GatewayClass for its controller name, read access to the Gateway API kinds and namespaces, status patches, and GATEWAY_API to the controller; without it, none of them', () => {
    const off = renderChart({ release: 'edge', namespace: 'ingress' })
    assert.ok(!kinds(off).includes('GatewayClass/nanoproxy'))
    assert.equal(envOf(container(off, 'controller')).GATEWAY_API, undefined)
    assert.ok(!JSON.stringify(find<V1ClusterRole>(off, 'ClusterRole').rules).includes('gateway.networking.k8s.io'))

    const on = renderChart({ release: 'edge', namespace: 'ingress', values: { gatewayAPI: { enabled: true, controllerName: 'example.com/gw', gatewayClass: { name: 'public' } } } })
    const gc = find<{ metadata: { name: string }; spec: { controllerName: string } }>(on, 'GatewayClass')
    assert.deepEqual([gc.metadata.name, gc.spec.controllerName], ['public', 'example.com/gw'])
    const env = envOf(container(on, 'controller'))
    assert.deepEqual([env.GATEWAY_API, env.GATEWAY_CONTROLLER_NAME], ['true', 'example.com/gw'])
    const added = find<V1ClusterRole>(on, 'ClusterRole').rules!.slice(find<V1ClusterRole>(off, 'ClusterRole').rules!.length - 1, -1)
    assert.deepEqual(added, [
      { apiGroups: ['gateway.networking.k8s.io'], resources: ['gatewayclasses', 'gateways', 'httproutes', 'referencegrants'], verbs: ['list', 'watch'] },
      { apiGroups: ['gateway.networking.k8s.io'], resources: ['gatewayclasses/status', 'gateways/status', 'httproutes/status'], verbs: ['patch'] },
      { apiGroups: [''], resources: ['namespaces'], verbs: ['list', 'watch'] },
    ])
    const noClass = renderChart({ values: { gatewayAPI: { enabled: true, gatewayClass: { create: false } } } })
    assert.ok(!noClass.some((o) => o.kind === 'GatewayClass'))
  })

  it('grants exactly the rules of deploy/rbac.yaml, to the chart\'s ServiceAccount in the release namespace', () => {
    const reference = parseManifests(readFileSync(join(ROOT, 'deploy/rbac.yaml'), 'utf8'))
    const objects = renderChart({ release: 'edge', namespace: 'ingress' })
    assert.deepEqual(find<V1ClusterRole>(objects, 'ClusterRole').rules, find<V1ClusterRole>(reference, 'ClusterRole').rules)
    const binding = find<{ roleRef: { name: string }; subjects: unknown[] }>(objects, 'ClusterRoleBinding')
    assert.equal(binding.roleRef.name, 'edge-nanoproxy')
    assert.deepEqual(binding.subjects, [{ kind: 'ServiceAccount', name: 'edge-nanoproxy', namespace: 'ingress' }])
    assert.equal(find<V1Deployment>(objects, 'Deployment').spec?.template.spec?.serviceAccountName, 'edge-nanoproxy')
    // The namespaced Role: the last-replica check (pods of its own namespace
    // only) and the leader-election Lease, named after the release.
    const referenceRole = JSON.stringify(find<V1Role>(reference, 'Role').rules).replaceAll('"nanoproxy-leader"', '"edge-nanoproxy-leader"')
    assert.deepEqual(find<V1Role>(objects, 'Role').rules, JSON.parse(referenceRole))
    assert.deepEqual(find<V1Role>(objects, 'Role').rules?.filter((r) => r.apiGroups?.includes('coordination.k8s.io')), [
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['create'] },
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], resourceNames: ['edge-nanoproxy-leader'], verbs: ['get', 'update'] },
    ])
    const roleBinding = find<{ metadata: { namespace: string }; roleRef: { kind: string; name: string }; subjects: unknown[] }>(objects, 'RoleBinding')
    assert.equal(roleBinding.metadata.namespace, 'ingress')
    assert.deepEqual(roleBinding.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'edge-nanoproxy-controller' })
    assert.deepEqual(roleBinding.subjects, [{ kind: 'ServiceAccount', name: 'edge-nanoproxy', namespace: 'ingress' }])
    const env = container(objects, 'controller').env ?? []
    assert.deepEqual(env.find((e) => e.name === 'POD_NAME')?.valueFrom, { fieldRef: { fieldPath: 'metadata.name' } })
    assert.deepEqual(env.find((e) => e.name === 'POD_NAMESPACE')?.valueFrom, { fieldRef: { fieldPath: 'metadata.namespace' } })
    assert.equal(env.find((e) => e.name === 'UPDATE_STATUS_ON_SHUTDOWN'), undefined)
    assert.equal(env.find((e) => e.name === 'LEADER_ELECTION_LEASE')?.value, 'edge-nanoproxy-leader')
    assert.deepEqual(
      ['LEADER_ELECTION_LEASE_DURATION', 'LEADER_ELECTION_RENEW_DEADLINE', 'LEADER_ELECTION_RETRY_PERIOD'].map((n) => env.find((e) => e.name === n)?.value),
      ['15', '10', '2'],
    )
  })

  it('turns leader election off, and its Lease rules, with controller.leaderElection.enabled: false', () => {
    const objects = renderChart({ values: { controller: { leaderElection: { enabled: false } } } })
    const env = container(objects, 'controller').env ?? []
    assert.equal(env.find((e) => e.name === 'LEADER_ELECTION')?.value, 'false')
    assert.equal(env.find((e) => e.name === 'LEADER_ELECTION_LEASE'), undefined)
    assert.deepEqual(find<V1Role>(objects, 'Role').rules?.map((r) => r.resources), [['pods']])
  })

  it('turns clearing the Ingress status on shutdown off with controller.updateStatusOnShutdown: false', () => {
    const objects = renderChart({ values: { controller: { updateStatusOnShutdown: false } } })
    const env = container(objects, 'controller').env ?? []
    assert.equal(env.find((e) => e.name === 'UPDATE_STATUS_ON_SHUTDOWN')?.value, 'false')
  })

  it('turns every option on: TLS, debug, default class, controller name, watched namespace, published addresses, proxy settings, PodDisruptionBudget', () => {
    const objects = renderChart({ release: 'edge', namespace: 'edge', values: CUSTOM_VALUES })
    const deployment = find<V1Deployment>(objects, 'Deployment')
    const pod = deployment.spec!.template.spec!
    const proxy = container(objects, 'proxy')
    const controller = container(objects, 'controller')
    assert.equal(deployment.spec?.replicas, 2)
    // TLS: the Secret's tls.crt/tls.key become cert.pem/key.pem under CERT_PATH.
    assert.deepEqual(pod.volumes?.find((v) => v.name === 'tls')?.secret, {
      secretName: 'edge-tls',
      items: [
        { key: 'tls.crt', path: 'cert.pem' },
        { key: 'tls.key', path: 'key.pem' },
      ],
    })
    assert.deepEqual(proxy.volumeMounts?.find((m) => m.name === 'tls'), { name: 'tls', mountPath: '/certs', readOnly: true })
    assert.equal(controller.volumeMounts?.find((m) => m.name === 'tls'), undefined)
    assert.deepEqual(proxy.ports, [
      { name: 'https', containerPort: 8443, protocol: 'TCP' },
      { name: 'admin', containerPort: 10254, protocol: 'TCP' },
    ])
    assert.deepEqual(proxy.readinessProbe?.httpGet, { path: '/.nanoproxy/health', port: 'https', scheme: 'HTTPS' })
    assert.deepEqual(find<V1Service>(objects, 'Service').spec?.ports, [{ name: 'https', port: 443, targetPort: 'https', protocol: 'TCP' }])
    assert.equal(find<V1Service>(objects, 'Service').spec?.type, 'ClusterIP')
    assert.deepEqual(envOf(proxy), {
      CONF_FILE: '/conf/config.yaml',
      PORT: '8443',
      WORKERS: '4',
      TIMEOUT: '2.5',
      SHUTDOWN_TIMEOUT: '40',
      TRUSTED_PROXIES: '10.0.0.0/8,192.0.2.1',
      ADMIN_PORT: '10254',
      CERT_PATH: '/certs',
      DEBUG: '1',
    })
    assert.deepEqual(envOf(controller), {
      CONF_FILE: '/conf/config.yaml',
      PORT: '9090',
      CONTROLLER_NAME: 'example.com/edge',
      CLUSTER_DOMAIN: 'k8s.internal',
      LEADER_ELECTION_LEASE: 'edge-nanoproxy-leader',
      LEADER_ELECTION_LEASE_DURATION: '15',
      LEADER_ELECTION_RENEW_DEADLINE: '10',
      LEADER_ELECTION_RETRY_PERIOD: '2',
      WATCH_NAMESPACE: 'edge-apps',
      PUBLISH_ADDRESS: '203.0.113.7,edge.example.com',
      DEBUG: '1',
    })
    assert.deepEqual(proxy.lifecycle?.preStop?.exec?.command, ['sleep', '10'])
    assert.deepEqual(controller.lifecycle?.preStop?.exec?.command, ['sleep', '10'])
    assert.equal(pod.terminationGracePeriodSeconds, 10 + 40 + 5)
    const ingressClass = find<V1IngressClass>(objects, 'IngressClass')
    assert.equal(ingressClass.metadata?.name, 'edge')
    assert.equal(ingressClass.spec?.controller, 'example.com/edge')
    assert.deepEqual(ingressClass.metadata?.annotations, { 'ingressclass.kubernetes.io/is-default-class': 'true' })
    const pdb = find<{ metadata: { namespace: string }; spec: { minAvailable: number; selector: unknown } }>(objects, 'PodDisruptionBudget')
    assert.equal(pdb.metadata.namespace, 'edge')
    assert.equal(pdb.spec.minAvailable, 1)
    assert.deepEqual(pdb.spec.selector, deployment.spec?.selector)
  })

  it('opens the admin port with prometheus.io annotations by default, and a ServiceMonitor with its own ClusterIP Service on request', () => {
    const objects = renderChart({ release: 'nanoproxy', namespace: 'ingress' })
    assert.deepEqual(find<V1Deployment>(objects, 'Deployment').spec?.template.metadata?.annotations, {
      'prometheus.io/scrape': 'true',
      'prometheus.io/port': '10254',
      'prometheus.io/path': '/metrics',
    })
    assert.ok(!kinds(objects).includes('ServiceMonitor/nanoproxy'), 'no ServiceMonitor unless asked (its CRD may not exist)')
    // The admin port stays out of the traffic Service.
    assert.ok(!find<V1Service>(objects, 'Service').spec?.ports?.some((p) => p.targetPort === 'admin'))

    const monitored = renderChart({ release: 'nanoproxy', namespace: 'ingress', values: { metrics: { serviceMonitor: { enabled: true, interval: '15s', labels: { release: 'prom' } } } } })
    const metricsService = monitored.find((o) => o.kind === 'Service' && o.metadata?.name === 'nanoproxy-metrics') as V1Service
    assert.equal(metricsService.spec?.type, 'ClusterIP')
    assert.deepEqual(metricsService.spec?.ports, [
      { name: 'admin', port: 10254, targetPort: 'admin', protocol: 'TCP' },
      { name: 'controller', port: 9090, targetPort: 'health', protocol: 'TCP' },
    ])
    const monitor = find<{ metadata: { labels: Record<string, string> }; spec: { selector: { matchLabels: Record<string, string> }; endpoints: unknown[] } }>(monitored, 'ServiceMonitor')
    assert.equal(monitor.metadata.labels.release, 'prom')
    // It selects the metrics Service and not the traffic one.
    const selects = (s: V1Service): boolean => Object.entries(monitor.spec.selector.matchLabels).every(([k, v]) => s.metadata?.labels?.[k] === v)
    assert.deepEqual(monitored.filter((o) => o.kind === 'Service' && selects(o as V1Service)).map((o) => o.metadata?.name), ['nanoproxy-metrics'])
    assert.deepEqual(monitor.spec.endpoints, [
      { port: 'admin', path: '/metrics', interval: '15s' },
      { port: 'controller', path: '/metrics', interval: '15s' },
    ])

    const off = renderChart({ values: { metrics: { adminPort: 0 } } })
    assert.equal(envOf(container(off, 'proxy')).ADMIN_PORT, undefined)
    assert.equal(find<V1Deployment>(off, 'Deployment').spec?.template.metadata?.annotations, undefined)
    assert.match(renderChartError({ values: { metrics: { adminPort: 9090 } } }), /metrics\.adminPort must differ/)
  })

  it('publishes no address when publishService is off and publishAddress empty', () => {
    const env = envOf(container(renderChart({ values: { publishService: { enabled: false } } }), 'controller'))
    assert.equal(env.PUBLISH_SERVICE, undefined)
    assert.equal(env.PUBLISH_ADDRESS, undefined)
  })

  it('takes a values file written for the original NanoProxy chart', () => {
    // The original chart's values, non-default where they can be (its
    // image.prefix aside, see the next test).
    const original = {
      replicaCount: 3,
      debug: '',
      ingressClass: { create: false, name: 'legacy' },
      tls: { enabled: true, secretName: 'legacy-tls' },
      image: { pullPolicy: 'Always', tag: '0.1.0-rc1' },
      imagePullSecrets: [{ name: 'regcred' }],
      nameOverride: 'np',
      fullnameOverride: 'legacy-proxy',
      serviceAccount: { create: false, annotations: { a: 'b' }, name: 'existing' },
      podAnnotations: { 'prometheus.io/scrape': 'false' },
      podSecurityContext: { fsGroup: 2000 },
      securityContext: { runAsNonRoot: true, runAsUser: 1000 },
      service: { type: 'NodePort', port: 8000, loadBalancerIP: '198.51.100.4' },
      resources: { limits: { cpu: '200m', memory: '128Mi' } },
      nodeSelector: { 'kubernetes.io/os': 'linux' },
      tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'ingress', effect: 'NoSchedule' }],
      affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'ingress', operator: 'Exists' }] }] } } },
    }
    const objects = renderChart({ release: 'old', namespace: 'legacy', values: original })
    assert.deepEqual(kinds(objects), ['ClusterRole/legacy-proxy', 'ClusterRoleBinding/legacy-proxy', 'Role/legacy-proxy-controller', 'RoleBinding/legacy-proxy-controller', 'Service/legacy-proxy', 'Deployment/legacy-proxy'])
    const deployment = find<V1Deployment>(objects, 'Deployment')
    const pod = deployment.spec!.template.spec!
    assert.equal(deployment.spec?.replicas, 3)
    assert.deepEqual(deployment.spec?.selector.matchLabels, { 'app.kubernetes.io/name': 'np', 'app.kubernetes.io/instance': 'old' })
    // The chart's own prometheus.io annotations give way to the user's.
    assert.equal(deployment.spec?.template.metadata?.annotations?.['prometheus.io/scrape'], 'false')
    assert.equal(pod.serviceAccountName, 'existing')
    assert.deepEqual(pod.imagePullSecrets, original.imagePullSecrets)
    // Helm merges maps: the secure defaults stay unless set to null.
    assert.deepEqual(pod.securityContext, { ...original.podSecurityContext, runAsNonRoot: true, runAsUser: 10001, runAsGroup: 10001, seccompProfile: { type: 'RuntimeDefault' } })
    assert.deepEqual(pod.nodeSelector, original.nodeSelector)
    assert.deepEqual(pod.tolerations, original.tolerations)
    assert.deepEqual(pod.affinity, original.affinity)
    for (const c of pod.containers) {
      assert.equal(c.image, 'nanoproxy:0.1.0-rc1')
      assert.equal(c.imagePullPolicy, 'Always')
      assert.deepEqual(c.securityContext, { ...original.securityContext, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } })
      assert.deepEqual(c.resources, { ...original.resources, requests: { cpu: '50m', memory: '64Mi' } })
      assert.equal(envOf(c).DEBUG, undefined, 'debug "" is off, as in the original')
    }
    assert.equal(envOf(container(objects, 'proxy')).CERT_PATH, '/certs')
    assert.equal(pod.volumes?.find((v) => v.name === 'tls')?.secret?.secretName, 'legacy-tls')
    const service = find<V1Service>(objects, 'Service')
    assert.equal(service.spec?.type, 'NodePort')
    assert.equal(service.spec?.loadBalancerIP, '198.51.100.4')
    assert.equal(service.spec?.ports?.[0]?.port, 8000)
    const binding = find<{ subjects: unknown[] }>(objects, 'ClusterRoleBinding')
    assert.deepEqual(binding.subjects, [{ kind: 'ServiceAccount', name: 'existing', namespace: 'legacy' }])
    for (const debug of [true, 'true', '1']) {
      assert.equal(envOf(container(renderChart({ values: { debug } }), 'controller')).DEBUG, '1', `debug: ${JSON.stringify(debug)}`)
    }
    for (const debug of [false, 'false', '0', null]) {
      assert.equal(envOf(container(renderChart({ values: { debug } }), 'controller')).DEBUG, undefined, `debug: ${JSON.stringify(debug)}`)
    }
  })

  it("refuses the original chart's image.prefix, naming image.repository, rather than deploy its two images", () => {
    const message = renderChartError({ values: { image: { prefix: 'ghcr.io/benc-uk/nanoproxy' } } })
    assert.match(message, /image\.prefix \(ghcr\.io\/benc-uk\/nanoproxy\) is a value of the original NanoProxy chart.*set image\.repository/)
  })

  it('passes the default certificate Secret to the controller, a bare name in the release namespace', () => {
    const bare = renderChart({ values: { tls: { defaultSecret: 'wildcard-tls' } } })
    assert.equal(envOf(container(bare, 'controller')).DEFAULT_TLS_SECRET, 'nanoproxy/wildcard-tls')
    const qualified = renderChart({ values: { tls: { defaultSecret: 'certs/wildcard-tls' } } })
    assert.equal(envOf(container(qualified, 'controller')).DEFAULT_TLS_SECRET, 'certs/wildcard-tls')
    assert.equal(envOf(container(renderChart({}), 'controller')).DEFAULT_TLS_SECRET, undefined)
  })

  it('refuses an HTTPS port equal to the proxy or health port', () => {
    assert.match(renderChartError({ values: { proxy: { httpsPort: 8080 } } }), /proxy\.httpsPort must differ/)
  })

  it('refuses TLS without a Secret, one port for both containers, and a grace period too short for the drain', () => {
    assert.match(renderChartError({ values: { tls: { enabled: true } } }), /tls\.enabled needs tls\.secretName/)
    assert.match(renderChartError({ values: { proxy: { port: 9090 } } }), /proxy\.port and controller\.healthPort must differ/)
    assert.match(
      renderChartError({ values: { terminationGracePeriodSeconds: 20 } }),
      /terminationGracePeriodSeconds \(20\) must be at least proxy\.preStopDelay \+ proxy\.shutdownTimeout \(30\)/,
    )
    const pod = find<V1Deployment>(renderChart({ values: { terminationGracePeriodSeconds: 60, proxy: { preStopDelay: 0 } } }), 'Deployment').spec!.template.spec!
    assert.equal(pod.terminationGracePeriodSeconds, 60)
    assert.deepEqual(
      pod.containers.map((c) => c.lifecycle),
      [undefined, undefined],
      'preStopDelay 0: no preStop hook',
    )
  })

  it('sets the resources of each container apart when asked', () => {
    const objects = renderChart({ values: { controller: { resources: { limits: { memory: '512Mi' } } } } })
    assert.deepEqual(container(objects, 'controller').resources, { limits: { memory: '512Mi' } })
    assert.deepEqual(container(objects, 'proxy').resources, { requests: { cpu: '50m', memory: '64Mi' } })
  })

  it('adds extra environment variables to one container', () => {
    const objects = renderChart({ values: { proxy: { extraEnv: [{ name: 'LOG_LEVEL', value: 'warn' }] } } })
    assert.equal(envOf(container(objects, 'proxy')).LOG_LEVEL, 'warn')
    assert.equal(envOf(container(objects, 'controller')).LOG_LEVEL, undefined)
  })

  it('documents every value, in values.yaml and in the README\'s table', () => {
    const text = readFileSync(join(CHART, 'values.yaml'), 'utf8')
    // Keys with a "# --" description, as dotted paths.
    const documented: string[] = []
    const stack: { indent: number; key: string }[] = []
    let pending = -1
    for (const line of text.split('\n')) {
      const comment = /^(\s*)# -- /.exec(line)
      if (comment) {
        pending = comment[1]!.length
        continue
      }
      const key = /^(\s*)([A-Za-z]\w*):/.exec(line)
      if (!key) continue
      const indent = key[1]!.length
      while (stack.length > 0 && stack.at(-1)!.indent >= indent) stack.pop()
      stack.push({ indent, key: key[2]! })
      if (pending === indent) documented.push(stack.map((s) => s.key).join('.'))
      pending = -1
    }
    // Every value is documented itself or through a documented parent.
    const leaves = (value: unknown, path: string): string[] =>
      value !== null && typeof value === 'object' && !Array.isArray(value) && Object.keys(value).length > 0
        ? Object.entries(value).flatMap(([k, v]) => leaves(v, path ? `${path}.${k}` : k))
        : [path]
    for (const leaf of leaves(parse(text), '')) {
      assert.ok(documented.some((d) => leaf === d || leaf.startsWith(`${d}.`)), `${leaf} has no "# --" description in values.yaml`)
    }
    const readme = readFileSync(join(CHART, 'README.md'), 'utf8')
    const table = [...readme.matchAll(/^\| `([^`]+)` \|/gm)].map((m) => m[1])
    assert.deepEqual(table, documented, 'the README values table lists the documented values, in values.yaml order')
  })

  it('prints install notes: the address for each Service type, the publishAddress a NodePort Service needs, warnings for debug, a PodDisruptionBudget that blocks drains and a watched namespace that hides the Service', () => {
    const notes = (args: string[]) => {
      const { code, stdout, stderr } = runHelm(['install', 'edge', CHART, '--namespace', 'edge', '--dry-run=client', ...args])
      assert.equal(code, 0, stderr)
      return stdout.slice(stdout.indexOf('NOTES:'))
    }
    const plain = notes([])
    assert.match(plain, /kubectl -n edge rollout status deployment\/edge-nanoproxy/)
    assert.match(plain, /ingressClassName: nanoproxy/)
    assert.doesNotMatch(plain, /WARNING/)
    assert.match(plain, /jsonpath='\{\.status\.loadBalancer\.ingress\[0\]\.ip\}'/)
    assert.match(plain, /jsonpath='\{\.status\.loadBalancer\.ingress\[0\]\.hostname\}'/)
    assert.doesNotMatch(plain, /publishAddress/)
    const nodePort = notes(['--set', 'service.type=NodePort'])
    assert.match(nodePort, /jsonpath='\{\.spec\.ports\[0\]\.nodePort\}'/)
    assert.match(nodePort, /^NOTE: a NodePort Service has no load-balancer address, so the ADDRESS of the\nIngresses \(their status\) stays empty\. Set publishAddress/m)
    assert.doesNotMatch(notes(['--set', 'service.type=NodePort', '--set', 'publishAddress={192.0.2.10}']), /NOTE: a NodePort/)
    const warned = notes(['--set', 'debug=true,podDisruptionBudget.enabled=true,controller.watchNamespace=apps'])
    assert.deepEqual(
      [...warned.matchAll(/^WARNING: (\S+)/gm)].map((m) => m[1]),
      ['debug', 'podDisruptionBudget.minAvailable', 'controller.watchNamespace'],
    )
  })
})
