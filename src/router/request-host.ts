// The host a request is routed by.
//
// Taken from the Host header (or the authority of an absolute-form target,
// RFC 9112 §3.2.2), without the port, in lower case (RFC 9110 §4.2.3: the
// host is case-insensitive) and without a trailing dot (`example.com.` is the
// same name, fully qualified).

export function routingHost(authority: string): string {
  let end = authority.length
  if (authority.charCodeAt(0) === 91 /* '[' */) {
    // IPv6 literal: `[::1]:8080` routes as `::1`.
    const close = authority.indexOf(']')
    return close === -1 ? authority.toLowerCase() : authority.slice(1, close).toLowerCase()
  }
  const colon = authority.indexOf(':')
  if (colon !== -1) end = colon
  if (end > 0 && authority.charCodeAt(end - 1) === 46 /* '.' */) end--
  const host = end === authority.length ? authority : authority.slice(0, end)
  return hasUpper(host) ? host.toLowerCase() : host
}

function hasUpper(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c >= 65 && c <= 90) return true
  }
  return false
}
