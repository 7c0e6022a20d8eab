// `nanoproxy routes FILE`: the routing table as the proxy will use it.

import { loadConfigFile } from '../config/load.ts'
import { serversOf } from '../config/schema.ts'
import { ConfigError } from '../errors.ts'
import { RouteTable } from '../router/route-table.ts'

export async function runRoutes(file: string): Promise<number> {
  let config
  try {
    config = (await loadConfigFile(file)).config
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    process.stderr.write(`${err.message}\n`)
    return 1
  }
  const table = new RouteTable(config)
  const rows: string[][] = [['HOST', '#', 'MATCH', 'PATH', 'STRIP', 'UPSTREAM', 'TARGET']]
  for (const group of table.describe()) {
    if (group.routes.length === 0) continue
    for (const r of group.routes) {
      const u = r.upstream
      const redirect = config.rules[r.index]?.redirect
      if (redirect !== undefined) {
        // A redirect rule forwards nothing: say where it sends the client.
        const to = `${redirect.scheme ?? ''}${redirect.scheme ? '://' : ''}${redirect.hostname ?? ''}${redirect.port !== undefined ? `:${redirect.port}` : ''}${redirect.path ?? redirect.prefix ?? ''}`
        rows.push([group.host, String(r.index + 1), r.matchMode, r.path, r.stripPath ? 'yes' : 'no', '-', `redirect ${redirect.statusCode}${to === '' ? '' : ` ${to}`}`])
        continue
      }
      const servers = serversOf(u)
      const target = servers.length === 0 ? '(no servers)' : servers.map((s) => `${u.scheme}://${s.host.includes(':') ? `[${s.host}]` : s.host}:${s.port}`).join(' ')
      rows.push([group.host, String(r.index + 1), r.matchMode, r.path, r.stripPath ? 'yes' : 'no', u.name, target])
    }
  }
  if (rows.length === 1) {
    process.stdout.write('no rules: every request gets 404\n')
    return 0
  }
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((row) => row[c]!.length)))
  for (const row of rows) {
    process.stdout.write(row.map((cell, c) => (c === row.length - 1 ? cell : cell.padEnd(widths[c]!))).join('  ') + '\n')
  }
  process.stdout.write('\nHost "*" is any host not listed above; within a host the first matching rule (#, file order) wins.\n')
  return 0
}
