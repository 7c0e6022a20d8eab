// Upstreams with several servers: balancing, pools per server across
// reloads, passive health, retries, DNS names and empty upstreams. Real
// proxy process, real upstream servers on 127.0.0.1 (several ports).

import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { after, before, describe, it } from 'node:test'
import { send } from '../helpers/http-client.ts'
import { startProxy, type LogLine, type ProxyProcess } from '../helpers/proxy-process.ts'
import { handled, startUpstream, type Upstream } from '../helpers/upstreams.ts'

interface Server {
  name: string
  up: Upstream
  /** TCP connections the server accepted. */
  connections: number
}

async function startNamed(name: string, delayMs = 0): Promise<Server> {
  const up = await startUpstream({
    handler: (_req, res) => {
      if (delayMs === 0) {
        res.end(name)
        return
      }
      handled(res)
      setTimeout(() => res.end(name), delayMs).unref()
    },
  })
  const s: Server = { name, up, connections: 0 }
  up.server.on('connection', () => s.connections++)
  return s
}

function upstreamYaml(servers: { port: number; weight?: number; host?: string }[], balance?: string): string {
  let out = 'upstreams:\n  - name: app\n'
  if (balance) out += `    balance: ${balance}\n`
  out += servers.length === 0 ? '    servers: []\n' : '    servers:\n'
  for (const s of servers) out += `      - { host: ${s.host ?? '127.0.0.1'}, port: ${s.port}${s.weight ? `, weight: ${s.weight}` : ''} }\n`
  return `${out}rules:\n  - { upstream: app, path: / }\n`
}

/** Sends `n` GETs, `concurrency` at a time; returns how many each body (server name) got and the failures. */
async function load(url: string, n: number, concurrency = 1): Promise<{ counts: Map<string, number>; failures: string[] }> {
  const counts = new Map<string, number>()
  const failures: string[] = []
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < n) {
      next++
      try {
        const reply = await send(url)
        if (reply.status !== 200) failures.push(`${reply.status} ${reply.body.trim()}`)
        else counts.set(reply.body, (counts.get(reply.body) ?? 0) + 1)
      } catch (err) {
        failures.push(String(err))
      }
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
  return { counts, failures }
}

const accessLines = (proxy: ProxyProcess): LogLine[] => proxy.logs.filter((l) => l.msg === 'request')

describe('balancing across servers', () => {
  let a: Server
  let b: Server
  let c: Server

  before(async () => {
    a = await startNamed('a')
    b = await startNamed('b')
    c = await startNamed('c')
  })
  after(async () => {
    await Promise.all([a.up.close(), b.up.close(), c.up.close()])
  })

  it('round robin gives each server its weight share exactly (weights 1, 1, 2 over 400 requests)', async () => {
    const proxy = await startProxy({ config: upstreamYaml([{ port: a.up.port }, { port: b.up.port }, { port: c.up.port, weight: 2 }]) })
    try {
      const { counts, failures } = await load(`${proxy.url}/`, 400, 4)
      assert.deepEqual(failures, [])
      assert.deepEqual(Object.fromEntries(counts), { a: 100, b: 100, c: 200 })
    } finally {
      await proxy.stop()
    }
  })

  it('round robin is the default and interleaves a heavy server instead of sending it bursts', async () => {
    const proxy = await startProxy({ config: upstreamYaml([{ port: a.up.port, weight: 5 }, { port: b.up.port }, { port: c.up.port }]) })
    try {
      const order: string[] = []
      for (let i = 0; i < 7; i++) order.push((await send(`${proxy.url}/`)).body)
      // nginx's smooth weighted round robin: a a b a c a a.
      assert.deepEqual(order, ['a', 'a', 'b', 'a', 'c', 'a', 'a'])
    } finally {
      await proxy.stop()
    }
  })

  it('least request sends most requests to the idle server when the other is slow', async () => {
    const slow = await startNamed('slow', 300)
    const proxy = await startProxy({ config: upstreamYaml([{ port: slow.up.port }, { port: a.up.port }], 'leastRequest') })
    try {
      const { counts, failures } = await load(`${proxy.url}/`, 200, 4)
      assert.deepEqual(failures, [])
      const fast = counts.get('a') ?? 0
      // Round robin would give the slow server half (100); least request
      // sends it a request only when it is not busier than the fast one.
      assert.ok(fast >= 180, `fast server got ${fast} of 200 (slow: ${counts.get('slow') ?? 0})`)
    } finally {
      await proxy.stop()
      await slow.up.close()
    }
  })

  it('a reload that changes only the server list keeps the idle connections to servers that stay', async () => {
    const d = await startNamed('d')
    const proxy = await startProxy({ config: upstreamYaml([{ port: a.up.port }, { port: b.up.port }, { port: d.up.port }]) })
    try {
      const before = { a: a.connections, b: b.connections }
      const first = await load(`${proxy.url}/`, 30)
      assert.deepEqual(first.failures, [])
      // Sequential requests: one kept-alive connection per server.
      assert.equal(a.connections - before.a, 1)
      assert.equal(b.connections - before.b, 1)
      assert.equal(d.connections, 1)
      // d leaves, c arrives; a and b stay.
      const cBefore = c.connections
      writeFileSync(proxy.configFile, upstreamYaml([{ port: a.up.port }, { port: b.up.port }, { port: c.up.port }]))
      await proxy.waitForLog((l) => l.msg === 'config reloaded')
      const second = await load(`${proxy.url}/`, 30)
      assert.deepEqual(second.failures, [])
      assert.deepEqual(Object.fromEntries(second.counts), { a: 10, b: 10, c: 10 })
      assert.equal(a.connections - before.a, 1, 'a new connection to a after the reload')
      assert.equal(b.connections - before.b, 1, 'a new connection to b after the reload')
      assert.equal(c.connections - cBefore, 1)
      assert.equal(d.connections, 1)
    } finally {
      await proxy.stop()
      await d.up.close()
    }
  })

  it('a server that stops is ejected, requests to it are retried on the others, and none fails', async () => {
    const doomed = await startNamed('doomed')
    const proxy = await startProxy({ config: upstreamYaml([{ port: a.up.port }, { port: b.up.port }, { port: doomed.up.port }]) })
    try {
      const warm = await load(`${proxy.url}/`, 30, 3)
      assert.deepEqual(warm.failures, [])
      assert.equal(warm.counts.get('doomed'), 10)
      await doomed.up.close()
      const { counts, failures } = await load(`${proxy.url}/`, 90, 3)
      assert.deepEqual(failures, [])
      assert.equal(counts.get('doomed'), undefined)
      assert.equal((counts.get('a') ?? 0) + (counts.get('b') ?? 0), 90)
      const ejected = await proxy.waitForLog((l) => l.msg === 'upstream server ejected after consecutive connection failures')
      assert.equal(ejected.level, 'warn')
      assert.equal(ejected.server, `http://127.0.0.1:${doomed.up.port}`)
      assert.equal(ejected.code, 'NP_ERR_UPSTREAM_CONNECT')
      assert.equal(ejected.ejected_ms, 1000)
      // Retried requests say so in the access log; ejection stops the retries.
      const retried = accessLines(proxy).filter((l) => l.attempts === 2)
      assert.ok(retried.length >= 3 && retried.length <= 6, `${retried.length} requests retried`)
      for (const l of retried) assert.equal(l.status, 200)
      // Only the 10 warm-up requests were answered by it.
      assert.equal(accessLines(proxy).filter((l) => l.server === `http://127.0.0.1:${doomed.up.port}`).length, 10)
    } finally {
      await proxy.stop()
    }
  })

  it('when every server is ejected the proxy still tries them, and a server that came back answers at once', async () => {
    const { createServer } = await import('node:http')
    const probe = await startNamed('probe')
    const port = probe.up.port
    await probe.up.close()
    const proxy = await startProxy({ config: upstreamYaml([{ port }]) })
    const revived = createServer((_req, res) => res.end('revived'))
    try {
      for (let i = 0; i < 3; i++) assert.equal((await send(`${proxy.url}/`)).status, 502)
      await proxy.waitForLog((l) => l.msg === 'upstream server ejected after consecutive connection failures')
      const ejectedAt = Date.now()
      await new Promise<void>((resolve) => revived.listen(port, '127.0.0.1', resolve))
      // Still within the 1 s ejection, and the only server: tried anyway.
      const reply = await send(`${proxy.url}/`)
      assert.ok(Date.now() - ejectedAt < 1000, 'the ejection was over before the request')
      assert.equal(reply.status, 200)
      assert.equal(reply.body, 'revived')
    } finally {
      await proxy.stop()
      revived.closeAllConnections()
      revived.close()
    }
  })

  it('the access log names the server that answered and the number of attempts', async () => {
    const proxy = await startProxy({ config: upstreamYaml([{ port: a.up.port }]) })
    try {
      assert.equal((await send(`${proxy.url}/x`)).body, 'a')
      const line = await proxy.waitForLog((l) => l.msg === 'request' && l.path === '/x')
      assert.equal(line.server, `http://127.0.0.1:${a.up.port}`)
      assert.equal(line.attempts, 1)
    } finally {
      await proxy.stop()
    }
  })

  it('a GET whose server refuses the connection is retried on another server', async () => {
    const gone = await startNamed('gone')
    await gone.up.close()
    const proxy = await startProxy({ config: upstreamYaml([{ port: gone.up.port }, { port: a.up.port }]) })
    try {
      // Round robin starts with the first server: the refused one.
      const reply = await send(`${proxy.url}/first`)
      assert.equal(reply.status, 200)
      assert.equal(reply.body, 'a')
      const line = await proxy.waitForLog((l) => l.msg === 'request' && l.path === '/first')
      assert.equal(line.attempts, 2)
      assert.equal(line.server, `http://127.0.0.1:${a.up.port}`)
    } finally {
      await proxy.stop()
    }
  })

  it('a POST whose connection is reset after it was sent is not retried', async () => {
    const { createServer } = await import('node:net')
    const resetter = createServer((socket) => socket.once('data', () => socket.resetAndDestroy()))
    await new Promise<void>((resolve) => resetter.listen(0, '127.0.0.1', resolve))
    const resetPort = (resetter.address() as { port: number }).port
    let seen = 0
    resetter.on('connection', () => seen++)
    const proxy = await startProxy({ config: upstreamYaml([{ port: resetPort }, { port: a.up.port }]) })
    try {
      const before = a.up.requests.length
      const reply = await send(`${proxy.url}/order`, { method: 'POST', headers: { 'content-length': '0' } })
      assert.equal(reply.status, 502)
      assert.match(reply.body, /NP_ERR_UPSTREAM_RESET/)
      assert.equal(a.up.requests.length, before, 'the POST reached another server')
      assert.equal(seen, 1)
      // The same for a GET is retried: it changes nothing on the server.
      // (Round robin: the first GET goes to a, the second to the resetter.)
      for (const path of ['/get1', '/get2']) assert.equal((await send(`${proxy.url}${path}`)).status, 200)
      const line = await proxy.waitForLog((l) => l.msg === 'request' && l.path === '/get2')
      assert.equal(line.attempts, 2)
      assert.equal(seen, 2)
    } finally {
      await proxy.stop()
      resetter.close()
    }
  })

  it('an upstream without servers answers 503 and logs why', async () => {
    const proxy = await startProxy({ config: upstreamYaml([]) })
    try {
      const reply = await send(`${proxy.url}/`)
      assert.equal(reply.status, 503)
      assert.match(reply.body, /the upstream has no servers \(NP_ERR_UPSTREAM_NO_SERVERS\)/)
      const line = await proxy.waitForLog((l) => l.level === 'warn' && l.code === 'NP_ERR_UPSTREAM_NO_SERVERS')
      assert.equal(line.msg, 'upstream app has no servers')
    } finally {
      await proxy.stop()
    }
  })

  it('a server given by DNS name is connected to at the addresses the name resolves to', async () => {
    const proxy = await startProxy({ config: upstreamYaml([{ host: 'localhost', port: a.up.port }]) })
    try {
      // The first request may go to the name itself, before the answer.
      const deadline = Date.now() + 3000
      for (let i = 0; ; i++) {
        assert.equal((await send(`${proxy.url}/dns${i}`)).body, 'a')
        const line = await proxy.waitForLog((l) => l.msg === 'request' && l.path === `/dns${i}`)
        if (line.server === `http://127.0.0.1:${a.up.port}`) break
        assert.ok(Date.now() < deadline, `still ${String(line.server)}`)
        await new Promise((r) => setTimeout(r, 50))
      }
    } finally {
      await proxy.stop()
    }
  })
})
