// `npm run bench`: NanoProxy against nginx, haproxy and the `http-proxy`
// npm package, measured in the same run on the same machine.
//
// Method (docs/performance.md): every proxy under test is pinned alone on
// CPU 0; the load generator (wrk) and the upstream (nginx, one worker,
// `return 200`) share CPU 1, so the upstream is never the bottleneck and
// proxies compete for nothing. Proxies run in turn, A B C D A B C D, and each
// figure is the median of the rounds. Absolute numbers drift on shared
// machines, so what we report is each proxy's ratio to nginx from the same
// run, and requests per proxy CPU-second.
//
// Usage: npm run bench [-- --rounds N --duration S --only small,ws,tls --quick]
// `--only metrics`: the small-response scenario with metrics off and on
// (ADMIN_PORT unset / set), alternating (bench/metrics-cost.ts).
// `--only tls` runs the TLS scenarios (bench/tls-scenarios.ts): keep-alive
// HTTPS and handshakes against nginx, and 1,000 host certificates.
// `--only cluster` runs the controller at cluster scale against a real
// kube-apiserver instead (bench/cluster-scale.ts; `--sizes 1000,10000`).
// `--only reload`: the worst request latency of a steady client across 20
// reloads of a 10,000-rule config (bench/reload-stall.ts).
// `--only endpoints`: endpoint churn, 1,000 Services × 10 endpoints, against
// a real kube-apiserver (bench/endpoints-scale.ts).

import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'

const ROOT = new URL('..', import.meta.url).pathname
const NODE = process.execPath
const PROXY_CPU = '0'
const LOAD_CPU = '1'
const MiB = 1024 * 1024
/** bin/nanoproxy runs the build in dist/ (made at the start of the run), as the image does. */
const NANOPROXY_ENV = { NANOPROXY_DIST: '1' }

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '2' },
    duration: { type: 'string', default: '5' },
    only: { type: 'string' },
    quick: { type: 'boolean', default: false },
    sizes: { type: 'string', default: '1000,10000' },
  },
})
const ROUNDS = Number(args.rounds)
const DURATION = args.quick ? 2 : Number(args.duration)
const ONLY = args.only ? new Set(args.only.split(',')) : undefined

// ---------------------------------------------------------------- helpers

function have(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

/** wrk, nginx and haproxy come from Debian's packages; install what is missing. */
function ensureTools(): void {
  const missing = [
    ['wrk', 'wrk'],
    ['nginx', 'nginx-light'],
    ['haproxy', 'haproxy'],
    ['taskset', 'util-linux'],
  ].filter(([cmd]) => !have(cmd!) && !have(`/usr/sbin/${cmd}`))
  if (missing.length === 0) return
  const pkgs = missing.map(([, pkg]) => pkg!)
  console.error(`installing ${pkgs.join(' ')} with apt-get`)
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit' })
  execFileSync('apt-get', ['install', '-y', '-qq', ...pkgs], { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } })
}

async function freePort(): Promise<number> {
  const s = createServer()
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r))
  const port = (s.address() as { port: number }).port
  await new Promise((r) => s.close(r))
  return port
}

async function waitForPort(port: number, ms = 15_000): Promise<void> {
  const started = Date.now()
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = createServer()
      s.once('error', () => resolve(true)) // in use: someone listens
      s.listen(port, '127.0.0.1', () => s.close(() => resolve(false)))
    })
    if (ok) return
    if (Date.now() - started > ms) throw new Error(`nothing listens on ${port}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

function pinned(cpu: string, cmd: string, cmdArgs: string[], env: Record<string, string> = {}): ChildProcess {
  return spawn('taskset', ['-c', cpu, cmd, ...cmdArgs], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, ...env } })
}

async function stop(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return
  p.kill('SIGTERM')
  const timer = setTimeout(() => p.kill('SIGKILL'), 5000)
  await once(p, 'exit')
  clearTimeout(timer)
}

/** CPU seconds (user + system) a process has used, from /proc/PID/stat. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) / 100 // utime, stime in clock ticks (USER_HZ = 100)
}

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m ? Number(m[1]) / 1024 : 0
}

function childPids(pid: number): number[] {
  try {
    return execFileSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' }).trim().split('\n').filter(Boolean).map(Number)
  } catch {
    return []
  }
}

interface WrkResult {
  rps: number
  mibps: number
  p50ms: number
  p99ms: number
  errors: number
  requests: number
}

function toMs(v: string): number {
  const m = /([\d.]+)(us|ms|s)/.exec(v)
  if (!m) return NaN
  const n = Number(m[1])
  return m[2] === 'us' ? n / 1000 : m[2] === 's' ? n * 1000 : n
}

function toMiB(v: string): number {
  const m = /([\d.]+)([KMG]?B)/.exec(v)
  if (!m) return 0
  const n = Number(m[1])
  return m[2] === 'GB' ? n * 1024 : m[2] === 'MB' ? n : m[2] === 'KB' ? n / 1024 : n / MiB
}

async function wrk(url: string, connections: number, seconds: number, opts: { script?: string; headers?: string[] } = {}): Promise<WrkResult> {
  const wrkArgs = ['-c', LOAD_CPU, 'wrk', '-t1', `-c${connections}`, `-d${seconds}s`, '--latency', '--timeout', '10s']
  for (const h of opts.headers ?? []) wrkArgs.push('-H', h)
  if (opts.script) wrkArgs.push('-s', opts.script)
  wrkArgs.push(url)
  const child = spawn('taskset', wrkArgs, { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c))
  await once(child, 'exit')
  const num = (re: RegExp) => Number(re.exec(out)?.[1] ?? 0)
  const errs = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out)
  return {
    rps: num(/Requests\/sec:\s+([\d.]+)/),
    mibps: toMiB(/Transfer\/sec:\s+(\S+)/.exec(out)?.[1] ?? ''),
    p50ms: toMs(/\s50%\s+(\S+)/.exec(out)?.[1] ?? ''),
    p99ms: toMs(/\s99%\s+(\S+)/.exec(out)?.[1] ?? ''),
    errors: num(/Non-2xx or 3xx responses: (\d+)/) + (errs ? errs.slice(1).reduce((a, b) => a + Number(b), 0) : 0),
    requests: num(/(\d+) requests in/),
  }
}

// ---------------------------------------------------------------- the bench

interface Proxy {
  name: string
  start(port: number): Promise<{ process: ChildProcess; pid: () => number }>
}

const work = mkdtempSync(join(tmpdir(), 'nanoproxy-bench-'))
// nginx workers run as an unprivileged user: they must be able to read the files here.
chmodSync(work, 0o755)

async function main(): Promise<void> {
  // The cluster scenario needs none of the peer proxies or wrk.
  if (!(ONLY !== undefined && [...ONLY].every((s) => s === 'cluster' || s === 'endpoints'))) ensureTools()
  // NanoProxy runs compiled, as in the image: `npm run build`, then
  // bin/nanoproxy with NANOPROXY_DIST=1 runs dist/ (see bin/nanoproxy).
  execFileSync('npm', ['run', '--silent', 'build'], { cwd: ROOT, stdio: 'inherit' })
  if (ONLY?.has('cluster')) {
    const { runClusterBench } = await import('./cluster-scale.ts')
    reportCluster(await runClusterBench(args.sizes.split(',').map(Number)))
    ONLY.delete('cluster')
    if (ONLY.size === 0) return
  }
  if (ONLY?.has('endpoints')) {
    const { runEndpointsBench } = await import('./endpoints-scale.ts')
    reportCluster(await runEndpointsBench(), 'endpoints')
    ONLY.delete('endpoints')
    if (ONLY.size === 0) return
  }
  const nginxBin = have('nginx') ? 'nginx' : '/usr/sbin/nginx'
  const haproxyBin = have('haproxy') ? 'haproxy' : '/usr/sbin/haproxy'

  // Upstreams on the load CPU: nginx for HTTP, a Node `ws` echo server for WebSockets.
  const up = await freePort()
  // Three more ports on the same upstream nginx: the 4-server upstream (balance4).
  const upMore = [await freePort(), await freePort(), await freePort()]
  const wsUp = await freePort()
  writeFileSync(join(work, '1m.bin'), Buffer.alloc(MiB, 120))
  writeFileSync(
    join(work, 'upstream.conf'),
    `worker_processes 1; daemon off; pid ${work}/upstream.pid; error_log ${work}/upstream.err;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:${up};${upMore.map((p) => ` listen 127.0.0.1:${p};`).join('')}
    location / { return 200 "hello world\\n"; }
    location = /1m { alias ${work}/1m.bin; }
    client_body_temp_path ${work}/upstream-body;
    # Read the whole body before answering (a bare \`return\` answers first and
    # discards the body, which no real upload endpoint does).
    location = /upload { client_max_body_size 2m; client_body_buffer_size 2m;
      proxy_pass http://127.0.0.1:${up}/sink; proxy_method GET; proxy_pass_request_body off; proxy_set_header Content-Length ""; }
    location = /sink { return 200 "ok\\n"; } } }
`,
  )
  const upstream = pinned(LOAD_CPU, nginxBin, ['-c', join(work, 'upstream.conf')])
  const wsEcho = pinned(LOAD_CPU, NODE, [join(ROOT, 'bench/ws-echo.ts'), String(wsUp)])
  await waitForPort(up)
  await waitForPort(wsUp)

  writeFileSync(join(work, 'post.lua'), `wrk.method = "POST"\nwrk.body = string.rep("x", ${MiB})\nwrk.headers["Content-Type"] = "application/octet-stream"\n`)

  const nanoConfig = (extraRules = ''): string =>
    `upstreams:\n  - {name: up, host: 127.0.0.1, port: ${up}}\n  - {name: ws, host: 127.0.0.1, port: ${wsUp}}\nrules:\n${extraRules}  - {upstream: ws, path: /ws}\n  - {upstream: up, path: /}\n`
  writeFileSync(join(work, 'nano.yaml'), nanoConfig())

  const proxies: Proxy[] = [
    {
      name: 'nginx',
      async start(port) {
        writeFileSync(
          join(work, `nginx-${port}.conf`),
          `worker_processes 1; daemon off; pid ${work}/nginx-${port}.pid; error_log ${work}/nginx.err;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  upstream up { server 127.0.0.1:${up}; keepalive 64; }
  upstream ws { server 127.0.0.1:${wsUp}; }
  server { listen 127.0.0.1:${port}; client_max_body_size 2m; client_body_buffer_size 2m;
    # Streaming both ways, as the other proxies do (and temp files, which
    # the unprivileged worker could not write, never come into play).
    proxy_buffering off; proxy_request_buffering off;
    client_body_temp_path ${work}/nginx-body-${port}; proxy_temp_path ${work}/nginx-proxy-${port};
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; }
    location /ws { proxy_pass http://ws; proxy_http_version 1.1; proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection "upgrade"; } } }
`,
        )
        const p = pinned(PROXY_CPU, nginxBin, ['-c', join(work, `nginx-${port}.conf`)])
        await waitForPort(port)
        // The worker does the work; the master only supervises.
        return { process: p, pid: () => childPids(childPids(p.pid!)[0] ?? p.pid!)[0] ?? childPids(p.pid!)[0] ?? p.pid! }
      },
    },
    {
      name: 'haproxy',
      async start(port) {
        writeFileSync(
          join(work, `haproxy-${port}.cfg`),
          `global
  nbthread 1
  maxconn 4000
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  timeout tunnel 1h
  option http-keep-alive
frontend fe
  bind 127.0.0.1:${port}
  use_backend ws if { path_beg /ws }
  default_backend up
backend up
  http-reuse always
  server s1 127.0.0.1:${up}
backend ws
  server s1 127.0.0.1:${wsUp}
`,
        )
        const p = pinned(PROXY_CPU, haproxyBin, ['-db', '-f', join(work, `haproxy-${port}.cfg`)])
        await waitForPort(port)
        return { process: p, pid: () => p.pid! }
      },
    },
    {
      name: 'nanoproxy',
      async start(port) {
        const p = pinned(PROXY_CPU, join(ROOT, 'bin/nanoproxy'), ['proxy', '-c', join(work, 'nano.yaml')], {
          ...NANOPROXY_ENV,
          PORT: String(port),
          ACCESS_LOG: 'off',
          WORKERS: '1',
        })
        await waitForPort(port)
        return { process: p, pid: () => childPids(p.pid!)[0] ?? p.pid! }
      },
    },
    {
      name: 'http-proxy',
      async start(port) {
        const p = pinned(PROXY_CPU, NODE, [join(ROOT, 'bench/http-proxy-peer.ts'), String(port), String(up), String(wsUp)])
        await waitForPort(port)
        return { process: p, pid: () => p.pid! }
      },
    },
  ]

  type Row = Record<string, number>
  const results = new Map<string, Row[]>()
  const scenarios: [string, (base: string) => Promise<Row>][] = [
    ['small', async (base) => pick(await wrk(`${base}/`, 50, DURATION), 'small_50c')],
    ['small1', async (base) => pick(await wrk(`${base}/`, 1, DURATION), 'small_1c')],
    ['get1m', async (base) => ({ get_1mib_MiBps: (await wrk(`${base}/1m`, 8, DURATION)).mibps })],
    ['post1m', async (base) => ({ post_1mib_MiBps: (await wrk(`${base}/upload`, 8, DURATION, { script: join(work, 'post.lua') })).rps })],
    ['ws', async (base) => ({ ws_roundtrips_per_s: await wsRoundTrips(base.replace('http', 'ws') + '/ws', 50, DURATION) })],
  ]

  const plainScenarios = ONLY === undefined || scenarios.some(([name]) => ONLY.has(name))
  for (let round = 1; round <= (plainScenarios ? ROUNDS : 0); round++) {
    for (const proxy of proxies) {
      const port = await freePort()
      const { process: p, pid } = await proxy.start(port)
      await new Promise((r) => setTimeout(r, 500))
      const row: Row = { idle_rss_MiB: rssMiB(pid()) }
      // Warm-up, not measured: a JIT-compiled runtime is judged warm, as it runs in production.
      await wrk(`http://127.0.0.1:${port}/`, 50, 2)
      let cpu = 0
      let requests = 0
      for (const [name, run] of scenarios) {
        if (ONLY && !ONLY.has(name)) continue
        const before = cpuSeconds(pid())
        const r = await run(`http://127.0.0.1:${port}`)
        const used = cpuSeconds(pid()) - before
        if (name === 'small') {
          cpu += used
          requests += (r.small_50c_rps ?? 0) * DURATION
        }
        Object.assign(row, r)
      }
      if (cpu > 0) row.small_cpu_us_per_req = (cpu / requests) * 1e6
      if (cpu > 0) row.small_req_per_cpu_s = requests / cpu
      row.rss_after_MiB = rssMiB(pid())
      await stop(p)
      results.set(proxy.name, [...(results.get(proxy.name) ?? []), row])
      console.error(`round ${round} ${proxy.name}: ${JSON.stringify(row, (_k, v: unknown) => (typeof v === 'number' ? Math.round(v * 100) / 100 : v))}`)
    }
  }

  const extras = { ...(await nanoproxyExtras(nanoConfig)), ...(await balanceExtras(nginxBin, [up, ...upMore])) }
  if (ONLY === undefined || ONLY.has('reload')) {
    const { reloadStall } = await import('./reload-stall.ts')
    Object.assign(extras, await reloadStall({ work, nanoproxyWithLogs, waitForPort, freePort, stop, reloadTime }))
  }
  if (ONLY === undefined || ONLY.has('tls')) {
    const { tlsComparison, tlsThousandCertificates } = await import('./tls-scenarios.ts')
    const kit = { work, root: ROOT, nginxBin, upstreamPort: up, duration: DURATION, rounds: ROUNDS, proxyCpu: PROXY_CPU, nanoproxyEnv: NANOPROXY_ENV, pinned, nanoproxyWithLogs, reloadTime, wrk, cpuSeconds, rssMiB, childPids, waitForPort, freePort, stop }
    // Rows of their own: the table takes the median of each metric over the rows that have it.
    for (const [name, rows] of await tlsComparison(kit)) results.set(name, [...(results.get(name) ?? []), ...rows])
    Object.assign(extras, await tlsThousandCertificates(kit))
  }
  if (ONLY === undefined || ONLY.has('metrics')) {
    const { metricsCost } = await import('./metrics-cost.ts')
    const kit = { work, root: ROOT, nginxBin, upstreamPort: up, duration: DURATION, rounds: ROUNDS, proxyCpu: PROXY_CPU, nanoproxyEnv: NANOPROXY_ENV, pinned, nanoproxyWithLogs, reloadTime, wrk, cpuSeconds, rssMiB, childPids, waitForPort, freePort, stop }
    const cost = await metricsCost(kit)
    for (const [name, rows] of cost.rows) results.set(name, [...(results.get(name) ?? []), ...rows])
    Object.assign(extras, cost.extras)
  }
  await stop(upstream)
  await stop(wsEcho)
  report(results, extras)
}

function pick(r: WrkResult, prefix: string): Record<string, number> {
  return { [`${prefix}_rps`]: r.rps, [`${prefix}_p50_ms`]: r.p50ms, [`${prefix}_p99_ms`]: r.p99ms, [`${prefix}_errors`]: r.errors }
}

/** WebSocket echo round trips per second over `conns` connections (client on the load CPU). */
async function wsRoundTrips(url: string, conns: number, seconds: number): Promise<number> {
  const child = spawn('taskset', ['-c', LOAD_CPU, NODE, join(ROOT, 'bench/ws-client.ts'), url, String(conns), String(seconds)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  let out = ''
  child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c))
  await once(child, 'exit')
  return Number(out.trim()) || 0
}

/**
 * balance4: one upstream of 4 servers (the upstream nginx on 4 ports), small
 * responses, 50 connections. CPU per request of NanoProxy with one server,
 * with 4 under roundRobin and under leastRequest, and of nginx balancing
 * the same 4 (an `upstream` block, keep-alive). Targets (issue 12): 4
 * servers ≤ 1.1x one server; ≤ 2x nginx's CPU per request.
 */
async function balanceExtras(nginxBin: string, ports: number[]): Promise<Record<string, number>> {
  if (ONLY && !ONLY.has('balance4')) return {}
  const servers = ports.map((p) => `{host: 127.0.0.1, port: ${p}}`).join(', ')
  const variants: [string, () => Promise<{ process: ChildProcess; pid: () => number }>][] = []
  const nano = (label: string, upstream: string): void => {
    variants.push([
      label,
      async () => {
        writeFileSync(join(work, `${label}.yaml`), `upstreams:\n  - ${upstream}\nrules:\n  - {upstream: up, path: /}\n`)
        const port = await freePort()
        const p = pinned(PROXY_CPU, join(ROOT, 'bin/nanoproxy'), ['proxy', '-c', join(work, `${label}.yaml`)], { ...NANOPROXY_ENV, PORT: String(port), ACCESS_LOG: 'off', WORKERS: '1' })
        await waitForPort(port)
        return { process: Object.assign(p, { benchPort: port }), pid: () => childPids(p.pid!)[0] ?? p.pid! }
      },
    ])
  }
  nano('nano_1server', `{name: up, host: 127.0.0.1, port: ${ports[0]}}`)
  nano('nano_4_roundRobin', `{name: up, balance: roundRobin, servers: [${servers}]}`)
  nano('nano_4_leastRequest', `{name: up, balance: leastRequest, servers: [${servers}]}`)
  variants.push([
    'nginx_4',
    async () => {
      const port = await freePort()
      writeFileSync(
        join(work, 'nginx-balance.conf'),
        `worker_processes 1; daemon off; pid ${work}/nginx-balance.pid; error_log ${work}/nginx.err;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  upstream up { ${ports.map((p) => `server 127.0.0.1:${p};`).join(' ')} keepalive 64; }
  server { listen 127.0.0.1:${port}; proxy_buffering off;
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
`,
      )
      const p = pinned(PROXY_CPU, nginxBin, ['-c', join(work, 'nginx-balance.conf')])
      await waitForPort(port)
      return { process: Object.assign(p, { benchPort: port }), pid: () => childPids(p.pid!)[0] ?? p.pid! }
    },
  ])
  const perRequest = new Map<string, number[]>()
  for (let round = 1; round <= ROUNDS; round++) {
    for (const [label, start] of variants) {
      const { process: p, pid } = await start()
      const base = `http://127.0.0.1:${(p as ChildProcess & { benchPort: number }).benchPort}`
      await new Promise((r) => setTimeout(r, 500))
      await wrk(`${base}/`, 50, 2)
      const before = cpuSeconds(pid())
      const r = await wrk(`${base}/`, 50, DURATION)
      const used = cpuSeconds(pid()) - before
      await stop(p)
      const us = (used / Math.max(1, r.rps * DURATION)) * 1e6
      perRequest.set(label, [...(perRequest.get(label) ?? []), us])
      console.error(`round ${round} balance4 ${label}: ${r.rps.toFixed(0)} req/s, ${us.toFixed(2)} CPU µs/req, errors ${r.errors}`)
    }
  }
  const med = (xs: number[] | undefined): number => {
    const v = [...(xs ?? [])].sort((a, b) => a - b)
    return v.length === 0 ? NaN : v.length % 2 ? v[(v.length - 1) / 2]! : (v[v.length / 2 - 1]! + v[v.length / 2]!) / 2
  }
  const out: Record<string, number> = {}
  for (const [label] of variants) out[`balance4_${label}_cpu_us_per_req`] = med(perRequest.get(label))
  const one = out.balance4_nano_1server_cpu_us_per_req!
  const ngx = out.balance4_nginx_4_cpu_us_per_req!
  for (const policy of ['roundRobin', 'leastRequest']) {
    const v = out[`balance4_nano_4_${policy}_cpu_us_per_req`]!
    out[`balance4_${policy}_vs_1server`] = v / one
    out[`balance4_${policy}_vs_nginx`] = v / ngx
  }
  return out
}

/** NanoProxy-only scenarios: table size, reload cost, reloads under load. */
async function nanoproxyExtras(nanoConfig: (extra?: string) => string): Promise<Record<string, number>> {
  if (ONLY && !ONLY.has('extras')) return {}
  const out: Record<string, number> = {}
  // 10,000 rules: 1,000 hosts x 10 paths; the request hits a host in the middle.
  const manyRules = (tag: string): string => {
    let rules = `# ${tag}\n`
    for (let h = 0; h < 1000; h++) for (let p = 0; p < 10; p++) rules += `  - {upstream: up, host: h${h}.example, path: /p${p}, matchMode: pathPrefix}\n`
    return rules
  }
  const tenRules = Array.from({ length: 10 }, (_, i) => `  - {upstream: up, host: h${i}.example, path: /p${i}, matchMode: pathPrefix}\n`).join('')
  for (const [label, rules, host] of [
    ['rules_10', tenRules, 'h5.example'],
    ['rules_10000', manyRules('a'), 'h500.example'],
  ] as const) {
    const file = join(work, `${label}.yaml`)
    writeFileSync(file, nanoConfig(rules))
    const port = await freePort()
    const { process: p, logs } = nanoproxyWithLogs(file, { PORT: String(port) })
    await waitForPort(port)
    const pid = childPids(p.pid!)[0] ?? p.pid!
    const r = await wrk(`http://127.0.0.1:${port}/p5/x`, 50, DURATION, { headers: [`Host: ${host}`] })
    out[`${label}_rps`] = r.rps
    out[`${label}_rss_MiB`] = rssMiB(pid)
    if (label === 'rules_10000') {
      // Reload time: from writing the file to the proxy logging the swap.
      const reload = await reloadTime(logs, file, nanoConfig(manyRules('b')))
      out.reload_10000_work_ms = reload.work
      out.reload_10000_wall_ms = reload.wall
      // A reload every 100 ms during a 10 s run: no request may fail.
      let flip = 0
      const timer = setInterval(() => writeFileSync(file, nanoConfig(manyRules(`flip ${flip++}`))), 100)
      const loaded = await wrk(`http://127.0.0.1:${port}/p5/x`, 50, 10, { headers: [`Host: ${host}`] })
      clearInterval(timer)
      out.reload_under_load_requests = loaded.requests
      out.reload_under_load_failed = loaded.errors
      out.reloads_done = flip
    }
    await stop(p)
  }
  // Efficiency with several worker processes (WORKERS): requests per CPU
  // second summed over the workers, both on the proxy CPU so the load
  // generator keeps its own core.
  for (const workers of [1, 2]) {
    const port = await freePort()
    const p = pinned(PROXY_CPU, join(ROOT, 'bin/nanoproxy'), ['proxy', '-c', join(work, 'nano.yaml')], {
      ...NANOPROXY_ENV,
      PORT: String(port),
      ACCESS_LOG: 'off',
      WORKERS: String(workers),
    })
    await waitForPort(port)
    await new Promise((r) => setTimeout(r, 1000))
    const pids = workers === 1 ? [p.pid!] : childPids(p.pid!)
    await wrk(`http://127.0.0.1:${port}/`, 50, 2) // warm-up
    const before = pids.reduce((sum, pid) => sum + cpuSeconds(pid), 0)
    const r = await wrk(`http://127.0.0.1:${port}/`, 50, DURATION)
    const used = pids.reduce((sum, pid) => sum + cpuSeconds(pid), 0) - before
    out[`workers_${workers}_rps`] = r.rps
    out[`workers_${workers}_req_per_cpu_s`] = (r.rps * DURATION) / used
    await stop(p)
  }
  return out
}

/**
 * Writes `text` over `file`; returns the proxy's own reload time (read,
 * parse, validate, compile, swap) from its 'config reloaded' log line, and
 * the wall time from the write until that line (debounce included).
 */
/**
 * NanoProxy (one worker, no access log) pinned on the proxy CPU, with its
 * log lines collected for reloadTime.
 */
function nanoproxyWithLogs(file: string, env: Record<string, string>): { process: ChildProcess; logs: string[] } {
  const p = spawn('taskset', ['-c', PROXY_CPU, join(ROOT, 'bin/nanoproxy'), 'proxy', '-c', file], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, ...NANOPROXY_ENV, ACCESS_LOG: 'off', WORKERS: '1', ...env },
  })
  const logs: string[] = []
  let buf = ''
  p.stdout.setEncoding('utf8').on('data', (c: string) => {
    buf += c
    const lines = buf.split('\n')
    buf = lines.pop() ?? ''
    logs.push(...lines)
  })
  return { process: p, logs }
}

/** Writes `text` to `file` and waits for the proxy's "config reloaded" line: its own timing (`work`), the time from the write (`wall`), and the line. */
async function reloadTime(logs: string[], file: string, text: string, limitMs = 10_000): Promise<{ work: number; wall: number; line: Record<string, unknown> }> {
  const seen = logs.length
  const started = performance.now()
  writeFileSync(file, text)
  for (;;) {
    const found = logs.slice(seen).find((l) => l.includes('"config reloaded"'))
    if (found) {
      const line = JSON.parse(found) as Record<string, unknown> & { duration_ms: number }
      return { work: line.duration_ms, wall: performance.now() - started, line }
    }
    if (performance.now() - started > limitMs) throw new Error(`no reload within ${limitMs / 1000} s`)
    await new Promise((r) => setTimeout(r, 5))
  }
}

function report(results: Map<string, Record<string, number>[]>, extras: Record<string, number>): void {
  const median = (xs: number[]): number => {
    const s = [...xs].filter((x) => Number.isFinite(x)).sort((a, b) => a - b)
    if (s.length === 0) return NaN
    return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2
  }
  const metrics = [...new Set([...results.values()].flatMap((rows) => rows.flatMap((r) => Object.keys(r))))]
  const table: Record<string, Record<string, number>> = {}
  for (const [name, rows] of results) {
    table[name] = Object.fromEntries(metrics.map((m) => [m, median(rows.map((r) => r[m] ?? NaN))]))
  }
  const nginx = table.nginx ?? {}
  const fmt = (v: number): string => (Number.isFinite(v) ? (Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(2)) : '-')
  const names = [...results.keys()]
  let md = `| metric | ${names.join(' | ')} | nanoproxy / nginx |\n|---|${names.map(() => '---|').join('')}---|\n`
  for (const m of metrics) {
    const ratio = (table.nanoproxy?.[m] ?? NaN) / (nginx[m] ?? NaN)
    md += `| ${m} | ${names.map((n) => fmt(table[n]?.[m] ?? NaN)).join(' | ')} | ${fmt(ratio)}x |\n`
  }
  md += `\nNanoProxy only:\n\n| metric | value |\n|---|---|\n${Object.entries(extras).map(([k, v]) => `| ${k} | ${fmt(v)} |`).join('\n')}\n`
  const when = new Date().toISOString()
  const conditions = `${when}; ${ROUNDS} rounds x ${DURATION} s per scenario; proxy alone on CPU ${PROXY_CPU}, wrk + upstream nginx on CPU ${LOAD_CPU}; Node ${process.version}`
  md = `Conditions: ${conditions}\n\n${md}`
  const dir = join(ROOT, 'bench/results')
  mkdirSync(dir, { recursive: true })
  const stamp = when.replace(/[:.]/g, '-')
  writeFileSync(join(dir, `${stamp}.json`), JSON.stringify({ conditions, results: Object.fromEntries(results), medians: table, extras }, null, 2))
  writeFileSync(join(dir, `${stamp}.md`), md)
  writeFileSync(join(dir, 'latest.md'), md)
  process.stdout.write(md)
}

function reportCluster(figures: Record<string, number>, name: 'cluster' | 'endpoints' = 'cluster'): void {
  const fmt = (v: number): string => (Number.isFinite(v) ? (Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(2)) : '-')
  const when = new Date().toISOString()
  const md = `Conditions: ${when}; ${name} scenario (bench/${name === 'cluster' ? 'cluster' : 'endpoints'}-scale.ts), real kube-apiserver + etcd on this machine, unpinned; Node ${process.version}\n\n| metric | value |\n|---|---|\n${Object.entries(figures)
    .map(([k, v]) => `| ${k} | ${fmt(v)} |`)
    .join('\n')}\n`
  const dir = join(ROOT, 'bench/results')
  mkdirSync(dir, { recursive: true })
  writeFileSync(join(dir, `${name}-${when.replace(/[:.]/g, '-')}.md`), md)
  process.stdout.write(md)
}

await main()
