// Client and upstream connection handling of the HTTP/1.1 engine (src/proxy),
// black-box against the real bin/nanoproxy: pipelining behind skipped bodies,
// closing after errors, slow readers and graceful drain delivering whole
// responses, bounded buffering, upgrades. Each case was a bug found in a
// review of the engine; the tests keep them fixed.

import assert from 'node:assert/strict'
import { connect, createServer, type Socket } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { freePort } from '../helpers/ports.ts'
import { startProxy, type ProxyProcess } from '../helpers/proxy-process.ts'
import { connectRaw, destroyOpenSockets, ScriptedUpstream, type ScriptedRequest } from '../helpers/raw-http.ts'
import { config, startWebSocketEcho, type Upstream } from '../helpers/upstreams.ts'

const KiB = 1024
const MiB = 1024 * KiB

// The raw upstreams are ScriptedUpstreams (test/helpers/raw-http.ts): each
// request path answered by its own script, the others by this one.

/** 200 with `content-length`, the body naming the request. */
function answerWithPath({ method, target, socket }: ScriptedRequest): void {
  const body = `you asked for ${target}`
  socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\n\r\n${method === 'HEAD' ? '' : body}`)
}

// ---------------------------------------------------------------------------
// A raw client that records what it receives and can wait for it.

class Client {
  readonly socket: Socket
  data = Buffer.alloc(0)
  closed = false
  private waiters: (() => void)[] = []

  private constructor(socket: Socket) {
    this.socket = socket
    socket.on('data', (c: Buffer) => {
      this.data = Buffer.concat([this.data, c])
      this.wake()
    })
    socket.on('error', () => {})
    socket.on('close', () => {
      this.closed = true
      this.wake()
    })
  }

  static async open(port: number): Promise<Client> {
    return new Client(await connectRaw(port))
  }

  get text(): string {
    return this.data.toString('latin1')
  }

  write(data: string | Buffer): void {
    this.socket.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data)
  }

  /** Resolves once `pred` holds; rejects after `timeoutMs` with what was received. */
  async until(pred: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
    const deadline = Date.now() + timeoutMs
    while (!pred()) {
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; closed=${this.closed}; received:\n${JSON.stringify(this.text.slice(0, 2000))}`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left)
        this.waiters.push(() => {
          clearTimeout(timer)
          resolve()
        })
      })
    }
  }

  /** Number of complete status lines received so far (1xx included). */
  count(re: RegExp): number {
    return this.text.match(new RegExp(re.source, 'g'))?.length ?? 0
  }

  destroy(): void {
    this.socket.destroy()
  }

  private wake(): void {
    const w = this.waiters
    this.waiters = []
    for (const f of w) f()
  }
}

/**
 * How many bytes the kernel takes on a loopback connection whose reader does
 * not read (send queue plus receive window). Used to size responses so that
 * part of them must wait in the proxy's own write buffer.
 */
async function kernelBufferBytes(): Promise<number> {
  let flushed = 0
  const server = createServer((s) => {
    s.on('error', () => {})
    for (let i = 0; i < 256; i++) s.write(Buffer.alloc(64 * KiB), () => (flushed += 64 * KiB))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const c = connect((server.address() as { port: number }).port, '127.0.0.1')
  c.pause()
  await sleep(500)
  c.destroy()
  server.close()
  return flushed
}

after(() => destroyOpenSockets())

// ---------------------------------------------------------------------------

describe('engine review: one proxy, raw upstream', () => {
  let raw: ScriptedUpstream
  let ws: Upstream
  let proxy: ProxyProcess

  before(async () => {
    raw = await ScriptedUpstream.start(answerWithPath)
    ws = await startWebSocketEcho()
    const refused = await freePort()
    proxy = await startProxy({
      env: { TIMEOUT: '2' },
      config: config(
        { raw: raw.port, ws: ws.port, dead: refused },
        `  - { upstream: dead, path: /dead }
  - { upstream: ws, path: /ws }
  - { upstream: ws, path: /deny }
  - { upstream: raw, path: / }
`,
      ),
    })
  })
  after(async () => {
    await proxy.stop()
    await raw.close()
    await ws.close()
  })

  it(
    'answers a request pipelined right behind a body the proxy discarded (its own answer came first)',
    async () => {
      const client = await Client.open(proxy.port)
      // The proxy answers /.nanoproxy/health itself, before the body arrives.
      client.write('POST /.nanoproxy/health HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n')
      await client.until(() => client.count(/HTTP\/1\.1 200 /) === 1, 'the first response')
      // The end of that body and the next request in one segment.
      client.write('helloGET /after-discard HTTP/1.1\r\nHost: a\r\n\r\n')
      await client.until(() => client.text.includes('you asked for /after-discard'), 'the pipelined request to be answered', 4000)
      client.destroy()
    },
  )

  it('answers a request pipelined in the same segment as a discarded body', async () => {
    const client = await Client.open(proxy.port)
    client.write('POST /.nanoproxy/health HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET /same-segment HTTP/1.1\r\nHost: a\r\n\r\n')
    await client.until(() => client.text.includes('you asked for /same-segment'), 'the pipelined request to be answered')
    client.destroy()
  })

  it(
    'closes an HTTP/1.0 connection after a 502 it answered itself, as after any other response',
    async () => {
      const client = await Client.open(proxy.port)
      client.write('GET /dead HTTP/1.0\r\n\r\n')
      await client.until(() => /^HTTP\/1\.1 502 /.test(client.text) && client.text.includes('NP_ERR_UPSTREAM_CONNECT'), 'the 502')
      await client.until(() => client.closed, 'the proxy to close the HTTP/1.0 connection', 2500)
    },
  )

  it(
    'honours Connection: close on a request answered with 502 (RFC 9112 §9.6)',
    async () => {
      const client = await Client.open(proxy.port)
      client.write('GET /dead HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n')
      await client.until(() => client.text.includes('NP_ERR_UPSTREAM_CONNECT'), 'the 502')
      assert.match(client.text, /\r\nconnection: close\r\n/i)
      await client.until(() => client.closed, 'the proxy to close the connection', 2500)
    },
  )

  it(
    'says `connection: keep-alive` to an HTTP/1.0 keep-alive client in the answers the proxy writes itself, as it does for upstream responses',
    async () => {
      const client = await Client.open(proxy.port)
      client.write('GET /.nanoproxy/health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n')
      await client.until(() => client.text.endsWith('\r\n\r\nOK'), 'the health response')
      assert.ok(!client.closed)
      assert.match(client.text, /\r\nconnection: keep-alive\r\n/i)
      client.destroy()
    },
  )

  it(
    'never hands the rest of a body an upstream wrongly sent after a HEAD response to the next request',
    async () => {
      // A misbehaving upstream: a body after the headers of a HEAD response,
      // larger than one read, so the proxy sees part of it with the head.
      raw.on('/head-surplus', ({ socket }) => {
        socket.write(Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\ncontent-length: 300000\r\n\r\n'), Buffer.alloc(300_000, 'x')]))
      })
      const client = await Client.open(proxy.port)
      client.write('HEAD /head-surplus HTTP/1.1\r\nHost: a\r\n\r\nGET /after-head HTTP/1.1\r\nHost: a\r\n\r\n')
      await client.until(() => client.count(/HTTP\/1\.1 \d\d\d /) >= 2 || client.closed, 'two responses')
      const second = client.text.slice(client.text.indexOf('HTTP/1.1', 5))
      assert.match(second, /^HTTP\/1\.1 200 /, `second response: ${JSON.stringify(second.slice(0, 300))}`)
      await client.until(() => client.text.includes('you asked for /after-head'), 'the body of the second response')
      client.destroy()
    },
  )

  it('does not reuse an upstream connection that sent bytes beyond a Content-Length body', async () => {
    raw.on('/cl-surplus', ({ socket }) => socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokJUNK'))
    const client = await Client.open(proxy.port)
    client.write('GET /cl-surplus HTTP/1.1\r\nHost: a\r\n\r\n')
    await client.until(() => client.text.endsWith('\r\n\r\nok'), 'the first response')
    client.write('GET /after-cl-surplus HTTP/1.1\r\nHost: a\r\n\r\n')
    await client.until(() => client.text.includes('you asked for /after-cl-surplus'), 'the second response')
    const [first] = raw.requestsFor('/cl-surplus')
    const [next] = raw.requestsFor('/after-cl-surplus')
    assert.notEqual(next!.conn.id, first!.conn.id)
    client.destroy()
  })

  it('holds bytes a client sends right after an upgrade request, and forwards them only once the upstream agreed (101)', async () => {
    const client = await Client.open(proxy.port)
    // A masked WebSocket text frame "hi", sent before any answer.
    const frame = Buffer.from([0x81, 0x82, 1, 2, 3, 4, 'h'.charCodeAt(0) ^ 1, 'i'.charCodeAt(0) ^ 2])
    client.write(
      Buffer.concat([
        Buffer.from('GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n'),
        frame,
      ]),
    )
    // The echo comes back unmasked: 0x81 0x02 'h' 'i'.
    await client.until(() => client.text.startsWith('HTTP/1.1 101 ') && client.data.includes(Buffer.from([0x81, 0x02, 0x68, 0x69])), '101 and the echoed frame')
    client.destroy()
  })

  it('never forwards a request smuggled behind a refused upgrade to the upstream as a request of its own', async () => {
    const before = ws.requests.length
    const client = await Client.open(proxy.port)
    client.write(
      'GET /deny HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n' +
        'GET /deny/smuggled HTTP/1.1\r\nHost: a\r\n\r\n',
    )
    await client.until(() => client.closed, 'the connection to close after the refusal')
    assert.match(client.text, /^HTTP\/1\.1 401 /)
    assert.equal(client.count(/HTTP\/1\.1 \d\d\d /), 1, client.text)
    assert.deepEqual(ws.requests.slice(before).map((r) => r.url), ['/deny'])
  })

  it('cuts the client with a truncated (not complete-looking) response when a chunked upstream body turns malformed after the head', async () => {
    raw.on('/bad-chunk', ({ socket }) => socket.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\nZZ\r\n'))
    const client = await Client.open(proxy.port)
    client.write('GET /bad-chunk HTTP/1.1\r\nHost: a\r\n\r\n')
    await client.until(() => client.closed, 'the connection to be cut')
    assert.match(client.text, /^HTTP\/1\.1 200 /)
    assert.ok(!client.text.includes('0\r\n\r\n'), 'no last chunk may be sent')
  })

  it('keeps serving after the requests above', async () => {
    const client = await Client.open(proxy.port)
    client.write('GET /still-up HTTP/1.1\r\nHost: a\r\n\r\n')
    await client.until(() => client.text.includes('you asked for /still-up'), 'the response')
    client.destroy()
  })
})

describe('engine review: responses that end with the connection', () => {
  let raw: ScriptedUpstream
  let proxy: ProxyProcess
  let size = 0

  before(async () => {
    // Just more than the kernel holds for a client that does not read: the
    // rest waits in the proxy's own write buffer when the response ends.
    size = (await kernelBufferBytes()) + 160 * KiB
    raw = await ScriptedUpstream.start(answerWithPath)
    raw.on('/big', ({ target, socket }) => {
      const delay = Number(new URL(target, 'http://x').searchParams.get('delay') ?? 0)
      const send = (): void => {
        socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${size}\r\n\r\n`)
        socket.write(Buffer.alloc(size, 'b'))
      }
      if (delay > 0) setTimeout(send, delay)
      else send()
    })
    proxy = await startProxy({ env: { SHUTDOWN_TIMEOUT: '10' }, config: config({ raw: raw.port }, '  - { upstream: raw, path: / }\n') })
  })
  after(async () => {
    await proxy.stop()
    await raw.close()
  })

  /** Sends `request`, reads nothing for `pauseMs`, then reads to the end; resolves with the body length received. */
  async function slowRead(request: string, pauseMs: number, duringPause?: () => void): Promise<{ head: string; body: number }> {
    const client = await Client.open(proxy.port)
    client.socket.pause()
    client.write(request)
    duringPause?.()
    await sleep(pauseMs)
    client.socket.resume()
    await client.until(() => client.closed, 'the connection to close', 15_000)
    const end = client.data.indexOf('\r\n\r\n')
    return { head: client.data.subarray(0, end).toString('latin1'), body: end === -1 ? 0 : client.data.length - end - 4 }
  }

  it(
    'delivers a whole Connection: close response to a client that pauses reading for 3 s',
    async () => {
      const { head, body } = await slowRead('GET /big HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n', 3000)
      assert.match(head, /^HTTP\/1\.1 200 /)
      assert.equal(body, size)
    },
  )

  it(
    'delivers the whole response of a request in flight at SIGTERM before closing the connection',
    async () => {
      const result = slowRead('GET /big?delay=300 HTTP/1.1\r\nHost: a\r\n\r\n', 2000, () => {
        setTimeout(() => proxy.child.kill('SIGTERM'), 100)
      })
      const { head, body } = await result
      assert.match(head, /^HTTP\/1\.1 200 /)
      assert.match(head, /\r\nconnection: close/i)
      assert.equal(body, size)
    },
  )
})

describe('engine review: a client that sends requests and reads nothing', () => {
  let quiet: ProxyProcess

  before(async () => {
    quiet = await startProxy({ env: { ACCESS_LOG: 'off' }, config: 'upstreams: []\nrules: []\n' })
  })
  after(async () => {
    await quiet.stop()
  })

  it(
    'stops reading pipelined requests while the client does not read their responses (bounded buffering)',
    async () => {
      const before = await quiet.rss()
      const client = await Client.open(quiet.port)
      client.socket.pause()
      const request = Buffer.from('GET /.nanoproxy/health HTTP/1.1\r\nHost: a\r\n\r\n')
      // 24 MiB of small requests, about 550 000 of them, never reading a response.
      const batch = Buffer.concat(Array.from({ length: Math.ceil(MiB / request.length) }, () => request))
      for (let i = 0; i < 24; i++) client.socket.write(batch)
      // Wait until the proxy has either stopped taking bytes (no progress for
      // 1 s: correct) or taken them all.
      let last = -1
      let still = 0
      while (still < 5) {
        await sleep(200)
        const pending = client.socket.writableLength
        if (pending === 0) break
        still = pending === last ? still + 1 : 0
        last = pending
      }
      const unread = client.socket.writableLength
      const grown = (await quiet.rss()) - before
      client.destroy()
      assert.ok(unread > 0, 'the proxy read all 24 MiB of requests from a client that reads none of its responses')
      assert.ok(grown < 64 * MiB, `the proxy's memory grew by ${Math.round(grown / MiB)} MiB for one client that does not read`)
    },
  )

})

describe('engine review: a download to a client that reads slowly but steadily', () => {
  let raw: ScriptedUpstream
  let proxy: ProxyProcess

  before(async () => {
    raw = await ScriptedUpstream.start(answerWithPath)
    raw.on('/huge', ({ socket }) => {
      socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${64 * MiB}\r\n\r\n`)
      socket.write(Buffer.alloc(64 * MiB, 'h'))
    })
    proxy = await startProxy({ env: { TIMEOUT: '0.2', IDLE_TIMEOUT: '0.3' }, config: config({ raw: raw.port }, '  - { upstream: raw, path: / }\n') })
  })
  after(async () => {
    await proxy.stop()
    await raw.close()
  })

  it(
    'keeps the download going while bytes reach the client every 20 ms, however long the proxy holds the upstream back',
    async () => {
      const socket = await connectRaw(proxy.port)
      socket.on('error', () => {})
      let closed = false
      socket.on('close', () => (closed = true))
      socket.write('GET /huge HTTP/1.1\r\nHost: a\r\n\r\n')
      // Paused mode: 8 KiB every 20 ms (400 KB/s), never silent for long.
      let received = 0
      const started = Date.now()
      while (!closed && Date.now() - started < 3000) {
        await sleep(20)
        const chunk = socket.read(8 * KiB) as Buffer | null
        if (chunk) received += chunk.length
      }
      socket.destroy()
      assert.ok(received > 0)
      assert.ok(!closed, `the proxy cut the download after ${Date.now() - started} ms and ${received} bytes, while the client was reading all along`)
      const warn = proxy.logs.find((l) => l.code === 'NP_ERR_UPSTREAM_TIMEOUT')
      assert.equal(warn, undefined, `the upstream was blamed: ${JSON.stringify(warn)}`)
    },
  )
})
