// The Location of the 308 that sends plain HTTP to https:// (a host with a
// certificate; request-handler.ts decides when).
//
// The path and query are the request's own bytes, not the normalised path
// the rules matched (normalize-path.ts), as nginx's `$request_uri` and
// ingress-nginx's redirect keep them: the https request is normalised and
// routed again when it arrives, and an application that reads its raw path
// (`rawPath` rules, signed URLs) must see what the client sent, not a
// decoded `%2F` or a resolved `..`.
//
// What is reflected is made safe: the request line lets through visible
// ASCII that RFC 3986 does not allow in a URI (`"`, `<`, `>`, `^`, `` ` ``,
// `{`, `|`, `}`; llhttp does too). Those are percent-encoded (RFC 3986
// §2.1, as browsers encode them when they send them), so the header and the
// body only ever carry a valid URI. Controls, spaces, `#` and non-ASCII
// never reach here (the parser refuses them, chars.ts), nor `\` (refused
// before routing). The host is the routing host: validated, lower-case,
// without port.

/** Bytes RFC 3986 allows in a path and query: unreserved, sub-delims, `:@/?` and `%` (already encoded). */
const URI_SAFE = new Uint8Array(128)
for (const c of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@/?%") URI_SAFE[c.charCodeAt(0)] = 1

/** `https://host[:port]/path?query` for a 308; `port` 443 is left out. */
export function httpsLocation(host: string, port: number, pathAndQuery: string): string {
  // An IPv6 literal routes without brackets (request-host.ts); a URI needs them (RFC 3986 §3.2.2).
  const authority = host.includes(':') ? `[${host}]` : host
  return `https://${authority}${port === 443 ? '' : `:${port}`}${uriSafe(pathAndQuery)}`
}

function uriSafe(s: string): string {
  let i = 0
  while (i < s.length && URI_SAFE[s.charCodeAt(i)] === 1) i++
  if (i === s.length) return s
  let out = s.slice(0, i)
  for (; i < s.length; i++) {
    const c = s.charCodeAt(i)
    out += c < 128 && URI_SAFE[c] === 1 ? s[i] : `%${c.toString(16).toUpperCase().padStart(2, '0')}`
  }
  return out
}
