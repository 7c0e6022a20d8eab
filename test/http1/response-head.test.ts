import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ParseError } from '../../src/http1/parse-error.ts'
import { parseResponseHead } from '../../src/http1/response-head.ts'

const parse = (lines: string[]): ReturnType<typeof parseResponseHead> => parseResponseHead(lines.join('\r\n') + '\r\n\r\n')

function rejects(lines: string[], code: string): void {
  assert.throws(
    () => parse(lines),
    (err: unknown) => err instanceof ParseError && err.code === code,
  )
}

describe('response head parsing', () => {
  it('reads the status line, keeping the reason phrase', () => {
    const head = parse(['HTTP/1.1 404 Nothing Here', 'Content-Length: 5'])
    assert.equal(head.status, 404)
    assert.equal(head.reason, 'Nothing Here')
    assert.equal(head.contentLength, 5)
    assert.equal(head.reusable, true)
  })

  it('tolerates a status line without reason phrase', () => {
    assert.equal(parse(['HTTP/1.1 204']).status, 204)
    assert.equal(parse(['HTTP/1.1 204 ']).reason, '')
  })

  it('leaves hop-by-hop headers, Content-Length and the proxy identification out of the passthrough', () => {
    const head = parse([
      'HTTP/1.1 200 OK',
      'Set-Cookie: a=1',
      'Connection: keep-alive',
      'Keep-Alive: timeout=5, max=100',
      'Content-Length: 2',
      'X-Proxy: fake',
      'Set-Cookie: b=2',
    ])
    assert.equal(head.passthrough, 'Set-Cookie: a=1\r\nSet-Cookie: b=2\r\n')
    assert.equal(head.keepAliveTimeout, 5)
  })

  it('is not reusable after Connection: close, or on HTTP/1.0 without keep-alive', () => {
    assert.equal(parse(['HTTP/1.1 200 OK', 'Connection: close']).reusable, false)
    assert.equal(parse(['HTTP/1.0 200 OK']).reusable, false)
    assert.equal(parse(['HTTP/1.0 200 OK', 'Connection: keep-alive']).reusable, true)
  })

  it('accepts repeated equal Content-Length values (RFC 9112 §6.3) and refuses differing ones', () => {
    assert.equal(parse(['HTTP/1.1 200 OK', 'Content-Length: 3', 'Content-Length: 3']).contentLength, 3)
    rejects(['HTTP/1.1 200 OK', 'Content-Length: 3', 'Content-Length: 4'], 'HPE_UNEXPECTED_CONTENT_LENGTH')
  })

  it('refuses Content-Length together with Transfer-Encoding', () =>
    rejects(['HTTP/1.1 200 OK', 'Content-Length: 3', 'Transfer-Encoding: chunked'], 'HPE_UNEXPECTED_CONTENT_LENGTH'))

  it('refuses transfer codings other than chunked alone', () => {
    rejects(['HTTP/1.1 200 OK', 'Transfer-Encoding: gzip, chunked'], 'HPE_INVALID_TRANSFER_ENCODING')
    rejects(['HTTP/1.0 200 OK', 'Transfer-Encoding: chunked'], 'HPE_INVALID_TRANSFER_ENCODING')
    assert.equal(parse(['HTTP/1.1 200 OK', 'Transfer-Encoding: chunked']).chunked, true)
  })

  for (const line of ['HTTP/2 200 OK', 'HTTP/1.1 20 OK', 'HTTP/1.1 abc OK', 'HTTP/1.1 600 Odd', 'ICY 200 OK', 'HTTP/1.1  200 OK']) {
    it(`refuses the status line ${JSON.stringify(line)}`, () => {
      assert.throws(() => parse([line]), ParseError)
    })
  }

  it('keeps the Upgrade line apart for a 101', () => {
    const head = parse(['HTTP/1.1 101 Switching Protocols', 'Upgrade: websocket', 'Connection: Upgrade', 'Sec-WebSocket-Accept: x'])
    assert.equal(head.upgradeLine, 'Upgrade: websocket\r\n')
    assert.equal(head.passthrough, 'Sec-WebSocket-Accept: x\r\n')
  })
})
