// One connection to an upstream: writes a request, reads its response
// (RFC 9112 §6.3 framing), then goes back to its pool if it can carry
// another request. One request at a time (no pipelining upstream).

import { connect as connectTcp, type Socket } from 'node:net'
import { ERROR_CODES, NanoProxyError } from '../errors.ts'
import { LAST_CHUNK, writeChunk } from '../http1/chunk-writer.ts'
import { ChunkedDecoder } from '../http1/chunked-decoder.ts'
import { listTokens } from '../http1/field-line.ts'
import { headLength } from '../http1/head-end.ts'
import { ParseError } from '../http1/parse-error.ts'
import { parseResponseHead, type ResponseHead } from '../http1/response-head.ts'
import type { Expiring } from './deadlines.ts'
import { loadTls } from './tls.ts'
// The pool as this file sees it (connection-roles.ts), under the name of the class that plays it.
import type { ConnectionPool } from './connection-roles.ts'
import { WRITE_BUFFER } from './write-buffer.ts'

type UpstreamPool = ConnectionPool<UpstreamConnection>

/** How the response body is delimited (RFC 9112 §6.3). */
export const BodyMode = {
  /** HEAD, 1xx, 204, 304: no body whatever the headers say. */
  None: 0,
  Length: 1,
  Chunked: 2,
  /** No length given: the body ends when the upstream closes. */
  Close: 3,
} as const
export type BodyMode = (typeof BodyMode)[keyof typeof BodyMode]

/** How far a failed attempt got: what decides whether it may be retried (exchange.ts) and whether it counts against the server's health. */
export const Failure = {
  /** No connection was made (refused, unreachable, DNS, TLS handshake, connect timeout): nothing of the request reached the server. */
  Connect: 0,
  /** A kept-alive connection, reused, closed before any response: the upstream had closed it just as we wrote (not the server's fault). */
  Stale: 1,
  /** A fresh connection closed or reset before any byte of the response. */
  BeforeResponse: 2,
  /** Anything later, a timeout waiting for the response, or an invalid response: never retried. */
  Late: 3,
} as const
export type Failure = (typeof Failure)[keyof typeof Failure]

/** What receives a response: the exchange that sent the request. */
export interface ResponseSink {
  readonly isHead: boolean
  readonly upgrade: boolean
  /** The client's Upgrade header value, for an upgrade. */
  readonly upgradeProtocols: string | undefined
  /** An interim (1xx) response other than 101. */
  onInterim(resp: ResponseHead): void
  onResponseHead(resp: ResponseHead, mode: BodyMode): void
  onResponseData(data: Buffer): void
  /** Called after the connection went back to its pool (or was closed). */
  onResponseEnd(): void
  /** A 101 to an upgrade: the socket now belongs to the sink. */
  onUpgrade(resp: ResponseHead, socket: Socket, rest: Buffer | undefined): void
  /** `failure`: how far the attempt got. */
  onUpstreamError(err: Error, failure: Failure): void
  /** End of one batch of socket data: write out anything held back. */
  flush(): void
  /** The upstream socket drained after a write returned false. */
  onUpstreamDrain(): void
}

const IDLE = 0
const HEAD = 1
const BODY = 2
const CLOSED = 3

/** Response heads larger than this are refused (502); Node's own limit is 16 KiB. */
const MAX_RESPONSE_HEAD = 64 * 1024
/**
 * Interim (1xx) responses relayed per request; one more fails the exchange
 * with 502. RFC 9110 §15.2 sets no limit, but a request needs a few at most
 * (a 102 now and then, one or two 103s), and an upstream that streams them
 * without end would otherwise keep the exchange going forever.
 */
export const MAX_INTERIM = 10

/** One request's deadlines in ms, from its rule's `timeouts` (each absent: the pool's, from TIMEOUT / IDLE_TIMEOUT). */
export interface RequestTimeouts {
  connectMs?: number
  responseMs?: number
  idleMs?: number
}

export class UpstreamConnection implements Expiring {
  readonly socket: Socket
  readonly pool: UpstreamPool
  deadline = 0
  /** Set once a response came back on it: a failure before the next response may be a stale keep-alive. */
  reused = false
  private sink: ResponseSink | undefined
  private state: number = IDLE
  private connected = false
  private pending: Buffer | undefined
  private mode: BodyMode = BodyMode.None
  private remaining = 0
  private decoder: ChunkedDecoder | undefined
  private responseStarted = false
  private requestSent = false
  private head: ResponseHead | undefined
  /** The upstream sent bytes beyond the response: the connection cannot be trusted again. */
  private tainted = false
  /** Interim responses received for the current request. */
  private interims = 0
  /** The current request's deadlines (its rule's `timeouts`, else TIMEOUT and IDLE_TIMEOUT). */
  private connectMs: number
  private responseMs: number
  private idleMs: number

  constructor(pool: UpstreamPool) {
    this.pool = pool
    const { host, port, secureContext, servername } = pool.target
    const socket: Socket = secureContext
      ? loadTls().connect({ host, port, secureContext, servername, rejectUnauthorized: pool.verify, ALPNProtocols: ['http/1.1'] }, this.onConnect)
      : connectTcp({ host, port, noDelay: true }, this.onConnect)
    this.socket = socket
    if (secureContext) socket.setNoDelay(true)
    socket.on('data', this.onData)
    socket.on('end', this.onEnd)
    socket.on('error', this.onError)
    socket.on('close', this.onClose)
    socket.on('drain', this.onDrain)
    this.connectMs = pool.timeoutMs
    this.responseMs = pool.timeoutMs
    this.idleMs = pool.idleTimeoutMs
    this.deadline = Date.now() + pool.timeoutMs
    pool.sweeper.add(this)
  }

  /** Whether it can take a request (an idle pooled connection can die while idle). */
  get usable(): boolean {
    return this.state === IDLE && !this.socket.destroyed
  }

  /** Sends a request head; body bytes follow through writeBody(). The response goes to `sink`. */
  send(sink: ResponseSink, head: string, bodyFollows: boolean, timeouts?: RequestTimeouts): void {
    this.sink = sink
    const pool = this.pool
    this.connectMs = timeouts?.connectMs ?? pool.timeoutMs
    this.responseMs = timeouts?.responseMs ?? pool.timeoutMs
    this.idleMs = timeouts?.idleMs ?? pool.idleTimeoutMs
    this.state = HEAD
    this.pending = undefined
    this.responseStarted = false
    this.requestSent = !bodyFollows
    this.tainted = false
    this.interims = 0
    this.decoder = undefined
    this.armRequestDeadline()
    this.socket.write(head, 'latin1')
  }

  /** Forwards request body bytes; false means wait for onUpstreamDrain. */
  writeBody(data: Buffer): boolean {
    if (this.state === CLOSED) return true
    if (!this.responseStarted) this.armRequestDeadline()
    this.socket.write(data)
    return this.socket.writableLength < WRITE_BUFFER
  }

  /** Forwards one piece of a chunked request body, framed as one chunk. */
  writeChunk(data: Buffer): boolean {
    if (this.state === CLOSED) return true
    if (!this.responseStarted) this.armRequestDeadline()
    writeChunk(this.socket, data)
    return this.socket.writableLength < WRITE_BUFFER
  }

  /** Ends a chunked request body. */
  writeLastChunk(): void {
    if (this.state !== CLOSED) this.socket.write(LAST_CHUNK, 'latin1')
  }

  /** The request body is complete. */
  bodyDone(): void {
    if (this.socket.writableLength === 0) {
      this.requestSent = true
      if (!this.responseStarted && this.state === HEAD) this.armRequestDeadline()
      return
    }
    // The wait for the response head starts once the last byte is out of
    // this process: a slow upstream may still be reading what is queued.
    const sink = this.sink
    this.socket.write('', () => {
      if (this.sink !== sink) return
      this.requestSent = true
      if (!this.responseStarted && this.state === HEAD) this.armRequestDeadline()
    })
  }

  /**
   * Until the response starts: TIMEOUT to connect, then IDLE_TIMEOUT of
   * silence while the request body is still being sent (an upstream may
   * read a large upload slowly), then TIMEOUT for the response head, counted
   * from the request's last byte.
   */
  private armRequestDeadline(): void {
    this.deadline = Date.now() + (!this.connected ? this.connectMs : !this.requestSent ? this.idleMs : this.responseMs)
  }

  /**
   * Stops reading: the client is not keeping up. Its deadline is the
   * client connection's business meanwhile (a slow reader is not the
   * upstream's fault).
   */
  pause(): void {
    this.socket.pause()
    if (this.state === BODY || (this.state === HEAD && this.responseStarted)) this.deadline = 0
  }

  resume(): void {
    this.socket.resume()
    if (this.state === BODY) this.deadline = Date.now() + this.idleMs
    else if (this.state === HEAD && this.responseStarted) this.deadline = Date.now() + this.responseMs
  }

  /** Drops the connection (the client went away, or the response was cut). */
  destroy(): void {
    this.sink = undefined
    this.close()
  }

  expire(): void {
    if (this.state === IDLE) {
      // Idle longer than the keep-alive time: close before the upstream does.
      this.close()
      return
    }
    if (this.state === BODY) {
      this.fail(new NanoProxyError(ERROR_CODES.UPSTREAM_TIMEOUT, `upstream ${this.pool.name} timed out: sent nothing for ${this.idleMs / 1000} s in the middle of a response`), Failure.Late)
      return
    }
    const what = this.connected ? 'did not send response headers' : 'did not accept the connection'
    const ms = this.connected ? this.responseMs : this.connectMs
    this.fail(new NanoProxyError(ERROR_CODES.UPSTREAM_TIMEOUT, `upstream ${this.pool.name} timed out: ${what} within ${ms / 1000} s`), this.connected ? Failure.Late : Failure.Connect)
  }

  private readonly onConnect = (): void => {
    this.connected = true
    if (this.state === HEAD && !this.responseStarted) this.armRequestDeadline()
  }

  private readonly onData = (chunk: Buffer): void => {
    const sink = this.sink
    if (sink === undefined || this.state === IDLE) {
      // Bytes nobody asked for: the connection's framing is lost.
      this.close()
      return
    }
    this.responseStarted = true
    try {
      if (this.state === HEAD) this.readHead(sink, chunk)
      else this.readBody(sink, chunk, 0)
    } catch (err) {
      if (err instanceof NanoProxyError) {
        this.fail(err, Failure.Late)
        return
      }
      if (!(err instanceof ParseError)) throw err
      this.fail(new NanoProxyError(ERROR_CODES.UPSTREAM_PROTOCOL, `invalid response from upstream ${this.pool.name}: ${err.message}`, { cause: err }), Failure.Late)
      return
    }
    this.sink?.flush()
  }

  private readHead(sink: ResponseSink, chunk: Buffer): void {
    let buf = this.pending === undefined ? chunk : Buffer.concat([this.pending, chunk])
    for (;;) {
      const length = headLength(buf, 0, MAX_RESPONSE_HEAD)
      if (length === -1) {
        this.pending = buf
        return
      }
      this.pending = undefined
      const resp = parseResponseHead(buf.toString('latin1', 0, length))
      const rest = length < buf.length ? buf.subarray(length) : undefined
      if (resp.status < 200) {
        if (resp.status === 101) {
          if (!sink.upgrade) throw new ParseError('HPE_INVALID_STATUS', '101 Switching Protocols to a request that asked for no upgrade')
          // RFC 9110 §7.8: the 101 names the protocol switched to, one the
          // client asked for (Go's ReverseProxy checks the same).
          if (!upgradeAgreed(sink.upgradeProtocols, resp.upgradeLine)) {
            throw new ParseError('HPE_INVALID_STATUS', '101 Switching Protocols to a protocol the client did not ask for')
          }
          this.handOver(sink, resp, rest)
          return
        }
        if (++this.interims > MAX_INTERIM) {
          throw new NanoProxyError(ERROR_CODES.UPSTREAM_TOO_MANY_INTERIM, `upstream ${this.pool.name} sent more than ${MAX_INTERIM} interim (1xx) responses to one request`)
        }
        sink.onInterim(resp)
        // (A client not reading makes onInterim pause this socket: the rest
        // of this read is handled, then nothing more until it drains.)
        if (rest === undefined) return
        buf = rest
        continue
      }
      this.head = resp
      if (this.startBody(sink, resp)) {
        // No body: bytes after the head mean the framing is lost. Decided
        // before complete(), which may hand the connection to the next request.
        if (rest !== undefined) this.tainted = true
        this.complete()
      } else if (rest !== undefined) this.readBody(sink, rest, 0)
      return
    }
  }

  /** Reads the framing, passes the head on; true when the response has no body (it is complete). */
  private startBody(sink: ResponseSink, resp: ResponseHead): boolean {
    this.state = BODY
    this.deadline = Date.now() + this.idleMs
    let mode: BodyMode
    if (sink.isHead || resp.status === 204 || resp.status === 304) mode = BodyMode.None
    else if (resp.chunked) {
      mode = BodyMode.Chunked
      // Chunks are decoded and framed anew for the client (extensions and
      // trailers dropped), as nginx does: a client never sees framing the
      // proxy did not write itself.
      this.decoder = new ChunkedDecoder()
      this.decoder.onData = (data) => sink.onResponseData(data)
    } else if (resp.contentLength >= 0) {
      mode = BodyMode.Length
      this.remaining = resp.contentLength
    } else mode = BodyMode.Close
    this.mode = mode
    sink.onResponseHead(resp, mode)
    return mode === BodyMode.None || (mode === BodyMode.Length && this.remaining === 0)
  }

  private readBody(sink: ResponseSink, buf: Buffer, start: number): void {
    if (this.state !== BODY) return
    this.deadline = Date.now() + this.idleMs
    switch (this.mode) {
      case BodyMode.Length: {
        const n = Math.min(this.remaining, buf.length - start)
        sink.onResponseData(n === buf.length ? buf : buf.subarray(start, start + n))
        this.remaining -= n
        if (this.remaining === 0) {
          if (start + n < buf.length) this.tainted = true
          this.complete()
        }
        return
      }
      case BodyMode.Chunked: {
        const decoder = this.decoder!
        const end = decoder.feed(buf, start)
        if (decoder.done) {
          if (end < buf.length) this.tainted = true
          this.complete()
        }
        return
      }
      case BodyMode.Close:
        sink.onResponseData(start === 0 ? buf : buf.subarray(start))
        return
      default:
        this.tainted = true
    }
  }

  /** The response is complete: back to the pool if the connection can carry another. */
  private complete(): void {
    const sink = this.sink!
    const head = this.head!
    this.sink = undefined
    this.head = undefined
    this.decoder = undefined
    if (head.reusable && !this.tainted && this.requestSent && this.mode !== BodyMode.Close) {
      this.state = IDLE
      this.reused = true
      this.pool.release(this, head.keepAliveTimeout)
    } else this.close()
    sink.onResponseEnd()
  }

  private handOver(sink: ResponseSink, resp: ResponseHead, rest: Buffer | undefined): void {
    this.sink = undefined
    this.state = CLOSED
    this.pool.sweeper.delete(this)
    this.pool.forget(this)
    const socket = this.socket
    socket.off('data', this.onData).off('end', this.onEnd).off('error', this.onError).off('close', this.onClose).off('drain', this.onDrain)
    sink.onUpgrade(resp, socket, rest)
  }

  /** A failure: the sink hears it once, the socket is closed. */
  private fail(err: Error, failure: Failure): void {
    const sink = this.sink
    this.sink = undefined
    this.close()
    sink?.onUpstreamError(err, failure)
  }

  private close(): void {
    if (this.state === CLOSED) return
    this.state = CLOSED
    this.pool.sweeper.delete(this)
    this.pool.forget(this)
    this.socket.destroy()
  }

  private readonly onEnd = (): void => {
    if (this.state === BODY && this.mode === BodyMode.Close && this.sink) {
      this.complete()
      return
    }
    this.ended(new NanoProxyError(ERROR_CODES.UPSTREAM_RESET, this.gone('closed the connection')))
  }

  private readonly onError = (err: Error): void => {
    this.ended(err)
  }

  private readonly onClose = (): void => {
    this.ended(new NanoProxyError(ERROR_CODES.UPSTREAM_RESET, this.gone('closed the connection')))
  }

  private gone(what: string): string {
    const when = this.state === BODY ? 'in the middle of the response' : 'before responding'
    return `upstream ${this.pool.name} ${what} ${when}`
  }

  private ended(err: Error): void {
    if (this.sink === undefined) {
      this.close()
      return
    }
    let failure: Failure = Failure.Late
    if (!this.connected) failure = Failure.Connect
    else if (!this.responseStarted) failure = this.reused ? Failure.Stale : Failure.BeforeResponse
    this.fail(err, failure)
  }

  private readonly onDrain = (): void => {
    this.sink?.onUpstreamDrain()
  }
}

/** Whether the Upgrade line of a 101 names only protocols from the request's Upgrade list. */
function upgradeAgreed(requested: string | undefined, upgradeLine: string): boolean {
  if (requested === undefined || upgradeLine === '') return false
  const offered = listTokens(requested)
  const chosen = listTokens(upgradeLine.slice(upgradeLine.indexOf(':') + 1))
  return chosen.length > 0 && chosen.every((p) => offered.includes(p))
}
