// The controller's debounce, driven by a clock the test moves by hand: no
// real time passes, so the assertions are about the rule, not the machine.

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { Debouncer, type Clock } from '../../src/controller/debouncer.ts'

/** A manual clock: timers fire only when advance() passes their time. */
class ManualClock implements Clock {
  private t = 0
  private seq = 0
  private readonly timers = new Map<number, { at: number; fn: () => void }>()
  now(): number {
    return this.t
  }
  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.seq
    this.timers.set(id, { at: this.t + ms, fn })
    return id
  }
  clearTimeout(handle: unknown): void {
    this.timers.delete(handle as number)
  }
  /** Moves time forward, firing due timers in order. */
  advance(ms: number): void {
    const end = this.t + ms
    for (;;) {
      const due = [...this.timers.entries()].filter(([, t]) => t.at <= end).sort((a, b) => a[1].at - b[1].at)[0]
      if (!due) break
      this.timers.delete(due[0])
      this.t = due[1].at
      due[1].fn()
    }
    this.t = end
  }
}

function setup(quietMs = 200, maxWaitMs = 1000) {
  const clock = new ManualClock()
  const calls: number[] = []
  const debouncer = new Debouncer(() => calls.push(clock.now()), { quietMs, maxWaitMs, clock })
  return { clock, calls, debouncer }
}

describe('the bounded debounce', () => {
  it('fires once, the quiet time after the last event of a burst', () => {
    const { clock, calls, debouncer } = setup()
    for (let i = 0; i < 5; i++) {
      debouncer.trigger()
      clock.advance(50)
    }
    // last event at 200; quiet until 400
    clock.advance(1000)
    assert.deepEqual(calls, [400])
  })

  it('fires at the maximum wait while events keep coming faster than the quiet time', () => {
    const { clock, calls, debouncer } = setup()
    // An unrelated object changing every 100 ms for 3.5 s.
    for (let t = 0; t < 3500; t += 100) {
      debouncer.trigger()
      clock.advance(100)
    }
    clock.advance(1000)
    // First event at 0 → call at 1000; the next pending event arrives at 1000 → call at 2000...
    assert.deepEqual(calls, [1000, 2000, 3000, 3600])
  })

  it('never holds an event longer than the maximum wait (40 events 120 ms apart)', () => {
    const { clock, calls, debouncer } = setup()
    const events: number[] = []
    for (let i = 0; i < 40; i++) {
      events.push(clock.now())
      debouncer.trigger()
      clock.advance(120)
    }
    clock.advance(1000)
    for (const e of events) {
      const served = calls.find((c) => c >= e)
      assert.ok(served !== undefined && served - e <= 1000, `event at ${e} served at ${served}`)
    }
  })

  it('does not fire after cancel, and starts a fresh wait on the next event', () => {
    const { clock, calls, debouncer } = setup()
    debouncer.trigger()
    clock.advance(100)
    debouncer.cancel()
    assert.equal(debouncer.pending, false)
    clock.advance(2000)
    assert.deepEqual(calls, [])
    debouncer.trigger()
    clock.advance(199)
    assert.deepEqual(calls, [])
    clock.advance(1)
    assert.deepEqual(calls, [2300])
  })

  it('treats a maximum shorter than the quiet time as the quiet time', () => {
    const { clock, calls, debouncer } = setup(200, 50)
    debouncer.trigger()
    clock.advance(1000)
    assert.deepEqual(calls, [200])
  })
})
