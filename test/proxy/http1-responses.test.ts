// Conformance tests for the proxy's handling of UPSTREAM RESPONSES and
// upstream connections (RFC 9112, RFC 9110), written black-box against the
// real bin/nanoproxy so that any HTTP/1.1 engine can be checked with them.
//
// The upstreams are raw `net` servers scripted per request path, so each
// test controls the exact bytes the proxy receives; the clients are raw
// sockets wherever the exact bytes or the connection state matter. The cases
// were first pinned against the previous engine (undici); where it differed
// from RFC 9112 / RFC 9110 the tests follow the RFC.

import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { request } from 'node:http'
import type { Socket } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { send } from '../helpers/http-client.ts'
import { startProxy, type ProxyProcess } from '../helpers/proxy-process.ts'
import { connectRaw, destroyOpenSockets, ScriptedUpstream, type Script, type ScriptedRequest } from '../helpers/raw-http.ts'
import { config } from '../helpers/upstreams.ts'

const MiB = 1024 * 1024
/** TIMEOUT given to the proxy (seconds): the wait for response headers. */
const TIMEOUT_S = 1

// ---------------------------------------------------------------------------
// The upstreams are ScriptedUpstreams (test/helpers/raw-http.ts): each
// request path answered by its own script, the others by a fallback.

/** A scripted upstream with Nagle's algorithm off, so that each scripted write leaves at once. */
function startUpstream(fallback: Script = answerWithPath): Promise<ScriptedUpstream> {
  return ScriptedUpstream.start(fallback, { noDelay: true })
}

/** The default script: 200 with `Content-Length`, the body naming the request. */
function answerWithPath({ method, target, socket }: ScriptedRequest): void {
  const body = `you asked for ${target}`
  socket.write(`HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\n\r\n${method === 'HEAD' ? '' : body}`)
}

/** Writes `data` in pieces cut at `cuts` (offsets), `gapMs` apart, so they reach the proxy in separate TCP segments. */
async function writeInPieces(socket: Socket, data: string, cuts: number[], gapMs = 2): Promise<void> {
  let from = 0
  for (const at of [...cuts.filter((c) => c > 0 && c < data.length).sort((a, b) => a - b), data.length]) {
    if (at <= from) continue
    socket.write(data.slice(from, at), 'latin1')
    from = at
    if (at < data.length) await sleep(gapMs)
  }
}

/** Chunked encoding of `parts`, with the given chunk-size lines (extensions allowed) and trailer section. */
function chunked(parts: string[], opts: { ext?: (i: number) => string; upper?: boolean; trailers?: string } = {}): string {
  let out = ''
  parts.forEach((p, i) => {
    const size = p.length.toString(16)
    out += `${opts.upper && i % 2 === 0 ? size.toUpperCase() : size}${opts.ext?.(i) ?? ''}\r\n${p}\r\n`
  })
  return `${out}0${opts.ext?.(parts.length) ?? ''}\r\n${opts.trailers ?? ''}\r\n`
}

// ---------------------------------------------------------------------------
// A raw client: writes bytes, and parses the responses it gets back exactly
// as a strict HTTP/1.1 client would (RFC 9112 §6.3), reporting whether each
// response was complete and whether the connection closed.

interface RawResponse {
  statusLine: string
  version: string
  status: number
  reason: string
  /** Header fields as received: [name, value], name case kept. */
  fields: [string, string][]
  /** 1xx responses received before this one. */
  interim: RawResponse[]
  body: Buffer
  framing: 'none' | 'length' | 'chunked' | 'close'
  /** Whether the body ended as its framing says (length reached, last chunk seen, or close). */
  complete: boolean
  trailers: [string, string][]
}

/** All values of header `name` (case-insensitive), in order. */
function values(r: RawResponse, name: string): string[] {
  return r.fields.filter(([n]) => n.toLowerCase() === name.toLowerCase()).map(([, v]) => v)
}

function only(r: RawResponse, name: string): string | undefined {
  const v = values(r, name)
  assert.ok(v.length <= 1, `more than one ${name}: ${JSON.stringify(v)}`)
  return v[0]
}

/** Comma-separated list values of header `name`, lower-cased (RFC 9110 §5.6.1). */
function listValues(r: RawResponse, name: string): string[] {
  return values(r, name)
    .flatMap((v) => v.split(','))
    .map((v) => v.trim().toLowerCase())
    .filter(Boolean)
}

/** Thrown when the connection closes before a response's status line. */
class NoResponse extends Error {}

class RawClient {
  readonly socket: Socket
  /** Bytes received and not parsed yet. */
  private buf: Buffer = Buffer.alloc(0)
  /** Everything received, for error messages. */
  private all = ''
  /** The peer closed its side (or the socket closed). */
  ended = false
  readonly closed: Promise<void>
  private wakeUp: (() => void) | undefined

  private constructor(socket: Socket) {
    this.socket = socket
    socket.on('data', (c: Buffer) => {
      this.buf = this.buf.length === 0 ? c : Buffer.concat([this.buf, c])
      if (this.all.length < 64 * 1024) this.all += c.toString('latin1')
      this.wake()
    })
    socket.on('end', () => {
      this.ended = true
      this.wake()
    })
    socket.on('error', () => {})
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        this.ended = true
        this.wake()
        resolve()
      }),
    )
  }

  static async open(port: number): Promise<RawClient> {
    return new RawClient(await connectRaw(port))
  }

  write(data: string | Buffer): void {
    this.socket.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data)
  }

  /** GET (or `method`) `path` with Host and `extra` header lines. */
  get(path: string, extra = '', method = 'GET', version = 'HTTP/1.1'): void {
    this.write(`${method} ${path} ${version}\r\nHost: test.example\r\n${extra}\r\n`)
  }

  destroy(): void {
    this.socket.destroy()
  }

  /** Reads one final response (and the 1xx before it). `method` is that of the request (HEAD has no body). */
  async response(method = 'GET', timeoutMs = 5000): Promise<RawResponse> {
    const timer = setTimeout(() => {
      this.failure = new Error(`no complete response within ${timeoutMs} ms; received so far:\n${JSON.stringify(this.all)}`)
      this.wake()
    }, timeoutMs)
    try {
      const interim: RawResponse[] = []
      for (;;) {
        const r = await this.readOne(method)
        if (r.status >= 100 && r.status < 200) {
          interim.push(r)
          continue
        }
        r.interim = interim
        return r
      }
    } finally {
      clearTimeout(timer)
      this.failure = undefined
    }
  }

  /** Resolves when the peer closes the connection; fails after `timeoutMs`. */
  async expectClosed(timeoutMs = 3000): Promise<void> {
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`connection still open after ${timeoutMs} ms; received:\n${JSON.stringify(this.all)}`)), timeoutMs)
    })
    try {
      await Promise.race([this.closed, timeout])
    } finally {
      clearTimeout(timer)
    }
  }

  /** Everything received on this connection so far (latin1, first 64 KiB). */
  get received(): string {
    return this.all
  }

  private failure: Error | undefined

  private wake(): void {
    const w = this.wakeUp
    this.wakeUp = undefined
    w?.()
  }

  /** Waits for more bytes; false once the connection has ended. */
  private async more(): Promise<boolean> {
    this.throwIfTimedOut()
    if (this.ended) return false
    await new Promise<void>((resolve) => (this.wakeUp = resolve))
    this.throwIfTimedOut()
    return true
  }

  private throwIfTimedOut(): void {
    if (this.failure) throw this.failure
  }

  private async line(): Promise<string | undefined> {
    for (;;) {
      const i = this.buf.indexOf('\r\n')
      if (i !== -1) {
        const l = this.buf.subarray(0, i).toString('latin1')
        this.buf = this.buf.subarray(i + 2)
        return l
      }
      if (!(await this.more())) return undefined
    }
  }

  private async bytes(n: number): Promise<Buffer> {
    while (this.buf.length < n) if (!(await this.more())) break
    const out = this.buf.subarray(0, Math.min(n, this.buf.length))
    this.buf = this.buf.subarray(out.length)
    return out
  }

  private async readOne(method: string): Promise<RawResponse> {
    const statusLine = await this.line()
    if (statusLine === undefined) throw new NoResponse(`connection closed before a response; received:\n${JSON.stringify(this.all)}`)
    const m = /^(HTTP\/\d\.\d) (\d{3}) ?(.*)$/.exec(statusLine)
    assert.ok(m, `invalid status line ${JSON.stringify(statusLine)}`)
    const r: RawResponse = {
      statusLine,
      version: m[1]!,
      status: Number(m[2]),
      reason: m[3]!,
      fields: [],
      interim: [],
      body: Buffer.alloc(0),
      framing: 'none',
      complete: false,
      trailers: [],
    }
    for (;;) {
      const l = await this.line()
      if (l === undefined) return r // cut inside the head
      if (l === '') break
      const colon = l.indexOf(':')
      assert.ok(colon > 0 && !/\s/.test(l.slice(0, colon)), `invalid header line ${JSON.stringify(l)}`)
      r.fields.push([l.slice(0, colon), l.slice(colon + 1).trim()])
    }
    const te = listValues(r, 'transfer-encoding')
    const cl = values(r, 'content-length')
    if (method === 'HEAD' || r.status < 200 || r.status === 204 || r.status === 304) {
      r.framing = 'none'
      r.complete = true
    } else if (te.length > 0) {
      assert.equal(cl.length, 0, 'Content-Length together with Transfer-Encoding')
      assert.equal(te.at(-1), 'chunked', `unexpected Transfer-Encoding ${te.join(', ')}`)
      r.framing = 'chunked'
      const parts: Buffer[] = []
      for (;;) {
        const sizeLine = await this.line()
        if (sizeLine === undefined) break
        assert.match(sizeLine, /^[0-9a-fA-F]+(;.*)?$/, 'invalid chunk-size line')
        const size = parseInt(sizeLine, 16)
        if (size === 0) {
          for (;;) {
            const t = await this.line()
            if (t === undefined) break
            if (t === '') {
              r.complete = true
              break
            }
            const colon = t.indexOf(':')
            r.trailers.push([t.slice(0, colon), t.slice(colon + 1).trim()])
          }
          break
        }
        const data = await this.bytes(size)
        parts.push(data)
        if (data.length < size) break
        const crlf = await this.line()
        if (crlf === undefined) break
        assert.equal(crlf, '', 'chunk data not followed by CRLF')
      }
      r.body = Buffer.concat(parts)
    } else if (cl.length > 0) {
      assert.equal(new Set(cl).size, 1, `differing Content-Length values ${cl.join(', ')}`)
      const n = Number(cl[0])
      r.framing = 'length'
      r.body = await this.bytes(n)
      r.complete = r.body.length === n
    } else {
      r.framing = 'close'
      while (await this.more());
      r.body = this.buf
      this.buf = Buffer.alloc(0)
      r.complete = true
    }
    return r
  }
}

/** A new connection that sends one request and reads its response. */
async function exchange(port: number, path: string, opts: { method?: string; extra?: string; version?: string } = {}): Promise<{ client: RawClient; res: RawResponse }> {
  const client = await RawClient.open(port)
  client.get(path, opts.extra ?? '', opts.method ?? 'GET', opts.version ?? 'HTTP/1.1')
  const res = await client.response(opts.method ?? 'GET')
  return { client, res }
}

/** Asserts a 502/504 error answer of the proxy itself, naming `code`. */
function assertProxyError(res: RawResponse, status: number, code: string): void {
  assert.equal(res.status, status, `expected ${status}, got ${res.statusLine}\n${res.body.toString('latin1')}`)
  assert.ok(res.complete)
  assert.match(res.body.toString('latin1'), new RegExp(code))
}

// ---------------------------------------------------------------------------

describe('HTTP/1.1 upstream responses', () => {
  /** Catch-all upstream, scripted per path. */
  let up: ScriptedUpstream
  /** Dedicated upstreams (own pools), for tests that count connections. */
  let reuse: ScriptedUpstream
  let closer: ScriptedUpstream
  let racer: ScriptedUpstream
  let old: ScriptedUpstream
  let split: ScriptedUpstream
  let proxy: ProxyProcess

  before(async () => {
    up = await startUpstream()
    reuse = await startUpstream()
    // Announces Connection: close, and closes a little later (not at once,
    // so that only the header, not a FIN, tells the proxy not to reuse it).
    closer = await startUpstream(({ target, socket }) => {
      const body = `closing after ${target}`
      socket.write(`HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: ${body.length}\r\n\r\n${body}`)
      setTimeout(() => socket.end(), 200).unref()
    })
    // Keep-alive by default, but closes each connection right after its
    // response: at once, or 1 to 3 ms later, so that the proxy sometimes
    // reuses the connection before it sees the close.
    let raced = 0
    racer = await startUpstream(({ target, socket }) => {
      const body = `you asked for ${target}`
      socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n${body}`)
      const delay = raced++ % 4
      if (delay === 0) socket.end()
      else setTimeout(() => socket.end(), delay).unref()
    })
    // An HTTP/1.0 server that answers with a length but no keep-alive, and
    // leaves the connection open: only the version tells the proxy not to reuse it.
    old = await startUpstream(({ target, socket }) => {
      const body = `old ${target}`
      socket.write(`HTTP/1.0 200 OK\r\nContent-Length: ${body.length}\r\n\r\n${body}`)
    })
    split = await startUpstream()
    proxy = await startProxy({
      env: { TIMEOUT: String(TIMEOUT_S) },
      config: config(
        { up: up.port, reuse: reuse.port, closer: closer.port, racer: racer.port, old: old.port, split: split.port },
        `  - { upstream: reuse, path: /reuse/ }
  - { upstream: closer, path: /closer/ }
  - { upstream: racer, path: /racer/ }
  - { upstream: old, path: /old/ }
  - { upstream: split, path: /split/ }
  - { upstream: up, path: / }
`,
      ),
    })
  })
  after(async () => {
    destroyOpenSockets()
    await proxy.stop()
    await Promise.all([up, reuse, closer, racer, old, split].map((u) => u.close()))
  })

  /** The proxy still answers a plain request correctly. */
  async function assertStillServing(): Promise<void> {
    const { client, res } = await exchange(proxy.port, '/alive')
    client.destroy()
    assert.equal(res.status, 200)
    assert.equal(res.body.toString(), 'you asked for /alive')
  }

  describe('message framing (RFC 9112 §6.3)', () => {
    it('relays a Content-Length upstream response with its length and body', async () => {
      up.on('/cl', 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello world')
      const { client, res } = await exchange(proxy.port, '/cl')
      client.destroy()
      assert.equal(res.status, 200)
      assert.equal(only(res, 'content-length'), '11')
      assert.equal(res.framing, 'length')
      assert.equal(res.body.toString(), 'hello world')
    })

    const parts = Array.from({ length: 24 }, (_, i) => `part ${i} `.padEnd(3 + ((i * 7) % 23), String.fromCharCode(97 + (i % 26))))
    const chunkedBody = chunked(parts, {
      upper: true,
      ext: (i) => (i % 3 === 0 ? `;ext-${i}=v` : i % 3 === 1 ? `;name="quoted ; value";flag` : ''),
      trailers: 'X-Checksum: abc123\r\nX-Other-Trailer: t\r\n',
    })

    it('relays a chunked upstream response (chunk extensions, trailers, odd TCP splits) to an HTTP/1.1 client with its body intact', async () => {
      up.on('/chunked', async ({ socket }) => {
        const data = `HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n${chunkedBody}`
        // Cut every 13 bytes: inside chunk-size lines, extensions, CRLFs, data and trailers.
        const cuts = Array.from({ length: Math.ceil(data.length / 13) }, (_, i) => i * 13 + 5)
        await writeInPieces(socket, data, cuts, 1)
      })
      const { client, res } = await exchange(proxy.port, '/chunked')
      assert.equal(res.status, 200)
      assert.ok(res.complete, 'the response must end with its last chunk')
      assert.equal(res.body.toString('latin1'), parts.join(''))
      // The connection carries the next request.
      client.get('/next')
      const next = await client.response()
      client.destroy()
      assert.equal(next.body.toString(), 'you asked for /next')
    })

    it('relays a close-delimited upstream response (no length, upstream closes) to an HTTP/1.1 client, complete', async () => {
      up.on('/close-delimited', async ({ socket }) => {
        socket.write('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nfirst half, ')
        await sleep(20)
        socket.end('second half')
      })
      const { client, res } = await exchange(proxy.port, '/close-delimited')
      client.destroy()
      assert.equal(res.status, 200)
      assert.ok(res.framing === 'chunked' || res.framing === 'close', res.framing)
      assert.ok(res.complete)
      assert.equal(res.body.toString(), 'first half, second half')
    })

    for (const [kind, script] of [
      ['close-delimited', 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nbody until close'],
      ['chunked', `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n${chunked(['body ', 'until ', 'close'])}`],
    ] as const) {
      it(`relays a ${kind} upstream response to an HTTP/1.0 client, without chunked framing, and closes the connection`, async () => {
        up.on(`/to-http10-${kind}`, ({ socket }) => {
          if (kind === 'chunked') socket.write(script)
          else socket.end(script)
        })
        const { client, res } = await exchange(proxy.port, `/to-http10-${kind}`, { version: 'HTTP/1.0' })
        assert.equal(res.status, 200)
        assert.equal(values(res, 'transfer-encoding').length, 0, 'no Transfer-Encoding to an HTTP/1.0 client (RFC 9112 §6.1)')
        assert.equal(res.body.toString(), 'body until close')
        await client.expectClosed()
      })
    }

    it('relays the headers of a response to HEAD (Content-Length kept, no body), and the next request on the connection works', async () => {
      up.on('/head', ({ method, socket }) => {
        assert.equal(method, 'HEAD')
        socket.write('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1234\r\n\r\n')
      })
      const client = await RawClient.open(proxy.port)
      client.get('/head', '', 'HEAD')
      const res = await client.response('HEAD')
      assert.equal(res.status, 200)
      assert.equal(only(res, 'content-length'), '1234')
      client.get('/after-head')
      const next = await client.response()
      client.destroy()
      assert.equal(next.status, 200)
      assert.equal(next.body.toString(), 'you asked for /after-head')
    })

    it('relays 204 and 304 responses without a body, and the next request on the connection works', async () => {
      up.on('/204', 'HTTP/1.1 204 No Content\r\nX-App: a\r\n\r\n')
      up.on('/304', 'HTTP/1.1 304 Not Modified\r\nETag: "v1"\r\n\r\n')
      // A 304 may announce the length of the representation it stands for (RFC 9110 §8.6).
      up.on('/304-with-length', 'HTTP/1.1 304 Not Modified\r\nETag: "v1"\r\nContent-Length: 99\r\n\r\n')
      const client = await RawClient.open(proxy.port)
      for (const [path, status] of [['/204', 204], ['/304', 304], ['/304-with-length', 304]] as const) {
        client.get(path)
        const res = await client.response()
        assert.equal(res.status, status)
        assert.equal(values(res, 'transfer-encoding').length, 0)
        if (status === 204) assert.equal(values(res, 'content-length').length, 0, 'no Content-Length on a 204 (RFC 9110 §8.6)')
        else assert.equal(only(res, 'etag'), '"v1"')
        client.get(`/after${path}`)
        const next = await client.response()
        assert.equal(next.body.toString(), `you asked for /after${path}`, `request after ${path}`)
      }
      client.destroy()
    })

    it(
      'does not relay a Content-Length sent on a 204 response',
      async () => {
        up.on('/204-with-length', 'HTTP/1.1 204 No Content\r\nContent-Length: 8\r\n\r\n')
        const { client, res } = await exchange(proxy.port, '/204-with-length')
        client.destroy()
        assert.equal(res.status, 204)
        assert.deepEqual(values(res, 'content-length'), [])
      },
    )

    it('answers 502 to a response with both Content-Length and Transfer-Encoding', async () => {
      up.on('/cl-and-te', `HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n${chunked(['hello'])}`)
      const { client, res } = await exchange(proxy.port, '/cl-and-te')
      client.destroy()
      assertProxyError(res, 502, 'NP_ERR_UPSTREAM_PROTOCOL')
    })

    for (const [name, fields] of [
      ['two Content-Length lines', 'Content-Length: 5\r\nContent-Length: 6\r\n'],
      ['a Content-Length list', 'Content-Length: 5, 6\r\n'],
    ] as const) {
      it(`answers 502 to differing Content-Length values (${name})`, async () => {
        const path = `/two-lengths-${name.replaceAll(' ', '-')}`
        up.on(path, `HTTP/1.1 200 OK\r\n${fields}\r\nhello!`)
        const { client, res } = await exchange(proxy.port, path)
        client.destroy()
        assertProxyError(res, 502, 'NP_ERR_UPSTREAM_PROTOCOL')
      })
    }

    for (const [name, head] of [
      ['a non-numeric status', 'HTTP/1.1 abc\r\n\r\n'],
      ['HTTP/2 as the version', 'HTTP/2 200 OK\r\nContent-Length: 2\r\n\r\nok'],
      ['a two-digit status', 'HTTP/1.1 20 OK\r\nContent-Length: 2\r\n\r\nok'],
      ['no HTTP version', 'FOO BAR BAZ\r\n\r\n'],
      ['bare LF line ends', 'HTTP/1.1 200 OK\nContent-Length: 2\n\nok'],
    ] as const) {
      it(`answers 502 to an invalid status line (${name})`, async () => {
        const path = `/status-line-${name.replaceAll(' ', '-')}`
        up.on(path, head)
        const { client, res } = await exchange(proxy.port, path)
        client.destroy()
        assertProxyError(res, 502, 'NP_ERR_UPSTREAM_PROTOCOL')
      })
    }

    for (const [name, line] of [
      ['a line without a colon', 'NoColon'],
      ['a space in the field name', 'Bad Name: x'],
      ['whitespace before the colon', 'X-Bad : x'],
      ['a control character in the value', 'X-Bad: a\x01b'],
    ] as const) {
      it(`answers 502 to an invalid header line (${name})`, async () => {
        const path = `/header-${name.replaceAll(' ', '-')}`
        up.on(path, `HTTP/1.1 200 OK\r\n${line}\r\nContent-Length: 2\r\n\r\nok`)
        const { client, res } = await exchange(proxy.port, path)
        client.destroy()
        assertProxyError(res, 502, 'NP_ERR_UPSTREAM_PROTOCOL')
      })
    }

    it('answers 502 to a header folded over two lines (obs-fold)', async () => {
      // RFC 9112 §5.2 lets a proxy either answer 502 or unfold; today: 502.
      up.on('/obs-fold', 'HTTP/1.1 200 OK\r\nX-Folded: a\r\n b\r\nContent-Length: 2\r\n\r\nok')
      const { client, res } = await exchange(proxy.port, '/obs-fold')
      client.destroy()
      assertProxyError(res, 502, 'NP_ERR_UPSTREAM_PROTOCOL')
    })

    it('relays the final response after 102 and 103 interim responses, and sends no 1xx to an HTTP/1.0 client', async () => {
      up.on(
        '/early-hints',
        'HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n' +
          'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal',
      )
      const { client, res } = await exchange(proxy.port, '/early-hints')
      assert.equal(res.status, 200)
      assert.equal(res.body.toString(), 'final')
      for (const i of res.interim) assert.ok(i.status === 102 || i.status === 103, i.statusLine)
      client.get('/after-hints')
      assert.equal((await client.response()).body.toString(), 'you asked for /after-hints')
      client.destroy()
      // RFC 9110 §15.2: no 1xx to an HTTP/1.0 client.
      const old = await exchange(proxy.port, '/early-hints', { version: 'HTTP/1.0' })
      old.client.destroy()
      assert.equal(old.res.interim.length, 0)
      assert.equal(old.res.status, 200)
      assert.equal(old.res.body.toString(), 'final')
    })

    it(
      'relays the final response after an unsolicited 100 Continue',
      async () => {
        up.on('/unsolicited-100', 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal')
        const { client, res } = await exchange(proxy.port, '/unsolicited-100')
        client.destroy()
        assert.equal(res.status, 200)
        assert.equal(res.body.toString(), 'final')
      },
    )

    it(
      'relays a 103 Early Hints response to an HTTP/1.1 client before the final response',
      async () => {
        up.on('/relay-103', 'HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal')
        const { client, res } = await exchange(proxy.port, '/relay-103')
        client.destroy()
        assert.deepEqual(
          res.interim.map((i) => [i.status, values(i, 'link')]),
          [[103, ['</style.css>; rel=preload']]],
        )
        assert.equal(res.status, 200)
        assert.equal(res.body.toString(), 'final')
      },
    )

    it('relays the status code and reason phrase as the upstream sent them', async () => {
      up.on('/reason-fine', 'HTTP/1.1 200 Fine\r\nContent-Length: 2\r\n\r\nok')
      up.on('/reason-404', 'HTTP/1.1 404 Nothing Here\r\nContent-Length: 2\r\n\r\nno')
      up.on('/status-299', 'HTTP/1.1 299 Custom Thing\r\nContent-Length: 2\r\n\r\nok')
      for (const [path, line] of [
        ['/reason-fine', 'HTTP/1.1 200 Fine'],
        ['/reason-404', 'HTTP/1.1 404 Nothing Here'],
        ['/status-299', 'HTTP/1.1 299 Custom Thing'],
      ] as const) {
        const { client, res } = await exchange(proxy.port, path)
        client.destroy()
        assert.equal(res.statusLine, line)
      }
    })

    it('relays repeated Set-Cookie headers as separate fields, in order', async () => {
      up.on(
        '/cookies',
        'HTTP/1.1 200 OK\r\nSet-Cookie: a=1; Expires=Wed, 21 Oct 2026 07:28:00 GMT; Path=/\r\nX-Multi: one\r\n' +
          'Set-Cookie: b=2\r\nX-Multi: two\r\nset-cookie: c=3; HttpOnly\r\nContent-Length: 2\r\n\r\nok',
      )
      const { client, res } = await exchange(proxy.port, '/cookies')
      client.destroy()
      assert.deepEqual(values(res, 'set-cookie'), ['a=1; Expires=Wed, 21 Oct 2026 07:28:00 GMT; Path=/', 'b=2', 'c=3; HttpOnly'])
      // Other repeated fields may be combined into one list (RFC 9110 §5.3), order kept.
      assert.deepEqual(listValues(res, 'x-multi'), ['one', 'two'])
      assert.equal(res.body.toString(), 'ok')
    })

    it('adds a Date header to a response that has none, and keeps the upstream\'s own Date (RFC 9110 §6.6.1)', async () => {
      up.on('/no-date', 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok')
      up.on('/no-date-chunked', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n')
      up.on('/own-date', 'HTTP/1.1 200 OK\r\nDate: Tue, 01 Jan 2030 00:00:00 GMT\r\nContent-Length: 2\r\n\r\nok')
      const client = await RawClient.open(proxy.port)
      for (const path of ['/no-date', '/no-date-chunked']) {
        client.get(path)
        const added = await client.response()
        const date = Date.parse(only(added, 'date') ?? '')
        assert.ok(Math.abs(date - Date.now()) < 60_000, `${path}: Date: ${only(added, 'date')}`)
        assert.equal(added.body.toString(), 'ok')
      }
      client.get('/own-date')
      const own = await client.response()
      client.destroy()
      assert.deepEqual(values(own, 'date'), ['Tue, 01 Jan 2030 00:00:00 GMT'])
    })

    it('never passes bytes an upstream sends beyond the response (after a Content-Length body, or on a 204) to the next request', async () => {
      split.on('/split/extra', 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled')
      split.on('/split/204-body', 'HTTP/1.1 204 No Content\r\nContent-Length: 8\r\n\r\nsmuggled')
      const client = await RawClient.open(proxy.port)
      for (const [path, status, body] of [['/split/extra', 200, 'ok'], ['/split/204-body', 204, '']] as const) {
        client.get(path)
        const res = await client.response()
        assert.equal(res.status, status)
        assert.equal(res.body.toString(), body)
        client.get(`/split/after${path}`)
        const next = await client.response()
        assert.equal(next.body.toString(), `you asked for /split/after${path}`)
      }
      client.destroy()
      assert.ok(!client.received.includes('smuggled'))
    })
  })

  describe('truncated and missing responses', () => {
    it('cuts the client connection when the upstream closes in the middle of a Content-Length body, and keeps serving', async () => {
      up.on('/truncated-length', async ({ socket }) => {
        socket.write(`HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n${'x'.repeat(500)}`)
        await sleep(20)
        socket.end()
      })
      const { client, res } = await exchange(proxy.port, '/truncated-length')
      assert.equal(res.status, 200)
      assert.equal(res.complete, false, `the client must not see a complete response (framing ${res.framing}, ${res.body.length} bytes)`)
      assert.ok(res.body.length < 1000)
      await client.expectClosed()
      await assertStillServing()
    })

    it('cuts the client connection when the upstream closes a chunked body before its last chunk, and keeps serving', async () => {
      up.on('/truncated-chunked', async ({ socket }) => {
        socket.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n')
        await sleep(20)
        socket.write('10\r\nonly half')
        await sleep(20)
        socket.end()
      })
      const { client, res } = await exchange(proxy.port, '/truncated-chunked')
      assert.equal(res.status, 200)
      assert.equal(res.complete, false, `the client must not see a complete response (framing ${res.framing})`)
      assert.ok(res.body.toString().startsWith('hello world'))
      await client.expectClosed()
      await assertStillServing()
    })

    for (const [name, split] of [
      ['after the head was relayed', true],
      ['in the same TCP segment as the head', false],
    ] as const) {
      it(`never relays a response whose chunked body turns out malformed as complete (bad chunk ${name})`, async () => {
        const path = `/bad-chunk-${split ? 'split' : 'whole'}`
        up.on(path, async ({ socket }) => {
          socket.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n')
          if (split) await sleep(30)
          socket.write('zz\r\nbad chunk\r\n0\r\n\r\n')
        })
        const client = await RawClient.open(proxy.port)
        client.get(path)
        let res: RawResponse | undefined
        try {
          res = await client.response()
        } catch (err) {
          if (!(err instanceof NoResponse)) throw err // anything but a clean close is wrong
        }
        // Either a 502 (nothing sent yet), or a cut: the client never sees an end.
        if (res?.status !== 502) {
          assert.equal(res?.complete ?? false, false, `framing ${res?.framing}, body ${res?.body.toString()}`)
          await client.expectClosed()
        }
        client.destroy()
        assert.ok(!client.received.includes('bad chunk'))
        await assertStillServing()
      })
    }

    it('answers 502 when the upstream closes the connection before any response byte', async () => {
      up.on('/close-at-once', ({ socket }) => void socket.end())
      const { client, res } = await exchange(proxy.port, '/close-at-once')
      client.destroy()
      assertProxyError(res, 502, 'NP_ERR_UPSTREAM_RESET')
      // A replay of an idempotent request is allowed, a storm of them is not.
      assert.ok(up.requestsFor('/close-at-once').length <= 2)
    })

    it('answers 502 when the upstream closes the connection in the middle of the response head', async () => {
      up.on('/close-in-head', ({ socket }) => void socket.end('HTTP/1.1 200 OK\r\nContent-Le'))
      const { client, res } = await exchange(proxy.port, '/close-in-head')
      client.destroy()
      assert.equal(res.status, 502)
    })

    for (const [name, path, head] of [
      ['sends nothing', '/silent', ''],
      ['stalls in the middle of its response head', '/stalled-head', 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n'],
    ] as const) {
      it(`answers 504 after TIMEOUT when the upstream ${name}`, async () => {
        up.on(path, ({ socket }) => void socket.write(head))
        const started = Date.now()
        const { client, res } = await exchange(proxy.port, path)
        const elapsed = Date.now() - started
        client.destroy()
        assertProxyError(res, 504, 'NP_ERR_UPSTREAM_TIMEOUT')
        assert.ok(elapsed >= TIMEOUT_S * 1000 - 100 && elapsed < TIMEOUT_S * 1000 + 2000, `took ${elapsed} ms with TIMEOUT=${TIMEOUT_S}`)
      })
    }
  })

  describe('hop-by-hop headers on the way back (RFC 9110 §7.6.1)', () => {
    it('does not pass Connection, Keep-Alive, Transfer-Encoding, Upgrade, Proxy-Connection or headers named by Connection to the client, and sets its own X-Proxy', async () => {
      up.on(
        '/hop',
        'HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop-A, x-hop-b\r\nKeep-Alive: timeout=5, max=100\r\n' +
          'Proxy-Connection: keep-alive\r\nUpgrade: h2c\r\nX-Hop-A: 1\r\nX-Hop-B: 2\r\nTrailer: X-T\r\n' +
          'X-Proxy: upstream/9.9\r\nX-Proxy-Instance: upstream-host\r\nX-End-To-End: kept\r\n' +
          `Transfer-Encoding: chunked\r\n\r\n${chunked(['hop ', 'by ', 'hop'], { trailers: 'X-T: 1\r\n' })}`,
      )
      const { client, res } = await exchange(proxy.port, '/hop')
      assert.equal(res.status, 200)
      assert.equal(res.body.toString(), 'hop by hop')
      assert.ok(res.complete)
      for (const name of ['proxy-connection', 'upgrade', 'x-hop-a', 'x-hop-b', 'trailer']) {
        assert.deepEqual(values(res, name), [], `${name} must not reach the client`)
      }
      const connection = listValues(res, 'connection')
      assert.ok(!connection.includes('x-hop-a') && !connection.includes('x-hop-b') && !connection.includes('upgrade'), connection.join(', '))
      assert.ok(!listValues(res, 'keep-alive').includes('max=100'), 'the upstream Keep-Alive must not reach the client')
      // Re-framed by the proxy: at most its own chunked coding.
      assert.ok(['', 'chunked'].includes(listValues(res, 'transfer-encoding').join(',')))
      assert.deepEqual(values(res, 'x-end-to-end'), ['kept'])
      assert.equal(values(res, 'x-proxy').length, 1)
      assert.match(only(res, 'x-proxy') ?? '', /^NanoProxy\/\d+\.\d+\.\d+/)
      assert.equal(values(res, 'x-proxy-instance').length, 1)
      assert.notEqual(only(res, 'x-proxy-instance'), 'upstream-host')
      // The client connection is the proxy's: it stays usable.
      client.get('/after-hop')
      assert.equal((await client.response()).body.toString(), 'you asked for /after-hop')
      client.destroy()
    })

    it('treats Upgrade on a 200 response as an ordinary header: dropped, the body relayed, the connection kept', async () => {
      up.on('/upgrade-on-200', 'HTTP/1.1 200 OK\r\nConnection: Upgrade\r\nUpgrade: h2c\r\nContent-Length: 5\r\n\r\nplain')
      const { client, res } = await exchange(proxy.port, '/upgrade-on-200')
      assert.equal(res.status, 200)
      assert.equal(res.body.toString(), 'plain')
      assert.deepEqual(values(res, 'upgrade'), [])
      client.get('/after-upgrade-on-200')
      assert.equal((await client.response()).body.toString(), 'you asked for /after-upgrade-on-200')
      client.destroy()
    })
  })

  describe('upstream connections', () => {
    it('reuses one upstream connection for sequential requests, across Content-Length, chunked (with trailers), 204 and 304 responses', async () => {
      reuse.on('/reuse/chunked', `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n${chunked(['a', 'b'], { trailers: 'X-T: 1\r\n' })}`)
      reuse.on('/reuse/204', 'HTTP/1.1 204 No Content\r\n\r\n')
      reuse.on('/reuse/304', 'HTTP/1.1 304 Not Modified\r\nETag: "x"\r\n\r\n')
      const paths = ['/reuse/cl', '/reuse/chunked', '/reuse/204', '/reuse/304', '/reuse/cl2']
      // One client connection, then separate ones: the upstream pool is shared.
      const client = await RawClient.open(proxy.port)
      for (const p of paths) {
        client.get(p)
        const res = await client.response()
        assert.ok(res.complete && res.status < 400, `${p}: ${res.statusLine}`)
      }
      client.destroy()
      for (const p of paths) {
        const { client: c, res } = await exchange(proxy.port, p)
        c.destroy()
        assert.ok(res.complete && res.status < 400, `${p}: ${res.statusLine}`)
      }
      assert.equal(reuse.connections.length, 1, `connections: ${JSON.stringify(reuse.connections.map((c) => c.requests))}`)
      assert.equal(reuse.connections[0]!.requests.length, paths.length * 2)
    })

    it('opens a new upstream connection after a response with Connection: close, and the next request does not fail', async () => {
      const client = await RawClient.open(proxy.port)
      for (let i = 1; i <= 3; i++) {
        client.get(`/closer/${i}`)
        const res = await client.response()
        assert.equal(res.status, 200)
        assert.equal(res.body.toString(), `closing after /closer/${i}`)
        // Connection: close is hop-by-hop: the client connection stays open.
        assert.ok(!listValues(res, 'connection').includes('close'))
      }
      client.destroy()
      assert.deepEqual(
        closer.connections.map((c) => c.requests.length),
        [1, 1, 1],
      )
    })

    it('never fails a following idempotent GET when the upstream closes each kept-alive connection right after its response', async () => {
      const client = await RawClient.open(proxy.port)
      for (let i = 0; i < 40; i++) {
        client.get(`/racer/${i}`)
        const res = await client.response()
        assert.equal(res.status, 200, `request ${i}: ${res.statusLine} ${res.body.toString()}`)
        assert.equal(res.body.toString(), `you asked for /racer/${i}`)
      }
      client.destroy()
      // At most one replay per request.
      for (let i = 0; i < 40; i++) assert.ok(racer.requestsFor(`/racer/${i}`).length <= 2)
    })

    it('relays an HTTP/1.0 upstream response as HTTP/1.1 and does not reuse that connection', async () => {
      const client = await RawClient.open(proxy.port)
      for (let i = 1; i <= 3; i++) {
        client.get(`/old/${i}`)
        const res = await client.response()
        assert.equal(res.statusLine, 'HTTP/1.1 200 OK')
        assert.equal(res.body.toString(), `old /old/${i}`)
      }
      client.destroy()
      assert.deepEqual(
        old.connections.map((c) => c.requests.length),
        [1, 1, 1],
      )
    })

    it('relays an early 413 sent before the upstream read the request body, then closes the client connection', async () => {
      up.on('/early-413', ({ socket }) => {
        socket.write('HTTP/1.1 413 Content Too Large\r\nContent-Type: text/plain\r\nContent-Length: 8\r\nConnection: close\r\n\r\ntoo big\n')
        setTimeout(() => socket.end(), 50).unref()
      })
      const client = await RawClient.open(proxy.port)
      client.write(`POST /early-413 HTTP/1.1\r\nHost: test.example\r\nContent-Type: application/octet-stream\r\nContent-Length: ${64 * MiB}\r\n\r\n`)
      client.write(Buffer.alloc(256 * 1024, 1)) // a start of the body, then nothing
      const res = await client.response()
      assert.equal(res.status, 413)
      assert.equal(res.body.toString(), 'too big\n')
      // The rest of the body will never come: the connection cannot carry another request.
      await client.expectClosed()
    })
  })

  describe('large and slow responses', () => {
    const big = randomBytes(5 * MiB)
    const bigSum = createHash('sha256').update(big).digest('hex')

    for (const framing of ['Content-Length', 'chunked'] as const) {
      it(`delivers a 5 MiB ${framing} response intact to a slow-reading client`, async () => {
        const path = `/big-${framing}`
        up.on(path, ({ socket }) => {
          if (framing === 'Content-Length') {
            socket.write(`HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: ${big.length}\r\n\r\n`)
            socket.write(big)
          } else {
            socket.write('HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n')
            for (let at = 0, n = 1; at < big.length; at += n, n = (n * 7 + 4093) % 100_000) {
              const piece = big.subarray(at, at + n)
              socket.write(`${piece.length.toString(16)}\r\n`)
              socket.write(piece)
              socket.write('\r\n')
            }
            socket.write('0\r\n\r\n')
          }
        })
        const { bytes, sum } = await new Promise<{ bytes: number; sum: string }>((resolve, reject) => {
          const hash = createHash('sha256')
          let bytes = 0
          request(`${proxy.url}${path}`, { agent: false }, (res) => {
            // Slow reader: nothing for 200 ms, then a pause every 512 KiB.
            res.pause()
            setTimeout(() => res.resume(), 200)
            res.on('data', (c: Buffer) => {
              hash.update(c)
              bytes += c.length
              if (bytes % (512 * 1024) < c.length) {
                res.pause()
                setTimeout(() => res.resume(), 15)
              }
            })
            res.on('end', () => resolve({ bytes, sum: hash.digest('hex') }))
            res.on('error', reject)
          })
            .on('error', reject)
            .end()
        })
        assert.equal(bytes, big.length)
        assert.equal(sum, bigSum)
      })
    }

    it('completes a body the upstream dribbles with pauses longer than TIMEOUT (TIMEOUT bounds only the wait for headers)', async () => {
      const pauseMs = TIMEOUT_S * 1000 + 300
      up.on('/dribble', async ({ socket }) => {
        socket.write('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 15\r\n\r\nfirst')
        await sleep(pauseMs)
        socket.write('-then')
        await sleep(pauseMs)
        socket.write('-last')
      })
      const reply = await send(`${proxy.url}/dribble`, { timeoutMs: 10_000 })
      assert.equal(reply.status, 200)
      assert.equal(reply.body, 'first-then-last')
    })
  })
})
