// Serialising the proxy config and writing it where the proxy watches.
//
// The file is the only contract between controller and proxy. It is written
// atomically (a temp file in the same directory, then rename(2), which
// replaces the name in one step), so the proxy never reads half a file, and
// only when its content changes, so an idle cluster causes no reloads.

import { randomBytes } from 'node:crypto'
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { stringify } from 'yaml'
import type { ProxyConfig } from '../config/schema.ts'

const HEADER = '# Written by the NanoProxy ingress controller from Ingress objects.\n# Do not edit: it is rewritten whenever they change.\n'

export function serializeConfig(config: ProxyConfig): string {
  return HEADER + stringify(config, { lineWidth: 0 })
}

/** Writes `text` to `file` atomically; returns false when the file already held exactly that. */
export async function writeIfChanged(file: string, text: string): Promise<boolean> {
  const current = await readFile(file, 'utf8').catch(() => undefined)
  if (current === text) return false
  const tmp = join(dirname(file), `.${basename(file)}.${randomBytes(4).toString('hex')}.tmp`)
  await mkdir(dirname(file), { recursive: true })
  try {
    await writeFile(tmp, text, { mode: 0o644 })
    await rename(tmp, file)
  } catch (err) {
    await rm(tmp, { force: true })
    throw err
  }
  return true
}
