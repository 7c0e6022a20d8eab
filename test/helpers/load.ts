// A small closed-loop load generator for the end-to-end tests: `workers`
// keep-alive connections each send GET requests back to back until stop()
// is called, and every outcome is counted. Like browsers, curl and Go's
// http.Transport, a request that fails on a *reused* keep-alive connection
// before any byte of a response arrived is retried once on a new
// connection: the server may close an idle connection at the moment the
// client reuses it, and RFC 9112 §9.3.1 lets a client retry an idempotent
// request then. Those retries are counted apart; a failure is a request
// that got no 2xx response even so.

import { Agent, request } from 'node:http'

export interface LoadResult {
  requests: number
  ok: number
  failed: number
  /** Requests retried after their reused connection closed under them. */
  retried: number
  /** Responses per value of `pickKey` (for example which pod answered). */
  byKey: Record<string, number>
  /** The first few failures, as "status 502" or the error's code/message. */
  errors: string[]
  durationMs: number
  requestsPerSecond: number
}

export interface LoadOptions {
  url: string
  host?: string
  workers?: number
  /** Extracts a key from a 2xx body (e.g. the pod name). */
  pickKey?: (body: string) => string | undefined
}

interface Attempt {
  status?: number
  body?: string
  error?: NodeJS.ErrnoException
  reused: boolean
  gotResponse: boolean
}

function once(agent: Agent, u: URL, host: string | undefined): Promise<Attempt> {
  return new Promise((resolve) => {
    let reused = false
    let gotResponse = false
    const req = request(
      { host: u.hostname, port: u.port, path: u.pathname + u.search, agent, headers: host ? { host } : {}, timeout: 10_000 },
      (res) => {
        gotResponse = true
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString('utf8'), reused, gotResponse }))
        res.on('error', (error) => resolve({ error, reused, gotResponse }))
      },
    )
    req.on('socket', (s) => {
      // A socket that already carried a request is a reused keep-alive one.
      reused = (s as unknown as { _nanoproxyUsed?: boolean })._nanoproxyUsed === true
      ;(s as unknown as { _nanoproxyUsed?: boolean })._nanoproxyUsed = true
    })
    req.on('timeout', () => req.destroy(Object.assign(new Error('client timeout'), { code: 'TIMEOUT' })))
    req.on('error', (error: NodeJS.ErrnoException) => resolve({ error, reused, gotResponse }))
    req.end()
  })
}

export class Load {
  private running = true
  private readonly done: Promise<void>
  private readonly started = Date.now()
  private stoppedAt = 0
  readonly result: LoadResult = { requests: 0, ok: 0, failed: 0, retried: 0, byKey: {}, errors: [], durationMs: 0, requestsPerSecond: 0 }

  constructor(opts: LoadOptions) {
    const agent = new Agent({ keepAlive: true, maxSockets: opts.workers ?? 8 })
    const u = new URL(opts.url)
    const worker = async (): Promise<void> => {
      while (this.running) {
        let a = await once(agent, u, opts.host)
        let retried = false
        if (a.error && a.reused && !a.gotResponse) {
          this.result.retried++
          retried = true
          a = await once(agent, u, opts.host)
        }
        this.result.requests++
        if (a.status !== undefined && a.status >= 200 && a.status < 300) {
          this.result.ok++
          const key = opts.pickKey?.(a.body ?? '')
          if (key) this.result.byKey[key] = (this.result.byKey[key] ?? 0) + 1
        } else {
          this.result.failed++
          // Where it failed tells a lost keep-alive race from a refused or cut connection.
          const on = `${a.reused ? 'reused' : 'new'} connection${retried ? ', on the retry' : ''}`
          if (this.result.errors.length < 10) this.result.errors.push(a.error ? `${a.error.code ?? ''} ${a.error.message} (${on})`.trim() : `status ${a.status} ${(a.body ?? '').slice(0, 200)}`)
        }
      }
    }
    this.done = Promise.all(Array.from({ length: opts.workers ?? 8 }, worker)).then(() => agent.destroy())
  }

  /** Stops sending and waits for the requests in flight. */
  async stop(): Promise<LoadResult> {
    this.running = false
    this.stoppedAt ||= Date.now()
    await this.done
    this.result.durationMs = this.stoppedAt - this.started
    this.result.requestsPerSecond = Math.round((this.result.requests / this.result.durationMs) * 1000)
    return this.result
  }
}
