// `nanoproxy validate FILE`: like `nginx -t`, check before you reload.

import { loadConfigFile } from '../config/load.ts'
import { ConfigError } from '../errors.ts'

export async function runValidate(file: string): Promise<number> {
  try {
    const { config } = await loadConfigFile(file)
    process.stdout.write(`${file}: OK (${config.upstreams.length} upstreams, ${config.rules.length} rules)\n`)
    return 0
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    process.stderr.write(`${err.message}\n`)
    process.stderr.write(`${file}: ${err.problems.length} problem${err.problems.length === 1 ? '' : 's'}\n`)
    return 1
  }
}
