import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { sendRaw } from '../helpers/http-client.ts'
import { startProxy, type ProxyProcess } from '../helpers/proxy-process.ts'
import { config, startUpstream, type Upstream } from '../helpers/upstreams.ts'

describe('malformed requests', () => {
  let up: Upstream
  let proxy: ProxyProcess

  before(async () => {
    up = await startUpstream()
    proxy = await startProxy({ env: { TIMEOUT: '1' }, config: config({ echo: up.port }, '  - { upstream: echo, path: / }\n') })
  })
  after(async () => {
    await proxy.stop()
    await up.close()
  })

  const statusOf = (response: string): number => Number(/^HTTP\/1\.[01] (\d{3})/.exec(response)?.[1] ?? 0)

  const cases: [string, string, number][] = [
    ['a garbage request line', 'HELLO\r\n\r\n', 400],
    ['a request line with a space in the target', 'GET /a b HTTP/1.1\r\nHost: a\r\n\r\n', 400],
    ['both Content-Length and Transfer-Encoding (request smuggling)', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 400],
    ['two different Content-Length values', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!', 400],
    ['a header name with a space before the colon', 'GET / HTTP/1.1\r\nHost : a\r\n\r\n', 400],
    ['no Host header on HTTP/1.1 (RFC 9112 §3.2)', 'GET / HTTP/1.1\r\n\r\n', 400],
    ['two Host headers (RFC 9112 §3.2)', 'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n', 400],
    ['headers larger than 16 KiB', `GET / HTTP/1.1\r\nHost: a\r\nX-Big: ${'x'.repeat(20_000)}\r\n\r\n`, 431],
    ['an unsupported request target form', 'OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n', 400],
    ['a CONNECT request (this is not a forward proxy)', 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n', 405],
  ]
  for (const [what, raw, status] of cases) {
    it(`answers ${status} to ${what}, without reaching the upstream`, async () => {
      const before = up.requests.length
      const response = await sendRaw(proxy.port, raw)
      assert.equal(statusOf(response), status, response.slice(0, 200))
      assert.equal(up.requests.length, before, 'the upstream must not see the request')
    })
  }

  it('answers 400 to an invalid chunk size found while the body streams upstream', async () => {
    const response = await sendRaw(proxy.port, 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n')
    assert.equal(statusOf(response), 400, response.slice(0, 200))
  })

  it('times out a client that sends its headers too slowly (408)', async () => {
    const { connect } = await import('node:net')
    const started = Date.now()
    const response = await new Promise<string>((resolve) => {
      const socket = connect(proxy.port, '127.0.0.1')
      let data = ''
      socket.setEncoding('latin1').on('data', (c: string) => (data += c))
      socket.on('close', () => resolve(data))
      socket.on('error', () => resolve(data))
      socket.write('GET / HTTP/1.1\r\nHost: a\r\n')
      // ...and never finishes the head, trickling a header line now and then.
      const t = setInterval(() => socket.writable && socket.write('X-Drip: 1\r\n'), 300)
      socket.on('close', () => clearInterval(t))
    })
    const elapsed = Date.now() - started
    assert.equal(statusOf(response), 408)
    assert.ok(elapsed < 4000, `took ${elapsed} ms with TIMEOUT=1`)
  })

  it('keeps serving after malformed requests', async () => {
    const response = await sendRaw(proxy.port, 'GET /fine HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n')
    assert.equal(statusOf(response), 200)
  })

  it('logs each rejected request with its status and parser error', async () => {
    const line = await proxy.waitForLog((l) => l.msg === 'rejected malformed request' && l.status === 431)
    assert.equal(line.error, 'HPE_HEADER_OVERFLOW')
  })
})
