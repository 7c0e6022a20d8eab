// Metric families as plain data: what a process measured, in a form that
// can cross an IPC channel (a worker's snapshot), be summed over processes
// (merge), and be written in the Prometheus text exposition format
// (prometheus.io/docs/instrumenting/exposition_formats, version 0.0.4).
// No dependency on the proxy: the WORKERS supervisor loads only this.

export type Labels = Readonly<Record<string, string>>

export interface Sample {
  labels: Labels
  value: number
}

export interface HistogramSample {
  labels: Labels
  /** Observations per bucket, not cumulative; one more than `bounds` (the +Inf bucket). */
  counts: number[]
  sum: number
}

/**
 * How samples of several processes combine: `sum` for counters and for
 * gauges of things each process has (connections), `max` for gauges every
 * process knows the same value of (rules loaded, a certificate's expiry,
 * the time of the last good reload).
 */
export type Merge = 'sum' | 'max'

export interface CounterFamily {
  type: 'counter' | 'gauge'
  name: string
  help: string
  merge: Merge
  samples: Sample[]
}

export interface HistogramFamily {
  type: 'histogram'
  name: string
  help: string
  merge: 'sum'
  /** Upper bounds of the buckets, in increasing order, without +Inf. */
  bounds: readonly number[]
  samples: HistogramSample[]
}

export type Family = CounterFamily | HistogramFamily

function labelKey(labels: Labels): string {
  return JSON.stringify(labels)
}

/** The families of several processes as one: samples with the same name and labels combined by their family's rule. */
export function mergeFamilies(parts: readonly (readonly Family[])[]): Family[] {
  const out = new Map<string, Family>()
  const index = new Map<string, Map<string, Sample | HistogramSample>>()
  for (const families of parts) {
    for (const family of families) {
      let merged = out.get(family.name)
      let byLabels = index.get(family.name)
      if (merged === undefined || byLabels === undefined) {
        merged = { ...family, samples: [] }
        byLabels = new Map()
        out.set(family.name, merged)
        index.set(family.name, byLabels)
      }
      for (const sample of family.samples) {
        const key = labelKey(sample.labels)
        const seen = byLabels.get(key)
        if (seen === undefined) {
          const copy = 'counts' in sample ? { labels: sample.labels, counts: [...sample.counts], sum: sample.sum } : { labels: sample.labels, value: sample.value }
          byLabels.set(key, copy)
          ;(merged.samples as (Sample | HistogramSample)[]).push(copy)
        } else if ('counts' in seen && 'counts' in sample) {
          for (let i = 0; i < seen.counts.length; i++) seen.counts[i]! += sample.counts[i] ?? 0
          seen.sum += sample.sum
        } else if ('value' in seen && 'value' in sample) {
          seen.value = family.merge === 'max' ? Math.max(seen.value, sample.value) : seen.value + sample.value
        }
      }
    }
  }
  return [...out.values()]
}

/** Label values escaped as the text format requires: backslash, double quote, line feed. */
function escapeLabel(value: string): string {
  return value.replace(/[\\"\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`))
}

function labelText(labels: Labels, extra?: string): string {
  const parts: string[] = []
  for (const [name, value] of Object.entries(labels)) parts.push(`${name}="${escapeLabel(value)}"`)
  if (extra !== undefined) parts.push(extra)
  return parts.length === 0 ? '' : `{${parts.join(',')}}`
}

function number(n: number): string {
  if (Number.isNaN(n)) return 'NaN'
  if (n === Infinity) return '+Inf'
  if (n === -Infinity) return '-Inf'
  return String(n)
}

/** The Prometheus text format (Content-Type `text/plain; version=0.0.4`). */
export function renderFamilies(families: readonly Family[]): string {
  let out = ''
  for (const family of families) {
    out += `# HELP ${family.name} ${family.help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}\n# TYPE ${family.name} ${family.type}\n`
    if (family.type === 'histogram') {
      for (const sample of family.samples) {
        // Buckets are cumulative on the wire (`le` = less than or equal).
        let cumulative = 0
        for (let i = 0; i < family.bounds.length; i++) {
          cumulative += sample.counts[i] ?? 0
          out += `${family.name}_bucket${labelText(sample.labels, `le="${number(family.bounds[i]!)}"`)} ${cumulative}\n`
        }
        cumulative += sample.counts[family.bounds.length] ?? 0
        out += `${family.name}_bucket${labelText(sample.labels, 'le="+Inf"')} ${cumulative}\n`
        out += `${family.name}_sum${labelText(sample.labels)} ${number(sample.sum)}\n`
        out += `${family.name}_count${labelText(sample.labels)} ${cumulative}\n`
      }
    } else {
      for (const sample of family.samples) out += `${family.name}${labelText(sample.labels)} ${number(sample.value)}\n`
    }
  }
  return out
}

export const EXPOSITION_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'
