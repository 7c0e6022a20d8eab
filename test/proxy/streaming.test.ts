import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { request } from 'node:http'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { startProxy, type ProxyProcess } from '../helpers/proxy-process.ts'
import { config, handled, startUpstream, type Upstream } from '../helpers/upstreams.ts'

const MiB = 1024 * 1024
const BIG = 512 * MiB

/** A readable that yields `total` bytes in 64 KiB chunks without holding them in memory. */
function zeros(total: number): Readable {
  const chunk = Buffer.alloc(64 * 1024)
  let left = total
  return new Readable({
    read() {
      if (left <= 0) return this.push(null)
      const n = Math.min(left, chunk.length)
      left -= n
      this.push(n === chunk.length ? chunk : chunk.subarray(0, n))
    },
  })
}

describe('streaming', () => {
  let up: Upstream
  let proxy: ProxyProcess
  let peakRss = 0
  let sampler: NodeJS.Timeout

  before(async () => {
    up = await startUpstream({
      handler: (req, res) => {
        handled(res)
        const path = req.url ?? ''
        if (path === '/download') {
          res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': BIG })
          void pipeline(zeros(BIG), res).catch(() => {})
        } else if (path === '/upload') {
          // A slow reader (about 200 MiB/s), so the proxy must hold the client back.
          let bytes = 0
          req.on('data', (c: Buffer) => {
            bytes += c.length
            if (bytes % (4 * MiB) < c.length) {
              req.pause()
              setTimeout(() => req.resume(), 20)
            }
          })
          req.on('end', () => res.end(String(bytes)))
        } else if (path === '/events') {
          // Server-sent events: one event now, the next only after a pause.
          res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
          res.write('data: first\n\n')
          setTimeout(() => res.end('data: second\n\n'), 1500).unref()
        } else if (path === '/chunked') {
          res.writeHead(200, { 'content-type': 'text/plain' })
          res.write('part 1\n')
          setTimeout(() => res.end('part 2\n'), 1500).unref()
        } else {
          res.end('ok')
        }
      },
    })
    proxy = await startProxy({ config: config({ up: up.port }, '  - { upstream: up, path: / }\n') })
    sampler = setInterval(() => {
      void proxy.rss().then((r) => (peakRss = Math.max(peakRss, r)), () => {})
    }, 50)
  })
  after(async () => {
    clearInterval(sampler)
    await proxy.stop()
    await up.close()
  })

  // Without backpressure a proxy buffers what the client has not read yet:
  // with a client slower than the upstream that is hundreds of MiB here.
  // The bound leaves room for garbage the collector has not reclaimed yet.
  it('streams a 512 MiB download to a slow client with bounded memory', async () => {
    const before = await proxy.rss()
    peakRss = before
    let received = 0
    await new Promise<void>((resolve, reject) => {
      request(`${proxy.url}/download`, { agent: false }, (res) => {
        res.on('data', (c: Buffer) => {
          received += c.length
          // Read at roughly 200 MiB/s: a pause every 4 MiB.
          if (received % (4 * MiB) < c.length) {
            res.pause()
            setTimeout(() => res.resume(), 20)
          }
        })
        res.on('end', resolve)
        res.on('error', reject)
      })
        .on('error', reject)
        .end()
    })
    assert.equal(received, BIG)
    const growth = peakRss - before
    assert.ok(growth < 128 * MiB, `proxy RSS grew by ${(growth / MiB).toFixed(1)} MiB while streaming 512 MiB`)
  })

  it('streams a 512 MiB upload with bounded memory', async () => {
    const before = await proxy.rss()
    peakRss = before
    const body = await new Promise<string>((resolve, reject) => {
      const req = request(`${proxy.url}/upload`, { method: 'POST', agent: false, headers: { 'content-length': BIG } }, (res) => {
        let text = ''
        res.setEncoding('utf8').on('data', (c: string) => (text += c))
        res.on('end', () => resolve(text))
      })
      req.on('error', reject)
      zeros(BIG).pipe(req)
    })
    assert.equal(body, String(BIG))
    const growth = peakRss - before
    assert.ok(growth < 128 * MiB, `proxy RSS grew by ${(growth / MiB).toFixed(1)} MiB while receiving 512 MiB`)
  })

  it('streams a chunked upload of unknown length', async () => {
    const body = await new Promise<string>((resolve, reject) => {
      const req = request(`${proxy.url}/upload`, { method: 'POST', agent: false }, (res) => {
        let text = ''
        res.setEncoding('utf8').on('data', (c: string) => (text += c))
        res.on('end', () => resolve(text))
      })
      req.on('error', reject)
      zeros(3 * MiB + 17).pipe(req)
    })
    assert.equal(body, String(3 * MiB + 17))
  })

  for (const [path, first, second] of [
    ['/events', 'data: first', 'data: second'],
    ['/chunked', 'part 1', 'part 2'],
  ] as const) {
    it(`delivers ${path === '/events' ? 'server-sent events' : 'chunked response parts'} as they arrive, not at the end`, async () => {
      const started = Date.now()
      const arrivals: { at: number; text: string }[] = []
      await new Promise<void>((resolve, reject) => {
        request(`${proxy.url}${path}`, { agent: false }, (res) => {
          res.setEncoding('utf8').on('data', (c: string) => arrivals.push({ at: Date.now() - started, text: c }))
          res.on('end', resolve)
        })
          .on('error', reject)
          .end()
      })
      const firstAt = arrivals.find((a) => a.text.includes(first))?.at ?? Infinity
      const secondAt = arrivals.find((a) => a.text.includes(second))?.at ?? Infinity
      assert.ok(firstAt < 1000, `first part arrived after ${firstAt} ms`)
      assert.ok(secondAt >= 1400, `second part arrived after ${secondAt} ms`)
    })
  }

  it('stops the upstream transfer when the client goes away mid-download', async () => {
    await new Promise<void>((resolve, reject) => {
      const req = request(`${proxy.url}/download`, { agent: false }, (res) => {
        let got = 0
        res.on('data', (c: Buffer) => {
          got += c.length
          if (got > 4 * MiB) {
            req.destroy()
            resolve()
          }
        })
      })
      req.on('error', () => {})
      req.on('error', reject).end()
    })
    const line = await proxy.waitForLog((l) => l.msg === 'request' && l.path === '/download' && l.status === 200 && (l.bytes as number) < BIG)
    assert.ok((line.bytes as number) < BIG)
  })
})

describe('an upstream that answers before reading the whole upload', () => {
  it('closes the client connection after the answer instead of stalling its next request', async () => {
    const up = await startUpstream({
      handler: (req, res) => {
        handled(res)
        // Like nginx's `return` or an early 413: answer at once, never read the body.
        res.writeHead(413, { 'content-length': '8' })
        res.end('too big\n')
        req.socket.on('error', () => {})
      },
    })
    const proxy = await startProxy({ config: config({ up: up.port }, '  - { upstream: up, path: / }\n') })
    try {
      const { Agent } = await import('node:http')
      const agent = new Agent({ keepAlive: true, maxSockets: 1 })
      const post = () =>
        new Promise<string>((resolve, reject) => {
          // Larger than the socket buffers between client, proxy and upstream can hold.
          const req = request(`${proxy.url}/upload`, { method: 'POST', agent, headers: { 'content-length': 64 * MiB } }, (res) => {
            res.resume()
            resolve(String(res.statusCode))
          })
          // The proxy may close the connection while the client is still
          // sending (that is the point); the client may then see the reset
          // before the response. Either way it must not be left waiting.
          req.on('error', () => resolve('closed while sending'))
          void reject
          zeros(64 * MiB).pipe(req)
        })
      const started = Date.now()
      const outcomes = [await post(), await post()]
      for (const o of outcomes) assert.ok(o === '413' || o === 'closed while sending', o)
      assert.ok(Date.now() - started < 3000, 'the second request must not wait behind the unread body')
      agent.destroy()
    } finally {
      await proxy.stop()
      await up.close()
    }
  })
})
