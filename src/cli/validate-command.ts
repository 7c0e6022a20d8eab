// `nanoproxy validate FILE`: like `nginx -t`, check before you reload.

import { loadConfigFile } from '../config/load.ts'
import { ConfigError } from '../errors.ts'

export async function runValidate(file: string): Promise<number> {
  try {
    const { config } = await loadConfigFile(file)
    const n = (count: number, noun: string) => `${count} ${noun}${count === 1 ? '' : 's'}`
    process.stdout.write(`${file}: OK (${n(config.upstreams.length, 'upstream')}, ${n(config.rules.length, 'rule')})\n`)
    return 0
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    process.stderr.write(`${err.message}\n`)
    process.stderr.write(`${file}: ${err.problems.length} problem${err.problems.length === 1 ? '' : 's'}\n`)
    return 1
  }
}
