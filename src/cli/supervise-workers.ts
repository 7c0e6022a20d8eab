// The supervisor of `nanoproxy proxy` with WORKERS > 1: forks the workers,
// replaces those that die, and passes signals on. It serves nothing itself.

import cluster from 'node:cluster'
import { exitAfterLogs, type Logger } from '../log.ts'

/**
 * Each worker is a full proxy (it loads and watches the config and
 * certificates itself, so a reload reaches all of them) bound to the same
 * port with SO_REUSEPORT. SIGTERM and SIGINT are passed on; each worker
 * drains as a single proxy would, and the supervisor exits 0 once all have.
 * A worker that dies otherwise is replaced.
 */
export async function superviseWorkers(count: number, port: number, log: Logger): Promise<void> {
  // With PORT=0 every worker must still share one port: pick it here.
  const shared = port === 0 ? await freePort() : port
  let stopping = false
  const fork = (): void => {
    cluster.fork({ PORT: String(shared), WORKERS: String(count) })
  }
  cluster.on('exit', (worker, code, signal) => {
    if (stopping) {
      if (Object.keys(cluster.workers ?? {}).length === 0) {
        log.info('all workers stopped')
        exitAfterLogs(0)
      }
      return
    }
    log.error({ worker: worker.process.pid, code, signal }, 'worker exited; starting a new one')
    setTimeout(fork, 1000).unref()
  })
  for (let i = 0; i < count; i++) fork()
  log.info({ workers: count, port: shared }, `supervising ${count} workers on port ${shared}`)
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) process.exit(1)
    stopping = true
    log.info({ signal }, 'stopping workers')
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGTERM')
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
}

async function freePort(): Promise<number> {
  const { createServer } = await import('node:net')
  const s = createServer()
  await new Promise<void>((resolve) => s.listen(0, resolve))
  const port = (s.address() as { port: number }).port
  await new Promise((resolve) => s.close(resolve))
  return port
}
