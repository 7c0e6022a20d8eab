// A debounce with a ceiling: coalesce a burst of events into one call, but
// never hold a change back longer than `maxWaitMs`.
//
// A plain debounce (restart the timer on every event) waits for quiet, and a
// cluster is never quiet: with an unrelated Service or EndpointSlice changing
// every 100 ms it would hold every change back for as long as the churn
// lasts. Peers bound the wait: Contour's holdoff is 100 ms, at most 500 ms
// after the last rebuild (internal/contour/handler.go); Traefik applies at
// most one configuration per `providersThrottleDuration` (2 s). Here the
// first event of a burst starts the clock: the call comes `quietMs` after
// the last event, or `maxWaitMs` after the first, whichever is sooner.

export interface Clock {
  now(): number
  setTimeout(fn: () => void, ms: number): unknown
  clearTimeout(handle: unknown): void
}

export const systemClock: Clock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
}

export interface DebounceOptions {
  /** Quiet time after the last event before firing. */
  quietMs: number
  /** Longest time from the first pending event to the call. */
  maxWaitMs: number
  clock?: Clock
}

export class Debouncer {
  private readonly fire: () => void
  private readonly quietMs: number
  private readonly maxWaitMs: number
  private readonly clock: Clock
  private timer: unknown
  /** When the oldest event not yet passed on arrived; undefined when none is pending. */
  private firstPending: number | undefined

  constructor(fire: () => void, opts: DebounceOptions) {
    this.fire = fire
    this.quietMs = opts.quietMs
    this.maxWaitMs = Math.max(opts.maxWaitMs, opts.quietMs)
    this.clock = opts.clock ?? systemClock
  }

  /** True while an event is waiting for its call. */
  get pending(): boolean {
    return this.firstPending !== undefined
  }

  /** An event: (re)arm the timer, never past the ceiling. */
  trigger(): void {
    const now = this.clock.now()
    this.firstPending ??= now
    const deadline = this.firstPending + this.maxWaitMs
    const delay = Math.max(0, Math.min(this.quietMs, deadline - now))
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer)
    this.timer = this.clock.setTimeout(() => this.flush(), delay)
  }

  /** Forget what is pending. */
  cancel(): void {
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer)
    this.timer = undefined
    this.firstPending = undefined
  }

  private flush(): void {
    this.timer = undefined
    this.firstPending = undefined
    this.fire()
  }
}
