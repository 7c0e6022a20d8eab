// Runs the real `bin/nanoproxy` as a child process, the way users run it.

import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { once } from 'node:events'

export const BIN = new URL('../../bin/nanoproxy', import.meta.url).pathname

export interface LogLine {
  level: string
  msg: string
  [key: string]: unknown
}

export class ProxyProcess {
  readonly child: ChildProcess
  readonly dir: string
  readonly configFile: string
  readonly logs: LogLine[] = []
  stderr = ''
  port = 0
  /** The HTTPS listener's port, when the proxy has one beside its plain one. */
  httpsPort = 0
  private waiters: { pred: (l: LogLine) => boolean; resolve: (l: LogLine) => void }[] = []
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>

  constructor(child: ChildProcess, dir: string, configFile: string) {
    this.child = child
    this.dir = dir
    this.configFile = configFile
    this.exited = once(child, 'exit').then(([code, signal]) => ({
      code: code as number | null,
      signal: signal as NodeJS.Signals | null,
    }))
    let buf = ''
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      buf += chunk
      let nl
      while ((nl = buf.indexOf('\n')) !== -1) {
        const line = buf.slice(0, nl)
        buf = buf.slice(nl + 1)
        if (line.trim() === '') continue
        let parsed: LogLine
        try {
          parsed = JSON.parse(line) as LogLine
        } catch {
          parsed = { level: 'raw', msg: line }
        }
        this.logs.push(parsed)
        this.waiters = this.waiters.filter((w) => {
          if (!w.pred(parsed)) return true
          w.resolve(parsed)
          return false
        })
      }
    })
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      this.stderr += chunk
    })
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`
  }

  /** Resolves with the first log line (past or future) matching `pred`. */
  waitForLog(pred: (l: LogLine) => boolean, timeoutMs = 5000): Promise<LogLine> {
    const seen = this.logs.find(pred)
    if (seen) return Promise.resolve(seen)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`no matching log line within ${timeoutMs} ms; logs:\n${this.logs.map((l) => JSON.stringify(l)).join('\n')}\nstderr:\n${this.stderr}`))
      }, timeoutMs)
      this.waiters.push({
        pred,
        resolve: (l) => {
          clearTimeout(timer)
          resolve(l)
        },
      })
    })
  }

  /** Sends `signal` (SIGTERM by default) and waits for the process to exit. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal)
    return this.exited
  }

  /** Resident memory of the proxy process in bytes (Linux /proc). */
  async rss(): Promise<number> {
    const { readFile } = await import('node:fs/promises')
    const status = await readFile(`/proc/${this.child.pid}/status`, 'utf8')
    const m = /VmRSS:\s+(\d+) kB/.exec(status)
    return m ? Number(m[1]) * 1024 : 0
  }
}

export interface StartOptions {
  /** YAML text written to config.yaml in a fresh temp dir. */
  config?: string
  env?: Record<string, string>
  args?: string[]
  /** Do not wait for the listening line (for start-up failure tests). */
  noWait?: boolean
  dir?: string
}

export function tempDir(prefix = 'nanoproxy-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix))
}

export async function startProxy(opts: StartOptions = {}): Promise<ProxyProcess> {
  const dir = opts.dir ?? tempDir()
  const configFile = join(dir, 'config.yaml')
  if (opts.config !== undefined) writeFileSync(configFile, opts.config)
  const child = spawn(BIN, opts.args ?? ['proxy', '-c', configFile], {
    // One process unless a test asks for workers: RSS and PID checks then see the proxy itself.
    env: { PATH: process.env.PATH, HOME: process.env.HOME, PORT: '0', WORKERS: '1', ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const proxy = new ProxyProcess(child, dir, configFile)
  if (opts.noWait) return proxy
  const listening = await Promise.race([
    proxy.waitForLog((l) => typeof l.port === 'number' && l.msg.includes('listening'), 10_000),
    proxy.exited.then(({ code }) => {
      throw new Error(`proxy exited with ${code} before listening:\n${proxy.stderr}`)
    }),
  ])
  proxy.port = listening.port as number
  if (typeof listening.https_port === 'number') proxy.httpsPort = listening.https_port
  return proxy
}

/** Runs the CLI to completion and returns its exit code and output. */
export async function runCli(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(BIN, args, { env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c))
  child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c))
  const [code] = (await once(child, 'close')) as [number | null]
  return { code, stdout, stderr }
}
