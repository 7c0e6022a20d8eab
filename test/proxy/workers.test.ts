import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { writeFileSync } from 'node:fs'
import { send } from '../helpers/http-client.ts'
import { startProxy, type ProxyProcess } from '../helpers/proxy-process.ts'
import { config, startUpstream, type Upstream } from '../helpers/upstreams.ts'

describe('several worker processes (WORKERS)', () => {
  let a: Upstream
  let b: Upstream
  let proxy: ProxyProcess

  before(async () => {
    a = await startUpstream({ handler: (_req, res) => res.end('from a') })
    b = await startUpstream({ handler: (_req, res) => res.end('from b') })
    proxy = await startProxy({ env: { WORKERS: '2' }, config: config({ a: a.port }, '  - { upstream: a, path: / }\n') })
    // Both workers must be up before the test starts counting.
    const started = Date.now()
    while (proxy.logs.filter((l) => l.msg.includes('listening')).length < 2) {
      if (Date.now() - started > 10_000) assert.fail('two workers did not start')
      await new Promise((r) => setTimeout(r, 50))
    }
  })
  after(async () => {
    await proxy.stop()
    await a.close()
    await b.close()
  })

  it('runs the given number of workers on one port, all of them serving', async () => {
    const listening = proxy.logs.filter((l) => l.msg.includes('listening'))
    assert.equal(new Set(listening.map((l) => l.port)).size, 1, 'one shared port')
    assert.equal(new Set(listening.map((l) => l.pid)).size, 2, 'two processes')
    for (let i = 0; i < 40; i++) assert.equal((await send(`${proxy.url}/`)).body, 'from a')
    const servedBy = new Set(proxy.logs.filter((l) => l.msg === 'request').map((l) => l.pid))
    assert.equal(servedBy.size, 2, 'the kernel spreads new connections over both workers')
  })

  it('reloads the config in every worker', async () => {
    writeFileSync(proxy.configFile, config({ b: b.port }, '  - { upstream: b, path: / }\n'))
    const started = Date.now()
    while (proxy.logs.filter((l) => l.msg === 'config reloaded').length < 2) {
      if (Date.now() - started > 3000) assert.fail('not every worker reloaded')
      await new Promise((r) => setTimeout(r, 20))
    }
    for (let i = 0; i < 20; i++) assert.equal((await send(`${proxy.url}/`)).body, 'from b')
  })

  it('stops every worker gracefully on SIGTERM and exits 0', async () => {
    const { code } = await proxy.stop('SIGTERM')
    assert.equal(code, 0)
    assert.equal(proxy.logs.filter((l) => l.msg === 'shutdown complete').length, 2)
  })
})
