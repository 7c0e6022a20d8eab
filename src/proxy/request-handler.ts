// From an accepted request to its upstream: parse the target, answer the
// proxy's own endpoints, route, rewrite headers, forward, and log.

import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'
import { ERROR_CODES, NanoProxyError } from '../errors.ts'
import { routingHost } from '../router/request-host.ts'
import { upstreamTarget, type Route } from '../router/route.ts'
import { ForwardHandler, type ForwardResult } from './forward.ts'
import { plainAddress, upstreamRequestHeaders } from './headers.ts'
import type { ProxyContext } from './proxy-context.ts'
import { UpgradeHandler, writeRawError } from './upgrade.ts'
import type { Upstream } from './upstream-pools.ts'

const HEALTH_PATH = '/.nanoproxy/health'
const CONFIG_PATH = '/.nanoproxy/config'

/** Where a request goes, once routed. */
interface Routed {
  route: Route
  /** The pool of the routing state the request was matched in. */
  upstream: Upstream
  target: string
  headers: string[]
}

export class RequestHandler {
  private readonly ctx: ProxyContext
  /** Requests and tunnels in progress, for graceful shutdown. */
  active = 0
  private readonly tunnels = new Set<Duplex>()
  private onIdle: (() => void) | undefined

  constructor(ctx: ProxyContext) {
    this.ctx = ctx
  }

  /** The 'request' (and 'checkContinue') listener. */
  handle(req: IncomingMessage, res: ServerResponse, expectContinue = false): void {
    const started = performance.now()
    this.active++
    const ctx = this.ctx
    // Read now: once the exchange ends Node may detach the socket from req.
    const client = plainAddress(req.socket.remoteAddress)
    const log = (result: ForwardResult, upstream?: string): void => {
      this.requestDone()
      this.logRequest(req, client, started, result, upstream)
    }

    const routed = this.route(req, res, client)
    if (routed instanceof NanoProxyError) {
      const sent = ctx.sendError(res, routed)
      res.once('close', () => log({ ...sent, error: routed.code === ERROR_CODES.NO_ROUTE ? undefined : routed }))
      return
    }
    if (routed === undefined) {
      // Answered by an endpoint of the proxy itself.
      res.once('close', () => log({ status: res.statusCode, bytes: 0 }))
      return
    }

    const { upstream } = routed
    const hasBody = req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] ?? '0') !== '0'
    new ForwardHandler(ctx, {
      req,
      res,
      upstream,
      target: routed.target,
      headers: routed.headers,
      hasBody,
      expectContinue,
      done: (result) => log(result, upstream.config.name),
    }).start()
  }

  /** The 'upgrade' listener: WebSocket and other protocol switches (RFC 9110 §7.8). */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const started = performance.now()
    const ctx = this.ctx
    const client = plainAddress(req.socket.remoteAddress)
    this.active++
    this.tunnels.add(socket)
    socket.once('close', () => {
      this.tunnels.delete(socket)
      this.requestDone()
    })
    const done = (status: number, bytes: number, error?: NanoProxyError, upstream?: string): void => {
      this.logRequest(req, client, started, { status, bytes, error }, upstream)
    }
    // Without a response object the proxy's own endpoints are not answered:
    // an upgrade is always routed like any path.
    const routed = this.route(req, undefined, client)
    if (routed instanceof NanoProxyError || routed === undefined) {
      const error = routed ?? new NanoProxyError(ERROR_CODES.NO_ROUTE, 'no route')
      const sent = writeRawError(ctx, socket, error)
      done(sent.status, sent.bytes, error.code === ERROR_CODES.NO_ROUTE ? undefined : error)
      return
    }
    const { upstream } = routed
    new UpgradeHandler(ctx, { req, socket, head, upstream, target: routed.target, headers: routed.headers, done }).start()
  }

  /**
   * Finds the route for `req`. Returns the routed request, an error to
   * answer with, or undefined when an endpoint of the proxy already answered
   * (only for plain requests: `res` is undefined for upgrades).
   */
  private route(req: IncomingMessage, res: ServerResponse | undefined, clientAddress: string): Routed | NanoProxyError | undefined {
    const ctx = this.ctx
    const url = req.url ?? ''
    let authority = req.headers.host ?? ''
    let pathAndQuery = url
    if (url.charCodeAt(0) !== 47 /* '/' */) {
      // Absolute form (RFC 9112 §3.2.2): the target's authority replaces Host.
      const m = /^https?:\/\/([^/?#]*)([^#]*)/i.exec(url)
      if (!m) return new NanoProxyError(ERROR_CODES.BAD_REQUEST, `unsupported request target ${JSON.stringify(url.slice(0, 100))}`)
      authority = m[1]!
      pathAndQuery = m[2] || '/'
      if (pathAndQuery.charCodeAt(0) === 63 /* '?' */) pathAndQuery = '/' + pathAndQuery
    }
    if (countHost(req.rawHeaders) > 1) {
      // RFC 9112 §3.2: more than one Host header is a 400.
      return new NanoProxyError(ERROR_CODES.BAD_REQUEST, 'more than one Host header')
    }
    const q = pathAndQuery.indexOf('?')
    const path = q === -1 ? pathAndQuery : pathAndQuery.slice(0, q)
    const query = q === -1 ? '' : pathAndQuery.slice(q)

    if (res !== undefined && path.startsWith('/.nanoproxy/')) {
      if (path === HEALTH_PATH) {
        res.writeHead(200, ['content-type', 'text/plain; charset=utf-8', ...this.ctx.identityHeaders])
        res.end('OK')
        return undefined
      }
      if (path === CONFIG_PATH && ctx.settings.debug) {
        res.writeHead(200, ['content-type', 'text/yaml; charset=utf-8', ...this.ctx.identityHeaders])
        res.end(ctx.dumpConfig())
        return undefined
      }
    }

    // The routing state is read once: table and pools of the same config.
    const state = ctx.state
    const route = state.table.match(routingHost(authority), path)
    if (route === undefined) {
      if (ctx.settings.debug) ctx.log.debug({ host: authority, path }, 'no matching rule')
      return new NanoProxyError(ERROR_CODES.NO_ROUTE, `no rule matches host ${JSON.stringify(authority)} path ${JSON.stringify(path)}`)
    }
    if (ctx.settings.debug) {
      ctx.log.debug({ host: authority, path, rule: route.index + 1, upstream: route.upstream.name }, 'matched rule')
    }

    const socket = req.socket
    const trusted = ctx.settings.trustedProxies?.check(clientAddress, clientAddress.includes(':') ? 'ipv6' : 'ipv4') ?? false
    const upstream = state.upstreams.get(route.upstream.name)!
    const headers = upstreamRequestHeaders(req.rawHeaders, req.headers.connection, {
      host: upstream.config.noHostRewrite ? upstream.authority : authority,
      clientAddress,
      trusted,
      proto: 'encrypted' in socket && socket.encrypted ? 'https' : 'http',
      originalHost: authority,
    })
    return { route, upstream, target: upstreamTarget(route, path, query), headers }
  }

  /** The access-log line, and the reason when the request failed. */
  private logRequest(req: IncomingMessage, client: string, started: number, result: ForwardResult, upstream: string | undefined): void {
    const { log, settings } = this.ctx
    const error = result.error
    // Upstream trouble is the operator's business (warn, with the cause);
    // a client's malformed request is only noted in its access-log line.
    if (error && error.code !== ERROR_CODES.BAD_REQUEST) log.warn({ code: error.code, err: error.cause ?? error, upstream, url: req.url }, error.message)
    if (!settings.accessLog) return
    log.info(
      {
        method: req.method,
        host: req.headers.host,
        path: req.url,
        status: result.status,
        upstream,
        bytes: result.bytes,
        duration_ms: Math.round((performance.now() - started) * 1000) / 1000,
        client,
        ...(req.headers.upgrade && result.status === 101 ? { upgrade: req.headers.upgrade } : {}),
        ...(error ? { error: error.code } : {}),
        ...(result.aborted ? { aborted: true } : {}),
      },
      'request',
    )
  }

  private requestDone(): void {
    this.active--
    if (this.active === 0 && this.onIdle) this.onIdle()
  }

  /** Resolves when no request or tunnel is in progress. */
  idle(): Promise<void> {
    if (this.active === 0) return Promise.resolve()
    return new Promise((resolve) => {
      this.onIdle = resolve
    })
  }

  /** Ends every WebSocket (or other) tunnel: they have no natural end to wait for. */
  closeTunnels(): void {
    for (const socket of this.tunnels) socket.destroy()
  }
}

function countHost(raw: string[]): number {
  let n = 0
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!
    if (name.length === 4 && name.toLowerCase() === 'host') n++
  }
  return n
}
