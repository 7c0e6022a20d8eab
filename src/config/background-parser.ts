// Parsing and validating a reloaded config file on a worker thread.
//
// The proxy serves every request on one thread. Reading a 10,000-Ingress
// config there (JSON.parse or YAML, schema validation, cross-field checks,
// defaults) took 40-100 ms, during which no request moved. On a worker
// thread it costs the main thread only the receiving of the result, which
// arrives in parts of about a millisecond each (parse-worker.ts). The worker
// runs load.ts's parseConfig, so a file is judged exactly as at start-up and
// by `nanoproxy validate`: same errors, same positions.
//
// The thread starts with the first reload of a file large enough to need it
// (start-up parses on the main thread: nothing is served yet) and stops after IDLE_MS without work, so an
// idle proxy does not keep a second V8 isolate (~10 MB) for nothing. If it
// cannot start or dies, the file is parsed on the main thread instead: a
// reload that stalls requests beats one that never happens.

import { extname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'
import { ConfigError } from '../errors.ts'
import type { Logger } from '../log.ts'
import { parseConfig } from './load.ts'
import type { ParseReply, ParseRequest } from './parse-messages.ts'
import type { ProxyConfig } from './schema.ts'

/**
 * Files smaller than this are parsed on the main thread: ~200 rules, about
 * a millisecond of work, less than a thread costs to start (~100 ms before
 * its first answer, ~10 MB of memory). Most hand-written files are that small.
 */
export const MAIN_THREAD_MAX_BYTES = 16 * 1024

/** How long the thread is kept after its last job. */
const IDLE_MS = 30_000

/** The worker's file, next to this one: parse-worker.ts from the sources, parse-worker.js in dist/. */
const WORKER_FILE = new URL(`./parse-worker${extname(fileURLToPath(import.meta.url))}`, import.meta.url)

interface Job {
  bytes: Uint8Array
  file: string
  config: ProxyConfig
  resolve: (config: ProxyConfig) => void
  reject: (err: Error) => void
}

export class BackgroundParser {
  private readonly log: Logger
  private worker: Worker | undefined
  private readonly jobs = new Map<number, Job>()
  private nextId = 1
  private idle: NodeJS.Timeout | undefined

  constructor(log: Logger) {
    this.log = log
  }

  /**
   * The config in `bytes` (a file's content), parsed and validated off the
   * main thread. Rejects with ConfigError naming every problem, as
   * parseConfig does.
   */
  parse(bytes: Uint8Array, file: string): Promise<ProxyConfig> {
    return new Promise((resolve, reject) => {
      const id = this.nextId++
      const job: Job = { bytes, file, config: { upstreams: [], rules: [] }, resolve, reject }
      const worker = bytes.byteLength < MAIN_THREAD_MAX_BYTES ? undefined : this.thread()
      if (!worker) {
        this.parseHere(job)
        return
      }
      this.jobs.set(id, job)
      clearTimeout(this.idle)
      worker.postMessage({ id, bytes, file } satisfies ParseRequest)
    })
  }

  /** Stops the thread (shutdown); jobs in progress are parsed on the main thread. */
  close(): void {
    clearTimeout(this.idle)
    const worker = this.worker
    this.worker = undefined
    if (worker) void worker.terminate()
    this.fallBack()
  }

  /** The running thread, started if needed; undefined if it cannot start. */
  private thread(): Worker | undefined {
    if (this.worker) return this.worker
    let worker: Worker
    try {
      // A small young generation: the thread's objects live only until
      // they are sent, and with V8's default (16 MB semi-spaces) a proxy
      // kept ~80 MB more RSS after 20 reloads of a 10,000-rule file
      // (memory the allocator does not give back when the thread stops).
      worker = new Worker(WORKER_FILE, { resourceLimits: { maxYoungGenerationSizeMb: 4 } })
    } catch (err) {
      this.log.warn({ err }, 'cannot start the config parsing thread: parsing on the main thread')
      return undefined
    }
    // The thread never keeps the process alive: shutdown does not wait for it.
    worker.unref()
    worker.on('message', (reply: ParseReply) => this.receive(reply))
    worker.on('error', (err) => {
      this.log.warn({ err }, 'the config parsing thread failed: parsing on the main thread')
    })
    worker.on('exit', () => {
      if (this.worker !== worker) return
      this.worker = undefined
      this.fallBack()
    })
    this.worker = worker
    return worker
  }

  private receive(reply: ParseReply): void {
    const job = this.jobs.get(reply.id)
    if (!job) return
    switch (reply.kind) {
      case 'upstreams':
        for (const u of reply.items) job.config.upstreams.push(u)
        return
      case 'rules':
        for (const r of reply.items) job.config.rules.push(r)
        return
      case 'done':
        if (reply.certificates !== undefined) job.config.certificates = reply.certificates
        this.finish(reply.id)
        job.resolve(job.config)
        return
      case 'invalid':
        this.finish(reply.id)
        job.reject(new ConfigError(job.file, reply.problems))
        return
      case 'failed':
        this.finish(reply.id)
        job.reject(new Error(reply.message))
        return
    }
  }

  private finish(id: number): void {
    this.jobs.delete(id)
    if (this.jobs.size > 0 || !this.worker) return
    const worker = this.worker
    clearTimeout(this.idle)
    this.idle = setTimeout(() => {
      if (this.worker !== worker || this.jobs.size > 0) return
      this.worker = undefined
      void worker.terminate()
    }, IDLE_MS)
    this.idle.unref()
  }

  /** Jobs the thread will not answer (it exited) are parsed here. */
  private fallBack(): void {
    const jobs = [...this.jobs.values()]
    this.jobs.clear()
    for (const job of jobs) this.parseHere(job)
  }

  private parseHere(job: Job): void {
    try {
      job.resolve(parseConfig(Buffer.from(job.bytes.buffer, job.bytes.byteOffset, job.bytes.byteLength).toString('utf8'), job.file))
    } catch (err) {
      job.reject(err as Error)
    }
  }
}
