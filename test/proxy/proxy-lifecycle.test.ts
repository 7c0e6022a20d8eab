// The proxy started in-process through its lifecycle owner
// (src/proxy/proxy-lifecycle.ts), as the CLI does: listeners, reload,
// certificate swap and graceful shutdown, with real sockets.

import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { connect as tlsConnect } from 'node:tls'
import pino from 'pino'
import { parseConfig } from '../../src/config/load.ts'
import { ProxyLifecycle } from '../../src/proxy/proxy-lifecycle.ts'
import { readProxySettings } from '../../src/settings.ts'
import { createPki, type Pki } from '../helpers/certs.ts'
import { send } from '../helpers/http-client.ts'
import { tempDir } from '../helpers/proxy-process.ts'
import { config, startUpstream, type Upstream } from '../helpers/upstreams.ts'

let pki: Pki
let up: Upstream
before(async () => {
  pki = createPki()
  up = await startUpstream()
})
after(async () => {
  await up.close()
})

function certificateName(port: number, servername: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ port, host: '127.0.0.1', servername, rejectUnauthorized: false }, () => {
      resolve(socket.getPeerCertificate().subject.CN as string)
      socket.end()
    })
    socket.on('error', reject)
  })
}

describe('ProxyLifecycle, in-process', () => {
  it('listens on HTTP and HTTPS, reloads routes and certificates, and shuts down both listeners', async () => {
    const dir = tempDir()
    const a = pki.issue(['a.example.com'])
    const b = pki.issue(['b.example.com'])
    const certs = (d: string) => `certificates:\n  - { hosts: [a.example.com], certFile: ${join(d, 'cert.pem')}, keyFile: ${join(d, 'key.pem')} }\n`
    const settings = readProxySettings({ PORT: '0', HTTPS_PORT: '0', WORKERS: '1' })
    const proxy = new ProxyLifecycle({
      settings,
      log: pino({ level: 'silent' }),
      config: parseConfig(config({ echo: up.port }, '  - { upstream: echo, path: /one }\n') + certs(a.dir)),
      configDir: dir,
      ticketKeys: randomBytes(48),
      shared: false,
    })
    const { http, https } = await proxy.listen()
    assert.ok(http !== undefined && https !== undefined)
    assert.equal((await send(`http://127.0.0.1:${http}/one`, { headers: { host: 'other.example.org' } })).status, 200)
    assert.equal(await certificateName(https, 'a.example.com'), 'a.example.com')

    const { update } = proxy.reload(parseConfig(config({ echo: up.port }, '  - { upstream: echo, path: /two }\n') + certs(b.dir)))
    assert.deepEqual(update, { total: 1, parsed: 1, failed: 0 })
    assert.equal((await send(`http://127.0.0.1:${http}/one`, { headers: { host: 'other.example.org' } })).status, 404)
    assert.equal((await send(`http://127.0.0.1:${http}/two`, { headers: { host: 'other.example.org' } })).status, 200)
    // The b certificate now serves a.example.com: the swap reached the next handshake.
    assert.equal(await certificateName(https, 'a.example.com'), 'b.example.com')

    assert.equal(await proxy.shutdown(), true)
    await assert.rejects(send(`http://127.0.0.1:${http}/two`))
    await assert.rejects(certificateName(https, 'a.example.com'))
  })
})

describe('ProxyLifecycle, reloading a config file', () => {
  let a: Upstream
  let b: Upstream
  before(async () => {
    a = await startUpstream({ handler: (_req, res) => res.end('A') })
    b = await startUpstream({ handler: (_req, res) => res.end('B') })
  })
  after(async () => {
    await a.close()
    await b.close()
  })

  /** A hand-written YAML config: `/` goes to `target`, after `extra` rules for other hosts. */
  const yamlConfig = (target: 'a' | 'b', extra = 0): string => {
    let rules = ''
    for (let i = 0; i < extra; i++) rules += `  - {upstream: ${target}, host: h${i}.example, path: /p${i % 10}, matchMode: pathPrefix}\n`
    return `upstreams:\n  - {name: a, host: 127.0.0.1, port: ${a.port}}\n  - {name: b, host: 127.0.0.1, port: ${b.port}}\nrules:\n${rules}  - {upstream: ${target}, path: /}\n`
  }

  const start = async (text: string): Promise<{ proxy: ProxyLifecycle; get: () => Promise<string> }> => {
    const proxy = new ProxyLifecycle({
      settings: readProxySettings({ PORT: '0', WORKERS: '1' }),
      log: pino({ level: 'silent' }),
      config: parseConfig(text),
      configDir: tempDir(),
      ticketKeys: randomBytes(48),
      shared: false,
    })
    const { http } = await proxy.listen()
    const get = async (): Promise<string> => {
      const reply = await send(`http://127.0.0.1:${http}/x`, { headers: { host: 'any.example' } })
      return `${reply.status} ${reply.body}`
    }
    return { proxy, get }
  }

  it('serves requests with the table in force while a 10,000-rule file is parsed and compiled, then with the new one', async () => {
    const { proxy, get } = await start(yamlConfig('a'))
    try {
      let settled = false
      const reloading = proxy.reloadFile(Buffer.from(yamlConfig('b', 10_000)), 'config.yaml').finally(() => (settled = true))
      const during: string[] = []
      while (!settled) during.push(await get())
      const reloaded = await reloading
      assert.equal(reloaded?.config.rules.length, 10_001)
      // A reload done on the request path would swap tables before the
      // first request got an answer: none would be answered by the old one.
      assert.ok(during.includes('200 A'), `no request was served while the new table was being built: ${during.join(', ')}`)
      // Only the last request may have been answered after the swap; none failed.
      assert.deepEqual(new Set(during.slice(0, -1)), new Set(['200 A']))
      assert.equal(await get(), '200 B')
    } finally {
      await proxy.shutdown()
    }
  })

  it('changes nothing for a file with problems: rejects naming each with its position, and the old table keeps serving', async () => {
    const { proxy, get } = await start(yamlConfig('a'))
    try {
      const before = proxy.ctx.state
      // 10,000 rules: a file large enough to be parsed on the worker thread.
      const bad = yamlConfig('b', 10_000).replace('  - {upstream: b, path: /}', '  - {upstream: nowhere, path: /}')
      await assert.rejects(proxy.reloadFile(Buffer.from(bad), 'config.yaml'), (err: Error) => {
        assert.equal(err.name, 'ConfigError')
        assert.match(err.message, /^config\.yaml:10005:16: rule 10001 names upstream "nowhere", which is not defined/)
        return true
      })
      assert.equal(proxy.ctx.state, before)
      assert.equal(await get(), '200 A')
    } finally {
      await proxy.shutdown()
    }
  })

  it('never applies a build overtaken by a newer file: the newest file wins', async () => {
    const { proxy, get } = await start(yamlConfig('a'))
    try {
      const controllerFile = (target: string): string =>
        `# Written by the NanoProxy ingress controller from Ingress objects.\n{\n  "upstreams": [\n    {"name": "a", "host": "127.0.0.1", "port": ${a.port}},\n    {"name": "b", "host": "127.0.0.1", "port": ${b.port}}\n  ],\n  "rules": [\n    {"upstream": "${target}", "path": "/"}\n  ]\n}\n`
      const older = proxy.reloadFile(Buffer.from(yamlConfig('b', 10_000)), 'config.yaml')
      const newer = proxy.reloadFile(Buffer.from(controllerFile('a')), 'config.yaml')
      assert.equal(await older, undefined)
      assert.equal((await newer)?.config.rules.length, 1)
      assert.equal(await get(), '200 A')
      assert.equal(proxy.ctx.state.config.rules.length, 1)
    } finally {
      await proxy.shutdown()
    }
  })
})
