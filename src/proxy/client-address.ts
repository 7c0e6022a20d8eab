// The client's address as policies see it (a rule's allow/deny): the peer,
// or, when the peer is a trusted proxy (TRUSTED_PROXIES), the address it
// reports in X-Forwarded-For. Walked from the right, skipping trusted
// hops, as nginx's real_ip_recursive does: the first untrusted address is
// the client; anything to its left could have been written by the client.

import type { BlockList } from 'node:net'
import { isIP } from 'node:net'
import type { RequestHead } from '../http1/request-head.ts'
import { listed } from '../router/cidr-list.ts'
import { plainAddress } from './headers.ts'

export function policyClientAddress(peer: string, peerTrusted: boolean, head: RequestHead, trusted: BlockList | undefined): string {
  if (!peerTrusted || trusted === undefined || head.forwardedFor === undefined) return peer
  const hops = head.forwardedFor.split(',')
  let client = peer
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = plainAddress(hops[i]!.trim())
    // Not an address (a port, `unknown`, garbage): the trusted hop that
    // wrote it is the last address known.
    if (isIP(hop) === 0) return client
    client = hop
    if (!listed(trusted, hop)) return hop
  }
  return client
}
