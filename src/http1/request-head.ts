// The head of a request from a client (RFC 9112 §3, §5, §6), parsed
// strictly: whatever two HTTP implementations could read differently is
// refused with a 400 before anything reaches an upstream.

import { METHOD, TARGET } from './chars.ts'
import { field, fieldLines, HOP_BY_HOP, listTokens, parseContentLength, scanField } from './field-line.ts'
import { ParseError } from './parse-error.ts'

/** How a request header is treated on its way upstream. */
const Kind = {
  /** Passed on as is. */
  Pass: 0,
  /** Hop-by-hop (RFC 9110 §7.6.1): describes this connection only. */
  Drop: 1,
  Host: 2,
  ForwardedFor: 3,
  ForwardedHost: 4,
  ForwardedProto: 5,
  /** Client-address claims, believed only from a trusted proxy. */
  TrustedOnly: 6,
  ContentLength: 7,
  TransferEncoding: 8,
  Connection: 9,
  Upgrade: 10,
  Expect: 11,
  /** X-Request-ID: kept aside; the proxy decides what goes upstream (request-id.ts). */
  RequestId: 12,
} as const
type Kind = (typeof Kind)[keyof typeof Kind]

// Hop-by-hop headers are dropped; those that carry the framing or the
// connection's options are read first.
const KINDS = new Map<string, Kind>([
  ...HOP_BY_HOP.map((name) => [name, Kind.Drop] as const),
  // The settings of an h2c upgrade (RFC 7540 §3.2.1; RFC 9113 §3.1
  // deprecates that upgrade): the proxy never lets h2c through.
  ['http2-settings', Kind.Drop],
  ['connection', Kind.Connection],
  ['transfer-encoding', Kind.TransferEncoding],
  ['upgrade', Kind.Upgrade],
  ['host', Kind.Host],
  ['x-forwarded-for', Kind.ForwardedFor],
  ['x-forwarded-host', Kind.ForwardedHost],
  ['x-forwarded-proto', Kind.ForwardedProto],
  ['forwarded', Kind.TrustedOnly],
  ['x-real-ip', Kind.TrustedOnly],
  ['content-length', Kind.ContentLength],
  ['expect', Kind.Expect],
  ['x-request-id', Kind.RequestId],
])

export class RequestHead {
  /** The head as received (latin1, one char per byte), final CRLF CRLF included. */
  readonly text: string
  method = ''
  target = ''
  /** 1 for HTTP/1.1, 0 for HTTP/1.0. */
  minor = 1
  host: string | undefined = undefined
  /** -1 when absent. */
  contentLength = -1
  chunked = false
  /** Connection: close. */
  close = false
  /** Connection: keep-alive (meaningful for HTTP/1.0). */
  keepAlive = false
  /** Connection: upgrade. */
  connectionUpgrade = false
  /** Other header names listed in Connection, lower-case: dropped too. */
  connectionNames: string[] | undefined = undefined
  upgrade: string | undefined = undefined
  expect: string | undefined = undefined
  /** X-Forwarded-For values joined (RFC 9110 §5.3), and the first X-Forwarded-Host/-Proto. */
  forwardedFor: string | undefined = undefined
  forwardedHost: string | undefined = undefined
  forwardedProto: string | undefined = undefined
  /** The header lines passed upstream unchanged, each with its CRLF. */
  passthrough = ''
  /** Forwarded / X-Real-IP lines, passed on only from trusted proxies. */
  trustedOnly = ''
  /** The client's X-Request-ID lines as received, each with its CRLF ('' when none). */
  requestIdLines = ''
  /** The value of the client's X-Request-ID; undefined when absent or sent more than once. */
  clientRequestId: string | undefined = undefined
  /** The request id the proxy sends upstream and logs (request-id.ts); undefined with REQUEST_ID=off. */
  requestId: string | undefined = undefined
  /** Header names with `_` left out (see parseRequestHead), lower-case; undefined when none. */
  droppedUnderscoreNames: string[] | undefined = undefined
  /** Whether names with `_` are passed on. */
  allowUnderscores = false

  constructor(text: string) {
    this.text = text
  }

  /** Whether the connection stays open after this exchange (RFC 9112 §9.3). */
  get persistent(): boolean {
    return this.minor === 1 ? !this.close : this.keepAlive && !this.close
  }

  /** Whether a body follows the head. */
  get hasBody(): boolean {
    return this.chunked || this.contentLength > 0
  }

  /** passthrough minus the header names Connection lists (RFC 9110 §7.6.1). */
  passthroughWithout(names: readonly string[]): string {
    return fieldLines(
      this.text,
      (name) => (KINDS.get(name) ?? Kind.Pass) === Kind.Pass && !names.includes(name) && (this.allowUnderscores || !name.includes('_')),
    )
  }
}

/**
 * Parses `text`, a complete head ending in CRLF CRLF. Throws ParseError
 * (status 400, 501 for a transfer coding we do not implement).
 *
 * Header names with `_` are left out unless `allowUnderscores`: CGI, WSGI,
 * Rack and PHP read `X_Forwarded_For` as X-Forwarded-For (both become
 * HTTP_X_FORWARDED_FOR), so a client could pass off a header the proxy
 * replaces or strips. nginx drops them too (underscores_in_headers off).
 */
export function parseRequestHead(text: string, allowUnderscores = false): RequestHead {
  const head = new RequestHead(text)
  head.allowUnderscores = allowUnderscores
  const s = text

  // request-line = method SP request-target SP HTTP-version CRLF (§3)
  let i = 0
  let c = s.charCodeAt(0)
  while (METHOD[c] === 1) c = s.charCodeAt(++i)
  if (c !== 32 || i === 0) throw new ParseError('HPE_INVALID_METHOD', 'invalid request method')
  head.method = s.slice(0, i)
  const targetStart = ++i
  c = s.charCodeAt(i)
  while (TARGET[c] === 1) c = s.charCodeAt(++i)
  if (c !== 32 || i === targetStart) throw new ParseError('HPE_INVALID_URL', 'invalid request target')
  head.target = s.slice(targetStart, i)
  // HTTP-version is case-sensitive (§2.3). A later 1.x minor version is
  // answered as 1.1 (RFC 9110 §2.5), as nginx does; other majors are refused.
  const minor = s.charCodeAt(i + 8) - 48
  if (!s.startsWith('HTTP/1.', i + 1) || minor < 0 || minor > 9 || s.charCodeAt(i + 9) !== 13 || s.charCodeAt(i + 10) !== 10) {
    throw new ParseError('HPE_INVALID_VERSION', 'invalid or unsupported HTTP version')
  }
  head.minor = minor === 0 ? 0 : 1
  let pos = i + 11

  let hosts = 0
  let te: string | undefined
  let passthrough = ''
  while (scanField(s, pos)) {
    const name = s.slice(pos, field.nameEnd).toLowerCase()
    const kind = KINDS.get(name) ?? Kind.Pass
    if (kind === Kind.Pass) {
      if (!allowUnderscores && name.includes('_')) (head.droppedUnderscoreNames ??= []).push(name)
      else passthrough += s.slice(pos, field.next)
      pos = field.next
      continue
    }
    const value = s.slice(field.valueStart, field.valueEnd)
    switch (kind) {
      case Kind.Host:
        // §3.2: more than one Host is a 400.
        if (++hosts > 1) throw new ParseError('HPE_DUPLICATE_HOST', 'more than one Host header')
        head.host = value
        break
      case Kind.ContentLength: {
        const n = parseContentLength(s, field.valueStart, field.valueEnd)
        if (n < 0) throw new ParseError('HPE_INVALID_CONTENT_LENGTH', 'invalid Content-Length')
        // Two Content-Length headers, even equal, are refused (as llhttp does):
        // the safe reading of §6.3 item 5.
        if (head.contentLength !== -1) throw new ParseError('HPE_UNEXPECTED_CONTENT_LENGTH', 'more than one Content-Length')
        head.contentLength = n
        break
      }
      case Kind.TransferEncoding:
        te = te === undefined ? value : `${te}, ${value}`
        break
      case Kind.Connection:
        for (const token of listTokens(value)) {
          if (token === 'close') head.close = true
          else if (token === 'keep-alive') head.keepAlive = true
          else if (token === 'upgrade') head.connectionUpgrade = true
          else (head.connectionNames ??= []).push(token)
        }
        break
      case Kind.Upgrade:
        head.upgrade = value
        break
      case Kind.Expect:
        head.expect = value
        break
      case Kind.ForwardedFor:
        head.forwardedFor = head.forwardedFor === undefined ? value : `${head.forwardedFor}, ${value}`
        break
      case Kind.ForwardedHost:
        head.forwardedHost ??= value
        break
      case Kind.ForwardedProto:
        head.forwardedProto ??= value
        break
      case Kind.TrustedOnly:
        head.trustedOnly += s.slice(pos, field.next)
        break
      case Kind.RequestId:
        // Two ids are no id: which one would the upstream believe?
        head.clientRequestId = head.requestIdLines === '' ? value : undefined
        head.requestIdLines += s.slice(pos, field.next)
        break
      default:
        break
    }
    pos = field.next
  }
  head.passthrough = passthrough

  if (te !== undefined) {
    // §6.1: Transfer-Encoding in HTTP/1.0 means broken framing; with
    // Content-Length it is the request-smuggling pattern (§6.3 item 3,
    // refused outright as nginx and llhttp do).
    if (head.minor === 0) throw new ParseError('HPE_INVALID_TRANSFER_ENCODING', 'Transfer-Encoding in an HTTP/1.0 request')
    if (head.contentLength !== -1) throw new ParseError('HPE_UNEXPECTED_CONTENT_LENGTH', 'both Content-Length and Transfer-Encoding')
    const codings = listTokens(te)
    // §6.3 item 4: chunked must be the final coding, else the length is
    // unknowable; §6.1: and it is applied only once.
    if (codings[codings.length - 1] !== 'chunked' || codings.indexOf('chunked') !== codings.length - 1) {
      throw new ParseError('HPE_INVALID_TRANSFER_ENCODING', `invalid Transfer-Encoding ${JSON.stringify(te)}`)
    }
    // Other codings would have to be passed on with the body (§6.1: 501).
    if (codings.length > 1) throw new ParseError('HPE_NOT_IMPLEMENTED', `unsupported transfer coding ${JSON.stringify(te)}`, 501)
    head.chunked = true
  }
  // §3.2: a client MUST send Host in HTTP/1.1.
  if (hosts === 0 && head.minor === 1) throw new ParseError('HPE_MISSING_HOST', 'missing Host header')
  return head
}
