// The request id: one value per request, sent upstream as X-Request-ID and
// written in the access log as `request_id`, so that a line in the proxy's
// log and one in the application's can be matched (nginx's $request_id,
// ingress-nginx's req_id, Envoy's x-request-id).
//
// A client's own X-Request-ID is kept only when the client is a trusted
// proxy (TRUSTED_PROXIES: a load balancer in front that already assigned
// one) and the value is sane; from anyone else it is replaced, as its
// X-Forwarded-For is: an id chosen by an arbitrary client could collide on
// purpose with another request's, or carry text into log pipelines.
//
// Generated ids cost one string concatenation: a random per-process prefix
// (80 bits, so workers and restarts do not collide) and a counter, 32 hex
// digits in all like nginx's $request_id. crypto.randomUUID() would cost
// more per request for no gain: the id must be unique, not unguessable.

import { randomBytes } from 'node:crypto'

/** Longest client id kept (longer ones are replaced). */
export const MAX_REQUEST_ID_LENGTH = 200

/**
 * What a kept id may contain: letters, digits and `-_.:+/=;@~` (UUIDs,
 * base64, AWS's `Root=1-…;Parent=…`), no spaces, quotes or backslashes that
 * a log line would have to escape.
 */
const SANE = /^[A-Za-z0-9\-_.:+/=;@~]+$/

export function saneRequestId(value: string): boolean {
  return value.length > 0 && value.length <= MAX_REQUEST_ID_LENGTH && SANE.test(value)
}

export class RequestIds {
  private readonly prefix = randomBytes(10).toString('hex')
  private counter = 0

  /** A fresh id: the process prefix and the counter, 32 hex digits. */
  next(): string {
    // 12 hex digits of counter: 2^48 requests before it wraps.
    this.counter = (this.counter + 1) % 0x1000000000000
    return this.prefix + this.counter.toString(16).padStart(12, '0')
  }

  /** The id of a request: the client's when trusted and sane, else a fresh one. */
  forRequest(clientId: string | undefined, trusted: boolean): string {
    return trusted && clientId !== undefined && saneRequestId(clientId) ? clientId : this.next()
  }
}
