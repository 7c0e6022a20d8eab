// The host a request is routed by.
//
// Taken from the Host header (or the authority of an absolute-form target,
// RFC 9112 §3.2.2), without the port, in lower case (RFC 9110 §4.2.3: the
// host is case-insensitive) and without a trailing dot (`example.com.` is the
// same name, fully qualified).

import { isIPv6 } from 'node:net'

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

/**
 * reg-name characters (RFC 3986 §3.2.2): unreserved and sub-delims. Not
 * pct-encoded: no DNS name has one, and a host that an application would
 * decode into another name (`%61dmin.example`) must not slip past host
 * rules. (IPv4 addresses are reg-names by these characters too.)
 */
const REG_NAME = new Uint8Array(128)
for (let c = 0; c < 128; c++) {
  const ch = String.fromCharCode(c)
  if (/[A-Za-z0-9\-._~!$&'()*+,;=]/.test(ch)) REG_NAME[c] = 1
}

/** IPv6address or IPvFuture inside `[...]` (RFC 3986 §3.2.2); zone IDs (RFC 6874) are not for HTTP. */
const IP_LITERAL = /^(?:[0-9A-Fa-f:.]+|v[0-9A-Fa-f]+\.[A-Za-z0-9\-._~!$&'()*+,;=:]+)$/

/**
 * Whether `authority` is a valid `uri-host [ ":" port ]` (RFC 9112 §3.2,
 * RFC 3986 §3.2.2, §3.2.3): Host and the authority of an absolute-form
 * target. Refused, as nginx refuses them: spaces, `/`, `\`, `@`
 * (userinfo), `%`, an empty port after `:`, a port above 65535. An empty
 * authority passes (a Host with an empty value, RFC 9112 §3.2); what is
 * then routed is the any-host rules.
 */
export function validAuthority(authority: string): boolean {
  const len = authority.length
  let i = 0
  if (authority.charCodeAt(0) === 91 /* [ */) {
    const close = authority.indexOf(']')
    if (close === -1) return false
    const inside = authority.slice(1, close)
    if (!IP_LITERAL.test(inside) || (inside.charCodeAt(0) !== 118 /* v */ && !isIPv6(inside))) return false
    i = close + 1
  } else {
    while (i < len) {
      const c = authority.charCodeAt(i)
      if (c === 58 /* : */) break
      if (c >= 128 || REG_NAME[c] !== 1) return false
      i++
    }
  }
  if (i === len) return true
  if (authority.charCodeAt(i) !== 58) return false
  // port = *DIGIT; an empty one is refused here, and 0..65535 only.
  const digits = len - i - 1
  if (digits < 1 || digits > 5) return false
  let port = 0
  for (let j = i + 1; j < len; j++) {
    const d = authority.charCodeAt(j) - 48
    if (d < 0 || d > 9) return false
    port = port * 10 + d
  }
  return port <= 65535
}
