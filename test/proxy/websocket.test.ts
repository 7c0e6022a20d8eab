import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { once } from 'node:events'
import WebSocket from 'ws'
import { sendRaw } from '../helpers/http-client.ts'
import { startProxy, type ProxyProcess } from '../helpers/proxy-process.ts'
import { config, startWebSocketEcho, type Upstream } from '../helpers/upstreams.ts'

describe('WebSocket and Upgrade tunnelling', () => {
  let ws: Upstream
  let proxy: ProxyProcess

  before(async () => {
    ws = await startWebSocketEcho()
    proxy = await startProxy({
      config: config({ ws: ws.port }, '  - { upstream: ws, path: /ws, stripPath: true }\n  - { upstream: ws, path: /deny }\n'),
    })
  })
  after(async () => {
    await proxy.stop()
    await ws.close()
  })

  it('echoes text and binary messages through the proxy both ways', async () => {
    const client = new WebSocket(`ws://127.0.0.1:${proxy.port}/ws/chat?room=1`, { headers: { host: 'chat.example' } })
    await once(client, 'open')
    const replies: (string | Buffer)[] = []
    client.on('message', (data, isBinary) => replies.push(isBinary ? (data as Buffer) : (data as Buffer).toString('utf8')))
    client.send('hello')
    client.send(Buffer.from([1, 2, 3, 255]))
    client.send('x'.repeat(200_000))
    while (replies.length < 3) await once(client, 'message')
    assert.equal(replies[0], 'hello')
    assert.deepEqual(replies[1], Buffer.from([1, 2, 3, 255]))
    assert.equal((replies[2] as string).length, 200_000)
    client.close()
    await once(client, 'close')
    const seen = ws.requests.at(-1)!
    assert.equal(seen.url, '/chat?room=1', 'stripPath applies to upgrades too')
    assert.equal(seen.headers.host, 'chat.example')
    assert.equal(seen.headers['x-forwarded-for'], '127.0.0.1')
    assert.equal(seen.headers.upgrade, 'websocket')
  })

  it('keeps a quiet WebSocket open and delivers a message sent after the pause', async () => {
    const client = new WebSocket(`ws://127.0.0.1:${proxy.port}/ws/quiet`)
    await once(client, 'open')
    await new Promise((r) => setTimeout(r, 1500))
    client.send('still here')
    const [data] = (await once(client, 'message')) as [Buffer]
    assert.equal(data.toString(), 'still here')
    client.close()
  })

  it('relays the upstream refusing an upgrade (401) with its body', async () => {
    const response = await sendRaw(
      proxy.port,
      'GET /deny HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
    )
    assert.match(response, /^HTTP\/1\.1 401 /)
    assert.match(response, /\r\n\r\ndenied$/)
  })

  it('answers 404 to an upgrade request no rule matches', async () => {
    const response = await sendRaw(proxy.port, 'GET /nothing HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n')
    assert.match(response, /^HTTP\/1\.1 404 /)
  })

  it('logs the tunnel with status 101 when it closes', async () => {
    const line = await proxy.waitForLog((l) => l.msg === 'request' && l.status === 101)
    assert.equal(line.upgrade, 'websocket')
    assert.equal(line.upstream, 'ws')
  })
})
