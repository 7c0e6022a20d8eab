// The chunked transfer coding (RFC 9112 §7.1), read as a stream.
//
// The proxy passes chunked bodies on as they came (the framing is checked,
// not rebuilt), so the decoder's main job is to find exactly where a body
// ends: the bytes after it belong to the next message on the connection.
// When the receiver cannot take chunked (an HTTP/1.0 client), `onData`
// receives the chunk data alone.

import { FIELD_VALUE, HEX, TOKEN } from './chars.ts'
import { ParseError } from './parse-error.ts'

const SIZE_START = 0
const SIZE = 1
const SIZE_BWS = 2
const EXTENSION = 3
const SIZE_LF = 4
const DATA = 5
const DATA_CR = 6
const DATA_LF = 7
const TRAILER_START = 8
const TRAILER_LINE = 9
const TRAILER_LF = 10
const END_LF = 11
const TRAILER_NAME = 12

/** A chunk-size line (size and extensions) longer than this is refused. */
const MAX_SIZE_LINE = 4096
/** Trailer section limit, as for a head. */
const MAX_TRAILERS = 16 * 1024
/** Sizes stay exact integers (2^53). */
const MAX_SIZE_BEFORE_DIGIT = Math.floor(Number.MAX_SAFE_INTEGER / 16)

export class ChunkedDecoder {
  /** The last chunk and the trailer section have been read. */
  done = false
  /** Receives chunk data only, when set. */
  onData: ((data: Buffer) => void) | undefined
  private state = SIZE_START
  private remaining = 0
  private lineBytes = 0
  private trailerBytes = 0

  /**
   * Reads `buf` from `start`. Returns the index just past the body's last
   * byte when the body ends in `buf`, else `buf.length`. Throws ParseError
   * on anything that is not valid chunked framing.
   */
  feed(buf: Buffer, start: number): number {
    let i = start
    const end = buf.length
    while (i < end) {
      const c = buf[i]!
      switch (this.state) {
        case DATA: {
          const n = Math.min(this.remaining, end - i)
          if (this.onData) this.onData(buf.subarray(i, i + n))
          this.remaining -= n
          i += n
          if (this.remaining === 0) this.state = DATA_CR
          continue
        }
        case SIZE_START:
          if (HEX[c]! < 0) throw invalid('chunk size is not a hex number')
          this.remaining = HEX[c]!
          this.lineBytes = 1
          this.state = SIZE
          break
        case SIZE: {
          const v = HEX[c]!
          if (v >= 0) {
            if (this.remaining > MAX_SIZE_BEFORE_DIGIT) throw invalid('chunk size too large')
            this.remaining = this.remaining * 16 + v
          } else if (c === 13) this.state = SIZE_LF
          else if (c === 59 /* ';' */) this.state = EXTENSION
          else if (c === 32 || c === 9) this.state = SIZE_BWS
          else throw invalid('invalid character after the chunk size')
          break
        }
        case SIZE_BWS:
          // BWS is allowed only before a chunk extension's ';'.
          if (c === 59) this.state = EXTENSION
          else if (c !== 32 && c !== 9) throw invalid('invalid character after the chunk size')
          break
        case EXTENSION:
          // chunk-ext is not interpreted; it only has to be free of controls.
          if (c === 13) this.state = SIZE_LF
          else if (FIELD_VALUE[c] !== 1) throw invalid('invalid character in a chunk extension')
          break
        case SIZE_LF:
          if (c !== 10) throw new ParseError('HPE_LF_EXPECTED', 'CR not followed by LF after the chunk size')
          this.state = this.remaining === 0 ? TRAILER_START : DATA
          break
        case DATA_CR:
          if (c !== 13) throw new ParseError('HPE_CR_EXPECTED', 'chunk data longer than its size')
          this.state = DATA_LF
          break
        case DATA_LF:
          if (c !== 10) throw new ParseError('HPE_LF_EXPECTED', 'CR not followed by LF after chunk data')
          this.state = SIZE_START
          break
        case TRAILER_START:
          if (c === 13) this.state = END_LF
          else if (TOKEN[c] !== 1) throw new ParseError('HPE_INVALID_HEADER_TOKEN', 'invalid trailer field')
          else this.state = TRAILER_NAME
          break
        case TRAILER_NAME:
          // A trailer field is a header field (RFC 9112 §7.1.2): token ':' value.
          if (c === 58 /* ':' */) this.state = TRAILER_LINE
          else if (TOKEN[c] !== 1) throw new ParseError('HPE_INVALID_HEADER_TOKEN', 'invalid trailer field name')
          break
        case TRAILER_LINE:
          if (c === 13) this.state = TRAILER_LF
          else if (FIELD_VALUE[c] !== 1) throw new ParseError('HPE_INVALID_HEADER_TOKEN', 'invalid character in a trailer field')
          break
        case TRAILER_LF:
          if (c !== 10) throw new ParseError('HPE_LF_EXPECTED', 'CR not followed by LF in the trailer section')
          this.state = TRAILER_START
          break
        case END_LF:
          if (c !== 10) throw new ParseError('HPE_LF_EXPECTED', 'CR not followed by LF at the end of the body')
          this.done = true
          return i + 1
      }
      if (this.state <= SIZE_LF && ++this.lineBytes > MAX_SIZE_LINE) throw invalid('chunk size line too long')
      if (this.state >= TRAILER_START && ++this.trailerBytes > MAX_TRAILERS) {
        throw new ParseError('HPE_HEADER_OVERFLOW', 'trailer section too large', 431)
      }
      i++
    }
    return end
  }
}

function invalid(message: string): ParseError {
  return new ParseError('HPE_INVALID_CHUNK_SIZE', message)
}
