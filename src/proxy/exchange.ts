// One request forwarded to its upstream, and the response streamed back.
//
// This is the hot path. The request head is one string written to a kept-
// alive upstream socket; response bytes go to the client socket as they
// arrive, framing passed through (Content-Length, chunked) whenever the
// client can take it. Backpressure works both ways: a slow client pauses
// the upstream socket, a slow upstream pauses the client's. One object per
// request; no closures, no streams in between.

import type { Socket } from 'node:net'
import { ERROR_CODES, NanoProxyError, upstreamError } from '../errors.ts'
import { LAST_CHUNK } from '../http1/chunk-writer.ts'
import { httpDate } from '../http1/http-date.ts'
import { ParseError } from '../http1/parse-error.ts'
import type { RequestHead } from '../http1/request-head.ts'
import type { ResponseHead } from '../http1/response-head.ts'
import { clientResponseHead } from './headers.ts'
// The roles this file talks to (connection-roles.ts), under the names of the classes that play them.
import type { ExchangeClient as ClientConnection, ExchangeOwner as RequestHandler, ExchangeResult } from './connection-roles.ts'
import { BodyMode, Failure, type RequestTimeouts, type ResponseSink, type UpstreamConnection } from './upstream-connection.ts'
import type { UpstreamPool } from './upstream-pool.ts'
import type { Upstream } from './upstream-pools.ts'
import type { RouteStats } from '../metrics/proxy-metrics.ts'

/** RFC 9110 §9.2.2: these can be repeated without changing the outcome. */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE'])

/**
 * Attempts per request: the first and at most two retries, each on another
 * server when there is one (nginx's proxy_next_upstream_tries and Envoy's
 * retry policy are bounded the same way; unbounded retries turn one bad
 * server into a storm).
 */
export const MAX_ATTEMPTS = 3

/** Bodies up to this size are written together with the response head, in one write. */
const COALESCE_MAX = 16 * 1024

export type { ExchangeResult }

export class Exchange implements ResponseSink {
  readonly conn: ClientConnection
  readonly head: RequestHead
  readonly upstream: Upstream
  readonly isHead: boolean
  readonly upgrade: boolean
  readonly upgradeProtocols: string | undefined
  /** performance.now() when the request head was read. */
  readonly started: number
  private readonly handler: RequestHandler
  private readonly requestHead: string
  private uc: UpstreamConnection | undefined
  /** The server of the current attempt (its `active` count includes this request). */
  private pool: UpstreamPool | undefined
  /** Servers already tried, set on the first retry. */
  private tried: UpstreamPool[] | undefined
  private attempts = 0
  /** Bytes of the request body went to an upstream: the request cannot be replayed. */
  private bodyForwarded = false
  private status = 0
  private bytes = 0
  private finished = false
  /** The response head was decided (it may still be waiting in pendingHead). */
  private responding = false
  private pendingHead: string | undefined
  /** Frame each piece of the body as a chunk (an HTTP/1.1 client, a body of unknown length). */
  private encodeChunks = false
  private closeAfter = false
  private requestComplete: boolean
  /** Metrics (undefined when they are off): the route's stats, when the upstream's head came, body bytes forwarded. */
  private readonly stats: RouteStats | undefined
  private headAt = -1
  private bytesIn = 0
  /** The rule's `timeouts`, if it has any. */
  timeouts: RequestTimeouts | undefined = undefined
  /** Request body bytes still allowed (a rule's maxBodySize, chunked bodies); -1: no limit. */
  bodyLimit = -1

  constructor(
    handler: RequestHandler,
    conn: ClientConnection,
    head: RequestHead,
    upstream: Upstream,
    requestHead: string,
    upgrade: boolean,
    started: number,
    stats: RouteStats | undefined,
  ) {
    this.handler = handler
    this.conn = conn
    this.head = head
    this.upstream = upstream
    this.requestHead = requestHead
    this.upgrade = upgrade
    this.started = started
    this.isHead = head.method === 'HEAD'
    this.upgradeProtocols = head.upgrade
    this.requestComplete = !head.hasBody
    this.stats = stats
  }

  /** Sends the request head; the body follows through sendBody(). */
  start(): void {
    const pool = this.upstream.balancer.pick(this.tried, Date.now())
    if (pool === undefined) {
      this.fail(new NanoProxyError(ERROR_CODES.UPSTREAM_NO_SERVERS, `upstream ${this.upstream.config.name} has no servers`))
      return
    }
    this.pool = pool
    pool.active++
    this.attempts++
    // Upgrades get a connection of their own (it becomes the tunnel); a
    // retry gets a fresh one (the reused one just failed).
    this.uc = pool.acquire(this.upgrade || this.attempts > 1)
    this.uc.send(this, this.requestHead, !this.requestComplete, this.timeouts)
  }

  /** Request body bytes; false to stop reading until onUpstreamDrain. */
  sendBody(data: Buffer): boolean {
    if (this.bodyLimit !== -1 && (this.bodyLimit -= data.length) < 0) {
      // A chunked body past its rule's maxBodySize: 413 if nothing was
      // answered yet, else the connection is cut (clientBodyFailed).
      this.bodyLimit = -1
      this.clientBodyFailed(new ParseError('ERR_BODY_TOO_LARGE', 'request body larger than the rule\'s maxBodySize', 413))
      return true
    }
    if (this.uc === undefined) return true
    this.bodyForwarded = true
    this.bytesIn += data.length
    return this.head.chunked ? this.uc.writeChunk(data) : this.uc.writeBody(data)
  }

  bodyDone(): void {
    this.requestComplete = true
    if (this.head.chunked) this.uc?.writeLastChunk()
    this.uc?.bodyDone()
  }

  onResponseHead(resp: ResponseHead, mode: BodyMode): void {
    const health = this.pool?.health
    if (health !== undefined && health.failures > 0) health.succeeded()
    if (this.stats !== undefined) this.headAt = performance.now()
    this.status = resp.status
    this.responding = true
    const head = this.head
    // An upstream may answer before it has read the whole request body
    // (nginx's `return`, an early 413); the client's connection is closed
    // after such a response, as after a refused upgrade or on shutdown.
    let close = !head.persistent || !this.requestComplete || this.upgrade || this.handler.ctx.draining
    // RFC 9110 §6.6.1: a proxy adds the Date an upstream left out.
    let framing = resp.hasDate ? '' : `date: ${httpDate()}\r\n`
    if (mode === BodyMode.None || mode === BodyMode.Length) {
      // RFC 9110 §8.6: never a Content-Length on a 204 (nginx drops it too).
      if (resp.contentLength >= 0 && resp.status !== 204) framing += `content-length: ${resp.contentLength}\r\n`
    } else if (head.minor === 1) {
      // Chunked, or close-delimited re-framed as chunks so the client's
      // connection can stay open.
      framing += 'transfer-encoding: chunked\r\n'
      this.encodeChunks = true
    } else {
      // An HTTP/1.0 client cannot take chunked: the body ends with the connection.
      close = true
    }
    if (close) framing += 'connection: close\r\n'
    else if (head.minor === 0) framing += 'connection: keep-alive\r\n'
    this.closeAfter = close
    this.pendingHead = clientResponseHead(resp, this.handler.identity, framing, this.handler.editResponse)
  }

  /**
   * A 1xx before the final response. RFC 9110 §15.2: a proxy forwards the
   * ones it did not ask for (102, 103 Early Hints) to HTTP/1.1 clients;
   * 100 Continue is the proxy's own business (it answers Expect itself).
   * They obey the same backpressure as a body: while the client's buffer
   * is full the upstream is not read (and the upstream connection stops
   * after MAX_INTERIM of them).
   */
  onInterim(resp: ResponseHead): void {
    if (resp.status === 100 || this.head.minor === 0 || this.finished || this.responding) return
    if (!this.conn.write(clientResponseHead(resp, '', '')) && this.uc !== undefined) {
      this.uc.pause()
      this.conn.awaitDrain()
    }
  }

  onResponseData(data: Buffer): void {
    this.bytes += data.length
    if (this.finished) return
    const conn = this.conn
    let ok: boolean
    if (this.encodeChunks) {
      this.flush()
      ok = conn.writeChunk(data)
    } else if (this.pendingHead !== undefined && data.length <= COALESCE_MAX) {
      // Head and body in one buffer: one write, one syscall.
      const head = this.pendingHead
      this.pendingHead = undefined
      const out = Buffer.allocUnsafe(head.length + data.length)
      out.write(head, 0, 'latin1')
      data.copy(out, head.length)
      ok = conn.write(out)
    } else {
      this.flush()
      ok = conn.write(data)
    }
    if (!ok && this.uc !== undefined) {
      this.uc.pause()
      conn.awaitDrain()
    }
  }

  flush(): void {
    const head = this.pendingHead
    if (head === undefined) return
    this.pendingHead = undefined
    if (!this.finished) this.conn.write(head)
  }

  onResponseEnd(): void {
    this.uc = undefined
    if (this.finished) return
    if (this.encodeChunks) {
      this.flush()
      this.conn.write(LAST_CHUNK)
    } else this.flush()
    this.finish({ status: this.status, bytes: this.bytes })
    this.conn.responseFinished(this.closeAfter)
  }

  onUpgrade(resp: ResponseHead, socket: Socket, rest: Buffer | undefined): void {
    this.uc = undefined
    if (this.finished) {
      socket.destroy()
      return
    }
    this.status = 101
    // Upgrade and Connection are the point of a 101 (RFC 9110 §7.8): kept.
    const head = clientResponseHead(resp, this.handler.identity, `${resp.upgradeLine}connection: upgrade\r\n`, this.handler.editResponse)
    const metrics = this.handler.ctx.metrics
    if (metrics !== undefined) metrics.tunnelsOpen++
    this.conn.becomeTunnel(socket, head, rest, (bytes) => {
      if (metrics !== undefined) metrics.tunnelsOpen--
      this.bytes = bytes
      this.finish({ status: 101, bytes })
    })
  }

  onUpstreamError(err: Error, failure: Failure): void {
    this.uc = undefined
    if (this.finished) return
    const error = upstreamError(err, this.upstream.config.name)
    const pool = this.pool
    if (pool !== undefined && (failure === Failure.Connect || failure === Failure.BeforeResponse)) this.serverFailed(pool, error)
    if (pool !== undefined && failure === Failure.Connect) pool.connectFailures++
    if (this.pendingHead !== undefined) {
      // Nothing reached the client yet: it can still get an error status.
      this.pendingHead = undefined
      this.responding = false
      this.encodeChunks = false
    }
    if (this.mayRetry(failure)) {
      if (pool !== undefined) {
        pool.retries++
        pool.active--
        this.pool = undefined
        ;(this.tried ??= []).push(pool)
      }
      this.handler.ctx.log.debug({ code: error.code, err, upstream: this.upstream.config.name, server: pool?.origin, attempt: this.attempts }, 'retrying request on another connection')
      this.start()
      return
    }
    if (this.responding) {
      // Too late for an error status: cut the connection so the client sees
      // a truncated response instead of a complete-looking one.
      this.finish({ status: this.status, bytes: this.bytes, error })
      this.conn.destroy()
      return
    }
    this.fail(error)
  }

  /**
   * Whether a failed attempt is tried again (docs/routing.md, "Retries").
   * Never once a response byte reached the client, nor after request body
   * bytes went out (they are not kept), nor beyond MAX_ATTEMPTS. A request
   * that never reached a server (no connection) is retried whatever its
   * method, on another server; one that may have reached it only when it is
   * idempotent and has no body (RFC 9110 §9.2.2: repeating it changes nothing). A timeout
   * waiting for the response is not retried: the server may be working on
   * it, and a retry would double the load on a slow upstream.
   */
  private mayRetry(failure: Failure): boolean {
    if (this.responding || this.bodyForwarded || this.attempts >= MAX_ATTEMPTS || this.handler.ctx.draining) return false
    if (failure === Failure.Late) return false
    // The stale keep-alive race is the connection's fault, not the server's:
    // a fresh connection to the same server is fine. Other failures move on
    // to a server not tried yet, and only when there is one.
    if (failure !== Failure.Stale && !this.untriedServerLeft()) return false
    if (failure === Failure.Connect) return true
    return !this.head.hasBody && IDEMPOTENT.has(this.head.method)
  }

  private untriedServerLeft(): boolean {
    const current = this.pool
    const tried = this.tried
    for (const s of this.upstream.balancer.servers) if (s.pool !== current && (tried === undefined || !tried.includes(s.pool))) return true
    return false
  }

  /** A connection-level failure of `pool`'s server: counts towards its ejection (passive-health.ts). */
  private serverFailed(pool: UpstreamPool, error: NanoProxyError): void {
    const ejectedMs = pool.health.failed(Date.now())
    if (ejectedMs > 0) {
      pool.ejections++
      this.handler.ctx.log.warn(
        { upstream: this.upstream.config.name, server: pool.origin, code: error.code, failures: pool.health.failures, ejected_ms: ejectedMs },
        'upstream server ejected after consecutive connection failures',
      )
    }
  }

  /** Answers with `error` before anything was sent to the client. */
  private fail(error: NanoProxyError): void {
    const close = !this.requestComplete || !this.head.persistent
    const sent = this.handler.sendError(this.conn, this.head, error, close)
    this.finish({ ...sent, error })
    this.conn.responseFinished(close)
  }

  onUpstreamDrain(): void {
    this.conn.resumeReading()
  }

  onClientDrain(): void {
    this.uc?.resume()
  }

  /** The client's request body broke the chunked framing. */
  clientBodyFailed(err: ParseError): void {
    const uc = this.uc
    this.uc = undefined
    uc?.destroy()
    if (this.finished) return
    if (this.responding && this.pendingHead === undefined) {
      this.finish({ status: this.status, bytes: this.bytes })
      this.conn.destroy()
      return
    }
    this.pendingHead = undefined
    this.finish({ status: err.status, bytes: 0 })
    this.conn.reject(err)
  }

  /** The client's connection closed before the exchange completed. */
  clientGone(): void {
    const uc = this.uc
    this.uc = undefined
    // Stops the upstream request: otherwise an abandoned download keeps an
    // upstream connection busy (the `http-proxy` leak, nodejs/node#41117).
    uc?.destroy()
    if (this.finished) return
    this.finish({ status: this.status || 499, bytes: this.bytes, aborted: true })
  }

  private finish(result: ExchangeResult): void {
    if (this.finished) return
    this.finished = true
    const pool = this.pool
    if (pool !== undefined) {
      pool.active--
      this.pool = undefined
      result.server = pool.origin
    }
    if (this.attempts > 0) result.attempts = this.attempts
    if (this.stats !== undefined) {
      result.stats = this.stats
      result.headSeconds = this.headAt < 0 ? -1 : (this.headAt - this.started) / 1000
      result.bytesIn = this.bytesIn
    }
    this.handler.requestDone(this.conn, this.head, this.started, result, this.upstream.config.name)
  }
}
