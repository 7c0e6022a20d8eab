// `npm run test:conformance`: the Gateway API conformance suite
// (sigs.k8s.io/gateway-api/conformance, the pinned v1.6.x, unmodified)
// against NanoProxy installed with its chart on the real one-node cluster
// (test/helpers/node-cluster.ts), as the issue and docs/gateway-api.md say.
//
// Steps, each timed: build the suite's binary, its images and the CRDs from
// the Go modules (test/k8s/conformance/build.sh, images.sh; cached), start
// the cluster with those images, install the standard CRDs, install the
// chart with its GatewayClass, run the suite with -gateway-class,
// -conformance-profiles=GATEWAY-HTTP, -report-output and shorter waits, then
// tear everything down (also on failure or Ctrl-C: NodeCluster.stop).
//
// Options:
//   --run-test NAME      one test only (the suite's -run-test)
//   --report FILE        where the suite writes its report (default
//                        .cache/conformance/report.yaml)
//   --keep-going         the suite's default; --fail-fast stops at the first failure
//   --fail-fast
// Exit status: the suite's. Without root or the node's packages it prints why
// and exits 0, as `npm run test:e2e` does.

import { spawn, execFileSync } from 'node:child_process'
import { createWriteStream, mkdirSync, readFileSync, existsSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { parse } from 'yaml'
import { CHART, runHelm } from '../helpers/helm.ts'
import { NodeCluster, nodeClusterSkipReason } from '../helpers/node-cluster.ts'

const ROOT = new URL('../../', import.meta.url).pathname
/** The chart's GatewayClass name (values gatewayAPI.gatewayClass.name). */
export const GATEWAY_CLASS = 'nanoproxy'
const NS = 'nanoproxy-system'

// The suite's waits are sized for cloud load balancers (3 minutes for a
// Gateway address); on one local node everything settles within seconds,
// and a failing test should not hold the run for minutes. Shorter waits, not
// skipped tests (conformance/utils/config/timeout.go names them).
export const TIMEOUT_OVERRIDES = [
  'GWCMustBeAccepted:30',
  'NamespacesMustBeReady:90',
  'GatewayMustHaveAddress:30',
  'GatewayMustHaveCondition:30',
  'GatewayStatusMustHaveListeners:20',
  'GatewayListenersMustHaveConditions:20',
  'HTTPRouteMustHaveCondition:20',
  'HTTPRouteMustNotHaveParents:20',
  'RouteMustHaveParents:20',
  'LatestObservedGenerationSet:20',
  'MaxTimeToConsistency:15',
  'DefaultTestTimeout:30',
].join(';')

const { values: args } = parseArgs({
  options: {
    'run-test': { type: 'string' },
    report: { type: 'string' },
    'fail-fast': { type: 'boolean', default: false },
  },
})

const timings: [string, number][] = []
const t0 = Date.now()
async function step<T>(name: string, fn: () => T | Promise<T>): Promise<T> {
  const start = Date.now()
  console.log(`[conformance] ${name}...`)
  const result = await fn()
  timings.push([name, Date.now() - start])
  console.log(`[conformance] ${name}: ${((Date.now() - start) / 1000).toFixed(1)} s`)
  return result
}

const reason = nodeClusterSkipReason()
if (reason) {
  console.log(`test/conformance: skipped (the Gateway API conformance suite needs the one-node cluster): ${reason}`)
  process.exit(0)
}

const env = { ...process.env, PATH: `${process.env.PATH}:/usr/local/go/bin` }
const built = await step('build the suite, its images and the CRDs (cached)', () => {
  const dir = execFileSync('bash', [join(ROOT, 'test/k8s/conformance/build.sh')], { encoding: 'utf8', env, stdio: ['ignore', 'pipe', 'inherit'] }).trim().split('\n').at(-1)!
  const images = execFileSync('bash', [join(ROOT, 'test/k8s/conformance/images.sh'), dir], { encoding: 'utf8', env, stdio: ['ignore', 'pipe', 'inherit'] })
  const archives = images
    .split('\n')
    .filter((l) => /^\S+ \/\S+\.tar$/.test(l))
    .map((l) => l.split(' ')[1]!)
  return { dir, archives }
})

const reportFile = resolve(args.report ?? join(ROOT, '.cache/conformance/report.yaml'))
mkdirSync(dirname(reportFile), { recursive: true })
const logFile = join(dirname(reportFile), 'suite.log')
let status: number
const cluster = await step('start the one-node cluster', () => NodeCluster.start({ images: ['pause', 'nanoproxy'], extraArchives: built.archives }))
try {
  await step('install the standard CRDs', async () => {
    // Server-side: the CRDs are larger than client-side apply's annotation allows.
    await cluster.kubectlOk(['apply', '--server-side', '-f', join(built.dir, 'crds.yaml')])
    await cluster.kubectlOk(['wait', '--for=condition=Established', '--timeout=60s', 'crd', '--all'])
  })
  await step('install NanoProxy with its GatewayClass', async () => {
    await cluster.kubectlOk(['create', 'namespace', NS])
    const helm = runHelm([
      'install', 'nanoproxy', CHART, '--namespace', NS, '--kubeconfig', cluster.adminKubeconfigFile,
      '--set', 'image.repository=localhost/nanoproxy',
      '--set', 'service.type=ClusterIP',
      '--set', 'gatewayAPI.enabled=true',
      '--set', `gatewayAPI.gatewayClass.name=${GATEWAY_CLASS}`,
    ])
    if (helm.code !== 0) throw new Error(`helm install failed (${helm.code}):\n${helm.stderr}`)
    await cluster.kubectlOk(['-n', NS, 'rollout', 'status', 'deployment/nanoproxy', '--timeout=180s'])
    // The suite reads status.supportedFeatures once, at its start: wait for the controller to publish them.
    const accepted = await cluster.kubectl(['wait', '--for=condition=Accepted', '--timeout=60s', `gatewayclass/${GATEWAY_CLASS}`])
    if (accepted.code !== 0) {
      const logs = await cluster.kubectl(['-n', NS, 'logs', 'deployment/nanoproxy', '-c', 'controller', '--tail=40'])
      throw new Error(`GatewayClass ${GATEWAY_CLASS} not Accepted within 60 s: ${accepted.stderr}\ncontroller log:\n${logs.stdout}${logs.stderr}`)
    }
  })
  status = await step('run the suite (GATEWAY-HTTP)', () => runSuite())
} finally {
  await step('tear down', () => cluster.stop())
}
summarise()
process.exit(status)

function runSuite(): Promise<number> {
  const version = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }
  const suiteArgs = [
    '-test.v',
    '-test.timeout=40m',
    '-test.run=^TestConformance$',
    `-gateway-class=${GATEWAY_CLASS}`,
    '-conformance-profiles=GATEWAY-HTTP',
    // The base manifests are left for the cluster's tear-down (faster).
    '-cleanup-base-resources=false',
    `-report-output=${reportFile}`,
    `-timeout-config-overrides=${TIMEOUT_OVERRIDES}`,
    '-organization=nanoproxy',
    '-project=nanoproxy',
    '-url=https://github.com/benc-uk/nanoproxy',
    `-version=v${version.version}`,
    '-contact=https://github.com/benc-uk/nanoproxy/issues',
    ...(args['run-test'] ? [`-run-test=${args['run-test']}`] : []),
    ...(args['fail-fast'] ? ['-fail-fast'] : []),
  ]
  const out = createWriteStream(logFile)
  return new Promise((done, fail) => {
    // The suite reads its manifests relative to its package directory.
    const child = spawn(join(built.dir, 'conformance.test'), suiteArgs, {
      cwd: join(built.dir, 'src/conformance'),
      env: { PATH: env.PATH, HOME: process.env.HOME, KUBECONFIG: cluster.adminKubeconfigFile },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    for (const s of [child.stdout, child.stderr]) {
      s.on('data', (c: Buffer) => {
        out.write(c)
        process.stdout.write(c)
      })
    }
    child.on('error', fail)
    child.on('close', (code) => out.end(() => done(code ?? 1)))
  })
}

function summarise(): void {
  console.log(`[conformance] steps: ${timings.map(([n, ms]) => `${n} ${(ms / 1000).toFixed(1)} s`).join('; ')}; total ${((Date.now() - t0) / 1000).toFixed(1)} s`)
  console.log(`[conformance] suite output: ${logFile}`)
  if (existsSync(logFile)) {
    // go test -v: "--- PASS: TestConformance/HTTPRouteSimpleSameNamespace (1.23s)"
    const results = new Map<string, string>()
    for (const m of readFileSync(logFile, 'utf8').matchAll(/^\s*--- (PASS|FAIL|SKIP): TestConformance\/([A-Za-z0-9]+) /gm)) results.set(m[2]!, m[1]!)
    const by = (r: string): string[] => [...results].filter(([, v]) => v === r).map(([k]) => k)
    for (const r of ['PASS', 'FAIL', 'SKIP']) console.log(`[conformance] ${r} ${by(r).length}: ${by(r).join(' ')}`)
    if (results.size === 0) {
      // The suite's own set-up failed (testify prints "Messages:" with why).
      const why = [...readFileSync(logFile, 'utf8').matchAll(/^\s*Messages:\s*(.*)$/gm)].map((m) => m[1]!)
      console.log(`[conformance] no test ran: the suite's set-up failed${why.length > 0 ? `: ${why.join('; ')}` : ''}`)
    }
  }
  if (!existsSync(reportFile)) {
    console.log('[conformance] no report written (the suite writes none when its set-up fails)')
    return
  }
  console.log(`[conformance] report: ${reportFile}`)
  const report = parse(readFileSync(reportFile, 'utf8')) as { profiles?: { name: string; core?: { result: string; statistics?: Record<string, number> } }[] }
  for (const p of report.profiles ?? []) console.log(`[conformance] ${p.name} core: ${p.core?.result} ${JSON.stringify(p.core?.statistics ?? {})}`)
}
