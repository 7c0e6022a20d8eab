// What every request handler shares: settings, the logger, the routing state
// currently in force, and how errors are answered.

import { hostname } from 'node:os'
import type { ProxyConfig } from '../config/schema.ts'
import { ERROR_CODES, httpStatusFor, type NanoProxyError } from '../errors.ts'
import type { Logger } from '../log.ts'
import type { ProxyMetrics } from '../metrics/proxy-metrics.ts'
import { RouteTable } from '../router/route-table.ts'
import type { ProxySettings } from '../settings.ts'
import { VERSION } from '../version.ts'
import { statusText } from '../http1/status-text.ts'
import { ownResponse } from './headers.ts'
import type { Upstream, UpstreamPools } from './upstream-pools.ts'

/** One loaded config: replaced as a whole on reload, never changed in place. */
export interface RoutingState {
  readonly config: ProxyConfig
  readonly table: RouteTable
  readonly upstreams: ReadonlyMap<string, Upstream>
  /** Hosts with a certificate of their own (exact names, `.suffix` for wildcards): plain HTTP to them is redirected. */
  readonly tlsHosts: TlsHosts
}

/** What the certificates section says about one host name. */
interface TlsHost {
  /** Its `strict-transport-security` line, '' for none. */
  readonly hsts: string
  /** Listed without files: served with the default certificate. */
  readonly byDefault: boolean
}

/** The host names the config's certificates cover, with their HSTS header lines. */
export class TlsHosts {
  private readonly exact = new Map<string, TlsHost>()
  /** Keyed by `.suffix` (`*.example.com` → `.example.com`). */
  private readonly wildcard = new Map<string, TlsHost>()
  /** Whether any certificate asks for HSTS. */
  readonly anyHsts: boolean

  constructor(config: ProxyConfig) {
    let anyHsts = false
    for (const cert of config.certificates ?? []) {
      const hsts = cert.hstsMaxAge === undefined ? '' : hstsLine(cert.hstsMaxAge, cert.hstsIncludeSubDomains === true, cert.hstsPreload === true)
      anyHsts ||= hsts !== ''
      const entry: TlsHost = { hsts, byDefault: cert.certFile === undefined }
      for (const host of cert.hosts) {
        if (host.startsWith('*.')) this.wildcard.set(host.slice(1), entry)
        else this.exact.set(host, entry)
      }
    }
    this.anyHsts = anyHsts
  }

  private find(host: string): TlsHost | undefined {
    const exact = this.exact.get(host)
    if (exact !== undefined) return exact
    const dot = host.indexOf('.')
    return dot > 0 ? this.wildcard.get(host.slice(dot)) : undefined
  }

  /** The HSTS header line for `host` ('' for none): exact, then `*.` one label up. */
  hstsFor(host: string): string {
    return this.find(host)?.hsts ?? ''
  }

  get empty(): boolean {
    return this.exact.size === 0 && this.wildcard.size === 0
  }

  /**
   * Whether `host` (lower-case, no port) is served over HTTPS: it has a
   * certificate (exact, or `*.` one label up), or is listed to be served
   * with the default certificate and there is one (`hasDefault`; without
   * it an https:// redirect would lead to a failing handshake).
   */
  covers(host: string, hasDefault: boolean): boolean {
    const entry = this.find(host)
    return entry !== undefined && (!entry.byDefault || hasDefault)
  }
}

/**
 * RFC 6797 §6.1: max-age, then the optional includeSubDomains directive;
 * `preload` is hstspreload.org's addition (browsers' built-in lists).
 */
function hstsLine(maxAge: number, includeSubDomains: boolean, preload: boolean): string {
  return `strict-transport-security: max-age=${maxAge}${includeSubDomains ? '; includeSubDomains' : ''}${preload ? '; preload' : ''}\r\n`
}

export class ProxyContext {
  readonly settings: ProxySettings
  readonly log: Logger
  readonly pools: UpstreamPools
  /** `X-Proxy` and `X-Proxy-Instance` lines, as the original NanoProxy sends them. */
  readonly identity: string
  /** Counters for /metrics and the dashboard; undefined when ADMIN_PORT is off (nothing is counted). */
  readonly metrics: ProxyMetrics | undefined
  /** Set on SIGTERM: responses then close their connections. */
  draining = false
  /** A default certificate is loaded (the config's, or CERT_PATH's): hosts listed without files can be redirected to https. */
  hasDefaultCertificate = false
  /**
   * The routing state in force. A request reads it once when it starts, so
   * a reload never changes the rules under a request already running.
   */
  state: RoutingState

  constructor(settings: ProxySettings, log: Logger, pools: UpstreamPools, metrics?: ProxyMetrics) {
    this.settings = settings
    this.log = log
    this.pools = pools
    this.metrics = metrics
    this.identity = `x-proxy: NanoProxy/${VERSION}\r\nx-proxy-instance: ${hostname()}\r\n`
    this.state = this.buildState({ upstreams: [], rules: [] })
  }

  /**
   * Makes `config` the one new requests use, with `table` if it was
   * compiled beforehand (see compile), else compiled now.
   */
  apply(config: ProxyConfig, table?: RouteTable): RoutingState {
    this.state = this.buildState(config, table)
    this.metrics?.configLoaded(config.rules)
    return this.state
  }

  /**
   * `config`'s routing table, compiled in slices between requests (see
   * RouteTable.compile); the state in force is not touched.
   */
  compile(config: ProxyConfig): Promise<RouteTable> {
    return RouteTable.compile(config, { rawPaths: this.settings.rawPaths })
  }

  private buildState(config: ProxyConfig, table = new RouteTable(config, { rawPaths: this.settings.rawPaths })): RoutingState {
    return { config, table, upstreams: this.pools.update(config.upstreams), tlsHosts: new TlsHosts(config) }
  }

  /** The running config as YAML, for `/.nanoproxy/config` (DEBUG only; the YAML writer is loaded on first use). */
  async dumpConfig(): Promise<string> {
    const { stringify } = await import('yaml')
    return stringify(this.state.config)
  }

  /**
   * The response for `error`: its status and a short plain-text body naming
   * the error code. The detailed reason goes to the log, not to the client.
   * `close` ends the connection after it (the request body was not read to
   * its end, so the connection cannot carry another request); so does a bad
   * request, after which the connection's state is suspect (as nginx does).
   */
  errorResponse(
    error: NanoProxyError,
    close: boolean,
    request: { method: string; minor: number },
  ): { status: number; data: Buffer; bytes: number; close: boolean } {
    const status = httpStatusFor(error.code)
    const body = `${status} ${statusText(status) || 'Error'}: ${publicReason(error)} (${error.code})\n`
    const closing = close || this.draining || error.code === ERROR_CODES.BAD_REQUEST
    const bytes = request.method === 'HEAD' ? 0 : Buffer.byteLength(body)
    return { status, data: ownResponse(status, PLAIN_TEXT, body, this.identity, closing, request), bytes, close: closing }
  }
}

const PLAIN_TEXT = ['content-type', 'text/plain; charset=utf-8']

/** What the client may be told: its own mistakes in full, upstream trouble in general terms. */
function publicReason(error: NanoProxyError): string {
  switch (error.code) {
    case ERROR_CODES.NO_ROUTE:
      return 'no matching rule for host & path'
    case ERROR_CODES.BAD_REQUEST:
    case ERROR_CODES.EXPECTATION_FAILED:
      return error.message
    case ERROR_CODES.UPSTREAM_TIMEOUT:
      return 'the upstream did not answer in time'
    case ERROR_CODES.UPSTREAM_NO_SERVERS:
      return 'the upstream has no servers'
    default:
      return 'the upstream could not be reached or answered badly'
  }
}
