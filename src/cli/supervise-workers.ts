// The supervisor of `nanoproxy proxy` with WORKERS > 1: forks the workers,
// replaces those that die, and passes signals on. It serves nothing itself.

import cluster from 'node:cluster'
import type { Server } from 'node:http'
import { randomBytes } from 'node:crypto'
import { exitAfterLogs, type Logger } from '../log.ts'
import type { ProxySettings } from '../settings.ts'
// Constants only: the supervisor never loads node:tls.
const TICKET_KEYS_BYTES = 48
const TICKET_KEYS_ENV = 'NANOPROXY_TLS_TICKET_KEYS'
const TICKET_KEYS_ROTATION_MS = 12 * 60 * 60 * 1000

/**
 * Each worker is a full proxy (it loads and watches the config and
 * certificates itself, so a reload reaches all of them) bound to the same
 * port with SO_REUSEPORT. SIGTERM and SIGINT are passed on; each worker
 * drains as a single proxy would, and the supervisor exits 0 once all have.
 * A worker that dies otherwise is replaced.
 *
 * TLS session tickets are encrypted with keys the supervisor generates and
 * hands to every worker (in the environment at fork, then by IPC on each
 * rotation): a client resumes its session whichever worker the kernel gives
 * its next connection to. A worker started later gets the current keys.
 */
export async function superviseWorkers(count: number, settings: Pick<ProxySettings, 'port' | 'httpsPort' | 'adminPort'>, log: Logger): Promise<void> {
  // With PORT=0 every worker must still share one port: pick it here.
  const shared = settings.port === 0 ? await freePort() : settings.port
  const httpsPort = settings.httpsPort === 0 ? await freePort() : settings.httpsPort
  let ticketKeys = randomBytes(TICKET_KEYS_BYTES).toString('hex')
  let stopping = false
  const fork = (): void => {
    cluster.fork({
      PORT: String(shared),
      WORKERS: String(count),
      [TICKET_KEYS_ENV]: ticketKeys,
      ...(httpsPort !== undefined ? { HTTPS_PORT: String(httpsPort) } : {}),
    })
  }
  setInterval(() => {
    ticketKeys = randomBytes(TICKET_KEYS_BYTES).toString('hex')
    for (const worker of Object.values(cluster.workers ?? {})) worker?.send({ type: 'nanoproxy:ticket-keys', keys: ticketKeys })
  }, TICKET_KEYS_ROTATION_MS).unref()
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
  log.info({ workers: count, port: shared, ...(httpsPort !== undefined ? { https_port: httpsPort } : {}) }, `supervising ${count} workers on port ${shared}`)
  // ADMIN_PORT: the supervisor serves it, summing every worker's numbers.
  let admin: Server | undefined
  if (settings.adminPort !== undefined) {
    const { createAdminServer, listenAdmin } = await import('../admin/admin-server.ts')
    const { workerSnapshotSource } = await import('../admin/worker-snapshots.ts')
    admin = createAdminServer(workerSnapshotSource(), log)
    const port = await listenAdmin(admin, settings.adminPort)
    log.info({ admin_port: port }, `metrics and dashboard on port ${port} (/metrics, /), summed over ${count} workers`)
  }
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) process.exit(1)
    stopping = true
    admin?.close()
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
