// The process that serves for `nanoproxy proxy` (a worker, or the only
// process when WORKERS=1): load the config, serve, hot-reload, shut down
// gracefully. Imported only there, so that a supervisor never loads the
// proxy engine (see proxy-command.ts).

import cluster from 'node:cluster'
import type { Server } from 'node:net'
import { FileWatcher } from '../config/file-watcher.ts'
import { ensureConfigFile, writeConfigB64 } from '../config/config-file.ts'
import { loadConfigFile, parseConfig } from '../config/load.ts'
import { ConfigError } from '../errors.ts'
import { exitAfterLogs, type Logger } from '../log.ts'
import { ProxyContext } from '../proxy/proxy-context.ts'
import { RequestHandler } from '../proxy/request-handler.ts'
import { DeadlineSweeper } from '../proxy/deadlines.ts'
import { createProxyServer, drain, listen } from '../proxy/server.ts'
import { certificateFiles, checkCertificate, loadCertificate, TLS_POLICY } from '../proxy/tls.ts'
import { UpstreamPools } from '../proxy/upstream-pools.ts'
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
  const tls = settings.certPath ? loadCertificate(settings.certPath) : undefined

  const sweeper = new DeadlineSweeper(Math.min(settings.timeoutMs, settings.idleTimeoutMs))
  const pools = new UpstreamPools(settings, log, sweeper)
  const ctx = new ProxyContext(settings, log, pools)
  ctx.apply(config)
  const handler = new RequestHandler(ctx, sweeper)
  const server = createProxyServer(ctx, handler, tls)

  const configWatcher = new FileWatcher({
    files: [file],
    log,
    onChange: ([content]) => reloadConfig(ctx, log, file, content),
  })
  await configWatcher.start([Buffer.from(text)])

  let certWatcher: FileWatcher | undefined
  if (settings.certPath && tls) {
    const certPath = settings.certPath
    certWatcher = new FileWatcher({
      files: certificateFiles(certPath),
      log,
      onChange: ([cert, key]) => reloadCertificate(server, log, certPath, cert, key),
    })
    await certWatcher.start([tls.cert as Buffer, tls.key as Buffer])
  }

  // Signal handlers first: the 'listening' line is written by another
  // thread, and whoever reads it may signal before the next statement runs.
  let stopping = false
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) {
      log.warn({ signal }, 'second signal: exiting now')
      process.exit(1)
    }
    stopping = true
    const inFlight = handler.active
    // drain() stops accepting before it returns: the log line below is then
    // true when read (a connection attempt after it is refused, not reset).
    const drained = drain(server, ctx, handler, settings.shutdownTimeoutMs)
    log.info({ signal, grace_s: settings.shutdownTimeoutMs / 1000, in_flight: inFlight }, 'shutting down')
    configWatcher.stop()
    certWatcher?.stop()
    void drained.then(async (clean) => {
      if (clean) await pools.closeAll()
      else await pools.destroyAll()
      log.info({ clean }, clean ? 'shutdown complete' : 'grace period over: remaining connections closed')
      exitAfterLogs(0)
    })
  }
  process.on('SIGTERM', stop)
  // A worker hears Ctrl-C too (same process group); the supervisor turns it
  // into the SIGTERM every worker gets, so the worker itself ignores it.
  if (cluster.isWorker) process.on('SIGINT', () => {})
  else process.on('SIGINT', stop)

  const port = await listen(server, settings.port, cluster.isWorker)
  log.info(
    {
      version: VERSION,
      port,
      tls: tls !== undefined,
      config: file,
      upstreams: ctx.state.config.upstreams.length,
      rules: ctx.state.config.rules.length,
      timeout_s: settings.timeoutMs / 1000,
      trusted_proxies: settings.trustedProxiesText,
    },
    `NanoProxy ${VERSION} listening on port ${port} (${tls ? 'HTTPS' : 'HTTP'})`,
  )
  if (ctx.state.config.rules.length === 0) log.warn('config contains no rules: every request gets 404')
}

function reloadConfig(ctx: ProxyContext, log: Logger, file: string, content: Buffer | undefined): void {
  if (content === undefined) {
    log.warn({ config: file }, 'config file is missing: keeping the last good config')
    return
  }
  const text = content.toString('utf8')
  if (text.trim() === '' && ctx.state.config.rules.length > 0) {
    // An empty file is what a file being rewritten in place looks like
    // between truncate and write, and a writer can stall there. Removing
    // every rule takes an explicit `rules: []`.
    log.warn({ config: file }, 'config file is empty: keeping the last good config (write "rules: []" to remove every rule)')
    return
  }
  const started = performance.now()
  try {
    const config = parseConfig(text, file)
    ctx.apply(config)
    log.info(
      {
        config: file,
        upstreams: config.upstreams.length,
        rules: config.rules.length,
        duration_ms: Math.round((performance.now() - started) * 100) / 100,
      },
      'config reloaded',
    )
  } catch (err) {
    if (err instanceof ConfigError) {
      log.error({ config: file, code: err.code, problems: err.message.split('\n') }, 'config rejected: keeping the last good config')
    } else {
      log.error({ err, config: file }, 'config reload failed: keeping the last good config')
    }
  }
}

function reloadCertificate(server: Server, log: Logger, certPath: string, cert: Buffer | undefined, key: Buffer | undefined): void {
  if (!cert || !key) {
    log.warn({ cert_path: certPath }, 'certificate or key missing: keeping the current certificate')
    return
  }
  try {
    const options = checkCertificate(cert, key, certPath)
    // tls.Server.setSecureContext swaps the certificate for new connections only.
    ;(server as unknown as { setSecureContext(o: object): void }).setSecureContext({ ...options, ...TLS_POLICY })
    log.info({ cert_path: certPath }, 'certificate reloaded')
  } catch (err) {
    log.error({ err, cert_path: certPath }, 'new certificate rejected: keeping the current one')
  }
}
