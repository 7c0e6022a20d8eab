import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { connect } from 'node:net'
import { send, sendJson, sendRaw } from '../helpers/http-client.ts'
import { startProxy, type ProxyProcess } from '../helpers/proxy-process.ts'
import { config, startUpstream, type SeenRequest, type Upstream } from '../helpers/upstreams.ts'

describe('forwarding', () => {
  let up: Upstream
  let proxy: ProxyProcess

  before(async () => {
    up = await startUpstream()
    proxy = await startProxy({
      config: config(
        { echo: up.port, rewrite: { port: up.port, noHostRewrite: true } },
        `  - upstream: echo
    path: /strip
    stripPath: true
  - upstream: rewrite
    path: /rewrite
  - upstream: echo
    host: only.example
    path: /
  - upstream: echo
    path: /
    host: "*.wild.example"
  - upstream: echo
    path: /echo
`,
      ),
      env: { TRUSTED_PROXIES: '10.0.0.0/8' },
    })
  })
  after(async () => {
    await proxy.stop()
    await up.close()
  })

  const echo = async (path: string, opts: Parameters<typeof send>[1] = {}) => sendJson<SeenRequest>(`${proxy.url}${path}`, opts)

  it('preserves the Host header the client sent', async () => {
    const { json } = await echo('/echo', { headers: { host: 'app.example:8443' } })
    assert.equal(json.headers.host, 'app.example:8443')
  })

  it('sends the upstream its own host:port as Host when noHostRewrite is set', async () => {
    const { json } = await echo('/rewrite', { headers: { host: 'app.example' } })
    assert.equal(json.headers.host, `127.0.0.1:${up.port}`)
    assert.equal(json.headers['x-forwarded-host'], 'app.example')
  })

  it('sets X-Forwarded-For to the plain IPv4 client address, X-Forwarded-Host and X-Forwarded-Proto', async () => {
    const { json } = await echo('/echo', { headers: { host: 'app.example' } })
    assert.equal(json.headers['x-forwarded-for'], '127.0.0.1')
    assert.equal(json.headers['x-forwarded-host'], 'app.example')
    assert.equal(json.headers['x-forwarded-proto'], 'http')
  })

  it('replaces X-Forwarded-* sent by a client outside TRUSTED_PROXIES', async () => {
    const { json } = await echo('/echo', {
      headers: { 'x-forwarded-for': '6.6.6.6', 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'https' },
    })
    assert.equal(json.headers['x-forwarded-for'], '127.0.0.1')
    assert.notEqual(json.headers['x-forwarded-host'], 'evil.example')
    assert.equal(json.headers['x-forwarded-proto'], 'http')
  })

  it('drops Forwarded and X-Real-IP sent by a client outside TRUSTED_PROXIES', async () => {
    const { json } = await echo('/echo', { headers: { forwarded: 'for=6.6.6.6', 'x-real-ip': '6.6.6.6' } })
    assert.equal(json.headers.forwarded, undefined)
    assert.equal(json.headers['x-real-ip'], undefined)
  })

  it('strips the matched prefix before forwarding and keeps the query string byte for byte', async () => {
    const { json } = await echo('/strip/a%2Fb/c?x=1&y=%20z&&')
    assert.equal(json.url, '/a%2Fb/c?x=1&y=%20z&&')
  })

  it('decodes only escaped unreserved characters in the path, keeps %2F encoded, and never touches the query string', async () => {
    const { json } = await echo('/echo/%7Euser/a%2Fb;p=1?q=%C3%A9&r=%7E')
    assert.equal(json.url, '/echo/~user/a%2Fb;p=1?q=%C3%A9&r=%7E')
  })

  it('routes by host, case-insensitively and ignoring the port', async () => {
    const { json } = await echo('/anything', { headers: { host: 'ONLY.example:9999' } })
    assert.equal(json.url, '/anything')
    const miss = await send(`${proxy.url}/anything`, { headers: { host: 'other.example' } })
    assert.equal(miss.status, 404)
  })

  it('routes a wildcard host rule for one DNS label only', async () => {
    assert.equal((await send(`${proxy.url}/w`, { headers: { host: 'a.wild.example' } })).status, 200)
    assert.equal((await send(`${proxy.url}/w`, { headers: { host: 'a.b.wild.example' } })).status, 404)
    assert.equal((await send(`${proxy.url}/w`, { headers: { host: 'wild.example' } })).status, 404)
  })

  it('answers 404 with the error code when no rule matches', async () => {
    const reply = await send(`${proxy.url}/nowhere`)
    assert.equal(reply.status, 404)
    assert.match(reply.body, /NP_ERR_NO_ROUTE/)
  })

  it('removes hop-by-hop headers, including those named in Connection (RFC 9110 §7.6.1)', async () => {
    const raw =
      'GET /echo HTTP/1.1\r\nHost: a.example\r\nConnection: close, X-Secret-Hop\r\nX-Secret-Hop: 1\r\nKeep-Alive: timeout=5\r\n' +
      'TE: trailers\r\nProxy-Authorization: Basic eA==\r\nX-End-To-End: kept\r\n\r\n'
    const response = await sendRaw(proxy.port, raw)
    const body = JSON.parse(response.slice(response.indexOf('\r\n\r\n') + 4)) as SeenRequest
    for (const h of ['x-secret-hop', 'keep-alive', 'te', 'proxy-authorization']) {
      assert.equal(body.headers[h], undefined, `${h} must not be forwarded`)
    }
    assert.equal(body.headers['x-end-to-end'], 'kept')
  })

  it('removes hop-by-hop headers from the upstream response', async () => {
    const hop = await startUpstream({
      handler: (_req, res) => {
        res.writeHead(200, { connection: 'keep-alive, x-internal', 'x-internal': 'secret', 'keep-alive': 'timeout=5', 'x-app': 'yes' })
        res.end('ok')
      },
    })
    const p = await startProxy({ config: config({ hop: hop.port }, '  - upstream: hop\n    path: /\n') })
    try {
      const reply = await send(`${p.url}/`)
      assert.equal(reply.headers['x-internal'], undefined)
      assert.equal(reply.headers['x-app'], 'yes')
      assert.equal(reply.body, 'ok')
    } finally {
      await p.stop()
      await hop.close()
    }
  })

  it('adds X-Proxy and X-Proxy-Instance to responses, as the original NanoProxy does', async () => {
    const reply = await send(`${proxy.url}/echo`)
    assert.match(String(reply.headers['x-proxy']), /^NanoProxy\/\d+\.\d+\.\d+/)
    assert.ok(String(reply.headers['x-proxy-instance']).length > 0)
  })

  it('forwards request bodies and repeated headers unchanged', async () => {
    const body = 'x'.repeat(100_000)
    const { json } = await echo('/echo', { method: 'POST', body, headers: { 'x-multi': ['a', 'b'] } })
    assert.equal(json.method, 'POST')
    assert.equal(json.bodyLength, body.length)
    const multi = json.rawHeaders.filter((_, i, a) => i % 2 === 1 && a[i - 1]?.toLowerCase() === 'x-multi')
    assert.deepEqual(multi, ['a', 'b'])
  })

  it('answers Expect: 100-continue with 100 Continue, then the upstream response', async () => {
    const response = await new Promise<string>((resolve, reject) => {
      const socket = connect(proxy.port, '127.0.0.1')
      let data = ''
      let sentBody = false
      socket.setEncoding('latin1')
      socket.on('data', (c: string) => {
        data += c
        if (data.startsWith('HTTP/1.1 100') && !data.includes('\r\n\r\nHTTP/1.1 200')) {
          // Only now send the body, as a careful client would.
          if (!sentBody) socket.write('hello')
          sentBody = true
        }
        if (data.includes('"bodyLength":5')) {
          socket.destroy()
          resolve(data)
        }
      })
      socket.on('error', reject)
      socket.write('POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n')
    })
    assert.match(response, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 OK\r\n/)
    assert.equal(up.requests.at(-1)?.headers.expect, undefined)
  })

  it('accepts an absolute-form request target and routes by its authority (RFC 9112 §3.2.2)', async () => {
    const response = await sendRaw(proxy.port, 'GET http://only.example/abs?x=1 HTTP/1.1\r\nHost: ignored.example\r\nConnection: close\r\n\r\n')
    assert.match(response, /^HTTP\/1\.1 200 /)
    const body = JSON.parse(response.slice(response.indexOf('\r\n\r\n') + 4)) as SeenRequest
    assert.equal(body.url, '/abs?x=1')
    assert.equal(body.headers.host, 'only.example')
  })

  it('keeps client connections alive across requests', async () => {
    const response = await sendRaw(
      proxy.port,
      'GET /echo HTTP/1.1\r\nHost: a\r\n\r\nGET /echo HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n',
    )
    assert.equal(response.match(/HTTP\/1\.1 200 OK/g)?.length, 2)
  })

  it('answers /.nanoproxy/health with 200 OK on any host', async () => {
    const reply = await send(`${proxy.url}/.nanoproxy/health`, { headers: { host: 'whatever.example' } })
    assert.equal(reply.status, 200)
    assert.equal(reply.body, 'OK')
  })

  it('routes /.nanoproxy/config like any path when DEBUG is not set', async () => {
    const { json } = await echo('/.nanoproxy/config', { headers: { host: 'only.example' } })
    assert.equal(json.url, '/.nanoproxy/config')
  })

  it('writes one access-log line per request with method, host, path, status, upstream, bytes and duration', async () => {
    await send(`${proxy.url}/echo?log=1`, { headers: { host: 'log.example' } })
    const line = await proxy.waitForLog((l) => l.msg === 'request' && l.path === '/echo?log=1')
    assert.equal(line.method, 'GET')
    assert.equal(line.host, 'log.example')
    assert.equal(line.status, 200)
    assert.equal(line.upstream, 'echo')
    assert.ok(typeof line.bytes === 'number' && line.bytes > 0)
    assert.ok(typeof line.duration_ms === 'number')
  })
})

describe('forwarding from a trusted proxy', () => {
  it('appends the client address to X-Forwarded-For and keeps its X-Forwarded-Proto/Host', async () => {
    const up = await startUpstream()
    const proxy = await startProxy({
      config: config({ echo: up.port }, '  - upstream: echo\n    path: /\n'),
      env: { TRUSTED_PROXIES: '127.0.0.0/8, ::1' },
    })
    try {
      const { json } = await sendJson<SeenRequest>(`${proxy.url}/`, {
        headers: { 'x-forwarded-for': '203.0.113.7', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'shop.example' },
      })
      assert.equal(json.headers['x-forwarded-for'], '203.0.113.7, 127.0.0.1')
      assert.equal(json.headers['x-forwarded-proto'], 'https')
      assert.equal(json.headers['x-forwarded-host'], 'shop.example')
      const { json: more } = await sendJson<SeenRequest>(`${proxy.url}/`, { headers: { forwarded: 'for=203.0.113.7', 'x-real-ip': '203.0.113.7' } })
      assert.equal(more.headers.forwarded, 'for=203.0.113.7')
      assert.equal(more.headers['x-real-ip'], '203.0.113.7')
    } finally {
      await proxy.stop()
      await up.close()
    }
  })
})

describe('the config endpoint', () => {
  it('dumps the running config at /.nanoproxy/config when DEBUG is set', async () => {
    const proxy = await startProxy({
      config: config({ echo: 1234 }, '  - upstream: echo\n    path: /api\n'),
      env: { DEBUG: '1' },
    })
    try {
      const reply = await send(`${proxy.url}/.nanoproxy/config`)
      assert.equal(reply.status, 200)
      assert.match(reply.body, /name: echo/)
      assert.match(reply.body, /path: \/api/)
      assert.match(reply.body, /matchMode: prefix/)
    } finally {
      await proxy.stop()
    }
  })
})
