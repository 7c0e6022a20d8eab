// One client connection: reads requests (RFC 9112), one at a time, and
// hands each to the request handler; writes what the exchange answers.
//
// States: waiting for a head → reading the body → responding → back to
// waiting (keep-alive), or closed. Pipelined requests (RFC 9112 §9.3.2)
// wait in `pending` until the response before them is complete, so
// responses always go out in request order.

import type { Socket } from 'node:net'
import { writeChunk } from '../http1/chunk-writer.ts'
import { ChunkedDecoder } from '../http1/chunked-decoder.ts'
import { headLength } from '../http1/head-end.ts'
import { ParseError } from '../http1/parse-error.ts'
import { parseRequestHead, type RequestHead } from '../http1/request-head.ts'
import { statusText } from '../http1/status-text.ts'
import type { Expiring } from './deadlines.ts'
import type { ClientExchange, ConnectionOwner, ExchangeClient } from './connection-roles.ts'
import { plainAddress } from './headers.ts'
import { WRITE_BUFFER } from './write-buffer.ts'

type RequestHandler = ConnectionOwner<ClientConnection>
type Exchange = ClientExchange

const WAIT_HEAD = 0
const BODY = 1
const RESPONDING = 2
const TUNNEL = 3
const CLOSED = 4

/** Request heads (request line and headers) above this get 431, as with Node's default. */
const MAX_HEAD = 16 * 1024
/**
 * Idle keep-alive connections are kept 65 s: longer than the default 60 s
 * idle timeout of AWS load balancers in front, so the balancer, not the
 * proxy, closes first and never sends on a connection being closed.
 */
const KEEP_ALIVE_MS = 65_000
/** After the proxy's last byte, how long unread client input is drained before the socket is destroyed. */
const LINGER_MS = 2000
/** Unwanted request bodies up to this size are read and dropped to keep the connection; larger ones close it. */
const MAX_DISCARD = 1024 * 1024

export class ClientConnection implements Expiring, ExchangeClient {
  readonly socket: Socket
  readonly handler: RequestHandler
  /** The client's address, IPv4 as dotted quad. */
  readonly address: string
  /** `http` or `https`: how the client reached the proxy. */
  readonly proto: string
  /** The client is in TRUSTED_PROXIES: its X-Forwarded-* are extended, not replaced. */
  readonly trusted: boolean
  deadline: number
  /** When the connection began waiting for its next (or first) request head. */
  idleSince = Date.now()
  private state: number = WAIT_HEAD
  private pending: Buffer | undefined
  /** How far `pending` was searched for the end of a head. */
  private scanned = 0
  private exchange: Exchange | undefined
  private bodyRemaining = 0
  private decoder: ChunkedDecoder | undefined
  private bodyComplete = true
  private responseDone = true
  private readEnded = false
  private processing = false
  /** Reading stopped: the upstream is not taking the body fast enough. */
  private heldByUpstream = false
  /** Reading stopped: too many bytes waiting behind the current request. */
  private heldByPending = false
  /** Pipelined requests wait: the client is not reading its answers. */
  private heldByClient = false
  /** socket.writableLength when the wait for the client to read began (see expire). */
  private unread = 0

  constructor(handler: RequestHandler, socket: Socket, proto: string) {
    this.handler = handler
    this.socket = socket
    this.proto = proto
    this.address = plainAddress(socket.remoteAddress)
    // Once per connection: the address does not change between its requests.
    this.trusted = handler.ctx.settings.trustedProxies?.check(this.address, this.address.includes(':') ? 'ipv6' : 'ipv4') ?? false
    socket.on('data', this.onData)
    socket.on('end', this.onEnd)
    socket.on('error', this.onError)
    socket.on('close', this.onClose)
    socket.on('drain', this.onDrain)
    // The first request's head must arrive within TIMEOUT of connecting.
    this.deadline = Date.now() + handler.ctx.settings.timeoutMs
    handler.track(this)
  }

  /** Open, and between requests with nothing received: safe to close. */
  get idle(): boolean {
    return this.state === WAIT_HEAD && this.pending === undefined
  }

  /** Writes one piece of a body as a chunk (RFC 9112 §7.1). */
  writeChunk(data: Buffer): boolean {
    writeChunk(this.socket, data)
    return this.socket.writableLength < WRITE_BUFFER
  }

  /** Closed, or closing (lingering). */
  get closed(): boolean {
    return this.state === CLOSED
  }

  /** Writes response bytes; false when the socket's buffer is full (wait for onClientDrain). */
  write(data: string | Buffer): boolean {
    if (typeof data === 'string') this.socket.write(data, 'latin1')
    else this.socket.write(data)
    return this.socket.writableLength < WRITE_BUFFER
  }

  /**
   * The current response has been written in full. `discard`: the request
   * body was not wanted (the proxy answered by itself); read and drop it
   * when it is small, so the connection can carry the next request.
   */
  responseFinished(close: boolean, discard = false): void {
    this.exchange = undefined
    this.responseDone = true
    if (close || this.handler.ctx.draining) {
      this.closeGracefully()
      return
    }
    if (!this.bodyComplete) {
      // A body the upstream did not wait for was never read to its end: the
      // next request would be found in the middle of it. Close instead,
      // unless it is small enough to skip (as nginx discards bodies).
      if (!discard || this.decoder !== undefined || this.bodyRemaining > MAX_DISCARD) this.closeGracefully()
      return
    }
    this.nextRequest()
  }

  /** Back to waiting for a head: keep-alive, or the pipelined request already here. */
  private nextRequest(): void {
    if (this.readEnded && this.pending === undefined) {
      this.closeGracefully()
      return
    }
    this.state = WAIT_HEAD
    this.idleSince = Date.now()
    this.deadline = this.idleSince + (this.pending === undefined ? KEEP_ALIVE_MS : this.handler.ctx.settings.timeoutMs)
    this.release()
    this.process()
  }

  /** An exchange started for the request just read. */
  attach(exchange: Exchange): void {
    this.exchange = exchange
  }

  /**
   * The response waits for the client to read (its socket buffer is full):
   * from now on the client has IDLE_TIMEOUT to make progress.
   */
  awaitDrain(): void {
    this.unread = this.socket.writableLength
    this.deadline = Date.now() + this.handler.bodyIdleMs
  }

  /** The upstream took the body bytes it had been refusing. */
  resumeReading(): void {
    if (!this.heldByUpstream) return
    this.heldByUpstream = false
    if (!this.heldByPending) this.socket.resume()
  }

  /** Hands the socket over to a tunnel (101 Switching Protocols): bytes flow both ways until either side closes. */
  becomeTunnel(upstream: Socket, responseHead: string, rest: Buffer | undefined, closed: (bytes: number) => void): void {
    const socket = this.socket
    this.state = TUNNEL
    this.deadline = 0
    this.exchange = undefined
    socket.off('data', this.onData).off('end', this.onEnd).off('drain', this.onDrain)
    socket.write(responseHead, 'latin1')
    if (rest !== undefined) socket.write(rest)
    if (this.pending !== undefined) upstream.write(this.pending)
    this.pending = undefined
    // Either side closing or failing ends the tunnel: destroy(), not end(),
    // so no half-open socket lingers (http-proxy's WebSocket fd leak, #1510).
    // The access log counts what the upstream sent after its 101 head.
    let bytes = rest?.length ?? 0
    upstream.on('data', (chunk: Buffer) => {
      bytes += chunk.length
      if (this.deadline !== 0) this.deadline = Date.now() + this.handler.bodyIdleMs
    })
    // A client that half-closes (its FIN is passed on by pipe) leaves the
    // tunnel to the upstream, which may never close its side: from then on
    // the tunnel ends after IDLE_TIMEOUT without a byte from the upstream.
    // (An upstream's FIN closes the tunnel at once: its socket is not
    // half-open.) An idle tunnel with both sides open has no deadline:
    // WebSockets can be quiet for hours.
    socket.once('end', () => {
      this.deadline = Date.now() + this.handler.bodyIdleMs
    })
    let done = false
    const close = (): void => {
      socket.destroy()
      upstream.destroy()
      if (done) return
      done = true
      closed(bytes)
    }
    upstream.on('error', close).on('close', close)
    socket.on('close', close)
    upstream.pipe(socket)
    socket.pipe(upstream)
    this.heldByPending = this.heldByUpstream = false
    socket.resume()
  }

  /** Rejects a request the parser refused: status, `connection: close`, and the log line. */
  reject(err: ParseError): void {
    this.handler.logRejected(this, err)
    this.write(`HTTP/1.1 ${err.status} ${statusText(err.status)}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n`)
    this.closeGracefully()
  }

  /** Cuts the connection at once (a response that cannot be completed). */
  destroy(): void {
    this.state = CLOSED
    this.socket.destroy()
  }

  expire(): void {
    switch (this.state) {
      case WAIT_HEAD:
        // RFC 9110 §15.5.9: 408 to a client too slow to send its head; an
        // idle keep-alive connection is just closed, as nginx does.
        if (this.pending === undefined) this.destroy()
        else this.reject(new ParseError('ERR_HTTP_REQUEST_TIMEOUT', 'request head not received in time', 408))
        return
      case BODY:
        // Silent for IDLE_TIMEOUT in the middle of its body: the client is gone.
        this.destroy()
        return
      case RESPONDING:
      case CLOSED: {
        // Still writing to a slow reader: cut only a client that read
        // nothing for IDLE_TIMEOUT. (A closed connection whose writes are
        // done is past its linger time.)
        const left = this.socket.writableLength
        // (Nothing left while responding: 'drain' is on its way.)
        if (left > 0 ? left < this.unread : this.state === RESPONDING) {
          this.unread = left
          this.deadline = Date.now() + this.handler.bodyIdleMs
          return
        }
        this.destroy()
        return
      }
      default:
        this.destroy()
    }
  }

  private readonly onData = (chunk: Buffer): void => {
    switch (this.state) {
      case WAIT_HEAD:
        this.pending = this.pending === undefined ? chunk : Buffer.concat([this.pending, chunk])
        this.process()
        return
      case BODY:
        this.deadline = Date.now() + this.handler.bodyIdleMs
        this.afterBody(chunk, this.feedBody(chunk, 0))
        return
      case CLOSED:
        // Lingering close: the client's leftovers are read and dropped so the
        // kernel does not answer them with a reset that could destroy the
        // response still on its way (nginx's lingering_close).
        return
      default:
        this.hold(chunk)
    }
  }

  /** Keeps bytes for later (pipelined requests, a tunnel's first bytes); stops reading when too many wait. */
  private hold(data: Buffer): void {
    this.pending = this.pending === undefined ? data : Buffer.concat([this.pending, data])
    if (this.pending.length > MAX_HEAD && !this.heldByPending) {
      this.heldByPending = true
      this.socket.pause()
    }
  }

  private release(): void {
    if (!this.heldByPending) return
    this.heldByPending = false
    if (!this.heldByUpstream) this.socket.resume()
  }

  /** Starts every complete request in `pending`, one at a time. */
  private process(): void {
    if (this.processing) return
    this.processing = true
    try {
      while (this.state === WAIT_HEAD && this.pending !== undefined) {
        // A client that pipelines requests but does not read the answers
        // would make the proxy buffer them without end: wait for it.
        if (this.socket.writableLength >= WRITE_BUFFER) {
          this.heldByClient = true
          this.socket.pause()
          break
        }
        if (!this.readHead()) break
      }
    } finally {
      this.processing = false
    }
    if (this.state === WAIT_HEAD && this.pending === undefined && this.readEnded) this.closeGracefully()
  }

  /** Reads one head from `pending`; true when a request was started. */
  private readHead(): boolean {
    let buf = this.pending!
    // RFC 9112 §2.2: empty lines before a request line are ignored.
    while (buf.length >= 2 && buf[0] === 13 && buf[1] === 10) buf = buf.subarray(2)
    if (buf.length === 0 || (buf.length === 1 && buf[0] === 13)) {
      this.pending = buf.length === 0 ? undefined : buf
      return false
    }
    if (this.deadline === 0 || this.deadline - Date.now() > this.handler.ctx.settings.timeoutMs) {
      // A new head started: it must be complete within TIMEOUT.
      this.deadline = Date.now() + this.handler.ctx.settings.timeoutMs
    }
    let length: number
    try {
      length = headLength(buf, this.scanned, MAX_HEAD)
    } catch (err) {
      if (!(err instanceof ParseError)) throw err
      this.reject(err)
      return false
    }
    if (length === -1) {
      this.pending = buf
      this.scanned = buf.length
      return false
    }
    this.pending = length < buf.length ? buf.subarray(length) : undefined
    this.scanned = 0
    let head: RequestHead
    try {
      head = parseRequestHead(buf.toString('latin1', 0, length), this.handler.ctx.settings.allowUnderscoresInHeaders)
    } catch (err) {
      if (!(err instanceof ParseError)) throw err
      this.reject(err)
      return false
    }
    this.startRequest(head)
    return true
  }

  private startRequest(head: RequestHead): void {
    this.responseDone = false
    this.bodyRemaining = 0
    this.decoder = undefined
    if (head.chunked) {
      // Decoded here and framed anew upstream: the upstream never sees
      // chunk framing the proxy did not write (extensions, trailers dropped).
      this.decoder = new ChunkedDecoder()
      this.decoder.onData = this.onBodyChunk
    } else if (head.contentLength > 0) this.bodyRemaining = head.contentLength
    this.bodyComplete = !head.hasBody
    this.state = this.bodyComplete ? RESPONDING : BODY
    this.deadline = this.bodyComplete ? 0 : Date.now() + this.handler.bodyIdleMs
    this.handler.dispatch(this, head)
    // Body bytes that came with the head.
    if (this.state === BODY && this.pending !== undefined) {
      const buf = this.pending
      this.pending = undefined
      this.afterBody(buf, this.feedBody(buf, 0))
    }
  }

  /**
   * After body bytes were passed on: what follows the body in `buf` is the
   * next request; if the response was already complete (the proxy answered
   * before the body arrived and skipped it), that request can start now.
   */
  private afterBody(buf: Buffer, used: number): void {
    if (this.closed) return
    if (used < buf.length) this.hold(buf.subarray(used))
    if (this.state === RESPONDING && this.responseDone) this.nextRequest()
  }

  /** Passes request body bytes on; returns where the body ends in `buf`. */
  private feedBody(buf: Buffer, start: number): number {
    let end: number
    let done: boolean
    if (this.decoder !== undefined) {
      try {
        end = this.decoder.feed(buf, start)
      } catch (err) {
        if (!(err instanceof ParseError)) throw err
        this.bodyFailed(err)
        return buf.length
      }
      done = this.decoder.done
    } else {
      end = start + Math.min(this.bodyRemaining, buf.length - start)
      this.bodyRemaining -= end - start
      done = this.bodyRemaining === 0
    }
    const exchange = this.exchange
    if (this.decoder === undefined && exchange !== undefined && end > start) {
      this.sendBody(exchange, start === 0 && end === buf.length ? buf : buf.subarray(start, end))
    }
    if (done) {
      this.bodyComplete = true
      this.decoder = undefined
      if (this.state === BODY) {
        this.state = RESPONDING
        this.deadline = 0
      }
      exchange?.bodyDone()
    }
    return end
  }

  private readonly onBodyChunk = (data: Buffer): void => {
    if (this.exchange !== undefined) this.sendBody(this.exchange, data)
  }

  private sendBody(exchange: Exchange, data: Buffer): void {
    if (!exchange.sendBody(data) && !this.heldByUpstream) {
      this.heldByUpstream = true
      this.socket.pause()
    }
  }

  private bodyFailed(err: ParseError): void {
    const exchange = this.exchange
    if (exchange !== undefined) exchange.clientBodyFailed(err)
    else this.reject(err)
  }

  private closeGracefully(): void {
    if (this.state === CLOSED) return
    this.state = CLOSED
    this.pending = undefined
    const socket = this.socket
    socket.end()
    if (socket.writableFinished) this.deadline = Date.now() + LINGER_MS
    else {
      // The last response is still being written: the client has
      // IDLE_TIMEOUT of no progress to read it; lingering starts after.
      this.unread = socket.writableLength
      this.deadline = Date.now() + this.handler.bodyIdleMs
      socket.once('finish', this.onFinish)
    }
    this.release()
    this.heldByUpstream = false
    this.socket.resume()
  }

  private readonly onFinish = (): void => {
    if (this.readEnded) this.socket.destroy()
    else this.deadline = Date.now() + LINGER_MS
  }

  private readonly onEnd = (): void => {
    this.readEnded = true
    if (this.state === WAIT_HEAD) {
      // A half-sent head will never be completed.
      this.closeGracefully()
    } else if (this.state === BODY) {
      // The body stopped short: the request can never be completed.
      this.destroy()
    } else if (this.state === CLOSED && this.socket.writableFinished) this.socket.destroy()
    // RESPONDING: the response is still written, then the connection closes.
  }

  private readonly onError = (): void => {
    // Resets and broken pipes end in 'close', where the exchange hears of it.
  }

  private readonly onClose = (): void => {
    this.state = CLOSED
    this.pending = undefined
    this.handler.untrack(this)
    const exchange = this.exchange
    this.exchange = undefined
    exchange?.clientGone()
  }

  private readonly onDrain = (): void => {
    if (this.state === RESPONDING) this.deadline = 0
    else if (this.state === CLOSED && !this.socket.writableFinished) this.deadline = Date.now() + this.handler.bodyIdleMs
    if (this.exchange !== undefined) this.exchange.onClientDrain()
    else if (this.heldByClient) {
      this.heldByClient = false
      if (!this.heldByPending && !this.heldByUpstream) this.socket.resume()
      this.process()
    }
  }
}
