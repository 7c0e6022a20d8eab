// Where the config file is and how it comes to exist.

import { mkdirSync, writeFileSync, existsSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { ERROR_CODES, NanoProxyError } from '../errors.ts'
import { parseConfig } from './load.ts'

/** `-c/--config` flag, else CONF_FILE, else ./config.yaml (the original's order). */
export function configPath(flag: string | undefined, env: Record<string, string | undefined>): string {
  return resolve(flag || env.CONF_FILE || './config.yaml')
}

/**
 * The original creates a missing config file empty and watches it, so the
 * proxy starts (answering 404) and picks up rules written later, e.g. by the
 * controller sidecar. Returns whether the file was created.
 */
export function ensureConfigFile(file: string): boolean {
  if (existsSync(file)) return false
  mkdirSync(dirname(file), { recursive: true })
  try {
    writeFileSync(file, '', { mode: 0o600, flag: 'wx' })
  } catch (err) {
    // The controller sidecar may have written it in the meantime: fine.
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false
    throw err
  }
  return true
}

/**
 * CONFIG_B64: a whole config, base64-encoded, written over the config file
 * at start-up. It is decoded strictly (padding included, as Go's
 * StdEncoding does) and validated before anything is written, so a bad
 * value never replaces a good file.
 */
export function writeConfigB64(file: string, b64: string): void {
  const compact = b64.replace(/\s+/g, '')
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(compact) || compact.length % 4 !== 0) {
    throw new NanoProxyError(ERROR_CODES.SETTINGS_INVALID, 'CONFIG_B64 is not valid base64 (standard alphabet, with padding)')
  }
  const text = Buffer.from(compact, 'base64').toString('utf8')
  try {
    parseConfig(text, 'CONFIG_B64')
  } catch (err) {
    throw new NanoProxyError(ERROR_CODES.SETTINGS_INVALID, `CONFIG_B64 does not hold a valid config:\n${(err as Error).message}`, {
      cause: err,
    })
  }
  mkdirSync(dirname(file), { recursive: true })
  writeFileSync(file, text, { mode: 0o600 })
}
