// The Dockerfile, without a Docker engine: its instructions are read here
// and its file steps replayed on a clean copy of the repository (the files
// git does not ignore, committed or not, as `docker build` would send them,
// filtered by .dockerignore as the build context would be):
// COPY, WORKDIR and the npm install run for real, then the result is
// started as the image's ENTRYPOINT would start it, with the repository's
// Node.js 24 standing in for the image's `node` on PATH. The steps that
// change the operating system (useradd, mkdir /conf) are not replayed; the
// app runs as uid 10001 when the tests run as root, else in a read-only copy.

import assert from 'node:assert/strict'
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { chmodSync, chownSync, cpSync, existsSync, mkdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { send } from '../helpers/http-client.ts'
import { ProxyProcess, tempDir } from '../helpers/proxy-process.ts'

const ROOT = new URL('../../', import.meta.url).pathname
/** The Node.js 24 of the `node` dev dependency: the image's `node` here. */
const NODE24_BIN = join(ROOT, 'node_modules/node/bin')
const UID = 10001

interface Instruction {
  op: string
  args: string
}

interface Stage {
  from: string
  name: string | undefined
  steps: Instruction[]
}

/** Instructions of a Dockerfile: continuation lines joined, comments dropped. */
function parseDockerfile(text: string): { args: Record<string, string>; stages: Stage[] } {
  const lines: string[] = []
  let current = ''
  for (const raw of text.split('\n')) {
    if (/^\s*#/.test(raw)) continue
    const line = raw.trimEnd()
    if (line.endsWith('\\')) {
      current += line.slice(0, -1) + ' '
      continue
    }
    current += line
    if (current.trim() !== '') lines.push(current.trim())
    current = ''
  }
  const args: Record<string, string> = {}
  const stages: Stage[] = []
  for (const line of lines) {
    const [, op, rest] = /^(\S+)\s+(.*)$/.exec(line) ?? []
    const instruction = { op: op!.toUpperCase(), args: rest!.replace(/\s+/g, ' ') }
    if (instruction.op === 'FROM') {
      const [from, as, name] = instruction.args.split(' ')
      stages.push({ from: from!, name: as?.toUpperCase() === 'AS' ? name : undefined, steps: [] })
    } else if (stages.length === 0 && instruction.op === 'ARG') {
      const [name, value] = instruction.args.split('=')
      args[name!] = value ?? ''
    } else {
      stages.at(-1)!.steps.push(instruction)
    }
  }
  return { args, stages }
}

/** Whether .dockerignore keeps `path` out of the build context (last matching pattern wins; a pattern matching a parent directory matches). */
function ignored(patterns: string[], path: string): boolean {
  const parts = path.split('/')
  const prefixes = parts.map((_, i) => parts.slice(0, i + 1).join('/'))
  let excluded = false
  for (const raw of patterns) {
    const negated = raw.startsWith('!')
    const pattern = (negated ? raw.slice(1) : raw).replace(/^\/|\/$/g, '')
    const re = new RegExp(
      '^' +
        pattern
          .split('')
          .map((c) => (c === '*' ? '[^/]*' : c === '?' ? '[^/]' : c.replace(/[.+^${}()|[\]\\]/g, '\\$&')))
          .join('') +
        '$',
    )
    if (prefixes.some((p) => re.test(p))) excluded = !negated
  }
  return excluded
}

function dockerignorePatterns(): string[] {
  return readFileSync(join(ROOT, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
}

/** The build context: files git does not ignore (tracked or new) that .dockerignore lets through. */
function buildContext(): string[] {
  const patterns = dockerignorePatterns()
  return execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: ROOT, encoding: 'utf8' })
    .split('\0')
    .filter((f) => f !== '' && existsSync(join(ROOT, f)) && !ignored(patterns, f))
}

/** Where a `RUN --mount=type=secret,id=ID` mount puts the secret (BuildKit's, podman's and buildah's default target). */
const secretPath = (id: string): string => `/run/secrets/${id}`

/** The npm CA preamble of the npm steps: NODE_EXTRA_CA_CERTS only when the build was given the secret. */
const NPM_CA_PREAMBLE = `if [ -f ${secretPath('npm_ca')} ]; then export NODE_EXTRA_CA_CERTS=${secretPath('npm_ca')}; fi; `

/** A RUN instruction: its --mount options, and its shell text without them. */
function runParts(step: Instruction): { mounts: string[]; shell: string } {
  const mounts: string[] = []
  let rest = step.args
  for (let m = /^--mount=(\S+) /.exec(rest); m; m = /^--mount=(\S+) /.exec(rest)) {
    mounts.push(m[1]!)
    rest = rest.slice(m[0].length)
  }
  return { mounts, shell: rest }
}

/** The command a RUN step runs, without its mounts and the npm CA preamble. */
const runCommand = (step: Instruction): string => runParts(step).shell.replace(NPM_CA_PREAMBLE, '')

/** The JSON (exec) form of an instruction's arguments. */
function execForm(step: Instruction | undefined): string[] {
  assert.ok(step, 'instruction missing')
  const parsed = JSON.parse(step.args) as unknown
  assert.ok(Array.isArray(parsed), `${step.op} must use the exec (JSON) form so no shell sits between the runtime and the process`)
  return parsed as string[]
}

const dockerfile = parseDockerfile(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'))
const final = dockerfile.stages.at(-1)!
const finalSteps = (op: string) => final.steps.filter((s) => s.op === op)

describe('the Dockerfile', () => {
  it('builds on the official Node.js 24 image in every stage', () => {
    const image = dockerfile.args.NODE_IMAGE
    assert.match(image ?? '', /^node:24-[a-z]+(-slim)?$/, 'the default base image is an official node:24 variant')
    for (const stage of dockerfile.stages) {
      assert.ok(stage.from === '${NODE_IMAGE}' || dockerfile.stages.some((s) => s.name === stage.from), `FROM ${stage.from}`)
    }
    assert.ok(dockerfile.stages.length >= 2, 'multi-stage: the install stage (npm and its cache) stays out of the final image')
  })

  it('runs bin/nanoproxy in exec form as a non-root numeric user, with NODE_ENV and CONF_FILE set', () => {
    assert.deepEqual(execForm(finalSteps('ENTRYPOINT')[0]), ['/app/bin/nanoproxy'])
    assert.deepEqual(execForm(finalSteps('CMD')[0]), ['proxy'])
    assert.deepEqual(
      finalSteps('USER').map((s) => s.args),
      [`${UID}:${UID}`],
      'a numeric uid lets Kubernetes check runAsNonRoot without a runAsUser',
    )
    const env = finalSteps('ENV')
      .flatMap((s) => s.args.split(' '))
      .map((kv) => kv.split('='))
    assert.deepEqual(Object.fromEntries(env), { NODE_ENV: 'production', CONF_FILE: '/conf/config.yaml' })
    assert.ok(finalSteps('RUN').some((s) => /chown 10001:10001 \/conf/.test(s.args)), 'the config directory belongs to the runtime user')
  })

  it('compiles src/ in a build stage; the image gets dist/ and production dependencies only, from the lockfile, without install scripts', () => {
    const npmSteps = (stage: Stage) => stage.steps.filter((s) => s.op === 'RUN' && runCommand(s).startsWith('npm ')).map(runCommand)
    const copiedFrom = (path: string) => finalSteps('COPY').find((s) => s.args.endsWith(` ./${path}`))?.args.match(/--from=(\S+)/)?.[1]
    const stage = (name: string | undefined) => dockerfile.stages.find((s) => s.name === name)
    const build = stage(copiedFrom('dist'))
    const deps = stage(copiedFrom('node_modules'))
    assert.ok(build && deps, 'dist/ and node_modules/ are copied from earlier stages')
    assert.deepEqual(npmSteps(build), ['npm ci --ignore-scripts --no-audit --no-fund', 'npm run build'])
    assert.deepEqual(npmSteps(deps), ['npm ci --omit=dev --ignore-scripts --no-audit --no-fund'])
    assert.deepEqual(npmSteps(final), [], 'nothing is installed in the final stage')
    assert.ok(!finalSteps('COPY').some((s) => /\bsrc\b/.test(s.args)), 'the image holds no TypeScript sources: bin/nanoproxy runs dist/')
  })

  it("gives every npm install the build secret npm_ca (a TLS-intercepting proxy's CA) and keeps it out of the image", () => {
    const installs = dockerfile.stages.flatMap((stage) => stage.steps.filter((s) => s.op === 'RUN' && / npm ci /.test(` ${runCommand(s)} `)))
    assert.equal(installs.length, 2, 'the build and deps stages install')
    for (const step of installs) {
      assert.deepEqual(runParts(step).mounts, ['type=secret,id=npm_ca'], `RUN ${step.args}`)
      assert.ok(runParts(step).shell.startsWith(NPM_CA_PREAMBLE), 'NODE_EXTRA_CA_CERTS is set only when the secret was given')
    }
    // A secret mount exists for its RUN step only; nothing else may name it.
    const others = dockerfile.stages.flatMap((stage) => stage.steps).filter((s) => !installs.includes(s))
    for (const step of others) assert.doesNotMatch(step.args, /npm_ca|NODE_EXTRA_CA_CERTS|\.pem\b/, `${step.op} ${step.args}`)
    assert.doesNotMatch(JSON.stringify(dockerfile.args), /npm_ca|NODE_EXTRA_CA_CERTS/)
  })

  it('sets NODE_EXTRA_CA_CERTS for npm only when the secret is there (no warning about a missing file in a plain build)', () => {
    const dir = tempDir('nanoproxy-secret-')
    try {
      const show = 'node -e "console.log(process.env.NODE_EXTRA_CA_CERTS ?? \'unset\')"'
      const run = (secret: string) =>
        execFileSync('sh', ['-c', NPM_CA_PREAMBLE.replaceAll(secretPath('npm_ca'), secret) + show], {
          encoding: 'utf8',
          env: { PATH: `${NODE24_BIN}:/usr/bin:/bin` },
        }).trim()
      assert.equal(run(join(dir, 'npm_ca')), 'unset')
      writeFileSync(join(dir, 'npm_ca'), '')
      assert.equal(run(join(dir, 'npm_ca')), join(dir, 'npm_ca'))
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('has a build context of the files it copies only', () => {
    const context = buildContext()
    const copied = ['package.json', 'package-lock.json', '.npmrc', 'tsconfig.json', 'tsconfig.build.json']
    const outside = context.filter((f) => !copied.includes(f) && !/^(bin|src)\//.test(f))
    assert.deepEqual(outside, [], 'nothing but package*.json, .npmrc, tsconfig*.json, bin/ and src/ is sent to the builder')
    assert.ok(context.includes('bin/nanoproxy') && context.includes('src/cli/main.ts') && context.includes('tsconfig.build.json'))
    for (const f of ['node_modules/node/bin/node', 'dist/cli/main.js', '.git/HEAD', '.cache/x', 'test/errors.test.ts', 'deploy/rbac.yaml']) {
      assert.ok(ignored(dockerignorePatterns(), f), `${f} must stay out of the context`)
    }
  })
})

describe('the image, replayed from a clean copy of the repository', () => {
  const work = tempDir('nanoproxy-image-')
  const stageRoots = new Map<string, string>()
  let app = ''
  let conf = ''
  const runAs = process.getuid?.() === 0 ? { uid: UID, gid: UID } : {}

  /** Replays WORKDIR, COPY and npm RUN steps; returns the stage's root directory. */
  function replay(stage: Stage, context: string): string {
    const root = join(work, `stage-${stageRoots.size}`)
    mkdirSync(root, { recursive: true })
    let workdir = '/'
    for (const step of stage.steps) {
      const inRoot = (p: string) => join(root, p.startsWith('/') ? p : join(workdir, p))
      if (step.op === 'WORKDIR') {
        workdir = step.args
        mkdirSync(inRoot('.'), { recursive: true })
      } else if (step.op === 'COPY') {
        const words = step.args.split(' ')
        const from = words.find((w) => w.startsWith('--from='))?.slice('--from='.length)
        const paths = words.filter((w) => !w.startsWith('--'))
        const dest = paths.pop()!
        const sourceRoot = from === undefined ? context : stageRoots.get(from)
        assert.ok(sourceRoot, `COPY --from=${from}: no such stage`)
        for (const src of paths) {
          const target = paths.length > 1 || dest.endsWith('/') ? join(inRoot(dest), basename(src)) : inRoot(dest)
          mkdirSync(dirname(target), { recursive: true })
          cpSync(join(sourceRoot, src), target, { recursive: true })
        }
      } else if (step.op === 'RUN' && runCommand(step).startsWith('npm ')) {
        // The npm_* variables `npm test` exports (npm_config_local_prefix...)
        // are left out: the install must depend on the stage directory only.
        // So is NODE_EXTRA_CA_CERTS: a CA it names (a TLS-intercepting
        // proxy's, as on the CI machines) reaches npm the way a build would
        // pass it, as the secret npm_ca, here a file where the mount would be.
        const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k) && k !== 'NODE_EXTRA_CA_CERTS'))
        const { mounts, shell } = runParts(step)
        let script = shell
        for (const mount of mounts) {
          const id = /^type=secret,id=([\w-]+)$/.exec(mount)?.[1]
          assert.ok(id, `only secret mounts are replayed: --mount=${mount}`)
          const file = join(work, 'secrets', id)
          if (id === 'npm_ca' && process.env.NODE_EXTRA_CA_CERTS && !existsSync(file)) {
            mkdirSync(dirname(file), { recursive: true })
            cpSync(process.env.NODE_EXTRA_CA_CERTS, file)
          }
          script = script.replaceAll(secretPath(id), file)
        }
        const run = spawnSync('sh', ['-c', script], { cwd: inRoot('.'), encoding: 'utf8', env: { ...env, npm_config_update_notifier: 'false' } })
        assert.equal(run.status, 0, `RUN ${step.args} failed:\n${run.stdout}\n${run.stderr}`)
      }
    }
    if (stage.name) stageRoots.set(stage.name, root)
    return root
  }

  before(
    () => {
      const context = join(work, 'context')
      for (const f of buildContext()) {
        mkdirSync(dirname(join(context, f)), { recursive: true })
        cpSync(join(ROOT, f), join(context, f))
      }
      let root = ''
      for (const stage of dockerfile.stages) root = replay(stage, context)
      const workdir = finalSteps('WORKDIR').at(-1)!.args
      app = join(root, workdir)
      conf = join(work, 'conf')
      mkdirSync(conf)
      // The app is readable by all and writable by none but root; the
      // config directory belongs to the runtime user, as in the image.
      for (let d = app; d.startsWith(work); d = dirname(d)) chmodSync(d, 0o755)
      if (runAs.uid !== undefined) chownSync(conf, UID, UID)
      else execFileSync('chmod', ['-R', 'a-w', app])
    },
    { timeout: 180_000 },
  )

  after(() => {
    // The replayed image holds a whole node_modules: do not leave it behind.
    if (app && runAs.uid === undefined) execFileSync('chmod', ['-R', 'u+w', app])
    rmSync(work, { recursive: true, force: true })
  })

  function env(): Record<string, string> {
    return {
      PATH: `${NODE24_BIN}:/usr/local/bin:/usr/bin:/bin`,
      HOME: '/nonexistent',
      NODE_ENV: 'production',
      CONF_FILE: join(conf, 'config.yaml'),
      PORT: '0',
    }
  }

  it('holds the production dependencies and no dev dependency, not even the node package', () => {
    const modules = join(app, 'node_modules')
    for (const dep of Object.keys((JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { dependencies: object }).dependencies)) {
      assert.ok(existsSync(join(modules, dep, 'package.json')), `${dep} is installed`)
    }
    // ajv: the config schema's validator is compiled ahead of time (src/config/schema-validator.ts).
    for (const dev of ['node', 'typescript', 'eslint', 'ajv', '@aws-cdk/lambda-layer-kubectl-v33', 'aws-cdk-lib']) {
      assert.ok(!existsSync(join(modules, dev)), `dev dependency ${dev} must not be in the image`)
    }
    assert.ok(!existsSync(join(app, 'test')) && !existsSync(join(app, 'docs')))
    assert.ok(existsSync(join(app, 'dist/cli/main.js')), 'the compiled JavaScript is in the image')
    assert.ok(!existsSync(join(app, 'src')) && !existsSync(join(app, 'tsconfig.json')), 'the TypeScript sources are not')
  })

  it('serves /.nanoproxy/health as the proxy, with node itself as the process that gets SIGTERM, and exits 0 on it', async () => {
    const child = spawn(join(app, 'bin/nanoproxy'), execForm(finalSteps('CMD')[0]), { cwd: app, env: env(), stdio: ['ignore', 'pipe', 'pipe'], ...runAs })
    const proxy = new ProxyProcess(child, conf, join(conf, 'config.yaml'))
    try {
      const listening = await Promise.race([
        proxy.waitForLog((l) => typeof l.port === 'number' && l.msg.includes('listening'), 20_000),
        proxy.exited.then(({ code }) => assert.fail(`exited with ${code} before listening:\n${proxy.stderr}`)),
      ])
      const health = await send(`http://127.0.0.1:${listening.port as number}/.nanoproxy/health`)
      assert.equal(health.status, 200)
      // The launcher execs: the PID the runtime signals is node's (PID 1 in a container).
      assert.equal(readlinkSync(`/proc/${child.pid}/exe`), join(NODE24_BIN, 'node'))
      // ...running the compiled JavaScript.
      assert.ok(readFileSync(`/proc/${child.pid}/cmdline`, 'utf8').split('\0').includes(join(app, 'dist/cli/main.js')))
      assert.ok(existsSync(join(conf, 'config.yaml')), 'the missing config file is created in the config directory')
    } finally {
      const { code, signal } = await proxy.stop('SIGTERM')
      assert.deepEqual({ code, signal }, { code: 0, signal: null }, proxy.stderr)
    }
  })

  it('answers controller --help and --version', () => {
    const run = (args: string[]) => spawnSync(join(app, 'bin/nanoproxy'), args, { cwd: app, env: env(), encoding: 'utf8', ...runAs })
    const help = run(['controller', '--help'])
    assert.equal(help.status, 0, help.stderr)
    assert.match(help.stdout, /^Usage: nanoproxy controller/)
    const version = run(['--version'])
    assert.equal(version.stdout, `nanoproxy ${(JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version}\n`)
  })
})
