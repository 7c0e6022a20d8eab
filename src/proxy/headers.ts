// The heads the proxy writes: the request it sends upstream and the
// response it sends the client, built as one string each.
//
// Header lines the proxy does not touch were collected while parsing
// (RequestHead/ResponseHead.passthrough, hop-by-hop headers already left
// out, RFC 9110 §7.6.1) and are copied as one slice: names keep the
// sender's spelling, repeated headers stay repeated and in order.

import { statusText } from '../http1/status-text.ts'
import { validAuthority } from '../router/request-host.ts'
import type { RequestHead } from '../http1/request-head.ts'
import type { ResponseHead } from '../http1/response-head.ts'

/** Methods whose requests normally have a body (RFC 9110 §9.3). */
const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH'])

export interface ForwardedInfo {
  /** The Host header to send upstream. */
  host: string
  /** The client's address, IPv4 as dotted quad (never `::ffff:`-mapped). */
  clientAddress: string
  /** Whether the client may set X-Forwarded-* (it is a trusted proxy). */
  trusted: boolean
  /** `http` or `https`: how the client reached this proxy. */
  proto: string
  /** The Host the client asked for, as sent (port included), validated: X-Forwarded-Host. */
  originalHost: string
}

/**
 * The upstream request's head. A client we do not trust cannot forge its
 * address chain (the original NanoProxy replaces X-Forwarded-* too, and
 * drops Forwarded / X-Real-IP as Go's ReverseProxy does); a trusted proxy's
 * chain is extended. Framing is the proxy's own: Content-Length or chunked.
 */
export function upstreamRequestHead(head: RequestHead, target: string, info: ForwardedInfo, upgrade: boolean, edit?: (lines: string) => string): string {
  let out = `${head.method} ${target} HTTP/1.1\r\nhost: ${info.host}\r\n`
  const lines = head.connectionNames === undefined ? head.passthrough : head.passthroughWithout(head.connectionNames)
  // A rule's requestHeaders policy (route-policy.ts) edits the client's lines only.
  out += edit === undefined ? lines : edit(lines)
  // The request id (request-id.ts) replaces the client's X-Request-ID;
  // with REQUEST_ID off the client's lines go on as they came.
  if (head.requestId !== undefined) out += `x-request-id: ${head.requestId}\r\n`
  else if (head.requestIdLines !== '' && !head.connectionNames?.includes('x-request-id')) out += head.requestIdLines
  let forwardedFor = info.clientAddress
  let forwardedHost = info.originalHost
  let forwardedProto = info.proto
  if (info.trusted) {
    out += head.trustedOnly
    if (head.forwardedFor !== undefined) forwardedFor = `${head.forwardedFor}, ${forwardedFor}`
    // Only a valid host, even from a trusted proxy: X-Forwarded-Host ends up
    // in redirects and absolute links the application builds.
    if (head.forwardedHost !== undefined && validAuthority(head.forwardedHost)) forwardedHost = head.forwardedHost
    forwardedProto = head.forwardedProto ?? forwardedProto
  }
  if (head.chunked) out += 'transfer-encoding: chunked\r\n'
  else if (head.contentLength >= 0) out += `content-length: ${head.contentLength}\r\n`
  // Some servers answer 411 to a POST without a length, even an empty one.
  else if (BODY_METHODS.has(head.method)) out += 'content-length: 0\r\n'
  if (upgrade) out += `connection: upgrade\r\nupgrade: ${head.upgrade}\r\n`
  return `${out}x-forwarded-for: ${forwardedFor}\r\nx-forwarded-host: ${forwardedHost}\r\nx-forwarded-proto: ${forwardedProto}\r\n\r\n`
}

/**
 * The client response's head: status line (the upstream's reason phrase
 * kept), the upstream's end-to-end headers, the proxy's identification
 * lines, and `framing` (Content-Length / Transfer-Encoding / Connection
 * lines, decided by the caller).
 */
export function clientResponseHead(resp: ResponseHead, identity: string, framing: string, edit?: (lines: string) => string): string {
  const reason = resp.reason === '' ? statusText(resp.status) : resp.reason
  const headers = resp.connectionNames === undefined ? resp.passthrough : resp.passthroughWithout(resp.connectionNames)
  // A rule's responseHeaders policy edits the upstream's lines, never the proxy's own.
  return `HTTP/1.1 ${resp.status} ${reason}\r\n${edit === undefined ? headers : edit(headers)}${identity}${framing}\r\n`
}

/**
 * A complete response the proxy writes itself (errors, its own endpoints)
 * to `request`. `close`: the connection ends after it; otherwise an
 * HTTP/1.0 client (which asked for keep-alive) is told it stays open. A
 * HEAD gets the head alone, Content-Length included (RFC 9110 §9.3.2).
 */
export function ownResponse(
  status: number,
  headers: readonly string[],
  body: string,
  identity: string,
  close: boolean,
  request: { method: string; minor: number },
): Buffer {
  let out = `HTTP/1.1 ${status} ${statusText(status)}\r\n`
  for (let i = 0; i < headers.length; i += 2) out += `${headers[i]}: ${headers[i + 1]}\r\n`
  const data = Buffer.from(body, 'utf8')
  out += `content-length: ${data.length}\r\n${identity}`
  if (close) out += 'connection: close\r\n'
  else if (request.minor === 0) out += 'connection: keep-alive\r\n'
  const head = Buffer.from(`${out}\r\n`, 'latin1')
  return request.method === 'HEAD' ? head : Buffer.concat([head, data])
}

/** `::ffff:1.2.3.4` (an IPv4 client on a dual-stack socket) → `1.2.3.4`. */
export function plainAddress(address: string | undefined): string {
  if (address === undefined) return ''
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address
}
