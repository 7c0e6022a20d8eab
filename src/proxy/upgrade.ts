// WebSocket and other `Upgrade` requests (RFC 9110 §7.8): the handshake is
// forwarded like any request; if the upstream answers 101 the two sockets
// are joined and bytes flow both ways until either side closes. If it
// answers anything else (401, 404...), that response is relayed as is.
//
// The client side here is a raw socket (Node's 'upgrade' event), so
// responses are written as HTTP/1.1 text by hand, always with
// `Connection: close`: after a refused upgrade the connection is not reused.

import type { IncomingMessage } from 'node:http'
import { STATUS_CODES } from 'node:http'
import type { Duplex } from 'node:stream'
import { upstreamError, type NanoProxyError } from '../errors.ts'
import { clientResponseHeaders } from './headers.ts'
import type { ProxyContext } from './proxy-context.ts'
import { UpstreamExchange, type Controller, type ResponseHeaders } from './upstream-exchange.ts'
import type { Upstream } from './upstream-pools.ts'

export interface UpgradeRequest {
  req: IncomingMessage
  /** The client's socket, handed over by Node's 'upgrade' event. */
  socket: Duplex
  /** Bytes the client sent after the request head (already read by Node). */
  head: Buffer
  upstream: Upstream
  target: string
  headers: string[]
  done: (status: number, bytes: number, error?: NanoProxyError, upstream?: string) => void
}

export class UpgradeHandler extends UpstreamExchange {
  private readonly ctx: ProxyContext
  private readonly up: UpgradeRequest
  private headWritten = false
  private status = 0
  private bytes = 0

  constructor(ctx: ProxyContext, up: UpgradeRequest) {
    super()
    this.ctx = ctx
    this.up = up
    up.socket.on('error', () => up.socket.destroy())
    up.socket.once('close', () => this.abandon(new Error('client closed the connection')))
  }

  start(): void {
    const { req, upstream, target, headers } = this.up
    this.dispatch(upstream.pool, { path: target, method: req.method ?? 'GET', headers, body: null, upgrade: req.headers.upgrade ?? 'websocket' })
  }

  onRequestUpgrade(_controller: Controller, statusCode: number, headers: ResponseHeaders, upstreamSocket: Duplex): void {
    const { socket, head, upstream } = this.up
    if (this.clientGone) {
      upstreamSocket.destroy()
      return
    }
    socket.write(responseHead(statusCode, clientResponseHeaders(headers, this.ctx.identityHeaders, true)))
    this.headWritten = true
    if (head.length > 0) upstreamSocket.write(head)
    // Either side closing or failing ends the tunnel: destroy(), not end(),
    // so no half-open socket lingers (http-proxy's WebSocket fd leak, #1510).
    const close = (): void => {
      socket.destroy()
      upstreamSocket.destroy()
    }
    upstreamSocket.on('error', close).on('close', close)
    socket.on('close', close)
    upstreamSocket.pipe(socket)
    socket.pipe(upstreamSocket)
    socket.once('close', () => {
      this.up.done(statusCode, (upstreamSocket as Duplex & { bytesRead?: number }).bytesRead ?? 0, undefined, upstream.config.name)
    })
  }

  onResponseStart(controller: Controller, statusCode: number, headers: ResponseHeaders, statusMessage?: string): void {
    if (statusCode < 200) return
    this.status = statusCode
    // The upstream declined the upgrade: relay its answer, then close.
    const out = clientResponseHeaders(headers, this.ctx.identityHeaders)
    out.push('connection', 'close')
    this.up.socket.write(responseHead(statusCode, out, statusMessage))
    this.headWritten = true
  }

  onResponseData(controller: Controller, chunk: Buffer): void {
    this.bytes += chunk.length
    if (!this.up.socket.write(chunk)) {
      controller.pause()
      this.up.socket.once('drain', () => controller.resume())
    }
  }

  onResponseEnd(): void {
    this.up.socket.end()
    this.up.done(this.status, this.bytes, undefined, this.up.upstream.config.name)
  }

  onResponseError(_controller: Controller | undefined, err: Error): void {
    const name = this.up.upstream.config.name
    const error = upstreamError(err, name)
    if (this.clientGone) {
      this.up.done(this.status || 499, this.bytes, undefined, name)
      return
    }
    if (this.headWritten) {
      this.up.socket.destroy()
      this.up.done(this.status, this.bytes, error, name)
      return
    }
    const sent = writeRawError(this.ctx, this.up.socket, error)
    this.up.done(sent.status, sent.bytes, error, name)
  }
}

/** Writes an error response on a raw client socket and closes it. */
export function writeRawError(ctx: ProxyContext, socket: Duplex, error: NanoProxyError): { status: number; bytes: number } {
  const { status, headers, body } = ctx.errorResponse(error)
  if (!headers.includes('connection')) headers.push('connection', 'close')
  socket.end(responseHead(status, headers) + body)
  return { status, bytes: body.length }
}

function responseHead(status: number, headers: string[], reason?: string): string {
  let head = `HTTP/1.1 ${status} ${reason || STATUS_CODES[status] || ''}\r\n`
  for (let i = 0; i < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`
  return head + '\r\n'
}
