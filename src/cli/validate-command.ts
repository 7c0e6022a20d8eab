// `nanoproxy validate FILE`: like `nginx -t`, check before you reload.

import { dirname, resolve } from 'node:path'
import { loadConfigFile } from '../config/load.ts'
import { ConfigError } from '../errors.ts'

export async function runValidate(file: string): Promise<number> {
  try {
    const { config } = await loadConfigFile(file)
    const n = (count: number, noun: string) => `${count} ${noun}${count === 1 ? '' : 's'}`
    const certificates = config.certificates ?? []
    let errors = 0
    if (certificates.length > 0) {
      // Loaded only when there are certificates: it brings node:tls.
      const { inspectCertificates } = await import('../proxy/certificate-inspection.ts')
      for (const finding of inspectCertificates(certificates, dirname(resolve(file)))) {
        if (finding.severity === 'error') errors++
        const label = finding.hosts.join(', ') || (certificates[finding.index]?.default ? 'default' : 'no hosts')
        process.stderr.write(`${file}: certificate ${finding.index + 1} (${label}): ${finding.severity}: ${finding.message}\n`)
      }
    }
    if (errors > 0) {
      process.stderr.write(`${file}: ${n(errors, 'problem')}\n`)
      return 1
    }
    const certs = certificates.length > 0 ? `, ${n(certificates.length, 'certificate')}` : ''
    process.stdout.write(`${file}: OK (${n(config.upstreams.length, 'upstream')}, ${n(config.rules.length, 'rule')}${certs})\n`)
    return 0
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    process.stderr.write(`${err.message}\n`)
    process.stderr.write(`${file}: ${err.problems.length} problem${err.problems.length === 1 ? '' : 's'}\n`)
    return 1
  }
}
