// The request path as the proxy routes it and the upstream receives it.
//
// If the proxy matched the raw bytes while the application decoded and
// normalised them, `/%61dmin`, `//admin` or `/x/../admin` would pass a rule
// meant for `/admin` and reach `/admin` anyway (the route-bypass class behind
// many ingress CVEs). So the path is normalised before matching, and the
// normalised path is what the upstream receives; both sides see one path.
// As nginx does (and Envoy with normalize_path + merge_slashes):
// - RFC 3986 §6.2.2.2: percent-encoded unreserved characters are decoded
//   (`%61` → `a`, `%7E` → `~`); §6.2.2.1: other escapes get upper-case hex;
// - repeated slashes are merged (nginx's merge_slashes);
// - §5.2.4: `.` and `..` segments are removed; a `..` above `/` is an error
//   (400, as nginx answers), not silently dropped.
// `%2F` and `%5C` stay encoded and are never segment separators (Envoy's
// default, KEEP_UNCHANGED; RFC 3986 §2.2: an encoded delimiter is data), so
// APIs that carry `a%2Fb` in one segment keep working. A segment that would
// turn into a dot-segment if an application decoded them (`..%2F`, `%5C..`)
// is refused: it has no use but traversal. So is a dot-segment with path
// parameters (`..;`), which Tomcat and Jetty read as `..`.
// The query string is never touched.

/** Why a path cannot be normalised; the request gets 400. */
export class PathError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'PathError'
  }
}

/**
 * What may need normalising: `%` or `\`, `//`, or a segment that starts
 * with `.` followed by the end, `/`, `;` or another `.` (`/.well-known` is
 * not one). Most paths have none of these and are returned as they are
 * after one regular-expression scan (irregexp's native code scans a path
 * two to six times faster than a charCodeAt loop here), without allocating.
 */
const MAY_NEED_WORK = /[%\\]|\/(?:\/|\.(?:$|[/;.]))/

/** What the segment walk acts on, once escapes are decoded: `//`, a dot-segment, an encoded slash. */
const SEGMENT_WORK = /\/(?:\/|\.(?:$|[/;.]))|%2F|%5C/

/** RFC 3986 §2.3 unreserved: ALPHA / DIGIT / "-" / "." / "_" / "~". */
function isUnreserved(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c === 0x2d || c === 0x2e || c === 0x5f || c === 0x7e
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30
  if (c >= 0x41 && c <= 0x46) return c - 0x37
  if (c >= 0x61 && c <= 0x66) return c - 0x57
  return -1
}

const HEX_DIGITS = '0123456789ABCDEF'

/**
 * The normalised form of `path` (which starts with `/`, query string
 * already removed). Returns `path` itself when there is nothing to do.
 * Throws PathError for a raw `\`, a malformed escape, a `..` above the
 * root, or a disguised dot-segment.
 */
export function normalizePath(path: string): string {
  if (!MAY_NEED_WORK.test(path)) return path
  if (path.includes('\\')) throw new PathError('backslash in the request path')

  // §6.2.2.1 and §6.2.2.2, in one pass; `path` itself when no escape changes.
  let decoded = path
  if (path.includes('%')) {
    let out = ''
    let from = 0
    for (let i = path.indexOf('%'); i !== -1; i = path.indexOf('%', i)) {
      const h = path.charCodeAt(i + 1)
      const l = path.charCodeAt(i + 2)
      const hi = hexValue(h)
      const lo = hexValue(l)
      if (hi < 0 || lo < 0) throw new PathError('malformed percent-encoding in the request path')
      const byte = hi * 16 + lo
      if (isUnreserved(byte)) out += path.slice(from, i) + String.fromCharCode(byte)
      else if (h >= 0x61 || l >= 0x61) out += path.slice(from, i) + '%' + HEX_DIGITS[hi]! + HEX_DIGITS[lo]!
      else {
        // Already canonical: copied with the next slice.
        i += 3
        continue
      }
      i += 3
      from = i
    }
    if (from > 0) decoded = out + path.slice(from)
  }
  // Nothing left for the segment walk (only escapes were rewritten).
  if (!SEGMENT_WORK.test(decoded)) return decoded

  // Merged slashes and §5.2.4 dot-segment removal, segment by segment
  // (indexOf and slices: String.prototype.split costs several times more
  // on a string it has not seen before).
  const len = decoded.length
  let out = ''
  /** out.length before each kept segment, so that `..` can drop the last one. */
  const kept: number[] = []
  let trailingSlash = false
  for (let i = 1; i <= len; ) {
    let j = decoded.indexOf('/', i)
    if (j === -1) j = len
    const segLen = j - i
    if (segLen === 0 || (segLen === 1 && decoded.charCodeAt(i) === 46)) {
      // Empty (a repeated slash, or the final one) or `.`.
      if (j === len) trailingSlash = true
    } else if (segLen === 2 && decoded.charCodeAt(i) === 46 && decoded.charCodeAt(i + 1) === 46) {
      if (kept.length === 0) throw new PathError('request path climbs above the root')
      out = out.slice(0, kept.pop())
      if (j === len) trailingSlash = true
    } else {
      const seg = decoded.slice(i, j)
      if (hidesDotSegment(seg)) throw new PathError('encoded slash or backslash next to a dot-segment in the request path')
      kept.push(out.length)
      out += '/' + seg
    }
    i = j + 1
  }
  if (out === '') return '/'
  return trailingSlash ? out + '/' : out
}

/**
 * Whether a segment would become or contain `.` or `..` for an application
 * that splits it at `%2F` / `%5C` or drops `;` parameters: the pieces
 * between encoded slashes are checked, each up to its first `;`.
 */
function hidesDotSegment(seg: string): boolean {
  if (seg.charCodeAt(0) !== 46 /* . */ && !seg.includes('%2F') && !seg.includes('%5C')) return false
  const n = seg.length
  let start = 0
  for (let i = 0; i <= n; i++) {
    const end = i === n || isEncodedSlash(seg, i)
    if (!end) continue
    let stop = seg.indexOf(';', start)
    if (stop === -1 || stop > i) stop = i
    const len = stop - start
    if ((len === 1 || len === 2) && seg.charCodeAt(start) === 46 && (len === 1 || seg.charCodeAt(start + 1) === 46)) return true
    start = i + 3
    i += 2
  }
  return false
}

/** `%2F` or `%5C` at `i` (hex already upper-cased). */
function isEncodedSlash(s: string, i: number): boolean {
  if (s.charCodeAt(i) !== 37 /* % */) return false
  const a = s.charCodeAt(i + 1)
  const b = s.charCodeAt(i + 2)
  return (a === 50 /* 2 */ && b === 70) /* F */ || (a === 53 /* 5 */ && b === 67) /* C */
}
