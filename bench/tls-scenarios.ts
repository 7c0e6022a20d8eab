// TLS scenarios of `npm run bench` (`--only tls`), NanoProxy against nginx
// with the same certificate (ECDSA P-256, made here with openssl):
//
// - tls_small: keep-alive HTTPS, small responses, 50 connections: CPU per
//   request (target: at most 2x nginx's).
// - tls_handshake: a new TLS connection per request (`Connection: close`;
//   wrk does not resume sessions), so every request is a full handshake:
//   CPU per handshake (target: at most 1.5x nginx's; both use OpenSSL).
// - NanoProxy alone, 1,000 host certificates: the reload that parses them
//   all, a reload where one of them changed, RSS, and keep-alive HTTPS under
//   reloads (target: a reload under 500 ms and no failed request).
//
// The helpers (pinning, wrk, CPU accounting) are run.ts's, passed in.

import { execFileSync, type ChildProcess } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

export interface BenchKit {
  work: string
  root: string
  nginxBin: string
  upstreamPort: number
  duration: number
  rounds: number
  proxyCpu: string
  nanoproxyEnv: Record<string, string>
  pinned(cpu: string, cmd: string, args: string[], env?: Record<string, string>): ChildProcess
  nanoproxyWithLogs(file: string, env: Record<string, string>): { process: ChildProcess; logs: string[] }
  reloadTime(logs: string[], file: string, text: string, limitMs?: number): Promise<{ work: number; wall: number; line: Record<string, unknown> }>
  wrk(url: string, connections: number, seconds: number, opts?: { headers?: string[] }): Promise<{ rps: number; requests: number; errors: number }>
  cpuSeconds(pid: number): number
  rssMiB(pid: number): number
  childPids(pid: number): number[]
  waitForPort(port: number): Promise<void>
  freePort(): Promise<number>
  stop(p: ChildProcess): Promise<void>
}

type Row = Record<string, number>

/** The CPU-per-request comparison: rows per proxy name, as the main table takes them. */
export async function tlsComparison(kit: BenchKit): Promise<Map<string, Row[]>> {
  const { work } = kit
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(work, 'tls.key'), '-out', join(work, 'tls.crt'), '-days', '2', '-subj', '/CN=bench.example', '-addext', 'subjectAltName=DNS:bench.example'], { stdio: 'ignore' })
  const starters: Record<string, (port: number) => Promise<{ process: ChildProcess; pid: () => number }>> = {
    nginx: async (port) => {
      const conf = join(work, `nginx-tls-${port}.conf`)
      // Mozilla intermediate, as NanoProxy; session tickets off on both sides is
      // not needed: wrk never resumes.
      writeFileSync(
        conf,
        `worker_processes 1; daemon off; pid ${work}/nginx-tls-${port}.pid; error_log ${work}/nginx-tls.err;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  upstream up { server 127.0.0.1:${kit.upstreamPort}; keepalive 64; }
  server { listen 127.0.0.1:${port} ssl; ssl_certificate ${work}/tls.crt; ssl_certificate_key ${work}/tls.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305;
    proxy_buffering off; proxy_temp_path ${work}/nginx-tls-proxy-${port};
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
`,
      )
      const p = kit.pinned(kit.proxyCpu, kit.nginxBin, ['-c', conf])
      await kit.waitForPort(port)
      return { process: p, pid: () => kit.childPids(p.pid!)[0] ?? p.pid! }
    },
    nanoproxy: async (port) => {
      const file = join(work, 'nano-tls.yaml')
      writeFileSync(
        file,
        `upstreams:\n  - {name: up, host: 127.0.0.1, port: ${kit.upstreamPort}}\nrules:\n  - {upstream: up, path: /}\ncertificates:\n  - {hosts: [bench.example], certFile: tls.crt, keyFile: tls.key, default: true}\n`,
      )
      const plain = await kit.freePort()
      const p = kit.pinned(kit.proxyCpu, join(kit.root, 'bin/nanoproxy'), ['proxy', '-c', file], {
        ...kit.nanoproxyEnv,
        PORT: String(plain),
        HTTPS_PORT: String(port),
        ACCESS_LOG: 'off',
        WORKERS: '1',
      })
      await kit.waitForPort(port)
      return { process: p, pid: () => kit.childPids(p.pid!)[0] ?? p.pid! }
    },
  }
  const results = new Map<string, Row[]>()
  for (let round = 1; round <= kit.rounds; round++) {
    for (const [name, start] of Object.entries(starters)) {
      const port = await kit.freePort()
      const { process: p, pid } = await start(port)
      const url = `https://127.0.0.1:${port}/`
      await kit.wrk(url, 50, 2) // warm-up
      const row: Row = {}
      let before = kit.cpuSeconds(pid())
      const keepAlive = await kit.wrk(url, 50, kit.duration)
      row.tls_small_50c_rps = keepAlive.rps
      row.tls_small_cpu_us_per_req = ((kit.cpuSeconds(pid()) - before) / keepAlive.requests) * 1e6
      row.tls_small_errors = keepAlive.errors
      before = kit.cpuSeconds(pid())
      const handshakes = await kit.wrk(url, 20, kit.duration, { headers: ['Connection: close'] })
      row.tls_handshakes_per_s = handshakes.rps
      row.tls_handshake_cpu_us = ((kit.cpuSeconds(pid()) - before) / handshakes.requests) * 1e6
      await kit.stop(p)
      results.set(name, [...(results.get(name) ?? []), row])
      console.error(`tls round ${round} ${name}: ${JSON.stringify(row, (_k, v: unknown) => (typeof v === 'number' ? Math.round(v * 100) / 100 : v))}`)
    }
  }
  return results
}

/** NanoProxy alone with 1,000 host certificates: reload times, RSS, and reloads under HTTPS load. */
export async function tlsThousandCertificates(kit: BenchKit): Promise<Row> {
  const { work } = kit
  const out: Row = {}
  // One certificate, written 1,000 times with a different comment line
  // before it (PEM readers skip text outside the markers): 1,000 distinct
  // files, each parsed (the proxy caches by content), without 1,000 openssl runs.
  const cert = readFileSync(join(work, 'tls.crt'), 'utf8')
  const key = readFileSync(join(work, 'tls.key'), 'utf8')
  // Each version of a pair is a new pair of files (as the controller writes
  // them): a file is never rewritten under a proxy that may be reading it.
  const versions = new Map<number, string>()
  const writePair = (i: number, version: string): void => {
    writeFileSync(join(work, `c${i}-${version}.crt`), `host ${i} ${version}\n${cert}`)
    writeFileSync(join(work, `c${i}-${version}.key`), `host ${i} ${version}\n${key}`)
    versions.set(i, version)
  }
  for (let i = 0; i < 1000; i++) writePair(i, 'a')
  const writePairs = (tag: string, changed: number | undefined): string => {
    if (changed !== undefined) writePair(changed, tag)
    let section = 'certificates:\n'
    for (let i = 0; i < 1000; i++) {
      const v = versions.get(i)!
      section += `  - {hosts: [h${i}.bench.example], certFile: c${i}-${v}.crt, keyFile: c${i}-${v}.key${i === 0 ? ', default: true' : ''}}\n`
    }
    return section
  }
  const base = `upstreams:\n  - {name: up, host: 127.0.0.1, port: ${kit.upstreamPort}}\nrules:\n  - {upstream: up, path: /}\n`
  const file = join(work, 'nano-1000.yaml')
  writeFileSync(file, base)
  const port = await kit.freePort()
  const plain = await kit.freePort()
  const { process: p, logs } = kit.nanoproxyWithLogs(file, { PORT: String(plain), HTTPS_PORT: String(port) })
  await kit.waitForPort(port)
  const pid = kit.childPids(p.pid!)[0] ?? p.pid!
  const rssBefore = kit.rssMiB(pid)
  const reload = async (text: string): Promise<{ work: number; parsed: number }> => {
    const { work, line } = await kit.reloadTime(logs, file, text, 30_000)
    return { work, parsed: typeof line.certificates_parsed === 'number' ? line.certificates_parsed : 0 }
  }
  const first = await reload(base + writePairs('a', undefined))
  out.certs_1000_first_load_ms = first.work
  out.certs_1000_first_parsed = first.parsed
  out.certs_1000_rss_MiB = kit.rssMiB(pid)
  out.certs_1000_rss_growth_MiB = out.certs_1000_rss_MiB - rssBefore
  const one = await reload(base + writePairs('b', 500) + '# one changed\n')
  out.certs_1000_one_changed_reload_ms = one.work
  out.certs_1000_one_changed_parsed = one.parsed
  // Keep-alive HTTPS for 10 s while one certificate changes every 500 ms: no request may fail.
  let flip = 0
  const timer = setInterval(() => {
    flip++
    writeFileSync(file, base + writePairs(`f${flip}`, flip % 1000))
  }, 500)
  const loaded = await kit.wrk(`https://127.0.0.1:${port}/`, 50, 10, { headers: ['Host: h7.bench.example'] })
  clearInterval(timer)
  out.certs_1000_reloads_under_load = flip
  out.certs_1000_under_load_requests = loaded.requests
  out.certs_1000_under_load_failed = loaded.errors
  await kit.stop(p)
  return out
}
