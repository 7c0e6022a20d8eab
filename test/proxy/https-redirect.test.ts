// The Location of the plain-HTTP → https 308 (src/proxy/https-redirect.ts);
// the redirect itself on the wire is in tls-certificates.test.ts.

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { httpsLocation } from '../../src/proxy/https-redirect.ts'

describe('the https redirect Location', () => {
  it('leaves out port 443 and keeps any other', () => {
    assert.equal(httpsLocation('shop.example.com', 443, '/a?b=1'), 'https://shop.example.com/a?b=1')
    assert.equal(httpsLocation('shop.example.com', 8443, '/a'), 'https://shop.example.com:8443/a')
  })

  it('keeps the request path as sent, dot segments and percent-encodings included', () => {
    assert.equal(httpsLocation('h.example', 443, '/a/../b/%2F%41?x=%25'), 'https://h.example/a/../b/%2F%41?x=%25')
  })

  it('percent-encodes the visible ASCII a URI may not hold', () => {
    assert.equal(httpsLocation('h.example', 443, '/"<>^`{|}'), 'https://h.example/%22%3C%3E%5E%60%7B%7C%7D')
  })

  it('brackets an IPv6 host', () => {
    assert.equal(httpsLocation('::1', 8443, '/'), 'https://[::1]:8443/')
  })
})
