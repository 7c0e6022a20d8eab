// Timeouts for every connection, client and upstream, from one timer.
//
// A timer per request (or socket.setTimeout, re-armed on every read and
// write) costs more than the rest of a small request's bookkeeping. Here
// each connection just records when it must next be looked at, and one
// interval visits them all, as nginx's and Node's own connection checks do.
// Deadlines fire up to one tick late; the tick is a quarter of the
// shortest timeout, at most 250 ms.

export interface Expiring {
  /** ms since the epoch when expire() is due; 0 for never. */
  deadline: number
  expire(now: number): void
}

export class DeadlineSweeper {
  private readonly items = new Set<Expiring>()
  private readonly tickMs: number
  private timer: NodeJS.Timeout | undefined

  constructor(shortestTimeoutMs: number) {
    this.tickMs = Math.max(10, Math.min(250, Math.floor(shortestTimeoutMs / 4)))
  }

  add(item: Expiring): void {
    this.items.add(item)
    if (this.timer === undefined) {
      this.timer = setInterval(() => this.sweep(), this.tickMs)
      // Never keeps the process alive on its own.
      this.timer.unref()
    }
  }

  delete(item: Expiring): void {
    this.items.delete(item)
  }

  private sweep(): void {
    const now = Date.now()
    let due: Expiring[] | undefined
    for (const item of this.items) {
      if (item.deadline !== 0 && item.deadline <= now) (due ??= []).push(item)
    }
    // Timers run before I/O in each turn of the event loop: after a stall
    // (GC, a busy machine) the event that keeps a connection in time (its
    // connect, its response) may be waiting just behind this tick. Expiring
    // on the next turn, once that I/O has been handled, keeps a stall alone
    // from turning into a timeout.
    if (due !== undefined) setImmediate(() => this.expire(due, now))
  }

  private expire(due: Expiring[], now: number): void {
    for (const item of due) {
      if (this.items.has(item) && item.deadline !== 0 && item.deadline <= now) {
        item.deadline = 0
        item.expire(now)
      }
    }
  }
}
