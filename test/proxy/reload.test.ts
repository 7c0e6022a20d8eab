import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { send } from '../helpers/http-client.ts'
import { startProxy, tempDir } from '../helpers/proxy-process.ts'
import { config, handled, startUpstream, type Upstream } from '../helpers/upstreams.ts'

/** Polls `url` until `check` passes; returns how long that took (ms). */
async function until(url: string, check: (status: number, body: string) => boolean, limitMs = 3000): Promise<number> {
  const started = Date.now()
  for (;;) {
    const reply = await send(url)
    if (check(reply.status, reply.body)) return Date.now() - started
    if (Date.now() - started > limitMs) assert.fail(`not live within ${limitMs} ms (last: ${reply.status} ${reply.body.slice(0, 80)})`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

describe('hot reload', () => {
  let a: Upstream
  let b: Upstream

  before(async () => {
    // Each upstream answers with its own name, so a test can tell them apart.
    a = await startUpstream({ handler: (_req, res) => res.end('from a') })
    b = await startUpstream({
      handler: (req, res) => {
        if (req.url === '/slow') {
          handled(res)
          setTimeout(() => res.end('slow from b'), 1500).unref()
          return
        }
        res.end('from b')
      },
    })
  })
  after(async () => {
    await a.close()
    await b.close()
  })

  const toA = () => config({ a: a.port }, '  - { upstream: a, path: / }\n')
  const toB = () => config({ b: b.port }, '  - { upstream: b, path: / }\n')

  it('applies a config written in place within 1 second', async () => {
    const proxy = await startProxy({ config: toA() })
    try {
      assert.equal((await send(`${proxy.url}/`)).body, 'from a')
      writeFileSync(proxy.configFile, toB())
      const took = await until(`${proxy.url}/`, (_s, body) => body === 'from b')
      assert.ok(took < 1000, `took ${took} ms`)
      await proxy.waitForLog((l) => l.msg === 'config reloaded' && l.rules === 1)
    } finally {
      await proxy.stop()
    }
  })

  it('applies a config saved by rename, as editors do', async () => {
    const proxy = await startProxy({ config: toA() })
    try {
      const tmp = join(proxy.dir, '.config.yaml.swp')
      writeFileSync(tmp, toB())
      renameSync(tmp, proxy.configFile)
      const took = await until(`${proxy.url}/`, (_s, body) => body === 'from b')
      assert.ok(took < 1000, `took ${took} ms`)
      // And a second rename after the first: the watch must survive the swap.
      writeFileSync(tmp, toA())
      renameSync(tmp, proxy.configFile)
      await until(`${proxy.url}/`, (_s, body) => body === 'from a')
    } finally {
      await proxy.stop()
    }
  })

  it('applies a config swapped by a Kubernetes-style ..data symlink', async () => {
    // The kubelet's layout for ConfigMap volumes: config.yaml -> ..data/config.yaml,
    // ..data -> ..<timestamp>/, and an update swaps ..data atomically.
    const dir = tempDir()
    const v1 = join(dir, '..2026_11_28_v1')
    mkdirSync(v1)
    writeFileSync(join(v1, 'config.yaml'), toA())
    symlinkSync('..2026_11_28_v1', join(dir, '..data'))
    symlinkSync('..data/config.yaml', join(dir, 'config.yaml'))
    const proxy = await startProxy({ dir })
    try {
      assert.equal((await send(`${proxy.url}/`)).body, 'from a')
      const v2 = join(dir, '..2026_11_28_v2')
      mkdirSync(v2)
      writeFileSync(join(v2, 'config.yaml'), toB())
      symlinkSync('..2026_11_28_v2', join(dir, '..data_tmp'))
      renameSync(join(dir, '..data_tmp'), join(dir, '..data'))
      rmSync(v1, { recursive: true })
      const took = await until(`${proxy.url}/`, (_s, body) => body === 'from b')
      assert.ok(took < 1000, `took ${took} ms`)
    } finally {
      await proxy.stop()
    }
  })

  it('rejects an invalid config whole, logs every problem with its position, and keeps serving the last good one', async () => {
    const proxy = await startProxy({ config: toA() })
    try {
      writeFileSync(proxy.configFile, config({ b: b.port }, '  - { upstream: b, path: / }\n  - { upstream: nope, path: /x, matchMode: bogus }\n'))
      const line = await proxy.waitForLog((l) => l.msg.startsWith('config rejected'))
      const problems = line.problems as string[]
      assert.equal(problems.length, 2)
      assert.match(problems[0] ?? '', /config\.yaml:7:\d+: rule 2 names upstream "nope"/)
      assert.match(problems[1] ?? '', /config\.yaml:7:\d+: rule 2 field "matchMode": "bogus"/)
      assert.equal((await send(`${proxy.url}/`)).body, 'from a', 'the last good config keeps serving')
      // A later good write is still picked up.
      writeFileSync(proxy.configFile, toB())
      await until(`${proxy.url}/`, (_s, body) => body === 'from b')
    } finally {
      await proxy.stop()
    }
  })

  it('keeps the last good config when the file is deleted', async () => {
    const proxy = await startProxy({ config: toA() })
    try {
      rmSync(proxy.configFile)
      await proxy.waitForLog((l) => l.msg.startsWith('config file is missing'))
      assert.equal((await send(`${proxy.url}/`)).body, 'from a')
    } finally {
      await proxy.stop()
    }
  })

  it('lets a request in flight finish on the config it started with', async () => {
    const proxy = await startProxy({ config: toB() })
    try {
      const slow = send(`${proxy.url}/slow`)
      await new Promise((r) => setTimeout(r, 300))
      writeFileSync(proxy.configFile, toA()) // upstream b disappears from the config
      await until(`${proxy.url}/`, (_s, body) => body === 'from a')
      const reply = await slow
      assert.equal(reply.status, 200)
      assert.equal(reply.body, 'slow from b')
    } finally {
      await proxy.stop()
    }
  })

  it('creates a missing config file empty, answers 404, then serves rules written to it later', async () => {
    const dir = tempDir()
    const file = join(dir, 'nested', 'config.yaml')
    const proxy = await startProxy({ args: ['proxy', '-c', file], dir })
    try {
      await proxy.waitForLog((l) => l.msg.startsWith('config file not found: created it empty'))
      assert.equal((await send(`${proxy.url}/`)).status, 404)
      writeFileSync(file, toA())
      await until(`${proxy.url}/`, (_s, body) => body === 'from a')
    } finally {
      await proxy.stop()
    }
  })

  it('never applies a half-written file while it is rewritten in place under load', async () => {
    // A large file rewritten in place (truncate, then write) many times: a
    // read in the middle would see a shorter but valid config, without the
    // catch-all rule at its end, and answer 404.
    let rules = ''
    for (let i = 0; i < 8000; i++) rules += `  - { upstream: a, host: h${i}.example, path: /p }\n`
    const text = (n: number) => `# version ${n}\n${config({ a: a.port }, `${rules}  - { upstream: a, path: / }\n`)}`
    // A write every 100 ms, the watcher's debounce: many reads land on the
    // next write as it starts, the race the bench's reload scenario found.
    const proxy = await startProxy({ config: text(0) })
    try {
      let writes = 0
      const timer = setInterval(() => writeFileSync(proxy.configFile, text(++writes)), 100)
      const statuses = new Map<number, number>()
      const started = Date.now()
      while (Date.now() - started < 3000) {
        const replies = await Promise.all(Array.from({ length: 10 }, () => send(`${proxy.url}/x`)))
        for (const r of replies) statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1)
      }
      clearInterval(timer)
      assert.deepEqual([...statuses.keys()], [200], `statuses seen: ${JSON.stringify([...statuses])}`)
      // Once the writes stop, the last version is applied.
      await proxy.waitForLog((l) => l.msg === 'config reloaded')
    } finally {
      await proxy.stop()
    }
  })

  it('keeps its rules when the file is emptied, and drops them for an explicit rules: []', async () => {
    const proxy = await startProxy({ config: toA() })
    try {
      writeFileSync(proxy.configFile, '')
      await proxy.waitForLog((l) => l.msg.startsWith('config file is empty'))
      assert.equal((await send(`${proxy.url}/`)).body, 'from a')
      writeFileSync(proxy.configFile, 'rules: []\n')
      await until(`${proxy.url}/`, (status) => status === 404)
    } finally {
      await proxy.stop()
    }
  })
})
