// Edge cases of the HTTP/1.1 engine (src/proxy, src/cli/serve-proxy.ts),
// black-box against the real bin/nanoproxy: TLS termination and HTTPS
// upstreams, Upgrade tunnels, retries, absolute-form targets and Host,
// TRUSTED_PROXIES, the proxy's own endpoints and the access log. Several
// cases were bugs found in a second review of the engine; the tests keep
// them fixed.

import assert from 'node:assert/strict'
import { once } from 'node:events'
import { copyFileSync, renameSync } from 'node:fs'
import { createServer, type Socket } from 'node:net'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { connect as tlsConnect, type TLSSocket } from 'node:tls'
import { createPki, type Pki } from '../helpers/certs.ts'
import { send, sendJson } from '../helpers/http-client.ts'
import { freePort } from '../helpers/ports.ts'
import { startProxy, tempDir, type LogLine, type ProxyProcess } from '../helpers/proxy-process.ts'
import { connectRaw, destroyOpenSockets, ScriptedUpstream, type ScriptedRequest } from '../helpers/raw-http.ts'
import { config, startUpstream, type SeenRequest, type Upstream } from '../helpers/upstreams.ts'

after(() => destroyOpenSockets())

let pki: Pki
before(() => {
  pki = createPki()
})

/** 200 with a body naming the request; kept alive. */
function answerWithPath({ method, target, socket }: ScriptedRequest): void {
  const body = `you asked for ${target}`
  socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\n\r\n${method === 'HEAD' ? '' : body}`)
}

/** Writes `raw` on a new connection and collects what comes back until the proxy closes (or `ms` pass). */
async function exchangeRaw(port: number, raw: string, ms = 3000): Promise<{ text: string; closed: boolean }> {
  const socket = await connectRaw(port)
  const chunks: Buffer[] = []
  socket.on('data', (c: Buffer) => chunks.push(c))
  socket.on('error', () => {})
  socket.write(raw)
  const closed = await Promise.race([once(socket, 'close').then(() => true), sleep(ms).then(() => false)])
  socket.destroy()
  return { text: Buffer.concat(chunks).toString('latin1'), closed }
}

/** Splits a response stream after the first head; returns [head, rest]. */
function firstHead(text: string): [string, string] {
  const end = text.indexOf('\r\n\r\n')
  assert.notEqual(end, -1, `no complete head in ${JSON.stringify(text)}`)
  return [text.slice(0, end), text.slice(end + 4)]
}

function accessLine(proxy: ProxyProcess, path: string): Promise<LogLine> {
  return proxy.waitForLog((l) => l.msg === 'request' && l.path === path)
}

// ---------------------------------------------------------------------------

describe('TLS termination', () => {
  let up: Upstream
  let proxy: ProxyProcess
  let certDir: string

  before(async () => {
    up = await startUpstream()
    certDir = tempDir()
    pki.issue(['proxy.test', '127.0.0.1'], certDir)
    proxy = await startProxy({ env: { CERT_PATH: certDir, TIMEOUT: '1' }, config: config({ echo: up.port }, '  - { upstream: echo, path: / }\n') })
  })
  after(async () => {
    await proxy.stop()
    await up.close()
  })

  function tlsClient(opts: { maxVersion?: 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3'; minVersion?: 'TLSv1' | 'TLSv1.2' | 'TLSv1.3'; allowHalfOpen?: boolean } = {}): Promise<TLSSocket> {
    return new Promise((resolve, reject) => {
      const socket = tlsConnect(
        { port: proxy.port, host: '127.0.0.1', servername: 'proxy.test', ca: pki.caCert, ALPNProtocols: ['h2', 'http/1.1'], ...opts },
        () => resolve(socket),
      )
      socket.on('error', reject)
    })
  }


  it('closes a connection that never starts the TLS handshake within TIMEOUT', async () => {
    const socket = await connectRaw(proxy.port)
    socket.on('error', () => {})
    try {
      const started = Date.now()
      const closed = await Promise.race([once(socket, 'close').then(() => true), sleep(4000).then(() => false)])
      assert.ok(closed, 'the proxy kept a silent pre-handshake connection open for 4 s with TIMEOUT=1')
      assert.ok(Date.now() - started < 3000, `closed only after ${Date.now() - started} ms`)
    } finally {
      socket.destroy()
    }
  })

  it('closes a connection that stops in the middle of its ClientHello within TIMEOUT', async () => {
    const socket = await connectRaw(proxy.port)
    socket.on('error', () => {})
    try {
      // A TLS record header announcing a 512-byte handshake message, then nothing.
      socket.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]))
      const closed = await Promise.race([once(socket, 'close').then(() => true), sleep(4000).then(() => false)])
      assert.ok(closed, 'the proxy kept a half-handshaken connection open for 4 s with TIMEOUT=1')
    } finally {
      socket.destroy()
    }
  })

  it('still answers an HTTPS client that shuts down its sending side after the request', async () => {
    const socket = await tlsClient({ allowHalfOpen: true, minVersion: 'TLSv1.3' })
    const chunks: Buffer[] = []
    socket.on('data', (c: Buffer) => chunks.push(c))
    socket.write('GET /half-close HTTP/1.1\r\nHost: proxy.test\r\n\r\n')
    socket.end()
    await Promise.race([once(socket, 'close'), sleep(3000)])
    socket.destroy()
    assert.match(Buffer.concat(chunks).toString('latin1'), /^HTTP\/1\.1 200 /)
  })

  it('keeps serving a keep-alive connection opened before a certificate reload, and keeps TLS 1.2+ and ALPN http/1.1 after it', async () => {
    const early = await tlsClient()
    const oldFingerprint = early.getPeerCertificate().fingerprint256
    const next = tempDir()
    pki.issue(['proxy.test', '127.0.0.1'], next)
    copyFileSync(join(next, 'cert.pem'), join(certDir, 'cert.pem.new'))
    copyFileSync(join(next, 'key.pem'), join(certDir, 'key.pem.new'))
    renameSync(join(certDir, 'key.pem.new'), join(certDir, 'key.pem'))
    renameSync(join(certDir, 'cert.pem.new'), join(certDir, 'cert.pem'))
    await proxy.waitForLog((l) => l.msg === 'certificate reloaded')

    // The connection from before the reload still works.
    const chunks: Buffer[] = []
    early.on('data', (c: Buffer) => chunks.push(c))
    early.write('GET /after-reload HTTP/1.1\r\nHost: proxy.test\r\nConnection: close\r\n\r\n')
    await once(early, 'close')
    assert.match(Buffer.concat(chunks).toString('latin1'), /^HTTP\/1\.1 200 /)

    const fresh = await tlsClient()
    assert.notEqual(fresh.getPeerCertificate().fingerprint256, oldFingerprint)
    assert.equal(fresh.alpnProtocol, 'http/1.1')
    fresh.destroy()
    await assert.rejects(tlsClient({ maxVersion: 'TLSv1.1', minVersion: 'TLSv1' }))
  })
})

describe('shutdown of an HTTPS proxy', () => {
  it('exits within SHUTDOWN_TIMEOUT even while a client has not finished its TLS handshake', async () => {
    const certDir = tempDir()
    pki.issue(['proxy.test', '127.0.0.1'], certDir)
    const proxy = await startProxy({ env: { CERT_PATH: certDir, TIMEOUT: '1', SHUTDOWN_TIMEOUT: '1' }, config: 'upstreams: []\nrules: []\n' })
    const socket = await connectRaw(proxy.port)
    socket.on('error', () => {})
    try {
      await sleep(200)
      const started = Date.now()
      proxy.child.kill('SIGTERM')
      const exited = await Promise.race([proxy.exited.then(() => true), sleep(5000).then(() => false)])
      assert.ok(exited, `still running ${Date.now() - started} ms after SIGTERM with SHUTDOWN_TIMEOUT=1 and TIMEOUT=1`)
    } finally {
      socket.destroy()
      const gone = await Promise.race([proxy.exited.then(() => true), sleep(3000).then(() => false)])
      if (!gone) await proxy.stop('SIGKILL')
    }
  })
})

// ---------------------------------------------------------------------------

describe('HTTPS upstreams', () => {
  it('verifies an upstream given by IP address against the IP in its certificate, without SNI', async () => {
    const up = await startUpstream({ tls: pki.issue(['127.0.0.1']) })
    const proxy = await startProxy({ env: { NODE_EXTRA_CA_CERTS: pki.caCertFile }, config: config({ s: { port: up.port, scheme: 'https' } }, '  - { upstream: s, path: / }\n') })
    try {
      const { reply, json } = await sendJson<SeenRequest>(`${proxy.url}/by-ip`, { headers: { host: 'client.example' } })
      assert.equal(reply.status, 200)
      assert.equal(json.servername, false as unknown as string, 'no SNI for an IP address')
      assert.equal(json.headers.host, 'client.example', 'the client Host is sent over TLS without noHostRewrite')
    } finally {
      await proxy.stop()
      await up.close()
    }
  })

  it('answers 502 NP_ERR_UPSTREAM_TLS when the certificate is for another name, and TLS_SKIP_VERIFY accepts it', async () => {
    const up = await startUpstream({ tls: pki.issue(['other.example']) })
    const cfg = config({ s: { port: up.port, host: 'localhost', scheme: 'https' } }, '  - { upstream: s, path: / }\n')
    const strict = await startProxy({ env: { NODE_EXTRA_CA_CERTS: pki.caCertFile }, config: cfg })
    const lax = await startProxy({ env: { NODE_EXTRA_CA_CERTS: pki.caCertFile, TLS_SKIP_VERIFY: '1' }, config: cfg })
    try {
      const reply = await send(`${strict.url}/`)
      assert.equal(reply.status, 502)
      assert.match(reply.body, /NP_ERR_UPSTREAM_TLS/)
      const line = await accessLine(strict, '/')
      assert.equal(line.error, 'NP_ERR_UPSTREAM_TLS')
      assert.equal((await send(`${lax.url}/`)).status, 200)
    } finally {
      await strict.stop()
      await lax.stop()
      await up.close()
    }
  })

  it('verifies again when the upstream changes its certificate: an untrusted new one gets 502 NP_ERR_UPSTREAM_TLS, not a replay error', async () => {
    const up = await startUpstream({ tls: pki.issue(['localhost']) })
    const proxy = await startProxy({ env: { NODE_EXTRA_CA_CERTS: pki.caCertFile }, config: config({ s: { port: up.port, host: 'localhost', scheme: 'https' } }, '  - { upstream: s, path: / }\n') })
    try {
      assert.equal((await send(`${proxy.url}/before`)).status, 200)
      // The upstream switches to a certificate from a CA the proxy does not trust, and drops its kept-alive connections.
      const rogue = createPki().issue(['localhost'])
      ;(up.server as unknown as { setSecureContext(o: object): void }).setSecureContext({ cert: rogue.cert, key: rogue.key })
      up.server.closeAllConnections()
      const reply = await send(`${proxy.url}/after`)
      assert.equal(reply.status, 502)
      assert.match(reply.body, /NP_ERR_UPSTREAM_TLS/)
      assert.equal(up.requests.filter((r) => r.url === '/after').length, 0, 'nothing reached the untrusted server')
    } finally {
      await proxy.stop()
      await up.close()
    }
  })
})

// ---------------------------------------------------------------------------

describe('Upgrade tunnels', () => {
  let raw: ScriptedUpstream
  let halfClose: { port: number; close(): Promise<void> }
  let proxy: ProxyProcess

  const UPGRADE = (path: string, extra = ''): string => `GET ${path} HTTP/1.1\r\nHost: t.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n${extra}\r\n`

  before(async () => {
    raw = await ScriptedUpstream.start(answerWithPath, { noDelay: true })
    raw.on('/no-upgrade-header', 'HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n\r\n')
    raw.on('/other-protocol', 'HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n')
    raw.on('/unasked', 'HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n')
    raw.on('/refused', 'HTTP/1.1 403 Forbidden\r\ncontent-length: 4\r\n\r\nnope')
    raw.on('/ten-bytes', ({ socket }) => {
      socket.write('HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n')
      setTimeout(() => socket.end('0123456789'), 100)
    })
    raw.on('/flood', ({ socket }) => {
      socket.write('HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n')
      for (let i = 0; i < 64; i++) socket.write(Buffer.alloc(1024 * 1024, 0x61))
      ;(raw as unknown as { floodSocket: Socket }).floodSocket = socket
    })

    // Half-close: the upstream answers only once the client has finished sending.
    const server = createServer({ allowHalfOpen: true }, (socket) => {
      socket.on('error', () => {})
      let buf = ''
      let upgraded = false
      socket.setEncoding('latin1')
      socket.on('data', (c: string) => {
        buf += c
        if (!upgraded && buf.includes('\r\n\r\n')) {
          upgraded = true
          buf = buf.slice(buf.indexOf('\r\n\r\n') + 4)
          socket.write('HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n')
        }
      })
      socket.on('end', () => {
        socket.write(`got ${JSON.stringify(buf)} after your FIN`)
        setTimeout(() => socket.end(), 50)
      })
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    halfClose = { port: (server.address() as { port: number }).port, close: () => new Promise((r) => server.close(() => r())) }

    proxy = await startProxy({
      config: config({ raw: raw.port, half: halfClose.port }, '  - { upstream: half, path: /half }\n  - { upstream: raw, path: / }\n'),
    })
  })
  after(async () => {
    await proxy.stop()
    await raw.close()
    await halfClose.close()
  })

  it('answers 502 instead of opening a tunnel when the upstream answers 101 without an Upgrade header', async () => {
    const { text } = await exchangeRaw(proxy.port, UPGRADE('/no-upgrade-header'), 1500)
    assert.match(text, /^HTTP\/1\.1 502 /)
  })

  it('answers 502 when the upstream switches to a protocol the client did not ask for', async () => {
    const { text } = await exchangeRaw(proxy.port, UPGRADE('/other-protocol'), 1500)
    assert.match(text, /^HTTP\/1\.1 502 /)
  })

  it('answers 502 NP_ERR_UPSTREAM_PROTOCOL to a 101 for a request that asked for no upgrade', async () => {
    const { text } = await exchangeRaw(proxy.port, 'GET /unasked HTTP/1.1\r\nHost: t.example\r\nConnection: close\r\n\r\n')
    assert.match(text, /^HTTP\/1\.1 502 /)
    assert.match(text, /NP_ERR_UPSTREAM_PROTOCOL/)
  })

  it('relays a refused upgrade with its body and closes the client connection', async () => {
    const { text, closed } = await exchangeRaw(proxy.port, UPGRADE('/refused'))
    assert.match(text, /^HTTP\/1\.1 403 /)
    assert.match(text, /connection: close/i)
    assert.ok(text.endsWith('nope'))
    assert.ok(closed)
  })

  it('carries bytes the upstream sends after the client half-closed its side of the tunnel', async () => {
    const socket = await connectRaw(proxy.port)
    const chunks: Buffer[] = []
    socket.on('data', (c: Buffer) => chunks.push(c))
    socket.on('error', () => {})
    socket.write(UPGRADE('/half'))
    await sleep(200)
    socket.write('last words')
    socket.end()
    await Promise.race([once(socket, 'close'), sleep(3000)])
    const text = Buffer.concat(chunks).toString('latin1')
    assert.match(text, /^HTTP\/1\.1 101 /)
    assert.ok(text.endsWith('got "last words" after your FIN'), JSON.stringify(text))
  })

  it('does not buffer a tunnel without limit when the client stops reading', async () => {
    const socket = await connectRaw(proxy.port)
    socket.on('error', () => {})
    socket.write(UPGRADE('/flood'))
    await sleep(300)
    socket.pause()
    await sleep(1500)
    const upstreamSide = (raw as unknown as { floodSocket: Socket }).floodSocket
    // 64 MiB were written; the kernel buffers of two loopback hops hold far
    // less than 48 MiB, so most of it must still wait in the upstream.
    assert.ok(upstreamSide.writableLength > 16 * 1024 * 1024, `only ${upstreamSide.writableLength} bytes held back upstream`)
    socket.destroy()
  })

  it('logs as tunnel bytes only what the upstream sent after its 101 head', async () => {
    const { text } = await exchangeRaw(proxy.port, UPGRADE('/ten-bytes'))
    assert.ok(text.endsWith('0123456789'))
    const line = await accessLine(proxy, '/ten-bytes')
    assert.equal(line.status, 101)
    assert.equal(line.upgrade, 'websocket')
    assert.equal(line.bytes, 10)
  })
})

// ---------------------------------------------------------------------------

describe('retries on a kept-alive upstream connection that fails', () => {
  let raw: ScriptedUpstream
  let proxy: ProxyProcess

  /** The first request on each upstream connection is answered; later ones get `fail`. */
  function onReuse(fail: (req: ScriptedRequest) => void): (req: ScriptedRequest) => void {
    return (req) => (req.conn.requests.length === 1 ? answerWithPath(req) : fail(req))
  }

  before(async () => {
    raw = await ScriptedUpstream.start(answerWithPath, { noDelay: true })
    raw.on('/post-empty', onReuse(({ socket }) => socket.destroy()))
    raw.on('/patch', onReuse(({ socket }) => socket.destroy()))
    raw.on('/early-hints', onReuse(({ socket }) => {
      socket.write('HTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload\r\n\r\n')
      setTimeout(() => socket.destroy(), 100)
    }))
    raw.on('/partial-head', onReuse(({ socket }) => {
      socket.write('HTTP/1.1 200 OK\r\ncontent-')
      setTimeout(() => socket.destroy(), 100)
    }))
    raw.on('/always-reset', ({ socket }) => socket.destroy())
    raw.on('/delete', onReuse(({ socket }) => socket.destroy()))
    proxy = await startProxy({ config: config({ raw: raw.port }, '  - { upstream: raw, path: / }\n') })
  })
  after(async () => {
    await proxy.stop()
    await raw.close()
  })

  async function warmThen(path: string, method = 'GET'): Promise<{ status: number; body: string }> {
    assert.equal((await send(`${proxy.url}/warm`)).status, 200)
    return send(`${proxy.url}${path}`, { method })
  }

  it('never replays a POST, even one without a body', async () => {
    const reply = await warmThen('/post-empty', 'POST')
    assert.equal(reply.status, 502)
    assert.equal(raw.requestsFor('/post-empty').length, 1)
  })

  it('never replays a PATCH', async () => {
    const reply = await warmThen('/patch', 'PATCH')
    assert.equal(reply.status, 502)
    assert.equal(raw.requestsFor('/patch').length, 1)
  })

  it('replays a DELETE without a body once on a fresh connection', async () => {
    const reply = await warmThen('/delete', 'DELETE')
    assert.equal(reply.status, 200)
    assert.equal(raw.requestsFor('/delete').length, 2)
  })

  it('does not replay a request once a 103 Early Hints reached the client', async () => {
    const { text } = await exchangeRaw(proxy.port, 'GET /warm HTTP/1.1\r\nHost: r.example\r\n\r\nGET /early-hints HTTP/1.1\r\nHost: r.example\r\nConnection: close\r\n\r\n')
    assert.match(text, /HTTP\/1\.1 103 /)
    assert.match(text, /HTTP\/1\.1 502 /)
    assert.equal(raw.requestsFor('/early-hints').length, 1)
  })

  it('does not replay a request whose response head had started to arrive', async () => {
    const reply = await warmThen('/partial-head')
    assert.equal(reply.status, 502)
    assert.equal(raw.requestsFor('/partial-head').length, 1)
  })

  it('replays at most once: a fresh connection that fails too gives 502', async () => {
    const reply = await warmThen('/always-reset')
    assert.equal(reply.status, 502)
    assert.equal(raw.requestsFor('/always-reset').length, 2)
  })
})

// ---------------------------------------------------------------------------

describe('absolute-form targets, Host, forwarded headers, own endpoints and the access log', () => {
  let up: Upstream
  let slow: ScriptedUpstream
  let proxy: ProxyProcess
  let trustedProxy: ProxyProcess
  let dead: number

  before(async () => {
    up = await startUpstream()
    slow = await ScriptedUpstream.start(answerWithPath)
    dead = await freePort()
    const rules = `  - { upstream: a, host: a.example, path: / }
  - { upstream: fixed, host: fixed.example, path: / }
  - { upstream: dead, host: dead.example, path: / }
  - { upstream: slow, host: slow.example, path: / }
`
    const cfg = config({ a: up.port, fixed: { port: up.port, noHostRewrite: true }, dead, slow: slow.port }, rules)
    proxy = await startProxy({ env: { DEBUG: '1' }, config: cfg })
    trustedProxy = await startProxy({ env: { TRUSTED_PROXIES: '127.0.0.0/8' }, config: cfg })
  })
  after(async () => {
    await proxy.stop()
    await trustedProxy.stop()
    await up.close()
    await slow.close()
  })

  it('routes an absolute-form request by the URL authority and sends that authority as Host and X-Forwarded-Host', async () => {
    const { text } = await exchangeRaw(proxy.port, 'GET http://A.example:8080?q=1 HTTP/1.1\r\nHost: fixed.example\r\nConnection: close\r\n\r\n')
    const [head, body] = firstHead(text)
    assert.match(head, /^HTTP\/1\.1 200 /)
    const seen = JSON.parse(body) as SeenRequest
    assert.equal(seen.url, '/?q=1')
    assert.equal(seen.headers.host, 'A.example:8080')
    assert.equal(seen.headers['x-forwarded-host'], 'A.example:8080')
  })

  it('sends the upstream its own authority as Host with noHostRewrite, and the client\'s in X-Forwarded-Host', async () => {
    const { json } = await sendJson<SeenRequest>(`${proxy.url}/nhr`, { headers: { host: 'fixed.example' } })
    assert.equal(json.headers.host, `127.0.0.1:${up.port}`)
    assert.equal(json.headers['x-forwarded-host'], 'fixed.example')
  })

  it('refuses an absolute-form target with an empty host (RFC 9110 §4.2.1) with 400', async () => {
    const cfgProxy = await startProxy({ config: config({ a: up.port }, '  - { upstream: a, path: / }\n') })
    try {
      const { text } = await exchangeRaw(cfgProxy.port, 'GET http:///x HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n')
      assert.match(text, /^HTTP\/1\.1 400 /)
    } finally {
      await cfgProxy.stop()
    }
  })

  it('passes Forwarded and X-Real-IP on from a trusted proxy and extends its X-Forwarded-For', async () => {
    const { json } = await sendJson<SeenRequest>(`${trustedProxy.url}/t`, {
      headers: { host: 'a.example', forwarded: 'for=192.0.2.60;proto=https', 'x-real-ip': '192.0.2.60', 'x-forwarded-for': '192.0.2.60', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'public.example' },
    })
    assert.equal(json.headers.forwarded, 'for=192.0.2.60;proto=https')
    assert.equal(json.headers['x-real-ip'], '192.0.2.60')
    assert.equal(json.headers['x-forwarded-for'], '192.0.2.60, 127.0.0.1')
    assert.equal(json.headers['x-forwarded-proto'], 'https')
    assert.equal(json.headers['x-forwarded-host'], 'public.example')
  })

  it('drops Forwarded and X-Real-IP and replaces X-Forwarded-* from a client outside TRUSTED_PROXIES', async () => {
    const { json } = await sendJson<SeenRequest>(`${proxy.url}/u`, {
      headers: { host: 'a.example', forwarded: 'for=1.2.3.4', 'x-real-ip': '1.2.3.4', 'x-forwarded-for': '1.2.3.4', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'evil.example' },
    })
    assert.equal(json.headers.forwarded, undefined)
    assert.equal(json.headers['x-real-ip'], undefined)
    assert.equal(json.headers['x-forwarded-for'], '127.0.0.1')
    assert.equal(json.headers['x-forwarded-proto'], 'http')
    assert.equal(json.headers['x-forwarded-host'], 'a.example')
  })

  it('answers HEAD /.nanoproxy/health without a body, so the next request on the connection is read correctly', async () => {
    const { text } = await exchangeRaw(proxy.port, 'HEAD /.nanoproxy/health HTTP/1.1\r\nHost: x\r\n\r\nGET /.nanoproxy/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
    const [head, rest] = firstHead(text)
    assert.match(head, /^HTTP\/1\.1 200 /)
    assert.match(head, /content-length: 2/i)
    assert.match(rest, /^HTTP\/1\.1 200 /, `after the HEAD response came ${JSON.stringify(rest.slice(0, 20))}`)
  })

  it('answers HEAD with an error status (404, 502) without the error body', async () => {
    const notFound = await exchangeRaw(proxy.port, 'HEAD /x HTTP/1.1\r\nHost: nowhere.example\r\n\r\nGET /.nanoproxy/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
    const [h404, after404] = firstHead(notFound.text)
    assert.match(h404, /^HTTP\/1\.1 404 /)
    assert.match(after404, /^HTTP\/1\.1 200 /, `after the HEAD 404 came ${JSON.stringify(after404.slice(0, 30))}`)
    const badGateway = await exchangeRaw(proxy.port, 'HEAD /x HTTP/1.1\r\nHost: dead.example\r\n\r\nGET /.nanoproxy/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
    const [h502, after502] = firstHead(badGateway.text)
    assert.match(h502, /^HTTP\/1\.1 502 /)
    assert.match(after502, /^HTTP\/1\.1 200 /, `after the HEAD 502 came ${JSON.stringify(after502.slice(0, 30))}`)
  })

  it('serves /.nanoproxy/config with DEBUG as YAML, logged without an upstream', async () => {
    const reply = await send(`${proxy.url}/.nanoproxy/config`, { headers: { host: 'a.example' } })
    assert.equal(reply.status, 200)
    assert.match(reply.headers['content-type'] ?? '', /yaml/)
    assert.match(reply.body, /fixed\.example/)
    const line = await accessLine(proxy, '/.nanoproxy/config')
    assert.equal(line.upstream, undefined)
  })

  it('answers the health check for an upgrade request by routing it, not by itself', async () => {
    // Upgrade requests skip the own endpoints: with no rule for this host, 404.
    const { text } = await exchangeRaw(proxy.port, 'GET /.nanoproxy/health HTTP/1.1\r\nHost: nowhere.example\r\nConnection: Upgrade, close\r\nUpgrade: websocket\r\n\r\n')
    assert.match(text, /^HTTP\/1\.1 404 /)
  })

  it('logs a 404 without upstream or error, a 502 with both, and a client that reset the connection early as 499 aborted', async () => {
    await send(`${proxy.url}/log-404`, { headers: { host: 'nowhere.example' } })
    const l404 = await accessLine(proxy, '/log-404')
    assert.equal(l404.status, 404)
    assert.equal(l404.upstream, undefined)
    assert.equal(l404.error, undefined)
    assert.equal(l404.host, 'nowhere.example')

    await send(`${proxy.url}/log-502`, { headers: { host: 'dead.example' } })
    const l502 = await accessLine(proxy, '/log-502')
    assert.equal(l502.status, 502)
    assert.equal(l502.upstream, 'dead')
    assert.equal(l502.error, 'NP_ERR_UPSTREAM_CONNECT')
    assert.equal(l502.client, '127.0.0.1')

    slow.on('/log-499', () => {})
    const socket = await connectRaw(proxy.port)
    socket.write('GET /log-499 HTTP/1.1\r\nHost: slow.example\r\n\r\n')
    await sleep(300)
    socket.resetAndDestroy()
    const l499 = await accessLine(proxy, '/log-499')
    assert.equal(l499.status, 499)
    assert.equal(l499.aborted, true)
    assert.equal(l499.upstream, 'slow')
  })
})

// ---------------------------------------------------------------------------

describe('own endpoints while draining', () => {
  it('tells a client whose health check is answered during the drain that the connection closes', async () => {
    const slow = await ScriptedUpstream.start(answerWithPath)
    slow.on('/slow', (req) => void setTimeout(() => answerWithPath(req), 1500))
    const proxy = await startProxy({ env: { SHUTDOWN_TIMEOUT: '10' }, config: config({ slow: slow.port }, '  - { upstream: slow, path: / }\n') })
    try {
      const inFlight = send(`${proxy.url}/slow`)
      const b = await connectRaw(proxy.port)
      const chunks: Buffer[] = []
      b.on('data', (c: Buffer) => chunks.push(c))
      b.on('error', () => {})
      b.write('GET /.nanoproxy/health HTTP/1.1\r\n')
      await sleep(300)
      proxy.child.kill('SIGTERM')
      await proxy.waitForLog((l) => l.msg === 'shutting down')
      b.write('Host: x\r\n\r\n')
      await Promise.race([once(b, 'close'), sleep(3000)])
      const [head] = firstHead(Buffer.concat(chunks).toString('latin1'))
      assert.match(head, /^HTTP\/1\.1 200 /)
      assert.match(head, /connection: close/i)
      await inFlight
    } finally {
      await proxy.stop()
      await slow.close()
    }
  })
})
