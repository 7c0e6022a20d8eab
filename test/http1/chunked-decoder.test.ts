import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ChunkedDecoder } from '../../src/http1/chunked-decoder.ts'
import { ParseError } from '../../src/http1/parse-error.ts'

/** Feeds `input` in pieces of `step` bytes; returns the body end (absolute) and the decoded data. */
function run(input: string, step = input.length): { end: number; data: string; done: boolean } {
  const decoder = new ChunkedDecoder()
  let data = ''
  decoder.onData = (d) => (data += d.toString('latin1'))
  const buf = Buffer.from(input, 'latin1')
  for (let at = 0; at < buf.length; at += step) {
    const piece = buf.subarray(at, Math.min(at + step, buf.length))
    const end = decoder.feed(piece, 0)
    if (decoder.done) return { end: at + end, data, done: true }
  }
  return { end: buf.length, data, done: false }
}

describe('chunked body framing', () => {
  const body = '5\r\nhello\r\n6;name=value\r\n world\r\n0\r\nTrailer-One: 1\r\n\r\n'

  it('finds the end of the body and decodes the chunk data', () => {
    const r = run(body + 'GET /next HTTP/1.1\r\n')
    assert.equal(r.done, true)
    assert.equal(r.end, body.length)
    assert.equal(r.data, 'hello world')
  })

  it('reads the same when the body arrives one byte at a time', () => {
    const r = run(body, 1)
    assert.equal(r.done, true)
    assert.equal(r.end, body.length)
    assert.equal(r.data, 'hello world')
  })

  it('reads upper- and lower-case hex sizes', () => {
    assert.equal(run(`A\r\n${'x'.repeat(10)}\r\na\r\n${'y'.repeat(10)}\r\n0\r\n\r\n`).data, 'x'.repeat(10) + 'y'.repeat(10))
  })

  it('is not done before the final empty line', () => {
    assert.equal(run('5\r\nhello\r\n0\r\n').done, false)
  })

  for (const [what, input] of [
    ['a size that is not hex', 'zz\r\nhello\r\n0\r\n\r\n'],
    ['an empty size', '\r\nhello\r\n0\r\n\r\n'],
    ['a size too large to be exact', 'fffffffffffffff\r\n'],
    ['data longer than its size', '3\r\nhello\r\n0\r\n\r\n'],
    ['a bare LF after the size', '5\nhello\r\n0\r\n\r\n'],
    ['whitespace after the size with no extension', '5 \r\nhello\r\n0\r\n\r\n'],
    ['a control character in an extension', '5;a=\x01\r\nhello\r\n0\r\n\r\n'],
    ['a malformed trailer', '0\r\n: x\r\n\r\n'],
    ['a trailer name with a space', '0\r\nX T: 1\r\n\r\n'],
    ['a size line longer than 4 KiB', `5;${'a'.repeat(5000)}\r\nhello\r\n0\r\n\r\n`],
  ] as const) {
    it(`refuses ${what}`, () => {
      assert.throws(() => run(input), ParseError)
    })
  }
})
