// Black-box tests of the request checks that keep the proxy and the
// application reading a request the same way (docs/operations.md,
// "Security notes"): Host validation, h2c upgrades, header names with
// underscores. Raw sockets on both sides; the head each upstream received
// is asserted.

import assert from 'node:assert/strict'
import { once } from 'node:events'
import { after, before, describe, it } from 'node:test'
import { sendRaw } from '../helpers/http-client.ts'
import { startProxy, type ProxyProcess } from '../helpers/proxy-process.ts'
import { connectRaw, ScriptedUpstream, type ScriptedRequest } from '../helpers/raw-http.ts'
import { config } from '../helpers/upstreams.ts'

function answerOk({ socket, target }: ScriptedRequest): void {
  const body = `got ${target}`
  socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\n\r\n${body}`)
}

/** The header lines of a received head, lower-cased names. */
function headerNames(req: ScriptedRequest): string[] {
  return req.head
    .split('\r\n')
    .slice(1)
    .map((l) => l.slice(0, l.indexOf(':')).toLowerCase())
}

function status(text: string): number {
  return Number(/^HTTP\/1\.1 (\d{3}) /.exec(text)?.[1] ?? 0)
}

describe('Host validation (RFC 9112 §3.2, RFC 3986 §3.2.2)', () => {
  let up: ScriptedUpstream
  let proxy: ProxyProcess
  let trusted: ProxyProcess

  before(async () => {
    up = await ScriptedUpstream.start(answerOk)
    const cfg = config({ a: up.port }, '  - { upstream: a, path: / }\n')
    proxy = await startProxy({ config: cfg })
    trusted = await startProxy({ env: { TRUSTED_PROXIES: '127.0.0.0/8' }, config: cfg })
  })
  after(async () => {
    await proxy.stop()
    await trusted.stop()
    await up.close()
  })

  async function send(p: ProxyProcess, target: string, host: string | undefined, extra = ''): Promise<{ status: number; seen: ScriptedRequest | undefined }> {
    const before = up.requests.length
    const hostLine = host === undefined ? '' : `Host: ${host}\r\n`
    const text = await sendRaw(p.port, `GET ${target} HTTP/1.1\r\n${hostLine}${extra}Connection: close\r\n\r\n`)
    return { status: status(text), seen: up.requests.length > before ? up.requests.at(-1) : undefined }
  }

  const invalid: [string, string][] = [
    ['a space inside', 'a b.example'],
    ['a slash', 'a.example/admin'],
    ['a backslash', 'a.example\\admin'],
    ['userinfo', 'user@a.example'],
    ['a percent-encoded name', '%61.example'],
    ['an empty port', 'a.example:'],
    ['a port above 65535', 'a.example:65536'],
    ['a port of six digits', 'a.example:080080'],
    ['two ports', 'a.example:80:80'],
    ['a non-numeric port', 'a.example:http'],
    ['an unclosed IPv6 literal', '[::1'],
    ['an IPv6 literal with a zone', '[fe80::1%25eth0]'],
    ['bytes above 0x7F', 'caf\u00e9.example'],
  ]
  for (const [what, host] of invalid) {
    it(`answers 400 to a Host with ${what}, without reaching the upstream`, async () => {
      const r = await send(proxy, '/x', host)
      assert.equal(r.status, 400)
      assert.equal(r.seen, undefined)
    })
  }

  const invalidAuthority: [string, string][] = [
    ['userinfo', 'http://user@a.example/x'],
    ['an empty port', 'http://a.example:/x'],
    ['a port above 65535', 'http://a.example:70000/x'],
    ['a backslash', 'http://a.example\\@b.example/x'],
    ['no host before the port', 'http://:80/x'],
  ]
  for (const [what, target] of invalidAuthority) {
    it(`answers 400 to an absolute-form authority with ${what}, without reaching the upstream`, async () => {
      const r = await send(proxy, target, 'a.example')
      assert.equal(r.status, 400)
      assert.equal(r.seen, undefined)
    })
  }

  it('answers 400 to an invalid Host even when an absolute-form target gives the authority (RFC 9112 §3.2)', async () => {
    const r = await send(proxy, 'http://a.example/x', 'a.example:99999')
    assert.equal(r.status, 400)
    assert.equal(r.seen, undefined)
  })

  it('routes by the absolute-form authority when Host names another host, and forwards that authority (RFC 9112 §3.2.2)', async () => {
    const r = await send(proxy, 'http://A.example:8080/x', 'b.example')
    assert.equal(r.status, 200)
    assert.equal(r.seen!.headers.host, 'A.example:8080')
    assert.equal(r.seen!.headers['x-forwarded-host'], 'A.example:8080')
  })

  for (const host of ['A.Example:8080', '127.0.0.1:65535', '[::1]:8080', '[::1]', 'under_score.example', 'a.example.']) {
    it(`forwards a valid Host ${host} as Host and X-Forwarded-Host`, async () => {
      const r = await send(proxy, '/x', host)
      assert.equal(r.status, 200)
      assert.equal(r.seen!.headers.host, host)
      assert.equal(r.seen!.headers['x-forwarded-host'], host)
    })
  }

  it("replaces a trusted proxy's invalid X-Forwarded-Host with the validated Host", async () => {
    const r = await send(trusted, '/x', 'a.example', 'X-Forwarded-Host: evil.example/path@x\r\n')
    assert.equal(r.status, 200)
    assert.equal(r.seen!.headers['x-forwarded-host'], 'a.example')
  })

  it("keeps a trusted proxy's valid X-Forwarded-Host", async () => {
    const r = await send(trusted, '/x', 'a.example', 'X-Forwarded-Host: public.example:443\r\n')
    assert.equal(r.seen!.headers['x-forwarded-host'], 'public.example:443')
  })
})

describe('h2c upgrades are never tunnelled', () => {
  let main: ScriptedUpstream
  let next: ScriptedUpstream
  let proxy: ProxyProcess

  before(async () => {
    main = await ScriptedUpstream.start(answerOk)
    // An upstream that speaks h2c: it switches whenever asked, even when it should not.
    main.on('/switch', ({ socket }) => void socket.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n'))
    main.on('/ws', ({ socket }) => void socket.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n'))
    next = await ScriptedUpstream.start(answerOk)
    proxy = await startProxy({ config: config({ main: main.port, next: next.port }, '  - { upstream: next, path: /next }\n  - { upstream: main, path: / }\n') })
  })
  after(async () => {
    await proxy.stop()
    await main.close()
    await next.close()
  })

  const H2C = 'Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n'

  it('forwards an Upgrade: h2c request as a plain request, and routes the next request on the connection', async () => {
    const socket = await connectRaw(proxy.port)
    let text = ''
    socket.setEncoding('latin1').on('data', (c: string) => (text += c))
    socket.write(`GET /first HTTP/1.1\r\nHost: t.example\r\n${H2C}\r\n`)
    while (!text.includes('got /first')) await once(socket, 'data')
    // The request that an h2c tunnel would have carried past routing.
    socket.write('GET /next/secret HTTP/1.1\r\nHost: t.example\r\nConnection: close\r\n\r\n')
    await once(socket, 'close')
    assert.match(text, /^HTTP\/1\.1 200 OK\r\n[^]*got \/first/)
    assert.match(text, /HTTP\/1\.1 200 OK\r\n[^]*got \/next\/secret$/)
    const first = main.requestsFor('/first').at(-1)!
    assert.deepEqual(
      headerNames(first).filter((n) => ['upgrade', 'connection', 'http2-settings'].includes(n)),
      [],
      first.head,
    )
    assert.equal(next.requestsFor('/next/secret').length, 1, 'the second request went to the rule for /next')
    assert.equal(main.requestsFor('/next/secret').length, 0)
  })

  it('answers 502 instead of tunnelling when the upstream switches to h2c anyway', async () => {
    const text = await sendRaw(proxy.port, `GET /switch HTTP/1.1\r\nHost: t.example\r\n${H2C}\r\n`, 2000)
    assert.match(text, /^HTTP\/1\.1 502 [^]*NP_ERR_UPSTREAM_PROTOCOL/)
    assert.doesNotMatch(text, /101/)
  })

  it('drops HTTP2-Settings even when Connection does not name it', async () => {
    await sendRaw(proxy.port, 'GET /settings HTTP/1.1\r\nHost: t.example\r\nHTTP2-Settings: AAMAAABk\r\nConnection: close\r\n\r\n')
    const seen = main.requestsFor('/settings').at(-1)!
    assert.ok(!headerNames(seen).includes('http2-settings'), seen.head)
  })

  it('tunnels websocket from Upgrade: h2c, websocket, asking the upstream for websocket alone', async () => {
    const socket = await connectRaw(proxy.port)
    let text = ''
    socket.setEncoding('latin1').on('data', (c: string) => (text += c))
    socket.write('GET /ws HTTP/1.1\r\nHost: t.example\r\nConnection: Upgrade\r\nUpgrade: h2c, websocket\r\n\r\n')
    while (!text.includes('\r\n\r\n')) await once(socket, 'data')
    socket.destroy()
    assert.match(text, /^HTTP\/1\.1 101 /)
    const seen = main.requestsFor('/ws').at(-1)!
    assert.equal(seen.headers.upgrade, 'websocket')
    assert.match(seen.headers.connection ?? '', /upgrade/i)
  })

  it('forwards a request to upgrade to an unknown protocol as a plain request', async () => {
    const text = await sendRaw(proxy.port, 'GET /other HTTP/1.1\r\nHost: t.example\r\nConnection: Upgrade\r\nUpgrade: foo/1\r\n\r\n', 1000)
    assert.match(text, /^HTTP\/1\.1 200 OK\r\n[^]*got \/other/)
    const seen = main.requestsFor('/other').at(-1)!
    assert.equal(seen.headers.upgrade, undefined)
    assert.equal(seen.headers.connection, undefined)
  })
})

describe('request header names with underscores', () => {
  let up: ScriptedUpstream
  let proxy: ProxyProcess
  let allowing: ProxyProcess

  before(async () => {
    up = await ScriptedUpstream.start(answerOk)
    const cfg = config({ a: up.port }, '  - { upstream: a, path: / }\n')
    proxy = await startProxy({ env: { LOG_LEVEL: 'debug' }, config: cfg })
    allowing = await startProxy({ env: { ALLOW_UNDERSCORES_IN_HEADERS: 'true' }, config: cfg })
  })
  after(async () => {
    await proxy.stop()
    await allowing.stop()
    await up.close()
  })

  const SPOOFS = 'X_Forwarded_For: 6.6.6.6\r\nX_Real_IP: 6.6.6.6\r\nx-forwarded_host: evil.example\r\nSome_Header: 1\r\nX-Dashed: kept\r\n'

  it('drops them by default (X_Forwarded_For would reach a CGI/WSGI application as X-Forwarded-For), and logs them at debug level', async () => {
    await sendRaw(proxy.port, `GET /underscore HTTP/1.1\r\nHost: a.example\r\n${SPOOFS}Connection: close\r\n\r\n`)
    const seen = up.requestsFor('/underscore').at(-1)!
    assert.deepEqual(
      headerNames(seen).filter((n) => n.includes('_')),
      [],
      seen.head,
    )
    assert.equal(seen.headers['x-dashed'], 'kept')
    assert.equal(seen.headers['x-forwarded-for'], '127.0.0.1')
    const line = await proxy.waitForLog((l) => l.level === 'debug' && Array.isArray(l.headers))
    assert.deepEqual(line.headers, ['x_forwarded_for', 'x_real_ip', 'x-forwarded_host', 'some_header'])
  })

  it('drops them when Connection names other headers too', async () => {
    await sendRaw(proxy.port, `GET /underscore-conn HTTP/1.1\r\nHost: a.example\r\n${SPOOFS}Connection: close, x-dashed\r\n\r\n`)
    const seen = up.requestsFor('/underscore-conn').at(-1)!
    assert.deepEqual(
      headerNames(seen).filter((n) => n.includes('_') || n === 'x-dashed'),
      [],
      seen.head,
    )
  })

  it('passes them on unchanged with ALLOW_UNDERSCORES_IN_HEADERS=true', async () => {
    await sendRaw(allowing.port, `GET /underscore-allowed HTTP/1.1\r\nHost: a.example\r\n${SPOOFS}Connection: close\r\n\r\n`)
    const seen = up.requestsFor('/underscore-allowed').at(-1)!
    assert.ok(seen.head.includes(SPOOFS), seen.head)
  })

  it('refuses to start with ALLOW_UNDERSCORES_IN_HEADERS or RAW_PATHS set to something that is not true or false', async () => {
    for (const name of ['ALLOW_UNDERSCORES_IN_HEADERS', 'RAW_PATHS']) {
      const p = await startProxy({ env: { [name]: 'maybe' }, config: config({ a: up.port }, '  - { upstream: a, path: / }\n'), noWait: true })
      const { code } = await p.exited
      assert.notEqual(code, 0)
      assert.match(p.stderr + JSON.stringify(p.logs), new RegExp(`${name}="maybe" is not valid`))
    }
  })
})

