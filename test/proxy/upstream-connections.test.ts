import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { createServer, type Server, type Socket } from 'node:net'
import { send } from '../helpers/http-client.ts'
import { startProxy, type ProxyProcess } from '../helpers/proxy-process.ts'
import { config, startUpstream, type Upstream } from '../helpers/upstreams.ts'

describe('upstream connections', () => {
  let up: Upstream
  let connections = 0
  let proxy: ProxyProcess

  before(async () => {
    up = await startUpstream()
    up.server.on('connection', () => connections++)
    proxy = await startProxy({ config: config({ up: up.port }, '  - { upstream: up, path: / }\n') })
  })
  after(async () => {
    await proxy.stop()
    await up.close()
  })

  it('reuses kept-alive upstream connections across client connections', async () => {
    const before = connections
    for (let i = 0; i < 10; i++) assert.equal((await send(`${proxy.url}/r${i}`)).status, 200)
    assert.equal(connections - before, 1, 'ten sequential requests should share one upstream connection')
  })
})

/**
 * An upstream that answers the first request on each connection with
 * keep-alive, then closes the connection without answering when a second
 * request arrives on it: the race of a reused connection the server was
 * closing at that very moment.
 */
async function closingUpstream(): Promise<{ server: Server; port: number; requests: string[] }> {
  const requests: string[] = []
  const server = createServer((socket: Socket) => {
    let served = 0
    let buf = ''
    socket.setEncoding('latin1')
    socket.on('data', (chunk: string) => {
      buf += chunk
      let end
      while ((end = buf.indexOf('\r\n\r\n')) !== -1) {
        const head = buf.slice(0, end)
        const length = Number(/content-length: *(\d+)/i.exec(head)?.[1] ?? 0)
        if (buf.length < end + 4 + length) return
        buf = buf.slice(end + 4 + length)
        requests.push(head.split('\r\n')[0]!)
        if (served++ === 0) {
          socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: keep-alive\r\n\r\nok')
        } else {
          socket.destroy()
          return
        }
      }
    })
    socket.on('error', () => {})
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return { server, port: (server.address() as { port: number }).port, requests }
}

describe('a kept-alive upstream connection closed under a request', () => {
  let up: Awaited<ReturnType<typeof closingUpstream>>
  let proxy: ProxyProcess

  before(async () => {
    up = await closingUpstream()
    proxy = await startProxy({ config: config({ up: up.port }, '  - { upstream: up, path: / }\n') })
  })
  after(async () => {
    await proxy.stop()
    up.server.close()
  })

  it('replays an idempotent request once on a fresh connection', async () => {
    assert.equal((await send(`${proxy.url}/first`)).status, 200)
    const reply = await send(`${proxy.url}/second`)
    assert.equal(reply.status, 200)
    assert.deepEqual(up.requests.filter((r) => r.includes('/second')), ['GET /second HTTP/1.1', 'GET /second HTTP/1.1'])
  })

  it('does not replay a request with a body: the client gets 502', async () => {
    assert.equal((await send(`${proxy.url}/warm`)).status, 200)
    const reply = await send(`${proxy.url}/post`, { method: 'POST', body: 'payload' })
    assert.equal(reply.status, 502)
    assert.equal(up.requests.filter((r) => r.includes('/post')).length, 1)
  })
})
