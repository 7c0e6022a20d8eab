// `npm run build` and the compiled proxy: src/ is compiled into a temporary
// directory laid out as the Docker image is (bin/, dist/, package.json,
// node_modules/, no src/), and bin/nanoproxy there must start dist/ and serve.
// The rest of the suite runs the TypeScript sources.

import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { after, describe, it } from 'node:test'
import { send } from '../helpers/http-client.ts'
import { ProxyProcess, tempDir } from '../helpers/proxy-process.ts'

const ROOT = new URL('../../', import.meta.url).pathname

describe('npm run build', () => {
  const app = tempDir('nanoproxy-build-')
  after(() => rmSync(app, { recursive: true, force: true }))

  it('compiles src/ to JavaScript that bin/nanoproxy runs when there is no src/, and the proxy serves', { timeout: 30_000 }, async () => {
    // --outDir: the build under test never touches the repository's own dist/.
    await promisify(execFile)('npm', ['run', '--silent', 'build', '--', '--outDir', join(app, 'dist')], { cwd: ROOT })
    assert.ok(existsSync(join(app, 'dist/cli/main.js')))
    assert.ok(existsSync(join(app, 'dist/config/schema-validator.js')))
    const main = readFileSync(join(app, 'dist/cli/main.js'), 'utf8')
    assert.match(main, /"\.\/proxy-command\.js"/, 'relative imports name the .js files')
    assert.doesNotMatch(main, /\.ts["']/, 'no import is left pointing at a .ts file')

    mkdirSync(join(app, 'bin'))
    copyFileSync(join(ROOT, 'bin/nanoproxy'), join(app, 'bin/nanoproxy'))
    copyFileSync(join(ROOT, 'package.json'), join(app, 'package.json')) // "type": "module", and the version
    symlinkSync(join(ROOT, 'node_modules'), join(app, 'node_modules'))
    const config = join(app, 'config.yaml')
    writeFileSync(config, 'upstreams:\n  - {name: up, host: 127.0.0.1, port: 9}\nrules:\n  - {upstream: up, path: /}\n')

    const child = spawn(join(app, 'bin/nanoproxy'), ['proxy', '-c', config], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, PORT: '0', WORKERS: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    const proxy = new ProxyProcess(child, app, config)
    try {
      const listening = await Promise.race([
        proxy.waitForLog((l) => typeof l.port === 'number' && l.msg.includes('listening'), 10_000),
        proxy.exited.then(({ code }) => assert.fail(`exited with ${code} before listening:\n${proxy.stderr}`)),
      ])
      const health = await send(`http://127.0.0.1:${listening.port as number}/.nanoproxy/health`)
      assert.equal(health.status, 200)
      const cmdline = readFileSync(`/proc/${child.pid}/cmdline`, 'utf8').split('\0')
      assert.ok(cmdline.includes(join(app, 'dist/cli/main.js')), `runs dist/: ${cmdline.join(' ')}`)
      assert.ok(cmdline.includes('--expose-gc'), 'with gc exposed for the collection after start-up')
    } finally {
      const { code } = await proxy.stop('SIGTERM')
      assert.equal(code, 0, proxy.stderr)
    }
  })

  it('runs dist/ next to src/ only when NANOPROXY_DIST=1, and never when src/ has changed since the build', async () => {
    const run = promisify(execFile)
    const launcher = join(app, 'bin/nanoproxy')
    const env = { PATH: process.env.PATH, HOME: process.env.HOME }
    mkdirSync(join(app, 'src/cli'), { recursive: true })
    const source = join(app, 'src/cli/main.ts')
    writeFileSync(source, 'process.stdout.write("ran src\\n")\n')
    const past = new Date(Date.now() - 3_600_000)
    for (const p of [source, join(app, 'src/cli'), join(app, 'src')]) utimesSync(p, past, past)
    assert.equal((await run(launcher, ['--version'], { env })).stdout, 'ran src\n', 'a clone runs its sources')
    const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version
    assert.equal((await run(launcher, ['--version'], { env: { ...env, NANOPROXY_DIST: '1' } })).stdout, `nanoproxy ${version}\n`)
    utimesSync(source, new Date(), new Date())
    await assert.rejects(run(launcher, ['--version'], { env: { ...env, NANOPROXY_DIST: '1' } }), (err: { code: number; stderr: string }) => {
      assert.equal(err.code, 1)
      assert.match(err.stderr, /src\/ has changed since dist\/ was built/)
      return true
    })
  })
})
