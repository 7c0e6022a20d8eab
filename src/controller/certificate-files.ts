// The certificate files the controller shares with the proxy, in
// `certs/` next to the config file (the shared volume).
//
// Files are named by the hash of their content and never rewritten: a
// renewed Secret is a new pair of files. So the order below makes every
// config the proxy can read name only complete files:
//   1. new pairs are written (temp file, then rename(2); mode 0600),
//   2. the config naming them is written (atomically, config-writer.ts),
//   3. pairs that neither this config nor the previous one names are
//      removed (the previous one's are kept one more round: the proxy may
//      be reading that config at this very moment).

import { randomBytes } from 'node:crypto'
import { mkdir, readdir, rename, rm, stat, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { CERTIFICATE_DIR, type CertificatePair } from './tls-translate.ts'

export class CertificateFiles {
  private readonly dir: string
  private previous = new Set<string>()

  constructor(configFile: string) {
    this.dir = join(dirname(configFile), CERTIFICATE_DIR)
  }

  /** Step 1: writes the pairs not on disk yet; returns how many were written. */
  async write(pairs: readonly CertificatePair[]): Promise<number> {
    if (pairs.length === 0) return 0
    // 0700: the directory holds private keys.
    await mkdir(this.dir, { recursive: true, mode: 0o700 })
    let written = 0
    for (const pair of pairs) {
      const crt = join(this.dir, `${pair.id}.crt`)
      const key = join(this.dir, `${pair.id}.key`)
      if ((await exists(crt)) && (await exists(key))) continue
      // The key first: a config is written only after both are in place anyway.
      await writeAtomically(key, pair.key)
      await writeAtomically(crt, pair.cert)
      written++
    }
    return written
  }

  /** Step 3: removes pairs named by neither `pairs` nor the previous call's. */
  async prune(pairs: readonly CertificatePair[]): Promise<number> {
    const current = new Set(pairs.map((p) => p.id))
    const keep = new Set([...current, ...this.previous])
    this.previous = current
    let names: string[]
    try {
      names = await readdir(this.dir)
    } catch {
      return 0
    }
    let removed = 0
    for (const name of names) {
      const m = /^([0-9a-f]+)\.(crt|key)$/.exec(name)
      if (!m || keep.has(m[1]!)) continue
      await rm(join(this.dir, name), { force: true })
      if (m[2] === 'key') removed++
    }
    return removed
  }
}

async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    () => false,
  )
}

async function writeAtomically(file: string, data: Buffer): Promise<void> {
  const tmp = join(dirname(file), `.${randomBytes(4).toString('hex')}.tmp`)
  try {
    // 0600: only the pod's user (controller and proxy run as the same one) reads keys.
    await writeFile(tmp, data, { mode: 0o600 })
    await rename(tmp, file)
  } catch (err) {
    await rm(tmp, { force: true })
    throw err
  }
}
