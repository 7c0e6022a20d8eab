// Interim (1xx) responses from an upstream (docs/routing.md, "Interim
// responses"): relayed to HTTP/1.1 clients, at most 10 per request, under
// the same backpressure as bodies. Raw sockets on both sides.

import assert from 'node:assert/strict'
import { once } from 'node:events'
import type { Socket } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { sendRaw } from '../helpers/http-client.ts'
import { startProxy, type ProxyProcess } from '../helpers/proxy-process.ts'
import { connectRaw, ScriptedUpstream } from '../helpers/raw-http.ts'
import { config } from '../helpers/upstreams.ts'

const MiB = 1024 * 1024
const HINT = 'HTTP/1.1 103 Early Hints\r\nLink: </app.css>; rel=preload\r\n\r\n'
const FINAL = 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal'

/** Writes 103s to `socket` as fast as it takes them, until it closes. */
function flood(socket: Socket, hint: string): void {
  const more = (): void => {
    while (!socket.destroyed && socket.writable) {
      if (!socket.write(hint)) {
        socket.once('drain', more)
        return
      }
    }
  }
  more()
}

describe('interim responses', () => {
  let up: ScriptedUpstream
  let proxy: ProxyProcess
  const bigHint = `HTTP/1.1 103 Early Hints\r\nLink: <${'/x'.repeat(4000)}>; rel=preload\r\n\r\n`

  before(async () => {
    up = await ScriptedUpstream.start(({ socket, target }) => void socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${target.length}\r\n\r\n${target}`))
    up.on('/ten', HINT.repeat(10) + FINAL)
    up.on('/eleven', HINT.repeat(11) + FINAL)
    up.on('/mixed', 'HTTP/1.1 100 Continue\r\n\r\n' + 'HTTP/1.1 102 Processing\r\n\r\n'.repeat(5) + HINT.repeat(5) + FINAL)
    up.on('/flood', ({ socket }) => flood(socket, bigHint))
    proxy = await startProxy({ config: config({ a: up.port }, '  - { upstream: a, path: / }\n') })
  })
  after(async () => {
    await proxy.stop()
    await up.close()
  })

  it('relays ten 103 Early Hints and then the final response, on a connection that stays usable', async () => {
    const socket = await connectRaw(proxy.port)
    let text = ''
    socket.setEncoding('latin1').on('data', (c: string) => (text += c))
    socket.write('GET /ten HTTP/1.1\r\nHost: a\r\n\r\nGET /after HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n')
    await once(socket, 'close')
    assert.equal(text.split('HTTP/1.1 103 Early Hints\r\nLink: </app.css>; rel=preload\r\n\r\n').length - 1, 10)
    assert.match(text, /HTTP\/1\.1 200 OK\r\n[^]*final/)
    assert.match(text, /\/after$/)
  })

  it('answers 502 NP_ERR_UPSTREAM_TOO_MANY_INTERIM after the tenth interim response, and logs why', async () => {
    const text = await sendRaw(proxy.port, 'GET /eleven HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n')
    assert.equal(text.split('HTTP/1.1 103 ').length - 1, 10)
    assert.match(text, /HTTP\/1\.1 502 Bad Gateway\r\n[^]*NP_ERR_UPSTREAM_TOO_MANY_INTERIM/)
    assert.doesNotMatch(text, /final/)
    const warn = await proxy.waitForLog((l) => l.level === 'warn' && l.code === 'NP_ERR_UPSTREAM_TOO_MANY_INTERIM')
    assert.match(warn.msg, /more than 10 interim \(1xx\) responses/)
    const access = await proxy.waitForLog((l) => l.msg === 'request' && l.path === '/eleven')
    assert.equal(access.status, 502)
    assert.equal(access.error, 'NP_ERR_UPSTREAM_TOO_MANY_INTERIM')
  })

  it('counts 100 and 102 towards the limit too', async () => {
    const text = await sendRaw(proxy.port, 'GET /mixed HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n')
    assert.match(text, /NP_ERR_UPSTREAM_TOO_MANY_INTERIM/)
  })

  it(
    "keeps the proxy's memory within 50 MB of idle while clients that never read are flooded with 103s",
    { timeout: 30_000 },
    async (t) => {
      await sendRaw(proxy.port, 'GET /warm HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n')
      await sleep(300)
      const idle = await proxy.rss()
      const clients: Socket[] = []
      for (let i = 0; i < 20; i++) {
        const socket = await connectRaw(proxy.port)
        socket.pause()
        socket.write('GET /flood HTTP/1.1\r\nHost: a\r\n\r\n'.repeat(200))
        clients.push(socket)
      }
      let peak = 0
      for (let t = 0; t < 30; t++) {
        await sleep(100)
        peak = Math.max(peak, await proxy.rss())
      }
      for (const c of clients) c.destroy()
      const grown = peak - idle
      t.diagnostic(`idle RSS ${Math.round(idle / MiB)} MiB, peak ${Math.round(peak / MiB)} MiB`)
      assert.ok(grown < 50 * MiB, `the proxy's memory grew by ${Math.round(grown / MiB)} MiB (idle ${Math.round(idle / MiB)} MiB)`)
      assert.ok(up.requestsFor('/flood').length >= 20, 'every client reached the flooding upstream')
      // The proxy keeps serving.
      assert.match(await sendRaw(proxy.port, 'GET /still HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n'), /^HTTP\/1\.1 200 [^]*\/still$/)
    },
  )
})
