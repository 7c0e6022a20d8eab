// Finding where a message head ends in the bytes received so far.

import { ParseError } from './parse-error.ts'

const CRLFCRLF = Buffer.from('\r\n\r\n')

/**
 * The length of the head at the start of `buf` (its final CRLF CRLF
 * included), or -1 while it is incomplete. `scanned` is how much of `buf`
 * an earlier call already searched. Throws ParseError when the head is
 * larger than `max` (431), or when a line ends in a bare LF: RFC 9112 §2.2
 * lets a recipient accept those, but two parsers that disagree on line
 * ends can be made to disagree on where a message ends, so both are
 * refused, as llhttp does.
 */
export function headLength(buf: Buffer, scanned: number, max: number): number {
  const end = buf.indexOf(CRLFCRLF, scanned > 3 ? scanned - 3 : 0)
  if (end !== -1 && end + 4 <= max) return end + 4
  if (end !== -1 || buf.length > max) throw new ParseError('HPE_HEADER_OVERFLOW', 'message head too large', 431)
  let lf = buf.indexOf(10, scanned)
  while (lf !== -1) {
    if (lf === 0 || buf[lf - 1] !== 13) throw new ParseError('HPE_LF_EXPECTED', 'line ending without CR')
    lf = buf.indexOf(10, lf + 1)
  }
  return -1
}
