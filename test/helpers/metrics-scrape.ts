// Reads the Prometheus text format the way a scraper does, for assertions.

import { send } from './http-client.ts'

export interface Scrape {
  text: string
  contentType: string
  /** The value of the sample `name` whose labels include `labels`, summed over the samples that match; undefined when none does. */
  value(name: string, labels?: Record<string, string>): number | undefined
}

export async function scrape(port: number): Promise<Scrape> {
  const reply = await send(`http://127.0.0.1:${port}/metrics`)
  if (reply.status !== 200) throw new Error(`/metrics answered ${reply.status}: ${reply.body}`)
  const lines = reply.body.split('\n').filter((l) => l !== '' && !l.startsWith('#'))
  const parsed = lines.map((line) => {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (!m) throw new Error(`not a sample line: ${line}`)
    const labels: Record<string, string> = {}
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c))
    return { name: m[1]!, labels, value: Number(m[3]) }
  })
  return {
    text: reply.body,
    contentType: String(reply.headers['content-type']),
    value(name, want = {}) {
      let total: number | undefined
      for (const s of parsed) {
        if (s.name !== name) continue
        if (Object.entries(want).every(([k, v]) => s.labels[k] === v)) total = (total ?? 0) + s.value
      }
      return total
    },
  }
}
