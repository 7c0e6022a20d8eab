// From a parsed request head to its upstream: the proxy's own endpoints,
// routing, the upstream request head, and the access log. Also keeps the
// books for graceful shutdown (requests in flight, open connections).

import type { Socket } from 'node:net'
import { ERROR_CODES, NanoProxyError } from '../errors.ts'
import type { ParseError } from '../http1/parse-error.ts'
import type { RequestHead } from '../http1/request-head.ts'
import { normalizePath, PathError } from '../router/normalize-path.ts'
import { routingHost, validAuthority } from '../router/request-host.ts'
import { listed } from '../router/cidr-list.ts'
import { replacedPath } from '../router/rewrite-path.ts'
import { upstreamTarget, type Route } from '../router/route.ts'
import type { RoutePolicy } from '../router/route-policy.ts'
import { AccessLog } from './access-log.ts'
import type { ClientConnection } from './client-connection.ts'
import type { DeadlineSweeper } from './deadlines.ts'
import type { ExchangeOwner, ExchangeResult } from './connection-roles.ts'
import { policyClientAddress } from './client-address.ts'
import { Exchange } from './exchange.ts'
import { ownResponse, upstreamRequestHead } from './headers.ts'
import { httpsLocation } from './https-redirect.ts'
import type { ProxyContext } from './proxy-context.ts'
import { RequestIds } from './request-id.ts'
import { tunnelableUpgrade } from './upgrade-policy.ts'

const HEALTH_PATH = '/.nanoproxy/health'
const ACME_CHALLENGE_PREFIX = '/.well-known/acme-challenge/'
const CONFIG_PATH = '/.nanoproxy/config'
/** The proxy's own paths (docs/configuration.md, "certificates"): never redirected to https. */
const OWN_PREFIX = '/.nanoproxy/'
const PLAIN_TEXT = ['content-type', 'text/plain; charset=utf-8']
const YAML_TEXT = ['content-type', 'text/yaml; charset=utf-8']
// A reverse proxy is not a forward proxy: CONNECT tunnels are refused
// (RFC 9110 §9.3.6 lets a server decline them).
const CONNECT_REFUSED =
  'HTTP/1.1 405 Method Not Allowed\r\nallow: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS\r\ncontent-length: 0\r\nconnection: close\r\n\r\n'
const CONTINUE = 'HTTP/1.1 100 Continue\r\n\r\n'

export class RequestHandler {
  readonly ctx: ProxyContext
  readonly sweeper: DeadlineSweeper
  /** The proxy's identification header lines, added to every response. */
  readonly identity: string
  /** Longest silence from a client in the middle of its request body. */
  readonly bodyIdleMs: number
  /** Requests and tunnels in progress, for graceful shutdown. */
  active = 0
  private readonly connections = new Set<ClientConnection>()
  /**
   * The TCP sockets under TLS connections, from accept to close: a shutdown
   * cuts those still in their handshake (no ClientConnection yet) too.
   */
  private readonly tlsSockets = new Set<Socket>()
  /** One listener for every TLS socket's 'close' (`this` is the socket): no closure per connection. */
  private readonly forgetTlsSocket: (this: Socket) => void
  private readonly owners = new Map<string, ExchangeOwner>()
  /** REQUEST_ID on: the ids of this process's requests. */
  private readonly requestIds: RequestIds | undefined
  private readonly accessLog: AccessLog
  private readonly policyOwners = new WeakMap<RoutePolicy, Map<string, ExchangeOwner>>()

  constructor(ctx: ProxyContext, sweeper: DeadlineSweeper) {
    this.ctx = ctx
    this.sweeper = sweeper
    this.identity = ctx.identity
    this.requestIds = ctx.settings.requestId ? new RequestIds() : undefined
    this.accessLog = new AccessLog(ctx.log, ctx.settings.accessLogFormat)
    // Never shorter than TIMEOUT.
    this.bodyIdleMs = Math.max(ctx.settings.idleTimeoutMs, ctx.settings.timeoutMs)
    const tlsSockets = this.tlsSockets
    this.forgetTlsSocket = function (this: Socket) {
      tlsSockets.delete(this)
    }
  }

  track(conn: ClientConnection): void {
    this.connections.add(conn)
    this.sweeper.add(conn)
  }

  /** Client connections open now, past their TLS handshake if any (metrics). */
  get openConnections(): number {
    return this.connections.size
  }

  untrack(conn: ClientConnection): void {
    this.connections.delete(conn)
    this.sweeper.delete(conn)
  }

  /**
   * A TLS connection accepted (its TCP socket), its handshake under way.
   * Kept until the socket closes: the TCP socket never hears of the
   * handshake's end (that is the TLS socket's 'secure'), and a listener per
   * connection on the TLS side would cost every handshake more than the
   * set entry does.
   */
  trackHandshake(socket: Socket): void {
    this.tlsSockets.add(socket)
    socket.on('close', this.forgetTlsSocket)
  }

  /** Answers or forwards one request; `conn` hears back through responseFinished(). */
  dispatch(conn: ClientConnection, head: RequestHead): void {
    const started = performance.now()
    this.active++
    const ctx = this.ctx
    // Before anything can fail, so that error responses are logged with it too.
    if (this.requestIds !== undefined) head.requestId = this.requestIds.forRequest(head.clientRequestId, conn.trusted)
    if (head.method === 'CONNECT') {
      conn.write(CONNECT_REFUSED)
      this.requestDone(conn, head, started, { status: 405, bytes: 0 }, undefined)
      conn.responseFinished(true)
      return
    }

    if (head.droppedUnderscoreNames !== undefined && ctx.log.isLevelEnabled('debug')) {
      ctx.log.debug({ headers: head.droppedUnderscoreNames, client: conn.address }, 'dropped request headers with "_" in their names (ALLOW_UNDERSCORES_IN_HEADERS)')
    }
    // Host must be a valid uri-host [":" port] (RFC 9112 §3.2: 400 for an
    // invalid Host value), even when an absolute-form target overrides it.
    if (head.host !== undefined && !validAuthority(head.host)) {
      this.fail(conn, head, started, new NanoProxyError(ERROR_CODES.BAD_REQUEST, `invalid Host ${JSON.stringify(head.host.slice(0, 100))}`))
      return
    }
    // Route: the authority comes from Host, or from an absolute-form target
    // (RFC 9112 §3.2.2: it then replaces Host, whatever Host said).
    const target = head.target
    let authority = head.host ?? ''
    let pathAndQuery = target
    if (target.charCodeAt(0) !== 47 /* '/' */) {
      const m = /^https?:\/\/([^/?]*)(.*)$/i.exec(target)
      if (!m) {
        this.fail(conn, head, started, new NanoProxyError(ERROR_CODES.BAD_REQUEST, `unsupported request target ${JSON.stringify(target.slice(0, 100))}`))
        return
      }
      authority = m[1]!
      // RFC 9110 §4.2.1: an http(s) URI with an empty host is invalid, and
      // userinfo is deprecated and never a routing key (§4.2.4).
      if (authority === '' || authority.charCodeAt(0) === 58 /* ':' */ || !validAuthority(authority)) {
        this.fail(conn, head, started, new NanoProxyError(ERROR_CODES.BAD_REQUEST, `invalid authority in request target ${JSON.stringify(target.slice(0, 100))}`))
        return
      }
      pathAndQuery = m[2] || '/'
      if (pathAndQuery.charCodeAt(0) === 63 /* '?' */) pathAndQuery = '/' + pathAndQuery
    }
    const q = pathAndQuery.indexOf('?')
    const rawPath = q === -1 ? pathAndQuery : pathAndQuery.slice(0, q)
    const query = q === -1 ? '' : pathAndQuery.slice(q)

    // The routing state is read once: table and pools of the same config.
    const state = ctx.state
    const table = state.table
    // The path rules match and the upstream receives (normalize-path.ts);
    // undefined when it cannot be normalised (then only raw rules may match).
    let path: string | undefined = rawPath
    let pathError: PathError | undefined
    if (table.normalizes) {
      try {
        path = normalizePath(rawPath)
      } catch (err) {
        if (!(err instanceof PathError)) throw err
        pathError = err
        path = undefined
      }
    }
    // Refused: a path that cannot be normalised, unless raw rules may take
    // it; and a raw `\` whatever the rules (RFC 3986 has no `\`; IIS and
    // others read it as '/'). Raw rules keep every other byte as it came.
    const badPath = pathError !== undefined && (!table.hasRaw || rawPath.includes('\\'))
    if (badPath || (!table.normalizes && rawPath.includes('\\'))) {
      this.fail(conn, head, started, new NanoProxyError(ERROR_CODES.BAD_REQUEST, `${pathError?.message ?? 'backslash in the request path'}: ${JSON.stringify(target.slice(0, 100))}`))
      return
    }

    // Upgrade only to what the proxy can tunnel safely (upgrade-policy.ts):
    // h2c and unknown protocols are left out, and a request with nothing
    // left goes upstream as a plain request.
    if (head.upgrade !== undefined && head.connectionUpgrade) head.upgrade = tunnelableUpgrade(head.upgrade)
    const upgrade = head.upgrade !== undefined && head.connectionUpgrade

    if (!upgrade && path !== undefined && path.startsWith(OWN_PREFIX) && this.ownEndpoint(conn, head, started, path)) return

    const host = routingHost(authority)
    const route = table.match(host, path, rawPath)
    if (route === undefined) {
      if (pathError !== undefined) {
        this.fail(conn, head, started, new NanoProxyError(ERROR_CODES.BAD_REQUEST, `${pathError.message}: ${JSON.stringify(target.slice(0, 100))}`))
        return
      }
      if (ctx.settings.debug) ctx.log.debug({ host: authority, path }, 'no matching rule')
      this.fail(conn, head, started, new NanoProxyError(ERROR_CODES.NO_ROUTE, `no rule matches host ${JSON.stringify(authority)} path ${JSON.stringify(path)}`))
      return
    }
    // Plain HTTP to a host that has a certificate: 308 to https, same host,
    // path and query (308 keeps the method and body, RFC 9110 §15.4.9).
    // Never for the ACME HTTP-01 challenge path: cert-manager's solver must
    // answer it on port 80 (RFC 8555 §8.3), and before the first certificate
    // is issued there is nothing to redirect to. Nor for /.nanoproxy/*, the
    // proxy's own namespace, even the paths it does not answer itself now
    // (/.nanoproxy/config without DEBUG): what they do must not depend on
    // the host's certificates.
    if (
      conn.proto === 'http' &&
      !state.tlsHosts.empty &&
      state.tlsHosts.covers(host, ctx.hasDefaultCertificate) &&
      state.config.rules[route.index]?.sslRedirect !== false &&
      !(path ?? rawPath).startsWith(ACME_CHALLENGE_PREFIX) &&
      !(path ?? rawPath).startsWith(OWN_PREFIX)
    ) {
      this.redirectToHttps(conn, head, started, host, pathAndQuery)
      return
    }
    const routedPath = route.raw ? rawPath : path!
    if (ctx.settings.debug) {
      ctx.log.debug({ host: authority, path: routedPath, rule: route.index + 1, upstream: route.upstream.name }, 'matched rule')
    }
    // Policies (docs/configuration.md, "Per-route policies"): one field
    // test for a rule without any.
    const policy = route.policy
    if (policy !== undefined && this.answeredByPolicy(conn, head, started, route, policy, host, authority, routedPath, query)) return
    let upstreamPath: string
    try {
      const rewrite = policy?.rewrite
      upstreamPath =
        rewrite !== undefined && (rewrite.path !== undefined || rewrite.prefix !== undefined)
          ? replacedPath(route, routedPath, rewrite.path, rewrite.prefix) + query
          : upstreamTarget(route, routedPath, query)
    } catch (err) {
      if (!(err instanceof PathError)) throw err
      this.fail(conn, head, started, new NanoProxyError(ERROR_CODES.BAD_REQUEST, `${err.message} once the rule's prefix is stripped: ${JSON.stringify(target.slice(0, 100))}`))
      return
    }

    // maxBodySize: a declared length is judged before anything is sent
    // (and before `100 Continue`: the client need not send the body at
    // all); a chunked body is counted as it streams (Exchange.bodyLimit).
    // The connection closes after the 413: the unread body cannot be
    // skipped cheaply (nginx closes too).
    if (policy !== undefined && policy.maxBodySize !== -1 && head.contentLength > policy.maxBodySize) {
      const error = new NanoProxyError(ERROR_CODES.BODY_TOO_LARGE, `request body of ${head.contentLength} bytes is larger than the rule's maxBodySize ${policy.maxBodySize}`)
      const sent = this.sendError(conn, head, error, true)
      this.requestDone(conn, head, started, { status: sent.status, bytes: sent.bytes, error }, undefined)
      conn.responseFinished(true, true)
      return
    }

    if (head.expect !== undefined) {
      // RFC 9110 §10.1.1: 100-continue is the only expectation there is. It
      // is answered here once the request is routed (as nginx does) and
      // never passed on; anything else gets 417.
      if (head.expect.toLowerCase() !== '100-continue') {
        this.fail(conn, head, started, new NanoProxyError(ERROR_CODES.EXPECTATION_FAILED, `unsupported expectation ${JSON.stringify(head.expect)}`))
        return
      }
      // Never to an HTTP/1.0 client, which does not know 1xx (RFC 9110 §15.2).
      if (head.hasBody && head.minor === 1) conn.write(CONTINUE)
    }

    const upstream = state.upstreams.get(route.upstream.name)!
    const requestHead = upstreamRequestHead(
      head,
      upstreamPath,
      {
        host: policy?.rewrite?.hostname ?? (upstream.config.noHostRewrite ? upstream.authority : authority),
        clientAddress: conn.address,
        trusted: conn.trusted,
        proto: conn.proto,
        originalHost: authority,
      },
      upgrade,
      policy?.requestHeaders,
    )
    // HSTS only over HTTPS (RFC 6797 §7.2: never sent over plain HTTP).
    const hsts = conn.proto === 'https' && state.tlsHosts.anyHsts ? state.tlsHosts.hstsFor(host) : ''
    const owner = hsts === '' && policy?.responseHeaders === undefined ? this : this.ownerWithHeader(hsts, policy)
    const stats = ctx.metrics?.statsFor(state.config.rules[route.index]!)
    const exchange = new Exchange(owner, conn, head, upstream, requestHead, upgrade, started, stats)
    if (policy !== undefined) {
      if (policy.maxBodySize !== -1 && head.chunked) exchange.bodyLimit = policy.maxBodySize
      exchange.timeouts = policy.timeouts
    }
    conn.attach(exchange)
    exchange.start()
  }

  /**
   * The handler as an exchange sees it (connection-roles.ts), with `line`
   * added to the proxy's own header lines of the response: one per distinct
   * line, kept for the handler's life (a config has a handful).
   */
  private ownerWithHeader(line: string, policy?: RoutePolicy): ExchangeOwner {
    const editResponse = policy?.responseHeaders
    // Owners with a response policy are kept per policy object, weakly: a
    // reload's new policies do not pile up here.
    let owners = this.owners
    if (editResponse !== undefined) {
      owners = this.policyOwners.get(policy!) ?? new Map<string, ExchangeOwner>()
      this.policyOwners.set(policy!, owners)
    }
    let owner = owners.get(line)
    if (owner === undefined) {
      owner = {
        ctx: this.ctx,
        identity: this.identity + line,
        editResponse,
        requestDone: (conn, head, started, result, upstream) => this.requestDone(conn as ClientConnection, head, started, result, upstream),
        sendError: (conn, head, error, close) => this.sendError(conn as ClientConnection, head, error, close),
      }
      owners.set(line, owner)
    }
    return owner
  }

  /**
   * A rule's `deny`, then `allow` (nginx's order for ingress-nginx's
   * denylist and whitelist): 403 for a client address they exclude, the
   * address as TRUSTED_PROXIES reveal it (client-address.ts).
   */
  private refusedByPolicy(conn: ClientConnection, head: RequestHead, started: number, policy: RoutePolicy): boolean {
    if (policy.allow === undefined && policy.deny === undefined) return false
    const client = policyClientAddress(conn.address, conn.trusted, head, this.ctx.settings.trustedProxies)
    const denied = (policy.deny !== undefined && listed(policy.deny, client)) || (policy.allow !== undefined && !listed(policy.allow, client))
    if (!denied) return false
    this.fail(conn, head, started, new NanoProxyError(ERROR_CODES.FORBIDDEN, `client address ${client} is not allowed by the rule`))
    return true
  }

  /**
   * The policies that answer instead of forwarding: force-ssl-redirect and
   * `redirect`. Returns whether the request was answered.
   */
  private answeredByPolicy(
    conn: ClientConnection,
    head: RequestHead,
    started: number,
    route: Route,
    policy: RoutePolicy,
    host: string,
    authority: string,
    path: string,
    query: string,
  ): boolean {
    // TLS ended in front of the proxy: a trusted proxy's X-Forwarded-Proto
    // says how the client came (ingress-nginx with use-forwarded-headers).
    if (
      policy.forceSslRedirect &&
      conn.proto === 'http' &&
      !(conn.trusted && head.forwardedProto?.toLowerCase() === 'https') &&
      !path.startsWith(ACME_CHALLENGE_PREFIX)
    ) {
      this.redirectToHttps(conn, head, started, host, path + query)
      return true
    }
    const redirect = policy.redirect
    if (redirect === undefined) return this.refusedByPolicy(conn, head, started, policy)
    let target: string
    try {
      target = replacedPath(route, path, redirect.path, redirect.prefix)
    } catch (err) {
      if (!(err instanceof PathError)) throw err
      this.fail(conn, head, started, new NanoProxyError(ERROR_CODES.BAD_REQUEST, `${err.message} in the redirect target`))
      return true
    }
    // Gateway API RequestRedirect: the port is the scheme's default when
    // only the scheme changes, else the request's; a default port is left out.
    const scheme = redirect.scheme ?? conn.proto
    const requestPort = /:(\d+)$/.exec(authority)?.[1]
    const port = redirect.port ?? (redirect.scheme !== undefined || requestPort === undefined ? undefined : Number(requestPort))
    const hostname = redirect.hostname ?? host
    const hostPart = hostname.includes(':') ? `[${hostname}]` : hostname
    const portPart = port === undefined || port === (scheme === 'https' ? 443 : 80) ? '' : `:${port}`
    this.sendRedirect(conn, head, started, redirect.statusCode, `${scheme}://${hostPart}${portPart}${target}${query}`)
    return true
  }

  /** `/.nanoproxy/*`: answered by the proxy itself. Returns false for paths it does not serve (routed like any other). */
  private ownEndpoint(conn: ClientConnection, head: RequestHead, started: number, path: string): boolean {
    const close = mustClose(head) || this.ctx.draining
    if (path === HEALTH_PATH) {
      conn.write(ownResponse(200, PLAIN_TEXT, 'OK', this.identity, close, head))
      this.requestDone(conn, head, started, { status: 200, bytes: head.method === 'HEAD' ? 0 : 2 }, undefined, true)
      conn.responseFinished(close, true)
      return true
    }
    if (path === CONFIG_PATH && this.ctx.settings.debug) {
      // Answered asynchronously; the connection waits in its responding state.
      void this.ctx.dumpConfig().then((yaml) => {
        this.requestDone(conn, head, started, { status: 200, bytes: Buffer.byteLength(yaml) }, undefined)
        if (conn.closed) return
        conn.write(ownResponse(200, YAML_TEXT, yaml, this.identity, close, head))
        conn.responseFinished(close, true)
      })
      return true
    }
    return false
  }

  private redirectToHttps(conn: ClientConnection, head: RequestHead, started: number, host: string, pathAndQuery: string): void {
    this.sendRedirect(conn, head, started, 308, httpsLocation(host, this.ctx.settings.httpsRedirectPort, pathAndQuery))
  }

  private sendRedirect(conn: ClientConnection, head: RequestHead, started: number, status: number, location: string): void {
    // A small unread body is skipped by the connection, as after an error.
    const closing = mustClose(head) || this.ctx.draining
    const body = `Redirecting to ${location}\n`
    conn.write(ownResponse(status, ['location', location, ...PLAIN_TEXT], body, this.identity, closing, head))
    this.requestDone(conn, head, started, { status, bytes: head.method === 'HEAD' ? 0 : Buffer.byteLength(body) }, undefined)
    conn.responseFinished(closing, true)
  }

  /** Answers with the error's status and logs the request. */
  private fail(conn: ClientConnection, head: RequestHead, started: number, error: NanoProxyError): void {
    const sent = this.sendError(conn, head, error, mustClose(head))
    this.requestDone(conn, head, started, { status: sent.status, bytes: sent.bytes, error: error.code === ERROR_CODES.NO_ROUTE ? undefined : error }, undefined)
    conn.responseFinished(sent.close, true)
  }

  /** Writes the error response for `error`; returns what was sent. */
  sendError(conn: ClientConnection, head: RequestHead, error: NanoProxyError, close: boolean): { status: number; bytes: number; close: boolean } {
    const response = this.ctx.errorResponse(error, close, head)
    conn.write(response.data)
    return response
  }

  /** Logs a request the parser refused. */
  logRejected(conn: ClientConnection, err: ParseError): void {
    this.ctx.log.info({ status: err.status, error: err.code, reason: err.message, client: conn.address }, 'rejected malformed request')
  }

  /** The access-log line, and the reason when the request failed. `healthCheck`: answered by the health endpoint. */
  requestDone(conn: ClientConnection, head: RequestHead, started: number, result: ExchangeResult, upstream: string | undefined, healthCheck = false): void {
    const { log, settings, metrics } = this.ctx
    const error = result.error
    // Health checks are not traffic: a probe every few seconds would show as load on the dashboard.
    if (metrics !== undefined && !healthCheck) {
      metrics.request(result.stats ?? metrics.unmatched, head.method, result.status, (performance.now() - started) / 1000, result.headSeconds ?? -1, result.bytesIn ?? 0, result.bytes)
    }
    // Upstream trouble is the operator's business (warn, with the cause);
    // a client's mistake is only noted in its access-log line.
    if (error && error.code !== ERROR_CODES.BAD_REQUEST && error.code !== ERROR_CODES.EXPECTATION_FAILED) {
      log.warn({ code: error.code, err: error.cause ?? error, upstream, url: head.target }, error.message)
    }
    // Health checks (kubelet probes every few seconds) only with ACCESS_LOG_HEALTH.
    if (settings.accessLog && (!healthCheck || settings.accessLogHealth)) {
      this.accessLog.write({ head, client: conn.address, result, upstream, durationMs: performance.now() - started })
    }
    this.active--
  }

  /**
   * Resolves once every connection is closed or closing with all its bytes
   * handed to the kernel: no request, tunnel or unwritten response is left.
   */
  async settled(): Promise<void> {
    const open = (): boolean => {
      if (this.active > 0) return true
      for (const conn of this.connections) if (!conn.socket.destroyed && (!conn.closed || conn.socket.writableLength > 0)) return true
      return false
    }
    while (open()) await new Promise((resolve) => setTimeout(resolve, 20))
  }

  /**
   * Closes connections that have waited at least `minIdleMs` for a next
   * request (shutdown: keep-alive clients move on to another replica).
   */
  closeIdleConnections(minIdleMs = 0): void {
    const now = Date.now()
    for (const conn of this.connections) if (conn.idle && now - conn.idleSince >= minIdleMs) conn.destroy()
  }

  /** Cuts every connection, tunnels included (end of the shutdown grace period). */
  closeAllConnections(): void {
    for (const conn of this.connections) conn.destroy()
    for (const socket of this.tlsSockets) socket.destroy()
  }
}

/**
 * Whether the connection must close after the proxy's own answer: the
 * client asked for it, or it announced a body with `Expect: 100-continue`
 * and, not having had the 100, may never send it (RFC 9110 §10.1.1), so
 * the body cannot be skipped to reach the next request.
 */
function mustClose(head: RequestHead): boolean {
  return !head.persistent || (head.hasBody && head.expect?.toLowerCase() === '100-continue')
}
