// The request id and the access-log formats, on the wire: what the upstream
// receives (an echo server reports the headers it got, raw) and the line the
// proxy writes on stdout for the same request.

import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { sendJson, sendRaw } from '../helpers/http-client.ts'
import { startProxy, type LogLine, type ProxyProcess } from '../helpers/proxy-process.ts'
import { config, startUpstream, type SeenRequest, type Upstream } from '../helpers/upstreams.ts'

const GENERATED = /^[0-9a-f]{32}$/

let up: Upstream
before(async () => {
  up = await startUpstream()
})
after(async () => {
  await up.close()
})

async function withProxy(env: Record<string, string>, run: (p: ProxyProcess) => Promise<void>): Promise<void> {
  const proxy = await startProxy({ config: config({ echo: up.port }, '  - upstream: echo\n    path: /\n'), env })
  try {
    await run(proxy)
  } finally {
    await proxy.stop()
  }
}

/** The upstream's view of one request through the proxy, and the proxy's access-log line for it. */
async function through(proxy: ProxyProcess, path: string, headers: Record<string, string | string[]> = {}): Promise<{ seen: SeenRequest; line: LogLine }> {
  const { json } = await sendJson<SeenRequest>(`${proxy.url}${path}`, { headers })
  const line = await proxy.waitForLog((l) => l.msg === 'request' && l.path === path)
  return { seen: json, line }
}

/** Every value of header `name` the upstream received, in order (raw). */
function received(seen: SeenRequest, name: string): string[] {
  const out: string[] = []
  for (let i = 0; i < seen.rawHeaders.length; i += 2) if (seen.rawHeaders[i]!.toLowerCase() === name) out.push(seen.rawHeaders[i + 1]!)
  return out
}

describe('request id', () => {
  it('generates one per request, sends it upstream as X-Request-ID and logs it as request_id', async () => {
    await withProxy({}, async (proxy) => {
      const a = await through(proxy, '/a')
      const b = await through(proxy, '/b')
      assert.match(received(a.seen, 'x-request-id')[0] ?? '', GENERATED)
      assert.deepEqual(received(a.seen, 'x-request-id'), [a.line.request_id])
      assert.deepEqual(received(b.seen, 'x-request-id'), [b.line.request_id])
      assert.notEqual(a.line.request_id, b.line.request_id)
    })
  })

  it('replaces the X-Request-ID of a client outside TRUSTED_PROXIES', async () => {
    await withProxy({}, async (proxy) => {
      const { seen, line } = await through(proxy, '/untrusted', { 'x-request-id': 'chosen-by-the-client' })
      assert.equal(received(seen, 'x-request-id').length, 1)
      assert.match(received(seen, 'x-request-id')[0]!, GENERATED)
      assert.equal(line.request_id, received(seen, 'x-request-id')[0])
    })
  })

  it("keeps a trusted proxy's X-Request-ID when it is sane, and logs it", async () => {
    await withProxy({ TRUSTED_PROXIES: '127.0.0.0/8' }, async (proxy) => {
      for (const id of ['f47ac10b-58cc-4372-a567-0e02b2c3d479', 'Root=1-67891233-abcdef012345678912345678;Parent=53995c3f42cd8ad8', 'x'.repeat(200)]) {
        const { seen, line } = await through(proxy, `/trusted-${id.length}`, { 'x-request-id': id })
        assert.deepEqual(received(seen, 'x-request-id'), [id])
        assert.equal(line.request_id, id)
      }
    })
  })

  it('replaces a trusted X-Request-ID that is too long, has characters a log would have to escape, or is sent twice', async () => {
    await withProxy({ TRUSTED_PROXIES: '127.0.0.0/8' }, async (proxy) => {
      const cases: [string, Record<string, string | string[]>][] = [
        ['/long', { 'x-request-id': 'x'.repeat(201) }],
        ['/space', { 'x-request-id': 'a b' }],
        ['/quote', { 'x-request-id': 'a"b' }],
        ['/twice', { 'x-request-id': ['one', 'two'] }],
      ]
      for (const [path, headers] of cases) {
        const { seen, line } = await through(proxy, path, headers)
        const ids = received(seen, 'x-request-id')
        assert.equal(ids.length, 1, path)
        assert.match(ids[0]!, GENERATED, path)
        assert.equal(line.request_id, ids[0], path)
      }
    })
  })

  it('with REQUEST_ID=off adds none, passes the client\'s X-Request-ID on untouched and logs no request_id', async () => {
    await withProxy({ REQUEST_ID: 'off' }, async (proxy) => {
      const none = await through(proxy, '/none')
      assert.deepEqual(received(none.seen, 'x-request-id'), [])
      assert.equal('request_id' in none.line, false)
      const own = await through(proxy, '/own', { 'x-request-id': 'a b "c"' })
      assert.deepEqual(received(own.seen, 'x-request-id'), ['a b "c"'])
    })
  })

  it('also logs the id of requests the proxy answers itself (no rule matched)', async () => {
    const proxy = await startProxy({ config: 'upstreams: []\nrules: []\n' })
    try {
      await sendRaw(proxy.port, 'GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
      const line = await proxy.waitForLog((l) => l.msg === 'request' && l.path === '/nowhere')
      assert.equal(line.status, 404)
      assert.match(String(line.request_id), GENERATED)
    } finally {
      await proxy.stop()
    }
  })
})

describe('W3C trace context', () => {
  it('passes traceparent and tracestate through untouched, repeated tracestate lines in order, trusted client or not', async () => {
    const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'
    const tracestate = ['rojo=00f067aa0ba902b7', 'congo=t61rcWkgMzE']
    for (const env of [{}, { TRUSTED_PROXIES: '127.0.0.0/8' }] as Record<string, string>[]) {
      await withProxy(env, async (proxy) => {
        const { seen } = await through(proxy, '/traced', { traceparent, tracestate })
        assert.deepEqual(received(seen, 'traceparent'), [traceparent])
        assert.deepEqual(received(seen, 'tracestate'), tracestate)
      })
    }
  })
})

describe('ACCESS_LOG_FORMAT=combined', () => {
  const TIME = String.raw`\[\d{2}/(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)/\d{4}:\d{2}:\d{2}:\d{2} \+0000\]`

  it("writes nginx's combined line for each request on stdout, and no JSON request line", async () => {
    await withProxy({ ACCESS_LOG_FORMAT: 'combined' }, async (proxy) => {
      const { json } = await sendJson<SeenRequest>(`${proxy.url}/combined?x=1`, { headers: { referer: 'https://ref.example/page', 'user-agent': 'test-agent/1.0' } })
      const bytes = Buffer.byteLength(JSON.stringify(json))
      const line = await proxy.waitForLog((l) => l.level === 'raw' && l.msg.includes('/combined'))
      assert.match(line.msg, new RegExp(`^127\\.0\\.0\\.1 - - ${TIME} "GET /combined\\?x=1 HTTP/1\\.1" 200 ${bytes} "https://ref\\.example/page" "test-agent/1\\.0"$`))
      assert.equal(proxy.logs.filter((l) => l.msg === 'request').length, 0)
    })
  })

  it('writes "-" for a missing Referer or User-Agent, the HTTP/1.0 version as sent, and escapes quotes and bytes outside ASCII as nginx does', async () => {
    await withProxy({ ACCESS_LOG_FORMAT: 'combined' }, async (proxy) => {
      await sendRaw(proxy.port, 'GET /bare HTTP/1.0\r\n\r\n')
      const bare = await proxy.waitForLog((l) => l.level === 'raw' && l.msg.includes('/bare'))
      assert.match(bare.msg, new RegExp(`^127\\.0\\.0\\.1 - - ${TIME} "GET /bare HTTP/1\\.0" 200 \\d+ "-" "-"$`))
      await sendRaw(proxy.port, Buffer.from('GET /odd HTTP/1.1\r\nHost: x\r\nUser-Agent: say "hi" \\ caf\xe9\r\nConnection: close\r\n\r\n', 'latin1'))
      const odd = await proxy.waitForLog((l) => l.level === 'raw' && l.msg.includes('/odd'))
      assert.match(odd.msg, / "-" "say \\x22hi\\x22 \\x5C caf\\xE9"$/)
    })
  })

  it('refuses an unknown format, or a REQUEST_ID that is not on or off, at start-up, naming each variable', async () => {
    const proxy = await startProxy({ config: 'upstreams: []\nrules: []\n', env: { ACCESS_LOG_FORMAT: 'xml', REQUEST_ID: 'maybe' }, noWait: true })
    const { code } = await proxy.exited
    assert.equal(code, 1)
    const output = proxy.stderr + proxy.logs.map((l) => l.msg).join('\n')
    assert.match(output, /ACCESS_LOG_FORMAT="xml" is not valid: expected json or combined/)
    assert.match(output, /REQUEST_ID="maybe" is not valid: expected on or off/)
  })
})
