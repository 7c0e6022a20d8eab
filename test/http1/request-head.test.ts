import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ParseError } from '../../src/http1/parse-error.ts'
import { parseRequestHead } from '../../src/http1/request-head.ts'

const parse = (lines: string[]): ReturnType<typeof parseRequestHead> => parseRequestHead(lines.join('\r\n') + '\r\n\r\n')

function rejects(lines: string[], code: string, status = 400): void {
  assert.throws(
    () => parse(lines),
    (err: unknown) => err instanceof ParseError && err.code === code && err.status === status,
  )
}

describe('request head parsing', () => {
  it('reads the request line and the framing headers', () => {
    const head = parse(['POST /a?b=c HTTP/1.1', 'Host: example.com', 'Content-Length: 12', 'X-Thing:  spaced value  '])
    assert.equal(head.method, 'POST')
    assert.equal(head.target, '/a?b=c')
    assert.equal(head.minor, 1)
    assert.equal(head.host, 'example.com')
    assert.equal(head.contentLength, 12)
    assert.equal(head.hasBody, true)
    assert.equal(head.persistent, true)
  })

  it('passes end-to-end headers on as written and leaves hop-by-hop ones out', () => {
    const head = parse([
      'GET / HTTP/1.1',
      'Host: a',
      'X-One: 1',
      'Connection: keep-alive, X-Secret',
      'Keep-Alive: timeout=5',
      'TE: trailers',
      'Proxy-Connection: keep-alive',
      'Cookie: a=1',
      'Cookie: b=2',
      'X-Secret: hidden',
    ])
    assert.equal(head.passthrough, 'X-One: 1\r\nCookie: a=1\r\nCookie: b=2\r\nX-Secret: hidden\r\n')
    assert.deepEqual(head.connectionNames, ['x-secret'])
    assert.equal(head.passthroughWithout(head.connectionNames), 'X-One: 1\r\nCookie: a=1\r\nCookie: b=2\r\n')
  })

  it('joins repeated X-Forwarded-For values and keeps Forwarded apart for trusted proxies only', () => {
    const head = parse(['GET / HTTP/1.1', 'Host: a', 'X-Forwarded-For: 1.1.1.1', 'X-Forwarded-For: 2.2.2.2', 'Forwarded: for=3.3.3.3'])
    assert.equal(head.forwardedFor, '1.1.1.1, 2.2.2.2')
    assert.equal(head.trustedOnly, 'Forwarded: for=3.3.3.3\r\n')
    assert.equal(head.passthrough, '')
  })

  it('answers a later HTTP/1.x minor version as HTTP/1.1 (RFC 9110 §2.5)', () => {
    assert.equal(parse(['GET / HTTP/1.2', 'Host: a']).minor, 1)
  })

  it('treats HTTP/1.0 as closing unless keep-alive is asked for', () => {
    assert.equal(parse(['GET / HTTP/1.0']).persistent, false)
    assert.equal(parse(['GET / HTTP/1.0', 'Connection: Keep-Alive']).persistent, true)
    assert.equal(parse(['GET / HTTP/1.1', 'Host: a', 'Connection: close']).persistent, false)
  })

  it('reads a chunked body declaration', () => {
    const head = parse(['POST / HTTP/1.1', 'Host: a', 'Transfer-Encoding: Chunked'])
    assert.equal(head.chunked, true)
    assert.equal(head.hasBody, true)
  })

  it('rejects a missing Host on HTTP/1.1 but not on HTTP/1.0 (RFC 9112 §3.2)', () => {
    rejects(['GET / HTTP/1.1'], 'HPE_MISSING_HOST')
    assert.equal(parse(['GET / HTTP/1.0']).host, undefined)
  })

  it('rejects two Host headers', () => rejects(['GET / HTTP/1.1', 'Host: a', 'Host: b'], 'HPE_DUPLICATE_HOST'))

  it('rejects Content-Length with Transfer-Encoding (request smuggling)', () =>
    rejects(['POST / HTTP/1.1', 'Host: a', 'Content-Length: 3', 'Transfer-Encoding: chunked'], 'HPE_UNEXPECTED_CONTENT_LENGTH'))

  for (const value of ['+5', '-1', '5 5', '0x10', '', '5, 5', '1234567890123456']) {
    it(`rejects Content-Length ${JSON.stringify(value)}`, () => rejects(['POST / HTTP/1.1', 'Host: a', `Content-Length: ${value}`], 'HPE_INVALID_CONTENT_LENGTH'))
  }

  it('rejects two Content-Length headers even when equal', () =>
    rejects(['POST / HTTP/1.1', 'Host: a', 'Content-Length: 1', 'Content-Length: 1'], 'HPE_UNEXPECTED_CONTENT_LENGTH'))

  it('rejects Transfer-Encoding on HTTP/1.0 (RFC 9112 §6.1)', () => rejects(['POST / HTTP/1.0', 'Transfer-Encoding: chunked'], 'HPE_INVALID_TRANSFER_ENCODING'))

  it('rejects a body whose last coding is not chunked, and answers 501 to codings it cannot pass on', () => {
    rejects(['POST / HTTP/1.1', 'Host: a', 'Transfer-Encoding: gzip'], 'HPE_INVALID_TRANSFER_ENCODING')
    rejects(['POST / HTTP/1.1', 'Host: a', 'Transfer-Encoding: chunked, gzip'], 'HPE_INVALID_TRANSFER_ENCODING')
    rejects(['POST / HTTP/1.1', 'Host: a', 'Transfer-Encoding: gzip, chunked'], 'HPE_NOT_IMPLEMENTED', 501)
    rejects(['POST / HTTP/1.1', 'Host: a', 'Transfer-Encoding: chunked', 'Transfer-Encoding: chunked'], 'HPE_INVALID_TRANSFER_ENCODING')
  })

  it('rejects whitespace before the colon (RFC 9112 §5.1)', () => rejects(['GET / HTTP/1.1', 'Host : a'], 'HPE_INVALID_HEADER_TOKEN'))
  it('rejects obs-fold continuation lines (RFC 9112 §5.2)', () => rejects(['GET / HTTP/1.1', 'Host: a', 'X-A: b', ' c'], 'HPE_INVALID_HEADER_TOKEN'))
  it('rejects a bare CR inside a header value', () => rejects(['GET / HTTP/1.1', 'Host: a', 'X-A: b\rc'], 'HPE_INVALID_HEADER_TOKEN'))
  it('rejects a NUL inside a header value', () => rejects(['GET / HTTP/1.1', 'Host: a', 'X-A: b\0c'], 'HPE_INVALID_HEADER_TOKEN'))
  it('rejects a bare LF inside the head', () => rejects(['GET / HTTP/1.1', 'Host: a\nX-A: b'], 'HPE_INVALID_HEADER_TOKEN'))
  it('rejects an empty header name', () => rejects(['GET / HTTP/1.1', 'Host: a', ': b'], 'HPE_INVALID_HEADER_TOKEN'))
  it('rejects a method with a non-token character', () => rejects(['G(T / HTTP/1.1', 'Host: a'], 'HPE_INVALID_METHOD'))
  it('rejects a target with a control character', () => rejects(['GET /a\x01b HTTP/1.1', 'Host: a'], 'HPE_INVALID_URL'))
  it('rejects two spaces in the request line', () => rejects(['GET  / HTTP/1.1', 'Host: a'], 'HPE_INVALID_URL'))

  for (const version of ['HTTP/2.0', 'HTTP/1.x', 'http/1.1', 'HTTP/1.1 ', 'HTTP/1', 'HTTP/1.10']) {
    it(`rejects the version ${JSON.stringify(version)}`, () => rejects([`GET / ${version}`, 'Host: a'], 'HPE_INVALID_VERSION'))
  }

  it('accepts obs-text (bytes above 0x7f) in header values but not in the target', () => {
    assert.equal(parse(['GET /cafe HTTP/1.1', 'Host: a', 'X-Name: caf\xe9']).passthrough, 'X-Name: caf\xe9\r\n')
    rejects(['GET /caf\xe9 HTTP/1.1', 'Host: a'], 'HPE_INVALID_URL')
  })

  it('rejects a lower-case method (methods are case-sensitive)', () => rejects(['get / HTTP/1.1', 'Host: a'], 'HPE_INVALID_METHOD'))

  it('accepts extension methods made of upper-case letters, - and _', () => {
    assert.equal(parse(['PROPFIND / HTTP/1.1', 'Host: a']).method, 'PROPFIND')
    assert.equal(parse(['VERSION-CONTROL / HTTP/1.1', 'Host: a']).method, 'VERSION-CONTROL')
  })

  it('refuses a # anywhere in the request target (RFC 9112 §3.2: no fragment)', () => {
    rejects(['GET /admin#x HTTP/1.1', 'Host: a'], 'HPE_INVALID_URL')
    rejects(['GET http://a/x#y HTTP/1.1', 'Host: a'], 'HPE_INVALID_URL')
  })

  it('leaves out header names with "_" unless asked to keep them, and records them', () => {
    const lines = ['GET / HTTP/1.1', 'Host: a', 'X_Forwarded_For: 6.6.6.6', 'X-Ok: 1', 'Some_Thing: 2']
    const head = parse(lines)
    assert.equal(head.passthrough, 'X-Ok: 1\r\n')
    assert.deepEqual(head.droppedUnderscoreNames, ['x_forwarded_for', 'some_thing'])
    const kept = parseRequestHead(lines.join('\r\n') + '\r\n\r\n', true)
    assert.equal(kept.passthrough, 'X_Forwarded_For: 6.6.6.6\r\nX-Ok: 1\r\nSome_Thing: 2\r\n')
    assert.equal(kept.droppedUnderscoreNames, undefined)
  })

  it('leaves out HTTP2-Settings, named in Connection or not', () => {
    const head = parse(['GET / HTTP/1.1', 'Host: a', 'HTTP2-Settings: AAMAAABk', 'X-Ok: 1'])
    assert.equal(head.passthrough, 'X-Ok: 1\r\n')
  })
})
