import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { createServer, type Server } from 'node:net'
import { send } from '../helpers/http-client.ts'
import { freePort } from '../helpers/ports.ts'
import { startProxy, type ProxyProcess } from '../helpers/proxy-process.ts'
import { config, handled, startUpstream, type Upstream } from '../helpers/upstreams.ts'


describe('upstream failures', () => {
  let slow: Upstream
  let resetter: Server
  let proxy: ProxyProcess

  before(async () => {
    slow = await startUpstream({
      handler: (req, res) => {
        handled(res)
        const url = new URL(req.url ?? '/', 'http://x')
        if (url.pathname === '/slow-headers') {
          setTimeout(() => res.end('late'), 3000).unref()
        } else if (url.pathname === '/slow-stream') {
          // Headers at once, then a body that takes longer than TIMEOUT in total.
          res.writeHead(200, { 'content-type': 'text/plain' })
          let n = 0
          const t = setInterval(() => {
            res.write(`tick ${n}\n`)
            if (++n === 6) {
              clearInterval(t)
              res.end()
            }
          }, 400)
        } else if (url.pathname === '/slow-upload') {
          // Answers only once the whole (slowly sent) body has arrived.
          let bytes = 0
          req.on('data', (c: Buffer) => (bytes += c.length))
          req.on('end', () => res.end(`got ${bytes}`))
        } else {
          res.end('ok')
        }
      },
    })
    // Accepts, reads the request, then resets the connection without answering.
    resetter = createServer((socket) => {
      socket.once('data', () => socket.resetAndDestroy())
    })
    await new Promise<void>((r) => resetter.listen(0, '127.0.0.1', r))
    const refusedPort = await freePort() // nothing listens there
    proxy = await startProxy({
      env: { TIMEOUT: '1' },
      config: config(
        {
          slow: slow.port,
          refused: refusedPort,
          reset: (resetter.address() as { port: number }).port,
          nxdomain: { port: 80, host: 'does-not-exist.invalid' },
        },
        `  - { upstream: refused, path: /refused }
  - { upstream: reset, path: /reset }
  - { upstream: nxdomain, path: /nxdomain }
  - { upstream: slow, path: / }
`,
      ),
    })
  })
  after(async () => {
    await proxy.stop()
    await slow.close()
    resetter.close()
  })

  it('answers 502 when the upstream refuses the connection, and logs the reason', async () => {
    const reply = await send(`${proxy.url}/refused`)
    assert.equal(reply.status, 502)
    assert.match(reply.body, /NP_ERR_UPSTREAM_CONNECT/)
    const line = await proxy.waitForLog((l) => l.level === 'warn' && l.code === 'NP_ERR_UPSTREAM_CONNECT')
    assert.match(line.msg, /cannot connect to upstream refused: .*ECONNREFUSED/)
  })

  it('answers 502 when the upstream resets the connection', async () => {
    const reply = await send(`${proxy.url}/reset`)
    assert.equal(reply.status, 502)
    assert.match(reply.body, /NP_ERR_UPSTREAM_RESET/)
    await proxy.waitForLog((l) => l.level === 'warn' && l.code === 'NP_ERR_UPSTREAM_RESET')
  })

  it('answers 502 when the upstream name does not resolve', async () => {
    const reply = await send(`${proxy.url}/nxdomain`)
    assert.equal(reply.status, 502)
    assert.match(reply.body, /NP_ERR_UPSTREAM_CONNECT/)
  })

  it('answers 504 when the response headers do not arrive within TIMEOUT', async () => {
    const started = Date.now()
    const reply = await send(`${proxy.url}/slow-headers`)
    assert.equal(reply.status, 504)
    assert.match(reply.body, /NP_ERR_UPSTREAM_TIMEOUT/)
    const elapsed = Date.now() - started
    assert.ok(elapsed >= 900 && elapsed < 2900, `took ${elapsed} ms with TIMEOUT=1`)
    const line = await proxy.waitForLog((l) => l.level === 'warn' && l.code === 'NP_ERR_UPSTREAM_TIMEOUT')
    assert.match(line.msg, /timed out/)
  })

  it('never cuts a streaming response that lasts longer than TIMEOUT', async () => {
    const reply = await send(`${proxy.url}/slow-stream`)
    assert.equal(reply.status, 200)
    assert.equal(reply.body.split('\n').filter(Boolean).length, 6)
  })

  it('does not count a slow request upload against TIMEOUT', async () => {
    const { request } = await import('node:http')
    const reply = await new Promise<string>((resolve, reject) => {
      const req = request(`${proxy.url}/slow-upload`, { method: 'POST', agent: false }, (res) => {
        let body = ''
        res.setEncoding('utf8').on('data', (c: string) => (body += c))
        res.on('end', () => resolve(`${res.statusCode} ${body}`))
      })
      req.on('error', reject)
      let n = 0
      const t = setInterval(() => {
        req.write('0123456789')
        if (++n === 5) {
          clearInterval(t)
          req.end()
        }
      }, 400)
    })
    assert.equal(reply, '200 got 50')
  })
})

describe('an upstream that fails while the request body is still arriving', () => {
  it('answers 502, closes that client connection, and the client carries on with a new one', async () => {
    const { request, Agent } = await import('node:http')
    // Reads the request head, then resets the connection mid-body.
    const breaker = createServer((socket) => {
      socket.once('data', () => setTimeout(() => socket.resetAndDestroy(), 20))
      socket.on('error', () => {})
    })
    await new Promise<void>((r) => breaker.listen(0, '127.0.0.1', r))
    const proxy = await startProxy({ config: config({ b: (breaker.address() as { port: number }).port }, '  - { upstream: b, path: / }\n') })
    const agent = new Agent({ keepAlive: true, maxSockets: 1 })
    try {
      const post = () =>
        new Promise<string>((resolve) => {
          const req = request(`${proxy.url}/upload`, { method: 'POST', agent, headers: { 'content-length': 32 * 1024 * 1024 } }, (res) => {
            res.resume()
            resolve(`${res.statusCode} ${String(res.headers.connection)}`)
          })
          // The connection is closed under the client's upload, which may
          // see the reset before the 502; either way it is not left waiting.
          req.on('error', () => resolve('send failed'))
          // Trickle the body so the upstream fails long before it is all sent.
          let sent = 0
          const chunk = Buffer.alloc(64 * 1024)
          const t = setInterval(() => {
            if (req.destroyed || sent >= 32 * 1024 * 1024) return clearInterval(t)
            req.write(chunk)
            sent += chunk.length
          }, 5)
          req.on('close', () => clearInterval(t))
        })
      const started = Date.now()
      const outcomes = [await post(), await post()]
      for (const o of outcomes) assert.ok(o === '502 close' || o === 'send failed', `got ${o}`)
      assert.ok(Date.now() - started < 5000)
    } finally {
      agent.destroy()
      await proxy.stop()
      breaker.close()
    }
  })
})
