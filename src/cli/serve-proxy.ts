// The process that serves for `nanoproxy proxy` (a worker, or the only
// process when WORKERS=1): load the config, serve, hot-reload, shut down
// gracefully. Imported only there, so that a supervisor never loads the
// proxy engine (see proxy-command.ts).

import cluster from 'node:cluster'
import type { Server } from 'node:http'
import { randomBytes } from 'node:crypto'
import { dirname, resolve } from 'node:path'
import { FileWatcher } from '../config/file-watcher.ts'
import { ensureConfigFile, writeConfigB64 } from '../config/config-file.ts'
import { loadConfigFile } from '../config/load.ts'
import { ConfigError } from '../errors.ts'
import { exitAfterLogs, type Logger } from '../log.ts'
import { ProxyLifecycle } from '../proxy/proxy-lifecycle.ts'
import { certificateFiles, checkCertificate, loadCertificate, TICKET_KEYS_BYTES, TICKET_KEYS_ENV, TICKET_KEYS_ROTATION_MS } from '../proxy/tls.ts'
import type { ProxySettings } from '../settings.ts'
import { VERSION } from '../version.ts'

/** Starts serving `file` and returns once listening; the process then exits on a signal. */
export async function serveProxy(file: string, settings: ProxySettings, log: Logger): Promise<void> {
  // A worker finds CONFIG_B64 already written by the supervisor.
  if (settings.configB64 && cluster.isPrimary) {
    writeConfigB64(file, settings.configB64)
    log.info({ config: file }, 'config from CONFIG_B64 written to the config file')
  }
  if (ensureConfigFile(file)) {
    log.warn({ config: file }, 'config file not found: created it empty; every request gets 404 until rules are added')
  }
  const { config, text } = await loadConfigFile(file)
  const certPathPair = settings.certPath ? loadCertificate(settings.certPath) : undefined

  const proxy = new ProxyLifecycle({
    settings,
    log,
    config,
    configDir: dirname(resolve(file)),
    certPathPair: certPathPair && { cert: certPathPair.cert as Buffer, key: certPathPair.key as Buffer },
    ticketKeys: initialTicketKeys(),
    shared: cluster.isWorker,
  })
  const ctx = proxy.ctx
  const admin = await startAdmin(proxy, settings, log)

  const configWatcher = new FileWatcher({
    files: [file],
    log,
    onChange: ([content]) => reloadConfig(proxy, log, file, content),
  })
  await configWatcher.start([Buffer.from(text)])

  let certWatcher: FileWatcher | undefined
  if (settings.certPath && certPathPair) {
    const certPath = settings.certPath
    certWatcher = new FileWatcher({
      files: certificateFiles(certPath),
      log,
      onChange: ([cert, key]) => reloadCertificate(proxy, log, certPath, cert, key),
    })
    await certWatcher.start([certPathPair.cert as Buffer, certPathPair.key as Buffer])
  }
  const rotation = watchTicketKeys(proxy)

  // Signal handlers first: the 'listening' line is written by another
  // thread, and whoever reads it may signal before the next statement runs.
  let stopping = false
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) {
      log.warn({ signal }, 'second signal: exiting now')
      process.exit(1)
    }
    stopping = true
    const inFlight = proxy.inFlight
    // shutdown() stops accepting before it returns: the log line below is
    // then true when read (a connection attempt after it is refused, not reset).
    const drained = proxy.shutdown()
    log.info({ signal, grace_s: settings.shutdownTimeoutMs / 1000, in_flight: inFlight }, 'shutting down')
    configWatcher.stop()
    certWatcher?.stop()
    admin?.close()
    clearInterval(rotation)
    void drained.then((clean) => {
      log.info({ clean }, clean ? 'shutdown complete' : 'grace period over: remaining connections closed')
      exitAfterLogs(0)
    })
  }
  process.on('SIGTERM', stop)
  // A worker hears Ctrl-C too (same process group); the supervisor turns it
  // into the SIGTERM every worker gets, so the worker itself ignores it.
  if (cluster.isWorker) process.on('SIGINT', () => {})
  else process.on('SIGINT', stop)

  const { http, https } = await proxy.listen()
  const port = http ?? https
  const what = http !== undefined && https !== undefined ? `port ${http} (HTTP) and ${https} (HTTPS)` : `port ${port} (${http === undefined ? 'HTTPS' : 'HTTP'})`
  log.info(
    {
      version: VERSION,
      port,
      ...(https !== undefined ? { https_port: https } : {}),
      tls: https !== undefined,
      config: file,
      upstreams: ctx.state.config.upstreams.length,
      rules: ctx.state.config.rules.length,
      certificates: ctx.state.config.certificates?.length ?? 0,
      timeout_s: settings.timeoutMs / 1000,
      trusted_proxies: settings.trustedProxiesText,
    },
    `NanoProxy ${VERSION} listening on ${what}`,
  )
  if (ctx.state.config.rules.length === 0) log.warn('config contains no rules: every request gets 404')
}

/**
 * ADMIN_PORT: a single process serves /metrics and the dashboard itself; a
 * worker answers its supervisor, whose admin server sums all workers.
 */
async function startAdmin(proxy: ProxyLifecycle, settings: ProxySettings, log: Logger): Promise<Server | undefined> {
  if (settings.adminPort === undefined) return undefined
  const { proxySnapshot, proxySnapshotSource } = await import('../admin/proxy-snapshot.ts')
  if (cluster.isWorker) {
    const { answerSnapshots } = await import('../admin/worker-snapshots.ts')
    answerSnapshots(() => proxySnapshot(proxy))
    return undefined
  }
  const { createAdminServer, listenAdmin } = await import('../admin/admin-server.ts')
  const server = createAdminServer(proxySnapshotSource(proxy), log)
  const port = await listenAdmin(server, settings.adminPort)
  log.info({ admin_port: port }, `metrics and dashboard on port ${port} (/metrics, /)`)
  return server
}

/**
 * Session ticket keys: a worker takes those its supervisor generated (so
 * that a session made with one worker resumes with any other); a single
 * process makes its own.
 */
function initialTicketKeys(): Buffer {
  const shared = process.env[TICKET_KEYS_ENV]
  if (shared && /^[0-9a-f]+$/.test(shared) && shared.length === TICKET_KEYS_BYTES * 2) return Buffer.from(shared, 'hex')
  return randomBytes(TICKET_KEYS_BYTES)
}

/** Rotation: a worker takes new keys from its supervisor; a single process rotates its own. */
function watchTicketKeys(proxy: ProxyLifecycle): NodeJS.Timeout | undefined {
  if (cluster.isWorker) {
    process.on('message', (message: unknown) => {
      const m = message as { type?: string; keys?: string } | null
      if (m?.type === 'nanoproxy:ticket-keys' && typeof m.keys === 'string') proxy.setTicketKeys(Buffer.from(m.keys, 'hex'))
    })
    return undefined
  }
  return setInterval(() => proxy.setTicketKeys(randomBytes(TICKET_KEYS_BYTES)), TICKET_KEYS_ROTATION_MS).unref()
}

function reloadConfig(proxy: ProxyLifecycle, log: Logger, file: string, content: Buffer | undefined): void {
  const ctx = proxy.ctx
  if (content === undefined) {
    log.warn({ config: file }, 'config file is missing: keeping the last good config')
    return
  }
  if (isBlank(content) && ctx.state.config.rules.length > 0) {
    // An empty file is what a file being rewritten in place looks like
    // between truncate and write, and a writer can stall there. Removing
    // every rule takes an explicit `rules: []`.
    log.warn({ config: file }, 'config file is empty: keeping the last good config (write "rules: []" to remove every rule)')
    return
  }
  const started = performance.now()
  const hadTls = proxy.ports.https !== undefined
  // Parsed on a worker thread and compiled between requests: the old
  // table serves until the new one is complete (proxy-lifecycle.ts).
  proxy.reloadFile(content, file).then(
    (reloaded) => {
      if (reloaded === undefined) return // overtaken by a newer file, which is being loaded
      const { config, update: certificates } = reloaded
      log.info(
        {
          config: file,
          upstreams: config.upstreams.length,
          rules: config.rules.length,
          ...(config.certificates ? { certificates: certificates.total, certificates_parsed: certificates.parsed, certificates_failed: certificates.failed } : {}),
          duration_ms: Math.round((performance.now() - started) * 100) / 100,
        },
        'config reloaded',
      )
      ctx.metrics?.reloaded(true, { rules: config.rules.length })
      void reloaded.listening.then(
        () => {
          const https = proxy.ports.https
          if (!hadTls && https !== undefined) log.info({ https_port: https }, `listening on port ${https} (HTTPS)`)
        },
        (err: unknown) => log.error({ err }, 'cannot open the HTTPS listener'),
      )
    },
    (err: unknown) => {
      if (err instanceof ConfigError) {
        log.error({ config: file, code: err.code, problems: err.message.split('\n') }, 'config rejected: keeping the last good config')
        ctx.metrics?.reloaded(false, { problems: err.message.split('\n') })
      } else {
        log.error({ err, config: file }, 'config reload failed: keeping the last good config')
        ctx.metrics?.reloaded(false, { problems: [(err as Error).message] })
      }
    },
  )
}

/** Whether `content` holds only whitespace (checked on the bytes: decoding a large file here would cost the main thread milliseconds). */
function isBlank(content: Buffer): boolean {
  // A UTF-8 byte order mark, then space, \t, \n, \v, \f, \r (what String.prototype.trim removes from such a file).
  const start = content[0] === 0xef && content[1] === 0xbb && content[2] === 0xbf ? 3 : 0
  for (let i = start; i < content.length; i++) {
    const byte = content[i]!
    if (byte !== 0x20 && (byte < 0x09 || byte > 0x0d)) return false
  }
  return true
}

function reloadCertificate(proxy: ProxyLifecycle, log: Logger, certPath: string, cert: Buffer | undefined, key: Buffer | undefined): void {
  if (!cert || !key) {
    log.warn({ cert_path: certPath }, 'certificate or key missing: keeping the current certificate')
    return
  }
  try {
    checkCertificate(cert, key, certPath)
    // The listener's context is replaced for new handshakes only.
    proxy.setCertPathPair({ cert, key })
    log.info({ cert_path: certPath }, 'certificate reloaded')
  } catch (err) {
    log.error({ err, cert_path: certPath }, 'new certificate rejected: keeping the current one')
  }
}
