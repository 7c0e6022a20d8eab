// A histogram as a few numbers: fixed bucket bounds, one count per bucket.
// Observing is a short linear scan and two additions; nothing is allocated.

/**
 * Seconds. Prometheus client libraries' default buckets (5 ms - 10 s),
 * which ingress-nginx's request-duration histogram uses too: a dashboard
 * can compare the two.
 */
export const LATENCY_BOUNDS: readonly number[] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

export class Histogram {
  /** Per bucket (not cumulative); the last is +Inf. */
  readonly counts: Float64Array
  sum = 0
  private readonly bounds: readonly number[]

  constructor(bounds: readonly number[] = LATENCY_BOUNDS) {
    this.bounds = bounds
    this.counts = new Float64Array(bounds.length + 1)
  }

  observe(value: number): void {
    const bounds = this.bounds
    let i = 0
    while (i < bounds.length && value > bounds[i]!) i++
    this.counts[i]!++
    this.sum += value
  }
}
