// Which protocol upgrades (RFC 9110 §7.8) the proxy opens a tunnel for.
//
// Once a tunnel is open the proxy only copies bytes: nothing on the
// connection is parsed or routed again. That is safe for WebSocket, whose
// frames are not HTTP requests. It is not for h2c: an HTTP/2 connection
// carries many requests, and after a tunnelled `Upgrade: h2c` every one of
// them would reach the upstream without the proxy's routing ("h2c
// smuggling"). Envoy strips h2c by default for the same reason. Any other
// protocol is unknown to the proxy and is not tunnelled either.

/** Upgrade protocol names (RFC 9110 §7.8, without `/version`) that may open a tunnel, lower-case. */
const TUNNELABLE = new Set(['websocket'])

/**
 * The protocols of an Upgrade header value the proxy will tunnel, in the
 * client's order and spelling, joined again; undefined when none is left
 * (the request is then forwarded as a plain request, without Upgrade).
 */
export function tunnelableUpgrade(value: string): string | undefined {
  let kept: string | undefined
  for (const part of value.split(',')) {
    const protocol = part.trim()
    if (protocol === '') continue
    const slash = protocol.indexOf('/')
    const name = (slash === -1 ? protocol : protocol.slice(0, slash)).toLowerCase()
    if (!TUNNELABLE.has(name)) continue
    kept = kept === undefined ? protocol : `${kept}, ${protocol}`
  }
  return kept
}
