// Lists of IP addresses and CIDR blocks (TRUSTED_PROXIES, a rule's
// allow/deny), checked with node:net's BlockList.

import { BlockList, isIP } from 'node:net'

/** Why `cidr` is not an address or CIDR block, or undefined when it is one. */
export function cidrProblem(cidr: string): string | undefined {
  const slash = cidr.indexOf('/')
  const address = slash === -1 ? cidr : cidr.slice(0, slash)
  const family = isIP(address)
  if (family === 0) return `${JSON.stringify(cidr)} is not an IP address or CIDR`
  const max = family === 4 ? 32 : 128
  const prefix = slash === -1 ? max : Number(cidr.slice(slash + 1))
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > max || (slash !== -1 && cidr.slice(slash + 1) === '')) {
    return `${JSON.stringify(cidr)} has an invalid prefix length (0-${max})`
  }
  return undefined
}

/** Adds `cidr` to `list`; returns the problem instead when it is not valid. */
export function addCidr(list: BlockList, cidr: string): string | undefined {
  const problem = cidrProblem(cidr)
  if (problem !== undefined) return problem
  const slash = cidr.indexOf('/')
  const address = slash === -1 ? cidr : cidr.slice(0, slash)
  const family = isIP(address)
  list.addSubnet(address, slash === -1 ? (family === 4 ? 32 : 128) : Number(cidr.slice(slash + 1)), family === 4 ? 'ipv4' : 'ipv6')
  return undefined
}

/** A BlockList of valid CIDRs (the loader checked them). */
export function blockListOf(cidrs: readonly string[]): BlockList {
  const list = new BlockList()
  for (const c of cidrs) addCidr(list, c)
  return list
}

/** Whether `address` (an IP, or anything else: false) is in `list`. */
export function listed(list: BlockList, address: string): boolean {
  const family = isIP(address)
  return family !== 0 && list.check(address, family === 4 ? 'ipv4' : 'ipv6')
}
