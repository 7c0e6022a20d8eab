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

  // §6.2.2.1 and §6.2.2.2, in one pass.
  let decoded = path
  if (path.includes('%')) {
    decoded = ''
    let from = 0
    for (let i = path.indexOf('%'); i !== -1; i = path.indexOf('%', i)) {
      const hi = hexValue(path.charCodeAt(i + 1))
      const lo = hexValue(path.charCodeAt(i + 2))
      if (hi < 0 || lo < 0) throw new PathError('malformed percent-encoding in the request path')
      const byte = hi * 16 + lo
      decoded += path.slice(from, i) + (isUnreserved(byte) ? String.fromCharCode(byte) : '%' + HEX_DIGITS[hi]! + HEX_DIGITS[lo]!)
      i += 3
      from = i
    }
    decoded += path.slice(from)
  }

  // Merged slashes and §5.2.4 dot-segment removal, segment by segment.
  const segments = decoded.split('/')
  const out: string[] = []
  const last = segments.length - 1
  let trailingSlash = false
  // segments[0] is the empty string before the leading '/'.
  for (let i = 1; i <= last; i++) {
    const seg = segments[i]!
    if (seg === '' || seg === '.') {
      if (i === last) trailingSlash = true
      continue
    }
    if (seg === '..') {
      if (out.length === 0) throw new PathError('request path climbs above the root')
      out.pop()
      if (i === last) trailingSlash = true
      continue
    }
    if (hidesDotSegment(seg)) throw new PathError('encoded slash or backslash next to a dot-segment in the request path')
    out.push(seg)
  }
  if (out.length === 0) return '/'
  const joined = '/' + out.join('/')
  return trailingSlash ? joined + '/' : joined
}

/**
 * Whether a segment would become or contain `.`/`..` for an application
 * that splits it at `%2F` / `%5C` or drops `;` parameters.
 */
function hidesDotSegment(seg: string): boolean {
  if (seg.charCodeAt(0) !== 46 /* . */ && !seg.includes('%2F') && !seg.includes('%5C')) return false
  for (const piece of seg.split(/%2F|%5C/)) {
    const semi = piece.indexOf(';')
    const name = semi === -1 ? piece : piece.slice(0, semi)
    if (name === '.' || name === '..') return true
  }
  return false
}
