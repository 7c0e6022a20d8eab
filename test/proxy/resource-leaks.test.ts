// Resource leaks of the HTTP/1.1 engine (src/proxy), black-box against the
// real bin/nanoproxy: a few hundred requests of each troublesome kind (clients
// and upstreams that abort, reset, half-close, answer early or never, tunnels,
// a reload that drops an upstream), then the proxy's open file descriptors
// (/proc/<pid>/fd) must come back to where they were, and the upstreams must
// see every proxy connection closed. Last, SIGTERM must exit at once: a
// request left counted as in flight would hold shutdown for SHUTDOWN_TIMEOUT.
//
// One proxy for the whole file (TIMEOUT=1, so that an upstream that never
// answers is given up on quickly). Upstream keep-alive is kept short where
// connections are pooled (`Keep-Alive: timeout=2` makes the proxy close an
// idle upstream connection after 1 s), so that "settled" comes soon.
//
// A client's FIN is taken for a half-close (it may still wait for its
// response), so a client gone while its upstream is silent, in a response or
// in a tunnel, is let go after IDLE_TIMEOUT of silence (2 s here), not at
// once: two checks hold the proxy to that bound.

import assert from 'node:assert/strict'
import { once } from 'node:events'
import { readdirSync, readlinkSync, writeFileSync } from 'node:fs'
import { createServer as createHttpServer, type Server } from 'node:http'
import type { Socket } from 'node:net'
import { after, before, describe, it } from 'node:test'
import WebSocket from 'ws'
import { freePort } from '../helpers/ports.ts'
import { startProxy, type ProxyProcess } from '../helpers/proxy-process.ts'
import { connectRaw, destroyOpenSockets, ScriptedUpstream, type ScriptedRequest } from '../helpers/raw-http.ts'
import { config, startWebSocketEcho, type Upstream } from '../helpers/upstreams.ts'
import type { WebSocketServer } from 'ws'

const KiB = 1024
const MiB = 1024 * KiB
/** A few descriptors of slack over the baseline: a leak per request shows up as hundreds. */
const SLACK = 3
/** Guard for settling: longer than the proxy's linger (2 s) and the upstream idle time used here (1-2 s). */
const SETTLE_MS = 6000

// ---------------------------------------------------------------------------
// The proxy's descriptors.

function fds(pid: number): string[] {
  const out: string[] = []
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      out.push(readlinkSync(`/proc/${pid}/fd/${fd}`))
    } catch {
      // Closed between readdir and readlink.
    }
  }
  return out
}

function describeFds(list: string[]): string {
  const kinds = new Map<string, number>()
  for (const l of list) {
    const kind = l.startsWith('socket:') ? 'socket' : l.startsWith('anon_inode:') ? l : l.startsWith('pipe:') ? 'pipe' : 'file'
    kinds.set(kind, (kinds.get(kind) ?? 0) + 1)
  }
  return [...kinds].map(([k, n]) => `${k}=${n}`).join(' ')
}

/** Connections an upstream accepted that are still open on its side. */
function openAt(up: ScriptedUpstream): number {
  return up.connections.filter((c) => !c.socket.closed).length
}

// ---------------------------------------------------------------------------
// A raw client: records what it receives, can wait for it.

interface Response {
  status: number
  headers: Record<string, string>
  body: Buffer
}

class RawClient {
  readonly socket: Socket
  private buf: Buffer = Buffer.alloc(0)
  received = 0
  closed = false
  private waiters: (() => void)[] = []

  private constructor(socket: Socket) {
    this.socket = socket
    socket.on('data', (c: Buffer) => {
      this.buf = this.buf.length === 0 ? c : Buffer.concat([this.buf, c])
      this.received += c.length
      this.wake()
    })
    socket.on('error', () => {})
    socket.on('close', () => {
      this.closed = true
      this.wake()
    })
  }

  static async open(port: number): Promise<RawClient> {
    return new RawClient(await connectRaw(port))
  }

  write(data: string | Buffer): void {
    this.socket.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data)
  }

  async until(pred: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs
    while (!pred()) {
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; closed=${this.closed}; received ${this.received} bytes: ${JSON.stringify(this.buf.toString('latin1', 0, 300))}`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left)
        this.waiters.push(() => {
          clearTimeout(timer)
          resolve()
        })
      })
    }
  }

  /** The next complete response (Content-Length framed), taken off the buffer. */
  async response(timeoutMs = 5000): Promise<Response> {
    let parsed: Response | undefined
    await this.until(
      () => {
        parsed = this.take()
        return parsed !== undefined || this.closed
      },
      'a complete response',
      timeoutMs,
    )
    if (parsed === undefined) throw new Error(`connection closed before a complete response; got ${JSON.stringify(this.buf.toString('latin1', 0, 300))}`)
    return parsed
  }

  /** Waits for the proxy to close the connection. */
  async closing(timeoutMs = 5000): Promise<void> {
    await this.until(() => this.closed, 'the proxy to close the connection', timeoutMs)
  }

  destroy(): void {
    this.socket.destroy()
  }

  reset(): void {
    this.socket.resetAndDestroy()
  }

  private take(): Response | undefined {
    const end = this.buf.indexOf('\r\n\r\n')
    if (end === -1) return undefined
    const [line = '', ...fields] = this.buf.toString('latin1', 0, end).split('\r\n')
    const headers: Record<string, string> = {}
    for (const f of fields) {
      const colon = f.indexOf(':')
      headers[f.slice(0, colon).trim().toLowerCase()] = f.slice(colon + 1).trim()
    }
    const length = Number(headers['content-length'] ?? 0)
    if (this.buf.length < end + 4 + length) return undefined
    const body = this.buf.subarray(end + 4, end + 4 + length)
    this.buf = this.buf.subarray(end + 4 + length)
    return { status: Number(line.split(' ')[1]), headers, body }
  }

  private wake(): void {
    const w = this.waiters
    this.waiters = []
    for (const f of w) f()
  }
}

/** Runs `task(0..total-1)` with at most `width` running at once; rejects with the first failure. */
async function inParallel(total: number, width: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < total) await task(next++)
  }
  await Promise.all(Array.from({ length: Math.min(width, total) }, worker))
}

// ---------------------------------------------------------------------------
// Upstream scripts.

const OK_BODY = 'ok'
/** `Keep-Alive: timeout=2`: the proxy keeps the connection idle for 1 s at most. */
function answerOk({ socket }: ScriptedRequest, keepAliveS = 2): void {
  socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${OK_BODY.length}\r\nkeep-alive: timeout=${keepAliveS}\r\n\r\n${OK_BODY}`)
}

const BIG = Buffer.alloc(MiB, 'x')

describe('resource leaks: every socket closed after troublesome requests', () => {
  let main: ScriptedUpstream
  let pool: ScriptedUpstream
  let old: ScriptedUpstream
  let ws: Upstream & { wss: WebSocketServer }
  /** Answers upgrades with 101, then neither reads nor closes: a socket left half open, as a naive `upgrade` handler does. */
  let halfOpen: Server
  const halfOpenSockets = new Set<Socket>()
  let dead: number
  let proxy: ProxyProcess
  let pid: number
  let baseline: number
  /** Resolvers for tests that wait until the upstream has a request: by target. */
  const arrivals = new Map<string, () => void>()

  /** Resolves when `main` (or `old`) receives a request for exactly `target`. */
  function arrival(target: string): Promise<void> {
    return new Promise((resolve) => arrivals.set(target, resolve))
  }
  function arrived(req: ScriptedRequest): void {
    const f = arrivals.get(req.target)
    arrivals.delete(req.target)
    f?.()
  }

  const configText = (withOld: boolean): string =>
    config(
      { main: main.port, pool: pool.port, ws: ws.port, half: (halfOpen.address() as { port: number }).port, dead, ...(withOld ? { old: old.port } : {}) },
      `${withOld ? '  - { upstream: old, path: /old }\n' : ''}  - { upstream: ws, path: /ws }
  - { upstream: half, path: /half-open }
  - { upstream: dead, path: /dead }
  - { upstream: pool, path: /pool }
  - { upstream: main, path: / }
`,
    )

  /**
   * Waits until the proxy's descriptors are back to the baseline (plus a
   * little slack) and `ups` see no connection of the proxy left open; fails
   * with what is left after SETTLE_MS.
   */
  async function settled(what: string, ups: ScriptedUpstream[] = [main], guardMs = SETTLE_MS): Promise<void> {
    const deadline = Date.now() + guardMs
    for (;;) {
      const list = fds(pid)
      const open = ups.map(openAt)
      if (list.length <= baseline + SLACK && open.every((n) => n === 0)) return
      if (Date.now() > deadline) {
        assert.fail(
          `${what}: not settled within ${guardMs} ms: the proxy has ${list.length} descriptors (baseline ${baseline}: ${describeFds(list)}); ` +
            `connections still open at the upstream(s): ${open.join(', ')}`,
        )
      }
      await new Promise((r) => setTimeout(r, 50))
    }
  }

  before(async () => {
    main = await ScriptedUpstream.start((req) => answerOk(req))
    pool = await ScriptedUpstream.start((req) => answerOk(req, 3))
    old = await ScriptedUpstream.start(({ socket }) => void socket.write(`HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nold`))
    ws = await startWebSocketEcho()
    halfOpen = createHttpServer((_req, res) => res.writeHead(426).end())
    halfOpen.on('upgrade', (_req, socket: Socket) => {
      halfOpenSockets.add(socket)
      socket.on('error', () => {})
      socket.on('close', () => halfOpenSockets.delete(socket))
      socket.write('HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n')
    })
    await new Promise<void>((resolve) => halfOpen.listen(0, '127.0.0.1', resolve))
    dead = await freePort()

    // Never answers (the body, if any, is read and dropped by the scripted upstream).
    main.on('/hold', (req) => arrived(req))
    main.on('/slowok', (req) => void setTimeout(() => answerOk(req), 30))
    // (The whole of it may fit in the kernel's loopback buffers before the
    // client goes: the connection then goes back to the pool, for 1 s.)
    main.on('/big', ({ socket }) => {
      socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${BIG.length}\r\nkeep-alive: timeout=2\r\n\r\n`)
      socket.write(BIG)
    })
    // A chunked body that never ends: a chunk every 10 ms until the connection closes.
    main.on('/drip', ({ socket }) => {
      socket.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n')
      const timer = setInterval(() => {
        if (socket.destroyed || !socket.writable) clearInterval(timer)
        else socket.write('4\r\ndrip\r\n')
      }, 10)
      socket.once('close', () => clearInterval(timer))
    })
    // The head and the start of the body, then silence (a long poll, a stalled download).
    main.on('/stall', ({ socket }) => void socket.write('HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n0123456789'))
    main.on('/reset', ({ socket, target }) => {
      socket.write(`HTTP/1.1 200 OK\r\ncontent-length: 10000\r\n\r\n${'r'.repeat(1000)}`)
      if (target.endsWith('rst')) setImmediate(() => socket.resetAndDestroy())
      else socket.end()
    })
    main.on('/close', ({ socket, target }) => {
      if (target.endsWith('rst')) socket.resetAndDestroy()
      else socket.end()
    })
    // Answers as soon as the head is in, before the body (which the scripted upstream then reads and drops).
    main.on('/early', ({ socket }) => void socket.write('HTTP/1.1 413 Payload Too Large\r\ncontent-length: 8\r\n\r\ntoo big\n'))
    old.on('/old/slow', (req) => {
      arrived(req)
      setTimeout(() => void req.socket.write('HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nslow'), 400)
    })

    proxy = await startProxy({ env: { TIMEOUT: '1', IDLE_TIMEOUT: '2', SHUTDOWN_TIMEOUT: '15' }, config: configText(true) })
    pid = proxy.child.pid!

    // Warm up (lazily opened descriptors, if any), then take the baseline
    // with no upstream connection pooled (main's idle one closes after 1 s).
    for (const path of ['/warm', '/.nanoproxy/health']) {
      const c = await RawClient.open(proxy.port)
      c.write(`GET ${path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`)
      assert.equal((await c.response()).status, 200)
      await c.closing()
    }
    let last = -1
    let stable = 0
    const guard = Date.now() + SETTLE_MS
    while (stable < 5 && Date.now() < guard) {
      const n = fds(pid).length
      stable = n === last && openAt(main) + openAt(pool) + openAt(old) === 0 ? stable + 1 : 0
      last = n
      await new Promise((r) => setTimeout(r, 50))
    }
    baseline = last
  })

  after(async () => {
    destroyOpenSockets()
    await proxy.stop('SIGKILL')
    await main.close()
    await pool.close()
    await old.close()
    await ws.close()
    for (const s of halfOpenSockets) s.destroy()
    halfOpen.close()
  })

  it('closes every socket of clients that abort mid-request-body', async () => {
    let n = 0
    await inParallel(300, 30, async (i) => {
      const target = `/hold?body=${i}`
      const seen = arrival(target)
      const c = await RawClient.open(proxy.port)
      c.write(`POST ${target} HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n`)
      c.write(Buffer.alloc(4 * KiB, 'b'))
      // The proxy has forwarded the head (and is streaming the body) before the client goes.
      await seen
      if (i % 2 === 0) c.destroy()
      else c.reset()
      n++
    })
    assert.equal(n, 300)
    await settled('clients gone mid-body')
  })

  it('closes every socket of clients that abort mid-response', async () => {
    await inParallel(200, 20, async (i) => {
      const c = await RawClient.open(proxy.port)
      c.write(`GET ${i % 2 === 0 ? '/big' : '/drip'}?${i} HTTP/1.1\r\nHost: a\r\n\r\n`)
      // Some of the body has arrived: the response is under way.
      await c.until(() => c.received > 200, 'the start of the response body')
      if (i % 4 < 2) c.destroy()
      else c.reset()
    })
    await settled('clients gone mid-response')
  })

  it('closes every socket of clients that abort right after sending the head', async () => {
    await inParallel(300, 30, async (i) => {
      const c = await RawClient.open(proxy.port)
      switch (i % 3) {
        case 0:
          c.write(`GET /slowok?${i} HTTP/1.1\r\nHost: a\r\n\r\n`)
          c.destroy()
          break
        case 1:
          c.write(`GET /slowok?${i} HTTP/1.1\r\nHost: a\r\n\r\n`)
          // RST right behind the head: the write must leave before the reset.
          await new Promise((r) => setImmediate(r))
          c.reset()
          break
        default:
          c.write(`POST /slowok?${i} HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n\r\n`)
          c.destroy()
      }
    })
    await settled('clients gone right after the head')
  })

  it('closes every socket of clients that half-close (after the request, mid-body, and between requests)', async () => {
    await inParallel(300, 30, async (i) => {
      const c = await RawClient.open(proxy.port)
      switch (i % 3) {
        case 0: {
          // The whole request, then FIN: the response still comes, then the proxy closes.
          c.write(`GET /half?${i} HTTP/1.1\r\nHost: a\r\n\r\n`)
          c.socket.end()
          const r = await c.response()
          assert.equal(r.status, 200)
          await c.closing()
          break
        }
        case 1:
          // FIN in the middle of the body: the request can never complete.
          c.write(`POST /hold?half=${i} HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n\r\nabc`)
          c.socket.end()
          await c.closing()
          break
        default: {
          // One request answered, then FIN while idle.
          c.write(`GET /half?${i} HTTP/1.1\r\nHost: a\r\n\r\n`)
          assert.equal((await c.response()).status, 200)
          c.socket.end()
          await c.closing()
        }
      }
    })
    await settled('half-closing clients')
  })

  it('closes every socket when upstreams reset or close mid-response', async () => {
    await inParallel(300, 30, async (i) => {
      const c = await RawClient.open(proxy.port)
      c.write(`GET /reset?${i % 2 === 0 ? 'rst' : 'fin'} HTTP/1.1\r\nHost: a\r\n\r\n`)
      // The response was cut: the proxy cuts the client's connection too.
      await c.closing()
      assert.ok(c.received > 0, 'the head was forwarded before the cut')
    })
    await settled('upstreams gone mid-response')
  })

  it('closes every socket when upstreams close the connection before responding (or refuse it)', async () => {
    await inParallel(300, 30, async (i) => {
      const c = await RawClient.open(proxy.port)
      const path = ['/close?rst', '/close?fin', '/dead'][i % 3]!
      c.write(`GET ${path} HTTP/1.1\r\nHost: a\r\n\r\n`)
      assert.equal((await c.response()).status, 502)
      c.destroy()
    })
    await settled('upstreams gone before responding')
  })

  it('closes every socket when upstreams answer before reading the request body', async () => {
    await inParallel(300, 30, async (i) => {
      const c = await RawClient.open(proxy.port)
      c.write(`POST /early?${i} HTTP/1.1\r\nHost: a\r\nContent-Length: 200000\r\n\r\n`)
      c.write(Buffer.alloc(8 * KiB, 'e'))
      const r = await c.response()
      assert.equal(r.status, 413)
      assert.equal(r.headers.connection, 'close')
      switch (i % 3) {
        case 0:
          // The client sends the rest anyway, then waits for the close.
          c.write(Buffer.alloc(200000 - 8 * KiB, 'e'))
          await c.closing()
          break
        case 1:
          await c.closing()
          break
        default:
          c.destroy()
      }
    })
    await settled('upstreams answering early')
  })

  it('closes every socket when upstreams never answer (TIMEOUT=1)', async () => {
    const started = Date.now()
    await inParallel(20, 20, async (i) => {
      const c = await RawClient.open(proxy.port)
      c.write(`GET /hold?never=${i} HTTP/1.1\r\nHost: a\r\n\r\n`)
      assert.equal((await c.response(4000)).status, 504)
      c.destroy()
    })
    assert.ok(Date.now() - started < 3000, `took ${Date.now() - started} ms`)
    await settled('upstreams never answering')
  })

  it('reuses at most as many upstream connections as requests run at once (50 clients x 20 requests)', async () => {
    const before = pool.connections.length
    let ok = 0
    await inParallel(50, 50, async (i) => {
      const c = await RawClient.open(proxy.port)
      for (let k = 0; k < 20; k++) {
        c.write(`GET /pool/${i}/${k} HTTP/1.1\r\nHost: a\r\n\r\n`)
        const r = await c.response()
        assert.equal(r.status, 200)
        ok++
      }
      c.socket.end()
      await c.closing()
    })
    assert.equal(ok, 1000)
    const accepted = pool.connections.length - before
    assert.ok(accepted <= 50, `the upstream accepted ${accepted} connections for 50 concurrent clients`)
    await settled('keep-alive reuse', [main, pool])
  })

  it('closes every tunnel of WebSocket upgrades closed from either side', async () => {
    for (let batch = 0; batch < 8; batch++) {
      const clients = await Promise.all(
        Array.from({ length: 25 }, async (_, i) => {
          const client = new WebSocket(`ws://127.0.0.1:${proxy.port}/ws/${batch}/${i}`)
          client.on('error', () => {})
          await once(client, 'open')
          client.send(`hello ${i}`)
          const [msg] = (await once(client, 'message')) as [Buffer]
          assert.equal(msg.toString(), `hello ${i}`)
          return client
        }),
      )
      const closed = clients.map((c) => once(c, 'close'))
      switch (batch % 4) {
        case 0:
          for (const c of clients) c.close()
          break
        case 1:
          for (const c of clients) c.terminate()
          break
        case 2:
          for (const s of ws.wss.clients) s.close()
          break
        default:
          for (const s of ws.wss.clients) s.terminate()
      }
      await Promise.all(closed)
    }
    await settled('WebSocket tunnels')
    const guard = Date.now() + SETTLE_MS
    while (ws.wss.clients.size > 0 && Date.now() < guard) await new Promise((r) => setTimeout(r, 50))
    assert.equal(ws.wss.clients.size, 0, 'the upstream still has WebSocket connections open')
  })

  it('closes the connections of an upstream removed by a reload once its running requests finish', async () => {
    // Pooled idle connections to `old` (kept 4 s: it sends no Keep-Alive timeout)...
    await inParallel(10, 10, async (i) => {
      const c = await RawClient.open(proxy.port)
      c.write(`GET /old/quick/${i} HTTP/1.1\r\nHost: a\r\n\r\n`)
      assert.equal((await c.response()).status, 200)
      c.destroy()
    })
    // ...and requests running on it when the reload comes.
    const clients = await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const seen = arrival(`/old/slow?${i}`)
        const c = await RawClient.open(proxy.port)
        c.write(`GET /old/slow?${i} HTTP/1.1\r\nHost: a\r\n\r\n`)
        await seen
        return c
      }),
    )
    writeFileSync(proxy.configFile, configText(false))
    await proxy.waitForLog((l) => l.msg === 'config reloaded')
    const replies = await Promise.all(clients.map((c) => c.response()))
    const answered = Date.now()
    for (const r of replies) assert.equal(r.body.toString(), 'slow', 'running requests finish after the reload')
    // Well before the 4 s idle time: the old pool closes them itself.
    const guard = answered + 1500
    while (openAt(old) > 0 && Date.now() < guard) await new Promise((r) => setTimeout(r, 25))
    assert.equal(openAt(old), 0, `${openAt(old)} connections to the removed upstream still open ${Date.now() - answered} ms after its last response`)
    // New requests no longer reach it (they fall through to the catch-all rule).
    const c = await RawClient.open(proxy.port)
    c.write('GET /old/after HTTP/1.1\r\nHost: a\r\n\r\n')
    assert.equal((await c.response()).body.toString(), OK_BODY)
    for (const k of [...clients, c]) k.destroy()
    await settled('upstream removed by a reload', [main, old])
  })

  it(
    'closes both sockets within IDLE_TIMEOUT when a client goes away mid-response while the upstream is silent',
    async () => {
      const stalled = main.requestsFor('/stall').length
      try {
        await inParallel(30, 30, async () => {
          const c = await RawClient.open(proxy.port)
          c.write('GET /stall HTTP/1.1\r\nHost: a\r\n\r\n')
          await c.until(() => c.received > 0 && c.socket.readableLength === 0, 'the start of the response')
          // Everything received was read: destroy() sends a FIN (not a reset), as a closed browser tab does.
          c.destroy()
        })
        await settled('clients gone from a silent response', [main], 5000)
      } finally {
        // Let the upstream end them, so that nothing is left running for the tests after this one.
        for (const r of main.requestsFor('/stall').slice(stalled)) r.socket.destroy()
        await settled('after the upstream closed the stalled responses')
      }
    },
  )

  it(
    'closes a tunnel within IDLE_TIMEOUT when the client goes away and the upstream leaves its side half open and silent',
    async () => {
      try {
        await inParallel(30, 30, async () => {
          const c = await RawClient.open(proxy.port)
          c.write('GET /half-open HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n')
          await c.until(() => c.received > 0 && c.socket.readableLength === 0, 'the 101')
          c.destroy()
        })
        await settled('tunnels whose client went away', [main], 5000)
      } finally {
        for (const s of halfOpenSockets) s.destroy()
        await settled('after the upstream closed the tunnels')
      }
    },
  )

  it('exits within a second of SIGTERM afterwards: no request is left counted as in flight', async () => {
    await settled('before SIGTERM', [main, pool, old])
    const started = Date.now()
    const { code } = await proxy.stop('SIGTERM')
    const took = Date.now() - started
    assert.equal(code, 0)
    const shutting = await proxy.waitForLog((l) => l.msg === 'shutting down', 0)
    assert.equal(shutting.in_flight, 0, 'requests counted as in flight at SIGTERM')
    const complete = await proxy.waitForLog((l) => l.msg === 'shutdown complete', 0)
    assert.equal(complete.clean, true)
    assert.ok(took < 1500, `exit took ${took} ms (SHUTDOWN_TIMEOUT is 15 s)`)
  })
})
