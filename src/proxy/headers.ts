// Header rewriting between client and upstream.
//
// Hop-by-hop headers describe one connection, not the message, and must not
// be forwarded (RFC 9110 §7.6.1): the fixed list below plus every header the
// Connection header names. The list is Go's httputil.ReverseProxy's, which
// the original NanoProxy used, so both proxies forward the same headers.

import type { IncomingHttpHeaders } from 'node:http'

const HOP_BY_HOP = new Set([
  'connection',
  'proxy-connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
])

/** Headers the proxy sets itself, so the client's copies are never passed on. */
const REPLACED_ON_REQUEST = new Set(['host', 'x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto', 'expect'])

/**
 * Client-address headers an upstream may believe: passed on only from a
 * trusted proxy, dropped from anyone else (Go's ReverseProxy, which the
 * original used, drops Forwarded too) so a client cannot pose as another.
 */
const TRUSTED_ONLY = new Set(['forwarded', 'x-real-ip'])

/** Header names listed in Connection (RFC 9110 §7.6.1), lower-cased. */
function connectionTokens(value: string | undefined): Set<string> | undefined {
  if (value === undefined || value === '') return undefined
  const tokens = new Set<string>()
  for (const t of value.split(',')) {
    const token = t.trim().toLowerCase()
    if (token !== '' && token !== 'close' && token !== 'keep-alive' && token !== 'upgrade') tokens.add(token)
  }
  return tokens.size > 0 ? tokens : undefined
}

export interface ForwardedInfo {
  /** The Host header to send upstream. */
  host: string
  /** The client's address, IPv4 as dotted quad (never `::ffff:`-mapped). */
  clientAddress: string
  /** Whether the client may set X-Forwarded-* (it is a trusted proxy). */
  trusted: boolean
  /** `http` or `https`: how the client reached this proxy. */
  proto: string
  /** The Host the client asked for, as sent (port included): X-Forwarded-Host. */
  originalHost: string
}

/**
 * Builds the upstream request's header list from the client's raw headers,
 * as a flat `[name, value, ...]` array (undici's cheapest form). Names keep
 * the client's spelling; repeated headers stay repeated, in order.
 */
export function upstreamRequestHeaders(raw: string[], connection: string | undefined, info: ForwardedInfo): string[] {
  const extra = connectionTokens(connection)
  const out: string[] = ['host', info.host]
  let forwardedFor: string | undefined
  let forwardedHost: string | undefined
  let forwardedProto: string | undefined
  let sawContentLength = false
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!
    const lower = name.toLowerCase()
    if (HOP_BY_HOP.has(lower) || extra?.has(lower)) continue
    if (!info.trusted && TRUSTED_ONLY.has(lower)) continue
    if (REPLACED_ON_REQUEST.has(lower)) {
      if (info.trusted) {
        const value = raw[i + 1]!
        if (lower === 'x-forwarded-for') forwardedFor = forwardedFor === undefined ? value : `${forwardedFor}, ${value}`
        else if (lower === 'x-forwarded-host') forwardedHost ??= value
        else if (lower === 'x-forwarded-proto') forwardedProto ??= value
      }
      continue
    }
    if (lower === 'content-length') {
      // The parser has already rejected differing values; send one copy.
      if (sawContentLength) continue
      sawContentLength = true
    }
    out.push(name, raw[i + 1]!)
  }
  // A client we do not trust cannot forge its address chain (the original
  // NanoProxy replaces these headers too); a trusted proxy's chain is extended.
  out.push(
    'x-forwarded-for',
    forwardedFor === undefined ? info.clientAddress : `${forwardedFor}, ${info.clientAddress}`,
    'x-forwarded-host',
    forwardedHost ?? info.originalHost,
    'x-forwarded-proto',
    forwardedProto ?? info.proto,
  )
  return out
}

/**
 * Builds the client response's headers from the upstream's (undici gives
 * them lower-cased, repeated ones as arrays), dropping hop-by-hop headers
 * and adding the proxy's identification. `keepUpgrade` keeps Upgrade and
 * Connection for a 101 response, where they are the point of the message.
 */
export function clientResponseHeaders(headers: IncomingHttpHeaders, identity: readonly string[], keepUpgrade = false): string[] {
  const connection = headers.connection
  const extra = connectionTokens(Array.isArray(connection) ? connection.join(',') : connection)
  const out: string[] = []
  for (const name in headers) {
    if (HOP_BY_HOP.has(name) && !(keepUpgrade && (name === 'upgrade' || name === 'connection'))) continue
    if (extra?.has(name)) continue
    if (name === 'x-proxy' || name === 'x-proxy-instance') continue
    const value = headers[name]
    if (value === undefined) continue
    if (typeof value === 'string') out.push(name, value)
    else for (const v of value) out.push(name, v)
  }
  for (const v of identity) out.push(v)
  return out
}

/** `::ffff:1.2.3.4` (an IPv4 client on a dual-stack socket) → `1.2.3.4`. */
export function plainAddress(address: string | undefined): string {
  if (address === undefined) return ''
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address
}
