// The Date header value (RFC 9110 §5.6.7 IMF-fixdate), formatted at most
// once a second, as nginx caches its time strings.

let second = -1
let value = ''

export function httpDate(now = Date.now()): string {
  const s = Math.floor(now / 1000)
  if (s !== second) {
    second = s
    value = new Date(s * 1000).toUTCString()
  }
  return value
}
