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
