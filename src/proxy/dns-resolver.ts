// Upstream servers given by DNS name: every address the name has, kept
// fresh.
//
// A name may stand for several servers (a headless Service, an
// ExternalName, plain DNS round robin). Connecting to the name would pick
// one address per connection, and kept-alive connections would then stick
// to the addresses that existed when they opened. So names are resolved to
// all their addresses, each address becomes a server of its own (with its
// own pool and passive health), and names are resolved again every
// refresh interval (Envoy's STRICT_DNS clusters do the same, every 5 s by
// default). Resolution goes through getaddrinfo (dns.lookup), as a
// connection would: /etc/hosts and the pod's resolv.conf search list apply.

import dns, { type LookupAddress } from 'node:dns'
import type { Logger } from '../log.ts'

export const DNS_REFRESH_MS = 5000

export class DnsResolver {
  private readonly answers = new Map<string, string[]>()
  private names = new Set<string>()
  private timer: NodeJS.Timeout | undefined
  private readonly onChange: () => void
  private readonly log: Logger
  private readonly refreshMs: number

  /** `onChange` runs when a name's addresses changed. */
  constructor(onChange: () => void, log: Logger, refreshMs = DNS_REFRESH_MS) {
    this.onChange = onChange
    this.log = log
    this.refreshMs = refreshMs
  }

  /** The addresses last found for `name`, or undefined before its first answer. */
  addresses(name: string): readonly string[] | undefined {
    return this.answers.get(name)
  }

  /** The names in use now: new ones are resolved at once, all of them periodically. */
  watch(names: Set<string>): void {
    for (const name of this.answers.keys()) if (!names.has(name)) this.answers.delete(name)
    const fresh = [...names].filter((n) => !this.names.has(n))
    this.names = names
    for (const name of fresh) void this.resolve(name)
    if (names.size === 0) this.stop()
    else if (this.timer === undefined) {
      this.timer = setInterval(() => {
        for (const name of this.names) void this.resolve(name)
      }, this.refreshMs)
      this.timer.unref()
    }
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer)
    this.timer = undefined
  }

  private async resolve(name: string): Promise<void> {
    let found: string[]
    try {
      const all = await lookupAll(name)
      found = [...new Set(all.map((a) => a.address))]
    } catch (err) {
      // Keep the last answer: a DNS hiccup should not empty an upstream.
      // Without any answer yet, connections go to the name itself and fail
      // with the resolver's error (502 NP_ERR_UPSTREAM_CONNECT).
      this.log.warn({ host: name, err }, 'cannot resolve upstream server name; keeping the last addresses')
      return
    }
    if (!this.names.has(name)) return
    const before = this.answers.get(name)
    if (found.length === 0 || (before !== undefined && sameList(before, found))) return
    this.answers.set(name, found)
    this.log.debug({ host: name, addresses: found }, 'upstream server name resolved')
    this.onChange()
  }
}

/** dns.lookup, looked up at call time: the function net.connect uses, so both see the same answers. */
function lookupAll(name: string): Promise<LookupAddress[]> {
  return new Promise((resolve, reject) => {
    dns.lookup(name, { all: true, order: 'verbatim' }, (err, addresses) => (err ? reject(err) : resolve(addresses)))
  })
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false
  const set = new Set(a)
  return b.every((x) => set.has(x))
}
