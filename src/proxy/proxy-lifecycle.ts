// The one owner of a running proxy's lifecycle: its listeners (plain HTTP,
// HTTPS, or both), config reloads, certificate swaps, session ticket keys and
// graceful shutdown. The CLI (cli/serve-proxy.ts) only wires signals and file
// watchers to it; tests can start a proxy in-process with it.

import type { Server } from 'node:net'
import { BackgroundParser } from '../config/background-parser.ts'
import type { ProxyConfig } from '../config/schema.ts'
import type { Logger } from '../log.ts'
import type { RouteTable } from '../router/route-table.ts'
import { ProxyMetrics, type ProxyGauges, type ServerGauges } from '../metrics/proxy-metrics.ts'
import { DEFAULT_HTTPS_PORT, type ProxySettings } from '../settings.ts'
import { CertificateStore, type CertificateUpdate, type KeyPair } from './certificate-store.ts'
import { DeadlineSweeper } from './deadlines.ts'
import { ProxyContext } from './proxy-context.ts'
import { RequestHandler } from './request-handler.ts'
import { createProxyServer, drain, listen, setDefaultCertificate } from './server.ts'
import { UpstreamPools } from './upstream-pools.ts'

export interface ProxyOptions {
  settings: ProxySettings
  log: Logger
  /** The config in force at start. */
  config: ProxyConfig
  /** Where relative certificate paths in the config start (the config file's directory). */
  configDir: string
  /** The CERT_PATH pair, already checked. */
  certPathPair?: KeyPair | undefined
  /** Session ticket keys (48 bytes), the same in every worker so that any worker resumes any session. */
  ticketKeys: Buffer
  /** Bind with SO_REUSEPORT, sharing the ports with sibling workers. */
  shared: boolean
}

/** What a reload did: see ProxyLifecycle.reload. */
export interface Reloaded {
  config: ProxyConfig
  update: CertificateUpdate
  /** Settles once the HTTPS listener a first certificate asked for is open. */
  listening: Promise<void>
}

export interface Listening {
  /** The plain-HTTP port, if there is a plain listener. */
  http: number | undefined
  /** The HTTPS port, if there is a TLS listener. */
  https: number | undefined
}

export class ProxyLifecycle {
  readonly ctx: ProxyContext
  readonly handler: RequestHandler
  readonly certificates: CertificateStore
  private readonly options: ProxyOptions
  private readonly pools: UpstreamPools
  private ticketKeys: Buffer
  private plain: Server | undefined
  private tls: Server | undefined
  private tlsPort: number | undefined
  private listening = false
  private opening: Promise<void> | undefined
  private readonly parser: BackgroundParser
  /** Counts reloads started: a build finishing after a newer one started is dropped. */
  private generation = 0

  constructor(options: ProxyOptions) {
    this.options = options
    const { settings, log } = options
    const sweeper = new DeadlineSweeper(Math.min(settings.timeoutMs, settings.idleTimeoutMs))
    this.pools = new UpstreamPools(settings, log, sweeper)
    this.ctx = new ProxyContext(settings, log, this.pools, settings.adminPort === undefined ? undefined : new ProxyMetrics())
    this.handler = new RequestHandler(this.ctx, sweeper)
    this.ticketKeys = options.ticketKeys
    this.certificates = new CertificateStore(log)
    this.certificates.onDefaultChange = (pair) => {
      this.ctx.hasDefaultCertificate = pair !== undefined
      if (this.tls) setDefaultCertificate(this.tls, pair, this.ticketKeys)
    }
    if (options.certPathPair) this.certificates.setCertPathPair(options.certPathPair)
    this.parser = new BackgroundParser(log)
    this.apply(options.config)
    if (this.ctx.metrics !== undefined) this.ctx.metrics.gauges = () => this.gauges()
  }

  /** What metrics read from the running proxy at scrape time. */
  gauges(): ProxyGauges {
    const now = Date.now()
    const { config, upstreams } = this.ctx.state
    // By upstream, then server. Two upstreams naming the same server share
    // its pool (upstream-pools.ts): its numbers then appear under both.
    const servers: ServerGauges[] = []
    for (const [name, upstream] of upstreams) {
      for (const { pool } of upstream.balancer.servers) {
        servers.push({
          upstream: name,
          server: pool.origin,
          open: pool.openCount,
          idle: pool.idleCount,
          connectFailures: pool.connectFailures,
          retries: pool.retries,
          ejections: pool.ejections,
          healthy: pool.health.available(now),
        })
      }
    }
    return { openConnections: this.handler.openConnections, rules: config.rules.length, upstreams: config.upstreams.length, servers, certificates: this.certificates.expiries }
  }

  /**
   * Opens the listeners: plain HTTP on PORT and HTTPS on HTTPS_PORT; or,
   * without HTTPS_PORT, CERT_PATH's original single TLS port on PORT; or
   * plain HTTP on PORT, plus HTTPS on 8443 once the config has certificates.
   */
  async listen(): Promise<Listening> {
    const { settings, shared } = this.options
    this.listening = true
    const singleTls = settings.httpsPort === undefined && settings.certPath !== undefined
    let http: number | undefined
    if (singleTls) {
      this.tls = createProxyServer(this.ctx, this.handler, { store: this.certificates, ticketKeys: this.ticketKeys })
      this.tlsPort = await listen(this.tls, settings.port, shared)
    } else {
      this.plain = createProxyServer(this.ctx, this.handler)
      http = await listen(this.plain, settings.port, shared)
      if (this.wantsTls()) await this.openTls()
    }
    return { http, https: this.tlsPort }
  }

  /** Ports in use now. */
  get ports(): Listening {
    return { http: this.plain ? portOf(this.plain) : undefined, https: this.tlsPort }
  }

  /**
   * Makes `config` the one new requests and new handshakes use: routing at
   * once, certificates as soon as they are loaded (unchanged ones are not
   * parsed again). Opens the HTTPS listener if the config is the first with
   * certificates.
   */
  reload(config: ProxyConfig, table?: RouteTable): Reloaded {
    this.generation++
    const update = this.apply(config, table)
    const listening = this.listening && this.tls === undefined && this.wantsTls() ? this.openTls() : Promise.resolve()
    return { config, update, listening }
  }

  /**
   * Reloads from a config file's content without stalling requests: the
   * file is parsed and validated on a worker thread (config/background-parser.ts)
   * and the routing table compiled in slices between requests; until the
   * new table is complete, every request is served with the one in force,
   * and only then is it swapped in, in one step. A config with problems
   * rejects with ConfigError and changes nothing. Resolves with undefined
   * when a newer reload started meanwhile: the newest file wins, and a
   * build that was overtaken is never applied.
   */
  async reloadFile(bytes: Uint8Array, file: string): Promise<Reloaded | undefined> {
    const generation = ++this.generation
    const config = await this.parser.parse(bytes, file)
    if (generation !== this.generation) return undefined
    const table = await this.ctx.compile(config)
    if (generation !== this.generation) return undefined
    return this.reload(config, table)
  }

  /** A renewed CERT_PATH pair (checked by the caller). */
  setCertPathPair(pair: KeyPair): void {
    this.certificates.setCertPathPair(pair)
  }

  /**
   * New session ticket keys: tickets issued before are refused from now on
   * (those clients do one full handshake). Every worker gets the same keys.
   */
  setTicketKeys(keys: Buffer): void {
    this.ticketKeys = keys
    ;(this.tls as (Server & { setTicketKeys(k: Buffer): void }) | undefined)?.setTicketKeys(keys)
  }

  /** Requests and tunnels in progress. */
  get inFlight(): number {
    return this.handler.active
  }

  /**
   * Graceful shutdown of every listener (see server.ts drain): stops
   * accepting before it returns its promise. Resolves with whether
   * everything finished within SHUTDOWN_TIMEOUT.
   */
  shutdown(): Promise<boolean> {
    this.parser.close()
    const servers = [this.plain, this.tls].filter((s): s is Server => s !== undefined)
    return drain(servers, this.ctx, this.handler, this.options.settings.shutdownTimeoutMs).then(async (clean) => {
      if (clean) await this.pools.closeAll()
      else await this.pools.destroyAll()
      return clean
    })
  }

  private apply(config: ProxyConfig, table?: RouteTable): CertificateUpdate {
    this.ctx.apply(config, table)
    return this.certificates.update(config.certificates, this.options.configDir)
  }

  private wantsTls(): boolean {
    const { settings } = this.options
    return settings.httpsPort !== undefined || settings.certPath !== undefined || (this.ctx.state.config.certificates?.length ?? 0) > 0
  }

  private openTls(): Promise<void> {
    this.opening ??= (async () => {
      const { settings, shared, log } = this.options
      const server = createProxyServer(this.ctx, this.handler, { store: this.certificates, ticketKeys: this.ticketKeys })
      this.tls = server
      this.tlsPort = await listen(server, settings.httpsPort ?? DEFAULT_HTTPS_PORT, shared)
      log.debug({ https_port: this.tlsPort }, 'HTTPS listener open')
    })()
    return this.opening
  }
}

function portOf(server: Server): number | undefined {
  const address = server.address()
  return typeof address === 'object' && address ? address.port : undefined
}
