import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { send } from '../helpers/http-client.ts'
import { runCli, startProxy, tempDir } from '../helpers/proxy-process.ts'

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }

function file(text: string, name = 'config.yaml'): string {
  const path = join(tempDir(), name)
  writeFileSync(path, text)
  return path
}

const GOOD = `upstreams:
  - name: api
    host: api.internal
    port: 3000
  - name: web
    host: web.internal
rules:
  - upstream: api
    path: /api
    stripPath: true
  - upstream: web
    host: www.example.com
    path: /
  - upstream: web
    host: "*.example.com"
    path: /
    matchMode: pathPrefix
`

describe('the nanoproxy command', () => {
  it('prints its version with --version and -v', async () => {
    for (const flag of ['--version', '-v', 'proxy --version']) {
      const { code, stdout } = await runCli(flag.split(' '))
      assert.equal(code, 0)
      assert.equal(stdout, `nanoproxy ${pkg.version}\n`)
    }
  })

  it('prints usage with --help, and per-command help', async () => {
    const top = await runCli(['--help'])
    assert.equal(top.code, 0)
    assert.match(top.stdout, /nanoproxy proxy/)
    assert.match(top.stdout, /nanoproxy validate FILE/)
    assert.match(top.stdout, /nanoproxy routes FILE/)
    for (const cmd of ['proxy', 'validate', 'routes']) {
      const { code, stdout } = await runCli([cmd, '--help'])
      assert.equal(code, 0)
      assert.match(stdout, new RegExp(`^Usage: nanoproxy ${cmd}`))
    }
  })

  it('exits 2 with usage on an unknown command or flag', async () => {
    assert.equal((await runCli(['frobnicate'])).code, 2)
    const bad = await runCli(['proxy', '--frob'])
    assert.equal(bad.code, 2)
    assert.match(bad.stderr, /Unknown option '--frob'/)
  })
})

describe('nanoproxy validate', () => {
  it('exits 0 and summarises a valid file', async () => {
    const path = file(GOOD)
    const { code, stdout } = await runCli(['validate', path])
    assert.equal(code, 0)
    assert.equal(stdout, `${path}: OK (2 upstreams, 3 rules)\n`)
    const one = file('upstreams: [{name: a, host: a}]\nrules: [{upstream: a}]\n')
    assert.equal((await runCli(['validate', one])).stdout, `${one}: OK (1 upstream, 1 rule)\n`)
  })

  it('prints every problem as file:line:column and exits 1', async () => {
    const path = file('upstreams:\n  - name: a\n    host: a\n    prot: 80\nrules:\n  - upstream: b\n    path: /\n')
    const { code, stderr } = await runCli(['validate', path])
    assert.equal(code, 1)
    assert.equal(
      stderr,
      `${path}:4:5: unknown field "prot" in upstream 1 (allowed: name, host, port, servers, balance, serverName, scheme, noHostRewrite)\n` +
        `${path}:6:15: rule 1 names upstream "b", which is not defined (upstreams: "a")\n` +
        `${path}: 2 problems\n`,
    )
  })

  it('reports a file that cannot be read', async () => {
    const { code, stderr } = await runCli(['validate', '/nonexistent/config.yaml'])
    assert.equal(code, 1)
    assert.match(stderr, /cannot read file/)
  })
})

describe('nanoproxy routes', () => {
  it('prints the compiled table per host, in match order', async () => {
    const { code, stdout } = await runCli(['routes', file(GOOD)])
    assert.equal(code, 0)
    const rows = stdout.split('\n').filter((l) => /^\S+\s+\d+\s/.test(l)).map((l) => l.split(/\s+/).slice(0, 6).join(' '))
    assert.deepEqual(rows, [
      'www.example.com 1 prefix /api yes api',
      'www.example.com 2 prefix / no web',
      'www.example.com 3 pathPrefix / no web',
      '*.example.com 1 prefix /api yes api',
      '*.example.com 3 pathPrefix / no web',
      '* 1 prefix /api yes api',
    ])
    assert.match(stdout, /http:\/\/api\.internal:3000/)
  })
  it('shows where a redirect rule sends the client instead of an upstream', async () => {
    const config = 'upstreams: []\nrules:\n  - host: x.example\n    path: /\n    matchMode: exact\n    redirect: { path: /app }\n  - host: y.example\n    redirect: { scheme: https, hostname: z.example, statusCode: 301 }\n'
    const { code, stdout } = await runCli(['routes', file(config)])
    assert.equal(code, 0)
    assert.match(stdout, /^x\.example +1 +exact +\/ +no +- +redirect 302 \/app$/m)
    assert.match(stdout, /^y\.example +2 +prefix +\/ +no +- +redirect 301 https:\/\/z\.example$/m)
  })
})

describe('proxy start-up', () => {
  it('accepts the Go-style -config flag of the original NanoProxy', async () => {
    const path = file('upstreams: []\nrules: []\n')
    const proxy = await startProxy({ args: ['-config', path] })
    try {
      assert.equal((await send(`${proxy.url}/.nanoproxy/health`)).status, 200)
      assert.equal((await proxy.waitForLog((l) => l.msg.includes('listening'))).config, path)
    } finally {
      await proxy.stop()
    }
  })

  it('reads the config path from CONF_FILE when no flag is given', async () => {
    const path = file('upstreams: []\nrules: []\n')
    const proxy = await startProxy({ args: ['proxy'], env: { CONF_FILE: path } })
    try {
      assert.equal((await proxy.waitForLog((l) => l.msg.includes('listening'))).config, path)
    } finally {
      await proxy.stop()
    }
  })

  it('writes CONFIG_B64 over the config file and serves it', async () => {
    const dir = tempDir()
    const path = join(dir, 'config.yaml')
    writeFileSync(path, 'rules: []\n')
    const yaml = 'upstreams:\n  - name: x\n    host: 127.0.0.1\n    port: 9\nrules:\n  - upstream: x\n    path: /b64\n'
    const proxy = await startProxy({ args: ['proxy', '-c', path], env: { CONFIG_B64: Buffer.from(yaml).toString('base64') } })
    try {
      assert.equal(readFileSync(path, 'utf8'), yaml)
      assert.equal((await proxy.waitForLog((l) => l.msg.includes('listening'))).rules, 1)
    } finally {
      await proxy.stop()
    }
  })

  for (const [what, value, message] of [
    ['invalid base64', 'not base64!', /CONFIG_B64 is not valid base64/],
    ['base64 of invalid YAML config', Buffer.from('rules: [{path: /}]').toString('base64'), /CONFIG_B64 does not hold a valid config:\nCONFIG_B64:1:9: rule 1 is missing required field "upstream"/],
  ] as const) {
    it(`exits non-zero with a clear message for CONFIG_B64 holding ${what}, leaving the file alone`, async () => {
      const path = file('rules: []\n')
      const proxy = await startProxy({ args: ['proxy', '-c', path], env: { CONFIG_B64: value }, noWait: true })
      const { code } = await proxy.exited
      assert.equal(code, 1)
      assert.match(proxy.stderr, message)
      assert.equal(readFileSync(path, 'utf8'), 'rules: []\n')
    })
  }

  it('refuses to start with an invalid config, naming every problem', async () => {
    const path = file('upstreams:\n  - name: a\nrules:\n  - upstream: a\n    matchMode: fuzzy\n')
    const proxy = await startProxy({ args: ['proxy', '-c', path], noWait: true })
    const { code } = await proxy.exited
    assert.equal(code, 1)
    assert.match(proxy.stderr, new RegExp(`${path}:2:5: upstream 1 needs "host" \\(one server\\) or "servers"`))
    assert.match(proxy.stderr, new RegExp(`${path}:5:16: rule 1 field "matchMode": "fuzzy" is not valid`))
  })

  for (const [name, value] of [
    ['PORT', 'eighty'],
    ['PORT', '70000'],
    ['TIMEOUT', '0'],
    ['TIMEOUT', 'soon'],
    ['SHUTDOWN_TIMEOUT', '-1'],
    ['TRUSTED_PROXIES', '10.0.0.0/33'],
    ['TRUSTED_PROXIES', 'proxy.local'],
    ['LOG_LEVEL', 'verbose'],
  ] as const) {
    it(`refuses to start when ${name}=${value}, naming the variable`, async () => {
      const proxy = await startProxy({ env: { [name]: value }, config: '', noWait: true })
      const { code } = await proxy.exited
      assert.equal(code, 1)
      assert.match(proxy.stderr, new RegExp(name))
    })
  }
})

describe('the shipped examples', () => {
  for (const example of ['examples/config.yaml', 'examples/demo.yaml']) {
    it(`${example} is a valid config`, async () => {
      const { code, stderr } = await runCli(['validate', new URL(`../../${example}`, import.meta.url).pathname])
      assert.equal(code, 0, stderr)
    })
  }
})
