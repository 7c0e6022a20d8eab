// Test-only resolver override, loaded into the proxy with
// NODE_OPTIONS=--import=<this file>: every `*.svc.cluster.local` name (the
// upstream hosts the controller writes) resolves to 127.0.0.1, where the
// tests run their upstream servers on the ports the Services declare. The
// product has no such switch; outside tests cluster DNS does this job.
// NANOPROXY_TEST_HOSTS=name=addr,addr;name=addr adds names with the given
// addresses (checked first), for tests whose upstreams live in a network
// namespace (helpers/netns.ts).

import dns from 'node:dns'

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | dns.LookupAddress[], family?: number) => void

const original = dns.lookup.bind(dns) as (host: string, options: dns.LookupOptions, cb: LookupCallback) => void

const hosts = new Map<string, string[]>(
  (process.env.NANOPROXY_TEST_HOSTS ?? '')
    .split(';')
    .filter((e) => e.includes('='))
    .map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1).split(',')]),
)

function lookup(host: string, options: dns.LookupOptions | number | LookupCallback, cb?: LookupCallback): void {
  const callback = (typeof options === 'function' ? options : cb) as LookupCallback
  const opts: dns.LookupOptions = typeof options === 'object' ? options : typeof options === 'number' ? { family: options } : {}
  const listed = hosts.get(host)
  if (listed !== undefined) {
    if (opts.all) callback(null, listed.map((address) => ({ address, family: address.includes(':') ? 6 : 4 })))
    else callback(null, listed[0]!, listed[0]!.includes(':') ? 6 : 4)
    return
  }
  if (host.endsWith('.svc.cluster.local')) {
    if (opts.all) callback(null, [{ address: '127.0.0.1', family: 4 }])
    else callback(null, '127.0.0.1', 4)
    return
  }
  original(host, opts, callback)
}

;(dns as { lookup: unknown }).lookup = lookup
