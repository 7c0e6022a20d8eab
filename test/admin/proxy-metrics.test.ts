// /metrics on the admin port: a real proxy process, real upstreams, scraped
// over HTTP after known traffic, the way Prometheus reads it.

import assert from 'node:assert/strict'
import { readFileSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { X509Certificate } from 'node:crypto'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { send } from '../helpers/http-client.ts'
import { scrape } from '../helpers/metrics-scrape.ts'
import { freePort } from '../helpers/ports.ts'
import { startProxy, type ProxyProcess } from '../helpers/proxy-process.ts'
import { startUpstream, startWebSocketEcho, type Upstream } from '../helpers/upstreams.ts'
import { createPki } from '../helpers/certs.ts'
import WebSocket from 'ws'

async function adminPort(proxy: ProxyProcess): Promise<number> {
  const line = await proxy.waitForLog((l) => typeof l.admin_port === 'number', 10_000)
  return line.admin_port as number
}

/** Scrapes until `name` is `want` (the proxy sees a connection open or close a moment after the client does); 3 s at most. */
async function untilValue(admin: number, name: string, want: number): Promise<void> {
  const started = Date.now()
  for (;;) {
    const value = (await scrape(admin)).value(name)
    if (value === want) return
    if (Date.now() - started > 3000) assert.equal(value, want, name)
    await new Promise((r) => setTimeout(r, 20))
  }
}

function appConfig(port: number, extra = ''): string {
  return `upstreams:
  - name: app
    servers: [{ host: 127.0.0.1, port: ${port} }]
${extra}rules:
  - { host: shop.example, path: /api, upstream: app }
  - { host: shop.example, path: /, matchMode: exact, upstream: app }
`
}

describe('proxy metrics on the admin port', () => {
  let up: Upstream
  let proxy: ProxyProcess
  let admin: number

  before(async () => {
    up = await startUpstream({ handler: (req, res) => {
      res.statusCode = req.url?.includes('fail') ? 500 : 200
      res.end('hello')
    } })
    proxy = await startProxy({ config: appConfig(up.port), env: { ADMIN_PORT: '0' } })
    admin = await adminPort(proxy)
  })
  after(async () => {
    await proxy.stop()
    await up.close()
  })

  it('counts requests by rule, upstream, method and status class, with unknown hosts under one empty route', async () => {
    for (let i = 0; i < 3; i++) assert.equal((await send(`${proxy.url}/api/items?id=${i}`, { headers: { host: 'shop.example' } })).status, 200)
    for (let i = 0; i < 2; i++) assert.equal((await send(`${proxy.url}/api/fail/${i}`, { method: 'POST', body: 'abc', headers: { host: 'shop.example' } })).status, 500)
    assert.equal((await send(`${proxy.url}/`, { headers: { host: 'shop.example' } })).status, 200)
    for (let i = 0; i < 4; i++) assert.equal((await send(`${proxy.url}/x`, { headers: { host: `random-${i}.example` } })).status, 404)

    const m = await scrape(admin)
    assert.match(m.contentType, /^text\/plain; version=0\.0\.4/)
    const api = { host: 'shop.example', path: '/api', match: 'prefix', upstream: 'app' }
    assert.equal(m.value('nanoproxy_requests_total', { ...api, method: 'GET', status: '2xx' }), 3)
    assert.equal(m.value('nanoproxy_requests_total', { ...api, method: 'POST', status: '5xx' }), 2)
    assert.equal(m.value('nanoproxy_requests_total', { host: 'shop.example', path: '/', match: 'exact', method: 'GET', status: '2xx' }), 1)
    // Four different unknown hosts, one series: the label set stays bounded.
    assert.equal(m.value('nanoproxy_requests_total', { host: '', path: '', status: '4xx' }), 4)
    assert.ok(!m.text.includes('random-'), 'no request host or URL appears in a label')
    assert.ok(!m.text.includes('id='))
    assert.equal(m.value('nanoproxy_request_duration_seconds_count', api), 5)
    assert.equal(m.value('nanoproxy_request_duration_seconds_bucket', { ...api, le: '+Inf' }), 5)
    assert.equal(m.value('nanoproxy_upstream_response_head_seconds_count', api), 5)
    assert.equal(m.value('nanoproxy_request_body_bytes_total', api), 6)
    assert.equal(m.value('nanoproxy_response_body_bytes_total', api), 25)
    assert.equal(m.value('nanoproxy_config_rules'), 2)
    assert.equal(m.value('nanoproxy_config_upstreams'), 1)
    const server = `http://127.0.0.1:${up.port}`
    assert.equal(m.value('nanoproxy_upstream_connections', { upstream: 'app', server, state: 'open' }), 1, 'one kept-alive connection served them all')
    assert.equal(m.value('nanoproxy_upstream_connections', { upstream: 'app', server, state: 'idle' }), 1)
    assert.equal(m.value('nanoproxy_upstream_server_healthy', { server }), 1)
  })

  it('counts the client connections open now', async () => {
    const socket = connect(proxy.port, '127.0.0.1')
    await new Promise((resolve) => socket.once('connect', resolve))
    await untilValue(admin, 'nanoproxy_client_connections', 1)
    socket.destroy()
    await untilValue(admin, 'nanoproxy_client_connections', 0)
  })

  it('counts a rejected config and keeps the time of the last good one', async () => {
    const before = await scrape(admin)
    const lastGood = before.value('nanoproxy_config_last_reload_success_timestamp_seconds')!
    writeFileSync(proxy.configFile, 'upstreams: []\nrules:\n  - { path: /, upstream: nowhere }\n')
    await proxy.waitForLog((l) => l.msg.includes('config rejected'))
    const m = await scrape(admin)
    assert.equal(m.value('nanoproxy_config_reloads_total', { result: 'failure' }), 1)
    assert.equal(m.value('nanoproxy_config_reloads_total', { result: 'success' }), 0)
    assert.equal(m.value('nanoproxy_config_last_reload_success_timestamp_seconds'), lastGood)
    assert.equal(m.value('nanoproxy_config_rules'), 2, 'the last good config stays in force')

    writeFileSync(proxy.configFile, appConfig(up.port))
    await proxy.waitForLog((l) => l.msg === 'config reloaded')
    const after = await scrape(admin)
    assert.equal(after.value('nanoproxy_config_reloads_total', { result: 'success' }), 1)
    assert.ok(after.value('nanoproxy_config_last_reload_success_timestamp_seconds')! >= lastGood)
  })

  it('answers 405 to anything but GET and HEAD', async () => {
    assert.equal((await send(`http://127.0.0.1:${admin}/metrics`, { method: 'POST' })).status, 405)
  })
})

describe('per-server metrics: connect failures, retries and ejections', () => {
  it('counts the failures of a dead server, the retries they caused and its ejection', async () => {
    const up = await startUpstream()
    const dead = await freePort()
    const proxy = await startProxy({
      config: `upstreams:
  - name: app
    servers: [{ host: 127.0.0.1, port: ${dead} }, { host: 127.0.0.1, port: ${up.port} }]
rules:
  - { path: /, upstream: app }
`,
      env: { ADMIN_PORT: '0' },
    })
    try {
      const admin = await adminPort(proxy)
      for (let i = 0; i < 8; i++) assert.equal((await send(`${proxy.url}/r${i}`)).status, 200)
      const m = await scrape(admin)
      const deadServer = { upstream: 'app', server: `http://127.0.0.1:${dead}` }
      const failures = m.value('nanoproxy_upstream_connect_failures_total', deadServer)!
      // Round robin sends every other request to the dead server until it is ejected (after 3 failures).
      assert.ok(failures >= 3, `connect failures: ${failures}`)
      assert.equal(m.value('nanoproxy_upstream_retries_total', deadServer), failures, 'each failure was retried on the live server')
      assert.equal(m.value('nanoproxy_upstream_ejections_total', deadServer), 1)
      assert.equal(m.value('nanoproxy_upstream_server_healthy', deadServer), 0)
      assert.equal(m.value('nanoproxy_upstream_connect_failures_total', { server: `http://127.0.0.1:${up.port}` }), 0)
      assert.equal(m.value('nanoproxy_requests_total', { status: '2xx' }), 8)
    } finally {
      await proxy.stop()
      await up.close()
    }
  })
})

describe('TLS and WebSocket metrics', () => {
  it('counts TLS handshakes and failed ones, and exports each host\'s certificate expiry', async () => {
    const up = await startUpstream()
    const pki = createPki()
    const cert = pki.issue(['secure.example'])
    const proxy = await startProxy({
      config: `upstreams:\n  - name: app\n    servers: [{ host: 127.0.0.1, port: ${up.port} }]\nrules:\n  - { path: /, upstream: app }\ncertificates:\n  - { hosts: [secure.example], certFile: ${join(cert.dir, 'cert.pem')}, keyFile: ${join(cert.dir, 'key.pem')} }\n`,
      env: { ADMIN_PORT: '0', HTTPS_PORT: '0' },
    })
    try {
      const admin = await adminPort(proxy)
      for (let i = 0; i < 2; i++) {
        assert.equal((await send(`https://127.0.0.1:${proxy.httpsPort}/t${i}`, { ca: pki.caCert, servername: 'secure.example', headers: { host: 'secure.example' } })).status, 200)
      }
      // Not TLS at all: the handshake fails.
      await new Promise<void>((resolve) => {
        const socket = connect(proxy.httpsPort, '127.0.0.1', () => socket.write('GET / HTTP/1.1\r\nhost: x\r\n\r\n'))
        socket.on('error', () => resolve()).on('close', () => resolve())
        socket.resume()
      })
      const m = await scrape(admin)
      assert.equal(m.value('nanoproxy_tls_handshakes_total'), 2)
      assert.equal(m.value('nanoproxy_tls_handshake_failures_total'), 1)
      const expires = Math.floor(Date.parse(new X509Certificate(readFileSync(join(cert.dir, 'cert.pem'))).validTo) / 1000)
      assert.equal(m.value('nanoproxy_certificate_expiry_timestamp_seconds', { host: 'secure.example' }), expires)
    } finally {
      await proxy.stop()
      await up.close()
    }
  })

  it('shows a WebSocket tunnel as open while it lasts, then counts it as a 101', async () => {
    const up = await startWebSocketEcho()
    const proxy = await startProxy({ config: `upstreams:\n  - name: ws\n    servers: [{ host: 127.0.0.1, port: ${up.port} }]\nrules:\n  - { path: /, upstream: ws }\n`, env: { ADMIN_PORT: '0' } })
    try {
      const admin = await adminPort(proxy)
      const client = new WebSocket(`ws://127.0.0.1:${proxy.port}/chat`)
      await new Promise((resolve, reject) => client.once('open', resolve).once('error', reject))
      assert.equal((await scrape(admin)).value('nanoproxy_websocket_tunnels'), 1)
      client.close()
      await proxy.waitForLog((l) => l.msg === 'request' && l.status === 101)
      const m = await scrape(admin)
      assert.equal(m.value('nanoproxy_websocket_tunnels'), 0)
      assert.equal(m.value('nanoproxy_requests_total', { upstream: 'ws', status: '1xx' }), 1)
    } finally {
      await proxy.stop()
      await up.close()
    }
  })
})

describe('WORKERS=2', () => {
  it('one scrape of the supervisor returns the sum over both workers', async () => {
    const up = await startUpstream()
    const proxy = await startProxy({ config: `upstreams:\n  - name: app\n    servers: [{ host: 127.0.0.1, port: ${up.port} }]\nrules:\n  - { path: /, upstream: app }\n`, env: { ADMIN_PORT: '0', WORKERS: '2' } })
    try {
      const admin = await adminPort(proxy)
      // Both workers listening before traffic starts, so the kernel spreads it.
      await proxy.waitForLog(() => proxy.logs.filter((l) => l.msg.includes('listening')).length >= 2, 10_000)
      const n = 40
      for (let i = 0; i < n; i++) assert.equal((await send(`${proxy.url}/w${i}`)).status, 200)
      const m = await scrape(admin)
      assert.equal(m.value('nanoproxy_requests_total', { status: '2xx' }), n)
      assert.equal(m.value('nanoproxy_request_duration_seconds_count'), n)
      // Each worker holds its own connection to the upstream: both are counted.
      const open = m.value('nanoproxy_upstream_connections', { state: 'open' })!
      assert.ok(open === 2, `upstream connections open over both workers: ${open}`)
      // Rules are the same in every worker: the largest, not the sum.
      assert.equal(m.value('nanoproxy_config_rules'), 1)
    } finally {
      await proxy.stop()
      await up.close()
    }
  })
})
