// `nanoproxy proxy`: decide what this process is, and load only what that needs.
//
// With WORKERS > 1 the first process is a supervisor: it checks the config,
// forks the workers and watches them, and never serves a request. Each role's
// module is imported dynamically, so the proxy engine and the file watcher
// are loaded only in the process that serves (a worker, or the single
// process when WORKERS=1), and a supervisor does not hold memory for code it
// never runs (measured in docs/performance.md#memory-at-idle).

import cluster from 'node:cluster'
import { configPath, ensureConfigFile, writeConfigB64 } from '../config/config-file.ts'
import { loadConfigFile } from '../config/load.ts'
import { createLogger } from '../log.ts'
import { readProxySettings, type ProxySettings } from '../settings.ts'

export interface ProxyOptions {
  config?: string | undefined
}

export async function runProxy(options: ProxyOptions, env: Record<string, string | undefined>): Promise<void> {
  const settings = readProxySettings(env)
  const log = createLogger({ debug: settings.debug })
  const file = configPath(options.config, env)
  if (settings.workers > 1 && cluster.isPrimary) {
    await checkBeforeForking(file, settings)
    const { superviseWorkers } = await import('./supervise-workers.ts')
    return superviseWorkers(settings.workers, settings, log)
  }
  const { serveProxy } = await import('./serve-proxy.ts')
  return serveProxy(file, settings, log)
}

/**
 * Checks the config (and the certificate) once, before forking, so that a bad
 * file stops start-up with one message instead of N workers failing in a
 * loop. Each worker then loads both again itself.
 */
async function checkBeforeForking(file: string, settings: ProxySettings): Promise<void> {
  if (settings.configB64) writeConfigB64(file, settings.configB64)
  ensureConfigFile(file)
  await loadConfigFile(file)
  // Imported only with CERT_PATH: checking the pair needs node:tls, which
  // loads OpenSSL (several MB) into a supervisor that has no other use for it.
  if (settings.certPath) (await import('../proxy/tls.ts')).loadCertificate(settings.certPath)
}
