import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ERROR_CODES, httpStatusFor, upstreamError } from '../src/errors.ts'

function classify(code: string, message = 'boom'): { code: string; status: number } {
  const err = upstreamError(Object.assign(new Error(message), { code }), 'api')
  return { code: err.code, status: httpStatusFor(err.code) }
}

describe('upstream error classification', () => {
  // RFC 9110 §15.6.5: 504 when the upstream did not answer in time; §15.6.3: 502 otherwise.
  const rows: [string, string, string, number][] = [
    ['a connection timed out by the kernel', 'ETIMEDOUT', ERROR_CODES.UPSTREAM_TIMEOUT, 504],
    ['a refused connection', 'ECONNREFUSED', ERROR_CODES.UPSTREAM_CONNECT, 502],
    ['a name that does not resolve', 'ENOTFOUND', ERROR_CODES.UPSTREAM_CONNECT, 502],
    ['a reset connection', 'ECONNRESET', ERROR_CODES.UPSTREAM_RESET, 502],
    ['a write to a closed socket', 'EPIPE', ERROR_CODES.UPSTREAM_RESET, 502],
    ['an untrusted certificate', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', ERROR_CODES.UPSTREAM_TLS, 502],
    ['a certificate for another name', 'ERR_TLS_CERT_ALTNAME_INVALID', ERROR_CODES.UPSTREAM_TLS, 502],
    ['an invalid HTTP response', 'HPE_INVALID_CONSTANT', ERROR_CODES.UPSTREAM_PROTOCOL, 502],
  ]
  for (const [what, code, expected, status] of rows) {
    it(`maps ${what} (${code}) to ${expected} and HTTP ${status}`, () => {
      assert.deepEqual(classify(code), { code: expected, status })
    })
  }

  it('keeps the low-level error as the cause and names the upstream in the message', () => {
    const cause = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' })
    const err = upstreamError(cause, 'billing')
    assert.equal(err.cause, cause)
    assert.match(err.message, /upstream billing: connect ECONNREFUSED/)
  })

  it('maps no route to 404 and a bad request to 400', () => {
    assert.equal(httpStatusFor(ERROR_CODES.NO_ROUTE), 404)
    assert.equal(httpStatusFor(ERROR_CODES.BAD_REQUEST), 400)
  })
})
