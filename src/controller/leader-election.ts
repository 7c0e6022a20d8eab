// Leader election over a coordination.k8s.io/v1 Lease, as client-go's
// tools/leaderelection does (the algorithm every Kubernetes controller uses;
// @kubernetes/client-node 2.x has no such helper).
//
// Every replica runs this loop. One of them holds the Lease: its name is in
// spec.holderIdentity and it renews spec.renewTime every retry period. The
// others read the Lease every retry period and take it over only when they
// have not seen it change for a whole lease duration.
//
// - Time is measured on our own clock from the moment *we* saw the record
//   change (client-go's observedTime), never from the renewTime written in
//   it: the clocks of two nodes need not agree, their rates do.
// - Every write carries the resourceVersion it was decided from (optimistic
//   concurrency, api-concepts "Resource versions"): of two replicas that try
//   to take over at once, the API server lets one win and answers 409
//   Conflict to the other.
// - The leader steps down when it has not renewed for the renew deadline
//   (10 s), before anyone else may take over (15 s after they last saw a
//   renewal): two replicas never both believe they lead, as long as the
//   clocks run at about the same rate.
// - On graceful shutdown the leader releases the Lease (empty holder,
//   client-go's ReleaseOnCancel), so another replica takes over at its next
//   try instead of after the lease duration.

import { CoordinationV1Api, V1MicroTime, type KubeConfig, type V1Lease } from '@kubernetes/client-node'
import type { Logger } from '../log.ts'

export interface LeaderElectionTimings {
  /** How long followers wait, from the last change they saw, before taking over (client-go: 15 s). */
  leaseDurationMs: number
  /** How long the leader keeps leading without a successful renewal (client-go: 10 s). */
  renewDeadlineMs: number
  /** Time between tries, to acquire or to renew (client-go: 2 s). */
  retryPeriodMs: number
}

export const DEFAULT_TIMINGS: LeaderElectionTimings = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 }

/** client-go's JitterFactor: followers wait retry × [1, 1.2) so they do not all try at once. */
const JITTER = 1.2

/** The problem with a set of timings (client-go's NewLeaderElector checks), or undefined. */
export function timingsProblem(t: LeaderElectionTimings): string | undefined {
  if (t.leaseDurationMs % 1000 !== 0 || t.leaseDurationMs < 1000) return 'the lease duration must be a whole number of seconds (Lease spec.leaseDurationSeconds)'
  if (t.leaseDurationMs <= t.renewDeadlineMs) return 'the lease duration must be longer than the renew deadline'
  if (t.renewDeadlineMs <= t.retryPeriodMs * JITTER) return 'the renew deadline must be longer than 1.2 × the retry period'
  if (t.retryPeriodMs <= 0) return 'the retry period must be positive'
  return undefined
}

/** The three calls the elector makes; `read` answers undefined for 404. */
export interface LeaseApi {
  read(): Promise<V1Lease | undefined>
  create(lease: V1Lease): Promise<V1Lease>
  replace(lease: V1Lease): Promise<V1Lease>
}

export function leaseApi(kubeConfig: KubeConfig, namespace: string, name: string): LeaseApi {
  const api = kubeConfig.makeApiClient(CoordinationV1Api)
  return {
    read: async () => {
      try {
        return await api.readNamespacedLease({ name, namespace })
      } catch (err) {
        if ((err as { code?: number }).code === 404) return undefined
        throw err
      }
    },
    create: (body) => api.createNamespacedLease({ namespace, body }),
    replace: (body) => api.replaceNamespacedLease({ name, namespace, body }),
  }
}

export interface LeaderElectorOptions extends LeaderElectionTimings {
  api: LeaseApi
  /** `namespace/name` of the Lease, for logs. */
  lease: string
  /** This replica's name in spec.holderIdentity (the pod name). */
  identity: string
  log: Logger
  /** Told each time this replica starts (true) or stops (false) leading. */
  onChange: (leading: boolean) => void
}

/**
 * What tells that the record changed (client-go compares the whole record):
 * any write changes the resourceVersion; the spec too, in case a client
 * library hands back dates with less precision than was written.
 */
function fingerprint(lease: V1Lease): string {
  const s = lease.spec ?? {}
  return JSON.stringify([lease.metadata?.resourceVersion ?? '', s.holderIdentity ?? '', String(s.renewTime ?? ''), s.leaseTransitions ?? 0, s.leaseDurationSeconds ?? 0])
}

export class LeaderElector {
  private readonly opts: LeaderElectorOptions
  private leadingNow = false
  private stopped = false
  private loop: Promise<void> | undefined
  private wake: (() => void) | undefined
  private sleepTimer: NodeJS.Timeout | undefined
  /** Steps down when the renew deadline passes without a renewal, even while a request hangs. */
  private deadlineTimer: NodeJS.Timeout | undefined
  /** The record last read or written, and when (our clock) it last changed. */
  private observed: V1Lease | undefined
  private observedPrint = ''
  private observedAt = 0
  /** The holder last logged, so a follower logs a new leader once. */
  private loggedHolder: string | undefined

  constructor(opts: LeaderElectorOptions) {
    this.opts = opts
  }

  get leading(): boolean {
    return this.leadingNow
  }

  start(): void {
    this.loop ??= this.run()
  }

  /**
   * Stops trying; a leader releases the Lease so that another replica takes
   * over at its next try (within the retry period) rather than after the
   * lease duration.
   */
  async stop(): Promise<void> {
    this.stopped = true
    clearTimeout(this.sleepTimer)
    this.wake?.()
    await this.loop
    const wasLeading = this.leadingNow
    this.setLeading(false)
    if (wasLeading) await this.release()
  }

  private async run(): Promise<void> {
    const { retryPeriodMs, renewDeadlineMs } = this.opts
    while (!this.stopped) {
      let ok = false
      try {
        // Bounded like client-go's renew (a context with the renew deadline):
        // a hung request must not hold the loop.
        ok = await withTimeout(this.tryAcquireOrRenew(), renewDeadlineMs)
      } catch (err) {
        this.opts.log.warn({ err: (err as Error).message, lease: this.opts.lease }, 'leader election: cannot read or write the lease')
      }
      if (this.stopped) break
      if (ok) {
        if (!this.leadingNow) this.setLeading(true)
        clearTimeout(this.deadlineTimer)
        this.deadlineTimer = setTimeout(() => {
          this.opts.log.warn({ lease: this.opts.lease, renew_deadline_ms: renewDeadlineMs }, 'leader election: lease not renewed within the renew deadline; stepping down')
          this.setLeading(false)
        }, renewDeadlineMs)
        this.deadlineTimer.unref()
      } else if (this.leadingNow && this.observed?.spec?.holderIdentity !== this.opts.identity) {
        // Someone else holds it now: stop at once, do not wait for the deadline.
        this.setLeading(false)
      }
      await this.sleep(this.leadingNow ? retryPeriodMs : retryPeriodMs * (1 + Math.random() * (JITTER - 1)))
    }
  }

  /** client-go's tryAcquireOrRenew: true when we hold the lease after this call. */
  private async tryAcquireOrRenew(): Promise<boolean> {
    const { api, identity, leaseDurationMs } = this.opts
    const now = new V1MicroTime(Date.now())
    const current = await api.read()
    if (current === undefined) {
      const created = await tryWrite(() =>
        api.create({
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { name: this.opts.lease.split('/')[1]! },
          spec: { holderIdentity: identity, leaseDurationSeconds: leaseDurationMs / 1000, acquireTime: now, renewTime: now, leaseTransitions: 0 },
        }),
      )
      if (created) this.observe(created)
      return created !== undefined
    }
    this.observe(current)
    const spec = current.spec ?? {}
    const holder = spec.holderIdentity ?? ''
    if (holder !== '' && holder !== identity) {
      if (this.loggedHolder !== holder) {
        this.loggedHolder = holder
        this.opts.log.info({ lease: this.opts.lease, leader: holder }, 'leader election: another replica leads')
      }
      // Still valid: the holder renewed it less than a lease duration ago (as we saw it).
      if (Date.now() - this.observedAt < leaseDurationMs) return false
    }
    const ours = holder === identity
    const updated = await tryWrite(() =>
      api.replace({
        ...current,
        spec: {
          ...spec,
          holderIdentity: identity,
          leaseDurationSeconds: leaseDurationMs / 1000,
          renewTime: now,
          acquireTime: ours && spec.acquireTime ? spec.acquireTime : now,
          leaseTransitions: (spec.leaseTransitions ?? 0) + (ours ? 0 : 1),
        },
      }),
    )
    if (updated) this.observe(updated)
    return updated !== undefined
  }

  /** client-go's release: an empty holder that followers may take at once. */
  private async release(): Promise<void> {
    const { api, identity, lease, log } = this.opts
    try {
      const current = await withTimeout(api.read(), this.opts.renewDeadlineMs)
      if (current?.spec?.holderIdentity !== identity) return
      const now = new V1MicroTime(Date.now())
      await withTimeout(
        api.replace({ ...current, spec: { ...current.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: now, acquireTime: now } }),
        this.opts.renewDeadlineMs,
      )
      log.info({ lease }, 'leader election: lease released')
    } catch (err) {
      // The others take over when the lease expires instead.
      log.warn({ err: (err as Error).message, lease }, 'leader election: could not release the lease')
    }
  }

  private observe(lease: V1Lease): void {
    const print = fingerprint(lease)
    if (print !== this.observedPrint) {
      this.observedPrint = print
      this.observedAt = Date.now()
    }
    this.observed = lease
  }

  private setLeading(leading: boolean): void {
    if (leading === this.leadingNow) return
    this.leadingNow = leading
    if (!leading) clearTimeout(this.deadlineTimer)
    this.loggedHolder = leading ? this.opts.identity : undefined
    this.opts.log.info({ lease: this.opts.lease, identity: this.opts.identity }, leading ? 'leader election: this replica now leads' : 'leader election: this replica stopped leading')
    this.opts.onChange(leading)
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.wake = resolve
      this.sleepTimer = setTimeout(resolve, ms)
    })
  }
}

/** The written object, or undefined when another replica wrote first (409 Conflict / 409 AlreadyExists). */
async function tryWrite(write: () => Promise<V1Lease>): Promise<V1Lease | undefined> {
  try {
    return await write()
  } catch (err) {
    if ((err as { code?: number }).code === 409) return undefined
    throw err
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms)
  })
  return Promise.race([p, limit]).finally(() => clearTimeout(timer))
}
