// Forwarding one request to its upstream and streaming the answer back.
//
// This is the hot path. It drives undici's dispatcher API directly (no
// Response objects, no body streams in between): each response chunk goes
// straight to the client socket, and when the client cannot keep up the
// upstream read is paused until the client drains (backpressure both ways;
// the request body is a stream undici pauses the same way). One instance per
// request, methods on the prototype, no per-request closures beyond the two
// listeners needed to hear about the client going away.

import type { IncomingMessage, ServerResponse } from 'node:http'
import type { NanoProxyError } from '../errors.ts'
import { ERROR_CODES, upstreamError } from '../errors.ts'
import { clientResponseHeaders } from './headers.ts'
import type { ProxyContext } from './proxy-context.ts'
import { UpstreamExchange, type Controller, type ResponseHeaders } from './upstream-exchange.ts'
import type { Upstream } from './upstream-pools.ts'

/** RFC 9110 §9.2.2: these can be repeated without changing the outcome. */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE'])

export interface ForwardRequest {
  req: IncomingMessage
  res: ServerResponse
  upstream: Upstream
  /** Request target to send upstream (origin-form, query included). */
  target: string
  headers: string[]
  /** Whether the request has a body (Content-Length > 0 or Transfer-Encoding). */
  hasBody: boolean
  /** Send `100 Continue` to the client just before its body is needed. */
  expectContinue: boolean
  /** Called once with the outcome, for the access log. */
  done: (result: ForwardResult) => void
}

export interface ForwardResult {
  status: number
  bytes: number
  error?: NanoProxyError | undefined
  /** The client went away before the response was complete. */
  aborted?: boolean
}

export class ForwardHandler extends UpstreamExchange {
  private readonly ctx: ProxyContext
  private readonly fwd: ForwardRequest
  private bytes = 0
  private status = 0
  private retried = false
  private finished = false

  constructor(ctx: ProxyContext, fwd: ForwardRequest) {
    super()
    this.ctx = ctx
    this.fwd = fwd
    fwd.res.once('close', this.onClientClose)
  }

  start(): void {
    const { req, upstream, target, headers, hasBody, expectContinue, res } = this.fwd
    // nginx's behaviour: answer `Expect: 100-continue` ourselves once we know
    // where the body goes, and never pass Expect on (undici rejects it).
    if (expectContinue && hasBody) res.writeContinue()
    this.dispatch(upstream.pool, {
      path: target,
      method: req.method ?? 'GET',
      headers,
      body: hasBody ? req : null,
      // Only a body-less idempotent request may be replayed on a second connection.
      idempotent: !hasBody && IDEMPOTENT.has(req.method ?? ''),
    })
  }

  onResponseStart(_controller: Controller, statusCode: number, headers: ResponseHeaders, statusMessage?: string): void {
    if (statusCode < 200) return // interim responses (103 Early Hints) are not relayed
    this.status = statusCode
    const res = this.fwd.res
    if (this.clientGone || res.headersSent) return
    const out = clientResponseHeaders(headers, this.ctx.identityHeaders)
    // An upstream may answer before it has read the whole request body
    // (nginx's `return`, an early 413). The rest of the body is then never
    // read, and the client's next request on this connection would wait
    // behind it forever: close the connection after this response instead.
    if (this.ctx.draining || (this.fwd.hasBody && !this.fwd.req.complete)) out.push('connection', 'close')
    if (statusMessage) res.writeHead(statusCode, statusMessage, out)
    else res.writeHead(statusCode, out)
  }

  onResponseData(controller: Controller, chunk: Buffer): void {
    this.bytes += chunk.length
    if (this.clientGone) return
    if (!this.fwd.res.write(chunk)) {
      controller.pause()
      this.fwd.res.once('drain', this.onDrain)
    }
  }

  onResponseEnd(): void {
    this.fwd.res.end()
    this.finish({ status: this.status, bytes: this.bytes })
  }

  onResponseError(_controller: Controller | undefined, err: Error): void {
    const { req, res, upstream, hasBody } = this.fwd
    if (this.clientGone) {
      this.finish({ status: this.status || 499, bytes: this.bytes })
      return
    }
    const error = upstreamError(err, upstream.config.name)
    // A kept-alive connection the upstream closed just as we reused it shows
    // up as a reset before any response: replay once on a fresh connection
    // when the request can be repeated safely (no body, idempotent method).
    if (
      !this.retried &&
      !res.headersSent &&
      error.code === ERROR_CODES.UPSTREAM_RESET &&
      !hasBody &&
      IDEMPOTENT.has(req.method ?? '')
    ) {
      this.retried = true
      this.controller = undefined
      this.ctx.log.debug({ err, upstream: upstream.config.name }, 'retrying request on a fresh connection')
      this.start()
      return
    }
    if (res.headersSent) {
      // Too late for an error status: cut the connection so the client sees
      // a truncated response instead of a complete-looking one. (Without an
      // error argument: that would be reported again as a client error.)
      res.destroy()
      this.finish({ status: this.status, bytes: this.bytes, error })
      return
    }
    const sent = this.ctx.sendError(res, error, hasBody && !req.complete)
    this.finish({ ...sent, error })
  }

  private finish(result: ForwardResult): void {
    if (this.finished) return
    this.finished = true
    this.fwd.done(result)
  }

  private readonly onDrain = (): void => {
    this.controller?.resume()
  }

  private readonly onClientClose = (): void => {
    if (this.fwd.res.writableFinished) return
    this.abandon(new Error('client closed the connection'))
    this.finish({ status: this.status || 499, bytes: this.bytes, aborted: true })
  }
}
