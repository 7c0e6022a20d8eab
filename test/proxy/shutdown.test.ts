import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { connect } from 'node:net'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import WebSocket from 'ws'
import { send, sendRaw } from '../helpers/http-client.ts'
import { BIN, startProxy, tempDir } from '../helpers/proxy-process.ts'
import { config, handled, startUpstream, startWebSocketEcho, type Upstream } from '../helpers/upstreams.ts'

describe('graceful shutdown', () => {
  let up: Upstream

  before(async () => {
    up = await startUpstream({
      handler: (req, res) => {
        const ms = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('ms') ?? 0)
        if (ms > 0) {
          handled(res)
          setTimeout(() => res.end(`done after ${ms}`), ms).unref()
        }
      },
    })
  })
  after(async () => {
    await up.close()
  })

  it('lets a request in flight finish after SIGTERM, refuses new connections, and exits 0', async () => {
    const proxy = await startProxy({ config: config({ up: up.port }, '  - { upstream: up, path: / }\n') })
    const inFlight = send(`${proxy.url}/work?ms=1500`)
    await new Promise((r) => setTimeout(r, 300))
    proxy.child.kill('SIGTERM')
    await proxy.waitForLog((l) => l.msg === 'shutting down')
    await assert.rejects(send(`${proxy.url}/new`), /ECONNREFUSED/)
    const reply = await inFlight
    assert.equal(reply.status, 200)
    assert.equal(reply.body, 'done after 1500')
    assert.equal(reply.headers.connection, 'close', 'the draining response tells the client not to reuse the connection')
    const { code } = await proxy.exited
    assert.equal(code, 0)
    assert.ok(proxy.logs.some((l) => l.msg === 'shutdown complete'))
  })

  it('answers the next request of a keep-alive connection in use at SIGTERM, with Connection: close, instead of closing it under the client', async () => {
    const proxy = await startProxy({ env: { SHUTDOWN_TIMEOUT: '20' }, config: config({ up: up.port }, '  - { upstream: up, path: / }\n') })
    const socket = connect(proxy.port, '127.0.0.1')
    socket.setEncoding('latin1')
    let received = ''
    socket.on('data', (chunk: string) => (received += chunk))
    const ended = once(socket, 'end')
    socket.write('GET /first HTTP/1.1\r\nHost: a\r\n\r\n')
    for (let waited = 0; !/\r\n\r\n[\s\S]*"url":"\/first"/.test(received); waited += 5) {
      assert.ok(waited < 5000, `no answer to the first request: ${received}`)
      await sleep(5)
    }
    // The client is busy: it will reuse the connection in a moment. The
    // shutdown starts in between, as in a rolling restart under load.
    proxy.child.kill('SIGTERM')
    await proxy.waitForLog((l) => l.msg === 'shutting down')
    socket.write('GET /second HTTP/1.1\r\nHost: a\r\n\r\n')
    await ended
    const second = received.slice(received.lastIndexOf('HTTP/1.1 '))
    assert.match(second, /^HTTP\/1\.1 200 /)
    assert.match(second, /\r\nconnection: close\r\n/i)
    assert.match(second, /"url":"\/second"/)
    socket.destroy()
    assert.equal((await proxy.exited).code, 0)
  })

  it('closes keep-alive connections idle for a second instead of waiting for the grace period', async () => {
    const proxy = await startProxy({ env: { SHUTDOWN_TIMEOUT: '20' }, config: config({ up: up.port }, '  - { upstream: up, path: / }\n') })
    // An idle kept-alive connection: one request answered, socket left open.
    const idle = sendRaw(proxy.port, 'GET / HTTP/1.1\r\nHost: a\r\n\r\n', 10_000)
    await proxy.waitForLog((l) => l.msg === 'request')
    const started = Date.now()
    const { code } = await proxy.stop('SIGTERM')
    assert.equal(code, 0)
    assert.ok(Date.now() - started < 3000, 'an idle connection must not hold shutdown for the grace period')
    assert.match(await idle, /^HTTP\/1\.1 200 /)
  })

  it('cuts requests still running when SHUTDOWN_TIMEOUT expires, then exits 0', async () => {
    const proxy = await startProxy({ env: { SHUTDOWN_TIMEOUT: '1' }, config: config({ up: up.port }, '  - { upstream: up, path: / }\n') })
    const stuck = send(`${proxy.url}/?ms=10000`).then(
      (r) => r.status,
      () => 'cut',
    )
    await new Promise((r) => setTimeout(r, 300))
    const started = Date.now()
    const { code } = await proxy.stop('SIGTERM')
    const took = Date.now() - started
    assert.equal(code, 0)
    assert.ok(took >= 900 && took < 4000, `exit took ${took} ms with SHUTDOWN_TIMEOUT=1`)
    assert.equal(await stuck, 'cut')
    assert.ok(proxy.logs.some((l) => l.msg.startsWith('grace period over')))
  })

  it('closes WebSocket tunnels at the end of the grace period', async () => {
    const ws = await startWebSocketEcho()
    const proxy = await startProxy({ env: { SHUTDOWN_TIMEOUT: '1' }, config: config({ ws: ws.port }, '  - { upstream: ws, path: / }\n') })
    try {
      const client = new WebSocket(`ws://127.0.0.1:${proxy.port}/`)
      await once(client, 'open')
      const closed = once(client, 'close')
      const { code } = await proxy.stop('SIGINT')
      assert.equal(code, 0)
      await closed
    } finally {
      await ws.close()
    }
  })

  it('exits on SIGTERM even when whoever read its log output has gone away', async () => {
    // A log reader that died (a broken pipe on stdout) must not keep the
    // proxy from exiting: the last log lines then cannot be written.
    const dir = tempDir()
    const file = join(dir, 'config.yaml')
    writeFileSync(file, config({ up: up.port }, '  - { upstream: up, path: / }\n'))
    const child = spawn(BIN, ['proxy', '-c', file], { env: { ...process.env, PORT: '0', WORKERS: '1' }, stdio: ['ignore', 'pipe', 'ignore'] })
    try {
      // Up and serving once it says it is listening (its signal handlers are in place then).
      let out = ''
      for await (const chunk of child.stdout) {
        out += String(chunk)
        if (out.includes('listening on port')) break
      }
      child.stdout.destroy()
      const exited = once(child, 'exit')
      child.kill('SIGTERM')
      const outcome = await Promise.race([exited.then(([code, signal]) => `exit ${String(code ?? signal)}`), sleep(5000).then(() => 'still running after 5 s')])
      assert.equal(outcome, 'exit 0')
    } finally {
      child.kill('SIGKILL')
    }
  })
})
