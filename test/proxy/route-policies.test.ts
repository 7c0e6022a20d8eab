// Per-route policies (docs/configuration.md, "Per-route policies"): real
// requests through the real proxy, asserting what the client and the
// upstream see.

import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { send, sendJson, sendRaw } from '../helpers/http-client.ts'
import { startProxy, type ProxyProcess } from '../helpers/proxy-process.ts'
import { config, handled, startUpstream, type SeenRequest, type Upstream } from '../helpers/upstreams.ts'

describe('per-route policies', () => {
  let up: Upstream
  let proxy: ProxyProcess

  before(async () => {
    up = await startUpstream({
      handler: (req, res) => {
        if (req.url === '/slow') {
          handled(res)
          setTimeout(() => res.end('late'), 1500)
          return
        }
        if (req.url === '/stall-body') {
          handled(res)
          res.writeHead(200, { 'content-length': 10 })
          res.write('12345')
          setTimeout(() => res.end('67890'), 1500)
          return
        }
        if (req.url === '/with-headers') {
          res.writeHead(200, { server: 'upstream/1.0', 'x-keep': 'yes', 'cache-control': 'public', 'content-length': 2 })
          res.end('ok')
        }
      },
    })
    proxy = await startProxy({
      config: config(
        { echo: up.port },
        `  - upstream: echo
    host: regex.example
    path: /something(/|$)(.*)
    matchMode: regex
    rewrite: { path: /$2 }
  - upstream: echo
    host: caseless.example
    path: /api/v[0-9]+/(.*)
    matchMode: regex
    ignoreCase: true
    rewrite: { path: /internal/$1 }
  - upstream: echo
    host: prefix.example
    path: /old
    matchMode: pathPrefix
    rewrite: { prefix: /new, hostname: backend.internal }
  - host: app.example
    path: /
    matchMode: exact
    redirect: { path: /app, statusCode: 302 }
  - upstream: echo
    host: app.example
    path: /
  - host: moved.example
    redirect: { scheme: https, hostname: new.example, statusCode: 301 }
  - host: port.example
    redirect: { port: 8080, prefix: /v2, statusCode: 307 }
    path: /v1
    matchMode: pathPrefix
  - upstream: echo
    host: force.example
    forceSslRedirect: true
  - upstream: echo
    host: headers.example
    requestHeaders:
      set: [{ name: X-Env, value: prod }]
      add: [{ name: x-multi, value: two }]
      remove: [x-debug]
    responseHeaders:
      set: [{ name: Cache-Control, value: no-store }]
      add: [{ name: x-served-by, value: nanoproxy }]
      remove: [server]
  - upstream: echo
    host: plain.example
  - upstream: echo
    host: small.example
    maxBodySize: 10
  - upstream: echo
    host: quick.example
    timeouts: { response: 0.3, idle: 0.3 }
  - upstream: echo
    host: deny.example
    deny: [127.0.0.1/32]
  - upstream: echo
    host: allow.example
    allow: [10.0.0.0/8, "2001:db8::/32"]
`,
      ),
      env: { TRUSTED_PROXIES: '127.0.0.1/32' },
    })
  })
  after(async () => {
    await proxy.stop()
    await up.close()
  })

  const echo = async (host: string, path: string, headers: Record<string, string | string[]> = {}) =>
    sendJson<SeenRequest>(`${proxy.url}${path}`, { headers: { host, ...headers } })

  it('rewrites the path with the capture groups of a regex rule, query kept', async () => {
    assert.equal((await echo('regex.example', '/something/new/path?x=1')).json.url, '/new/path?x=1')
    assert.equal((await echo('regex.example', '/something')).json.url, '/')
    assert.equal((await echo('regex.example', '/something/')).json.url, '/')
  })

  it('does not match a regex rule where the pattern does not match from the start', async () => {
    const reply = await send(`${proxy.url}/somethingelse`, { headers: { host: 'regex.example' } })
    // `/something(/|$)` needs a slash or the end after "something".
    assert.equal(reply.status, 404)
    assert.equal((await send(`${proxy.url}/x/something/a`, { headers: { host: 'regex.example' } })).status, 404)
  })

  it('matches an ignoreCase regex rule in any case and keeps the case of the captured part', async () => {
    assert.equal((await echo('caseless.example', '/API/V2/Users/Ann')).json.url, '/internal/Users/Ann')
  })

  it('replaces the matched prefix and the Host sent upstream', async () => {
    const { json } = await echo('prefix.example', '/old/a/b?q')
    assert.equal(json.url, '/new/a/b?q')
    assert.equal(json.headers.host, 'backend.internal')
    assert.equal((await echo('prefix.example', '/old')).json.url, '/new')
  })

  it('redirects the root of a host to its app root with 302 and forwards everything else', async () => {
    const reply = await send(`${proxy.url}/?a=b`, { headers: { host: 'app.example' } })
    assert.equal(reply.status, 302)
    assert.equal(reply.headers.location, 'http://app.example/app?a=b')
    assert.equal((await echo('app.example', '/app')).json.url, '/app')
    assert.equal(up.requests.filter((r) => r.url.startsWith('/?a=b')).length, 0, 'the redirected request never reached the upstream')
  })

  it('redirects to another scheme and host with the scheme default port left out', async () => {
    const reply = await send(`${proxy.url}/x?y`, { headers: { host: 'moved.example:8000' } })
    assert.equal(reply.status, 301)
    assert.equal(reply.headers.location, 'https://new.example/x?y')
  })

  it('redirects to another port with the matched prefix replaced, keeping 307', async () => {
    const reply = await send(`${proxy.url}/v1/items/7`, { headers: { host: 'port.example' } })
    assert.equal(reply.status, 307)
    assert.equal(reply.headers.location, 'http://port.example:8080/v2/items/7')
  })

  it('answers plain HTTP with 308 to https when forceSslRedirect is set, without a certificate', async () => {
    const reply = await send(`${proxy.url}/pay?id=3`, { headers: { host: 'force.example' } })
    assert.equal(reply.status, 308)
    assert.equal(reply.headers.location, 'https://force.example/pay?id=3')
  })

  it('forwards a forceSslRedirect request that a trusted proxy says came over https', async () => {
    const { reply, json } = await echo('force.example', '/pay', { 'x-forwarded-proto': 'https' })
    assert.equal(reply.status, 200)
    assert.equal(json.url, '/pay')
  })

  it('sets, adds and removes request headers on the way upstream', async () => {
    const { json } = await echo('headers.example', '/h', { 'x-env': 'dev', 'x-multi': 'one', 'x-debug': '1', 'x-other': 'kept' })
    assert.equal(json.headers['x-env'], 'prod')
    assert.equal(json.headers['x-multi'], 'one, two')
    assert.equal(json.headers['x-debug'], undefined)
    assert.equal(json.headers['x-other'], 'kept')
    assert.equal(json.rawHeaders.filter((h) => h.toLowerCase() === 'x-env').length, 1, 'set replaces, never duplicates')
  })

  it('sets, adds and removes response headers on the way back', async () => {
    const reply = await send(`${proxy.url}/with-headers`, { headers: { host: 'headers.example' } })
    assert.equal(reply.status, 200)
    assert.equal(reply.body, 'ok')
    assert.equal(reply.headers['cache-control'], 'no-store')
    assert.equal(reply.headers['x-served-by'], 'nanoproxy')
    assert.equal(reply.headers.server, undefined)
    assert.equal(reply.headers['x-keep'], 'yes')
  })

  it('leaves requests of a rule without policies untouched', async () => {
    const { json } = await echo('plain.example', '/with?q', { 'x-debug': '1' })
    assert.equal(json.url, '/with?q')
    assert.equal(json.headers['x-debug'], '1')
    const reply = await send(`${proxy.url}/with-headers`, { headers: { host: 'plain.example' } })
    assert.equal(reply.headers.server, 'upstream/1.0')
    assert.equal(reply.headers['cache-control'], 'public')
  })

  it('answers 413 to a declared body larger than maxBodySize without forwarding it, and forwards one at the limit', async () => {
    const before = up.requests.length
    const big = await send(`${proxy.url}/upload`, { method: 'POST', headers: { host: 'small.example' }, body: 'x'.repeat(11) })
    assert.equal(big.status, 413)
    assert.match(big.body, /NP_ERR_BODY_TOO_LARGE/)
    assert.equal(up.requests.length, before, 'the upstream never saw it')
    const { reply, json } = await sendJson<SeenRequest>(`${proxy.url}/upload`, { method: 'POST', headers: { host: 'small.example' }, body: 'x'.repeat(10) })
    assert.equal(reply.status, 200)
    assert.equal(json.bodyLength, 10)
  })

  it('answers 413 without 100 Continue to an Expect: 100-continue request whose length is over the limit', async () => {
    const raw = await sendRaw(proxy.port, 'POST /u HTTP/1.1\r\nhost: small.example\r\ncontent-length: 1000\r\nexpect: 100-continue\r\n\r\n')
    assert.match(raw, /^HTTP\/1\.1 413 /)
    assert.doesNotMatch(raw, /100 Continue/)
    assert.match(raw, /\r\nconnection: close\r\n/)
  })

  it('answers 413 to a chunked body once it grows past maxBodySize', async () => {
    const raw = await sendRaw(proxy.port, 'POST /u HTTP/1.1\r\nhost: small.example\r\ntransfer-encoding: chunked\r\n\r\n8\r\n12345678\r\n8\r\n12345678\r\n0\r\n\r\n')
    assert.match(raw, /^HTTP\/1\.1 413 /)
    const ok = await sendRaw(proxy.port, 'POST /u HTTP/1.1\r\nhost: small.example\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n5\r\n12345\r\n5\r\n12345\r\n0\r\n\r\n')
    assert.match(ok, /^HTTP\/1\.1 200 /)
    assert.match(ok, /"bodyLength":10/)
  })

  it('answers 504 when the upstream takes longer than the rule\'s response timeout, while a rule without one waits (TIMEOUT)', async () => {
    const t0 = performance.now()
    const reply = await send(`${proxy.url}/slow`, { headers: { host: 'quick.example' } })
    const ms = performance.now() - t0
    assert.equal(reply.status, 504)
    assert.match(reply.body, /NP_ERR_UPSTREAM_TIMEOUT/)
    assert.ok(ms < 1400, `answered after ${ms.toFixed(0)} ms, before the upstream's 1.5 s`)
    const patient = await send(`${proxy.url}/slow`, { headers: { host: 'plain.example' } })
    assert.equal(patient.status, 200)
    assert.equal(patient.body, 'late')
  })

  it('cuts a response whose body goes quiet for longer than the rule\'s idle timeout', async () => {
    const raw = await sendRaw(proxy.port, 'GET /stall-body HTTP/1.1\r\nhost: quick.example\r\n\r\n', 3000)
    assert.match(raw, /^HTTP\/1\.1 200 /)
    assert.ok(raw.endsWith('12345'), 'the client got the first half, then the connection closed')
  })

  it('answers 403 to a client address in the rule\'s deny list and forwards others', async () => {
    const before = up.requests.length
    const refused = await send(`${proxy.url}/`, { headers: { host: 'deny.example' } })
    assert.equal(refused.status, 403)
    assert.match(refused.body, /NP_ERR_FORBIDDEN/)
    assert.equal(up.requests.length, before, 'nothing reached the upstream')
    // The peer is a trusted proxy (TRUSTED_PROXIES=127.0.0.1/32): the client is the address it reports.
    assert.equal((await echo('deny.example', '/', { 'x-forwarded-for': '203.0.113.9' })).reply.status, 200)
  })

  it('forwards only client addresses in the rule\'s allow list, read through trusted proxies from the right', async () => {
    assert.equal((await send(`${proxy.url}/`, { headers: { host: 'allow.example' } })).status, 403, 'the peer itself, 127.0.0.1, is not allowed')
    assert.equal((await echo('allow.example', '/', { 'x-forwarded-for': '10.1.2.3' })).reply.status, 200)
    assert.equal((await echo('allow.example', '/', { 'x-forwarded-for': '10.1.2.3, 127.0.0.1' })).reply.status, 200, 'a trusted hop is skipped')
    assert.equal((await echo('allow.example', '/', { 'x-forwarded-for': '2001:db8::7' })).reply.status, 200)
    const spoofed = await send(`${proxy.url}/`, { headers: { host: 'allow.example', 'x-forwarded-for': '10.9.9.9, 203.0.113.5' } })
    assert.equal(spoofed.status, 403, 'an address left of the first untrusted one is ignored: the client could have written it')
  })

  it('answers a HEAD redirect with the head alone', async () => {
    const raw = await sendRaw(proxy.port, 'HEAD / HTTP/1.1\r\nhost: app.example\r\nconnection: close\r\n\r\n')
    assert.match(raw, /^HTTP\/1\.1 302 Found\r\n/)
    assert.match(raw, /\r\nlocation: http:\/\/app\.example\/app\r\n/)
    assert.ok(raw.endsWith('\r\n\r\n'), 'no body after the head')
  })
})

describe('regular-expression rules on hostile paths', () => {
  let up: Upstream
  let proxy: ProxyProcess
  const patterns = ['/(a+)+$', '/(.*)(.*)(.*)x', '/(a|a)*b', '/([a-z]+)*[0-9]$', '/(\\w+\\s?)*$']

  before(async () => {
    up = await startUpstream()
    let rules = ''
    patterns.forEach((p, i) => {
      rules += `  - upstream: echo\n    host: h${i}.example\n    path: ${JSON.stringify(p)}\n    matchMode: regex\n    ignoreCase: true\n`
    })
    proxy = await startProxy({ config: config({ echo: up.port }, rules) })
  })
  after(async () => {
    await proxy.stop()
    await up.close()
  })

  it('answers a 15 KB hostile path (the longest a request head allows) for every accepted pattern in well under a second', async () => {
    // A backtracking engine takes longer than a test run on any of these.
    const path = '/' + 'a'.repeat(15_000) + '!'
    for (let i = 0; i < patterns.length; i++) {
      const t0 = performance.now()
      const reply = await send(`${proxy.url}${path}`, { headers: { host: `h${i}.example` } })
      const ms = performance.now() - t0
      assert.equal(reply.status, 404, `pattern ${patterns[i]}`)
      assert.ok(ms < 1000, `pattern ${patterns[i]} took ${ms.toFixed(0)} ms`)
    }
    const { json } = await sendJson<SeenRequest>(`${proxy.url}/${'a'.repeat(15_000)}`, { headers: { host: 'h0.example' } })
    assert.equal(json.url.length, 15_001, 'a path the pattern matches is forwarded')
  })
})
