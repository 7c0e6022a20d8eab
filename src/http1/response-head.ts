// The head of a response from an upstream (RFC 9112 §4, §5, §6). What the
// proxy cannot frame with certainty is refused (502) rather than guessed:
// a wrong guess would desynchronise the kept-alive connection and hand one
// client's response to another.

import { FIELD_VALUE } from './chars.ts'
import { field, fieldLines, HOP_BY_HOP, listTokens, parseContentLength, scanField } from './field-line.ts'
import { ParseError } from './parse-error.ts'

const Kind = {
  Pass: 0,
  Drop: 1,
  ContentLength: 2,
  TransferEncoding: 3,
  Connection: 4,
  KeepAlive: 5,
  Upgrade: 6,
  Date: 7,
} as const
type Kind = (typeof Kind)[keyof typeof Kind]

// Hop-by-hop headers are dropped (those that carry the framing or the
// connection's options read first), and so is the proxy's own
// identification, which an upstream cannot set for it.
const KINDS = new Map<string, Kind>([
  ...HOP_BY_HOP.map((name) => [name, Kind.Drop] as const),
  ['connection', Kind.Connection],
  ['keep-alive', Kind.KeepAlive],
  ['transfer-encoding', Kind.TransferEncoding],
  ['upgrade', Kind.Upgrade],
  ['content-length', Kind.ContentLength],
  ['date', Kind.Date],
  ['x-proxy', Kind.Drop],
  ['x-proxy-instance', Kind.Drop],
])

export class ResponseHead {
  readonly text: string
  status = 0
  reason = ''
  minor = 1
  /** -1 when absent. */
  contentLength = -1
  chunked = false
  close = false
  keepAlive = false
  /** Seconds from `Keep-Alive: timeout=N`, -1 when not given. */
  keepAliveTimeout = -1
  connectionNames: string[] | undefined = undefined
  /** The Upgrade line as received (kept only on a 101). */
  upgradeLine = ''
  /** Header lines passed to the client unchanged, each with its CRLF. */
  passthrough = ''
  /** The upstream sent a Date (else the proxy adds one, RFC 9110 §6.6.1). */
  hasDate = false

  constructor(text: string) {
    this.text = text
  }

  /** Whether the upstream connection may carry another request (RFC 9112 §9.3). */
  get reusable(): boolean {
    return this.minor === 1 ? !this.close : this.keepAlive && !this.close
  }

  /** passthrough minus the header names Connection lists (RFC 9110 §7.6.1). */
  passthroughWithout(names: readonly string[]): string {
    return fieldLines(this.text, (name) => (KINDS.get(name) ?? Kind.Pass) === Kind.Pass && !names.includes(name))
  }
}

/** Parses `text`, a complete response head ending in CRLF CRLF. Throws ParseError. */
export function parseResponseHead(text: string): ResponseHead {
  const head = new ResponseHead(text)
  const s = text
  // status-line = HTTP-version SP status-code SP [ reason-phrase ] CRLF (§4);
  // a missing SP before an empty reason is tolerated, as every client does.
  if (!s.startsWith('HTTP/1.') || (s.charCodeAt(7) !== 49 && s.charCodeAt(7) !== 48) || s.charCodeAt(8) !== 32) {
    throw new ParseError('HPE_INVALID_VERSION', 'not an HTTP/1.x status line')
  }
  head.minor = s.charCodeAt(7) - 48
  const d0 = s.charCodeAt(9) - 48
  const d1 = s.charCodeAt(10) - 48
  const d2 = s.charCodeAt(11) - 48
  if (d0 < 1 || d0 > 5 || d1 < 0 || d1 > 9 || d2 < 0 || d2 > 9) throw new ParseError('HPE_INVALID_STATUS', 'invalid status code')
  head.status = d0 * 100 + d1 * 10 + d2
  let i = 12
  let c = s.charCodeAt(i)
  if (c === 32) {
    c = s.charCodeAt(++i)
    while (FIELD_VALUE[c] === 1) c = s.charCodeAt(++i)
    head.reason = s.slice(13, i)
  }
  if (c !== 13 || s.charCodeAt(i + 1) !== 10) throw new ParseError('HPE_INVALID_STATUS', 'invalid status line')
  let pos = i + 2

  let te: string | undefined
  let passthrough = ''
  while (scanField(s, pos)) {
    const name = s.slice(pos, field.nameEnd).toLowerCase()
    const kind = KINDS.get(name) ?? Kind.Pass
    if (kind === Kind.Pass) {
      passthrough += s.slice(pos, field.next)
      pos = field.next
      continue
    }
    switch (kind) {
      case Kind.ContentLength: {
        const n = parseContentLength(s, field.valueStart, field.valueEnd)
        if (n < 0) throw new ParseError('HPE_INVALID_CONTENT_LENGTH', 'invalid Content-Length')
        // §6.3 item 5: repeated equal values may be read as one; differing ones are fatal.
        if (head.contentLength !== -1 && head.contentLength !== n) {
          throw new ParseError('HPE_UNEXPECTED_CONTENT_LENGTH', 'differing Content-Length values')
        }
        head.contentLength = n
        break
      }
      case Kind.TransferEncoding: {
        const value = s.slice(field.valueStart, field.valueEnd)
        te = te === undefined ? value : `${te}, ${value}`
        break
      }
      case Kind.Connection:
        for (const token of listTokens(s.slice(field.valueStart, field.valueEnd))) {
          if (token === 'close') head.close = true
          else if (token === 'keep-alive') head.keepAlive = true
          else if (token !== 'upgrade') (head.connectionNames ??= []).push(token)
        }
        break
      case Kind.KeepAlive: {
        const m = /(?:^|[\s,])timeout\s*=\s*(\d+)/i.exec(s.slice(field.valueStart, field.valueEnd))
        if (m) head.keepAliveTimeout = Number(m[1])
        break
      }
      case Kind.Upgrade:
        head.upgradeLine = s.slice(pos, field.next)
        break
      case Kind.Date:
        passthrough += s.slice(pos, field.next)
        head.hasDate = true
        break
      default:
        break
    }
    pos = field.next
  }
  head.passthrough = passthrough

  if (te !== undefined) {
    // Both headers: the smuggling pattern (§6.3 item 3); nginx refuses it too.
    if (head.contentLength !== -1) throw new ParseError('HPE_UNEXPECTED_CONTENT_LENGTH', 'both Content-Length and Transfer-Encoding')
    const codings = listTokens(te)
    if (head.minor === 0 || codings.length !== 1 || codings[0] !== 'chunked') {
      throw new ParseError('HPE_INVALID_TRANSFER_ENCODING', `unsupported Transfer-Encoding ${JSON.stringify(te)}`)
    }
    head.chunked = true
  }
  return head
}
