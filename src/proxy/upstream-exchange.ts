// What a request and an upgrade have in common once they are sent upstream:
// the dispatch, the controller undici hands back, and giving up on the
// upstream when the client goes away.

import type { Dispatcher, Pool } from 'undici'

export type Controller = Dispatcher.DispatchController
export type ResponseHeaders = Parameters<NonNullable<Dispatcher.DispatchHandler['onResponseStart']>>[2]

export abstract class UpstreamExchange implements Dispatcher.DispatchHandler {
  /** Set once undici starts writing the request; lets us pause, resume or abort it. */
  protected controller: Controller | undefined
  /** The client's connection closed before the exchange completed. */
  protected clientGone = false

  /** Sends the request; a synchronous refusal (invalid header...) becomes an ordinary error. */
  protected dispatch(pool: Pool, options: Dispatcher.DispatchOptions): void {
    try {
      pool.dispatch(options, this)
    } catch (err) {
      this.onResponseError(undefined, err as Error)
    }
  }

  onRequestStart(controller: Controller): void {
    this.controller = controller
    // The client left while the request waited for a connection.
    if (this.clientGone) controller.abort(new Error('client closed the connection'))
  }

  /**
   * Stops the upstream request: otherwise an abandoned download keeps an
   * upstream connection busy (the `http-proxy` leak, nodejs/node#41117).
   */
  protected abandon(reason: Error): void {
    this.clientGone = true
    this.controller?.abort(reason)
  }

  abstract onResponseError(controller: Controller | undefined, err: Error): void
}
