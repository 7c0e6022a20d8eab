// One header field line (RFC 9112 §5): `name ":" OWS value OWS CRLF`.
//
// The scanner reports positions through `field` instead of returning an
// object: it runs for every header of every message, and no allocation is
// the cheapest allocation.

import { FIELD_VALUE, TOKEN } from './chars.ts'
import { ParseError } from './parse-error.ts'

/**
 * Hop-by-hop headers (RFC 9110 §7.6.1): they describe one connection, not
 * the message, and are never passed on; nor is any header that Connection
 * names. The list is Go's httputil.ReverseProxy's, which the original
 * NanoProxy used, so both forward the same headers.
 */
export const HOP_BY_HOP = ['connection', 'proxy-connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade'] as const

/** Where the last scanned line's parts are in the head string. */
export const field = { nameEnd: 0, valueStart: 0, valueEnd: 0, next: 0 }

/**
 * Scans the line starting at `pos`. Returns false when it is the empty line
 * that ends the head (then `field.next` is just past it). Throws on:
 * - whitespace before the colon (RFC 9112 §5.1: MUST be rejected, it lets
 *   two parsers disagree on the name);
 * - obs-fold, a line starting with SP/HTAB (§5.2: rejected, as nginx does);
 * - any control character in the value, bare CR or LF included (§2.2).
 * The head is known to end with CRLF CRLF, so the scan always stops.
 */
export function scanField(s: string, pos: number): boolean {
  let c = s.charCodeAt(pos)
  if (c === 13) {
    if (s.charCodeAt(pos + 1) !== 10) throw new ParseError('HPE_LF_EXPECTED', 'CR not followed by LF at the end of the head')
    field.next = pos + 2
    return false
  }
  if (c === 32 || c === 9) throw new ParseError('HPE_INVALID_HEADER_TOKEN', 'obsolete line folding in a header')
  let i = pos
  while (TOKEN[c] === 1) c = s.charCodeAt(++i)
  if (c !== 58 /* ':' */ || i === pos) throw new ParseError('HPE_INVALID_HEADER_TOKEN', 'invalid character in a header name')
  field.nameEnd = i
  c = s.charCodeAt(++i)
  while (c === 32 || c === 9) c = s.charCodeAt(++i)
  field.valueStart = i
  while (FIELD_VALUE[c] === 1) c = s.charCodeAt(++i)
  if (c !== 13 || s.charCodeAt(i + 1) !== 10) throw new ParseError('HPE_INVALID_HEADER_TOKEN', 'invalid character in a header value')
  let end = i
  while (end > field.valueStart && (s.charCodeAt(end - 1) === 32 || s.charCodeAt(end - 1) === 9)) end--
  field.valueEnd = end
  field.next = i + 2
  return true
}

/**
 * Parses a Content-Length value: 1*DIGIT (RFC 9110 §8.6), at most 15 digits
 * so the result stays an exact integer. Returns -1 when invalid: signs,
 * spaces, hex and lists ("5, 5") are all refused, as llhttp does.
 */
export function parseContentLength(s: string, start: number, end: number): number {
  if (end <= start || end - start > 15) return -1
  let n = 0
  for (let i = start; i < end; i++) {
    const d = s.charCodeAt(i) - 48
    if (d < 0 || d > 9) return -1
    n = n * 10 + d
  }
  return n
}

/**
 * The header lines of `head` (a parsed head, request or status line first)
 * whose lower-cased name `keep` accepts, each with its CRLF. For the rare
 * message whose Connection header names other headers to drop: walking the
 * head again then costs less than keeping every header apart for all.
 */
export function fieldLines(head: string, keep: (name: string) => boolean): string {
  let out = ''
  let pos = head.indexOf('\r\n') + 2
  while (scanField(head, pos)) {
    if (keep(head.slice(pos, field.nameEnd).toLowerCase())) out += head.slice(pos, field.next)
    pos = field.next
  }
  return out
}

/** Every comma-separated token of a list value, trimmed and lower-cased (RFC 9110 §5.6.1). */
export function listTokens(value: string): string[] {
  const out: string[] = []
  for (const part of value.split(',')) {
    const t = part.trim()
    if (t !== '') out.push(t.toLowerCase())
  }
  return out
}
