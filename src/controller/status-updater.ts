// Ingress status: the addresses clients reach the proxy at.
//
// As ingress-nginx's --publish-service / --publish-status-address do: with
// PUBLISH_SERVICE=namespace/name the load-balancer entries of that Service
// (the proxy's own Service) are copied, whole, into status.loadBalancer of
// every Ingress we own; PUBLISH_ADDRESS gives the addresses directly. An
// Ingress that stops being ours has the status we wrote cleared. Without
// either setting the controller leaves status alone.
//
// Status is off the config path: the controller hands over "something may
// have changed" and carries on writing config; this loop (its own debounce,
// a bounded number of requests in flight) brings every Ingress's status to
// what it should be. It is a level-triggered reconcile, like a Kubernetes
// controller's: each pass compares the cached Ingresses with the wanted
// status and patches only those that differ, so an event storm costs
// comparisons, not requests.
//
// Each patch carries the resourceVersion the decision was made from (an
// optimistic-concurrency precondition: api-concepts, "Resource versions"):
// if the Ingress changed meanwhile, for instance it moved to another
// controller's class and that controller wrote its own status, the API
// server answers 409 Conflict and we re-read the Ingress and decide again
// instead of overwriting.

import { isIP } from 'node:net'
import { PatchStrategy, setHeaderOptions } from '@kubernetes/client-node'
import type { Logger } from '../log.ts'
import { Debouncer, type Clock } from './debouncer.ts'
import { keyOf, type Ingress, type LoadBalancerIngress, type Service } from './snapshot.ts'

export type { LoadBalancerIngress } from './snapshot.ts'

export interface PublishSettings {
  /** `namespace/name` of the Service whose load-balancer addresses to publish. */
  service?: string | undefined
  /** Fixed addresses (IPs or hostnames) to publish. */
  addresses?: string[] | undefined
}

/** The status to publish, or undefined when status is not managed. */
export function desiredAddresses(publish: PublishSettings, services: readonly Service[]): LoadBalancerIngress[] | undefined {
  if (publish.addresses && publish.addresses.length > 0) {
    return publish.addresses.map((a) => (isIP(a) ? { ip: a } : { hostname: a }))
  }
  if (publish.service) {
    const svc = services.find((s) => keyOf(s.metadata) === publish.service)
    // Whole entries: a load balancer may publish both an IP and a name
    // (external-dns reads the name), and the ports it serves.
    return normalize(svc?.status?.loadBalancer?.ingress)
  }
  return undefined
}

/**
 * The fields an Ingress status entry has (networking.k8s.io/v1
 * IngressLoadBalancerIngress: ip, hostname, ports), in a fixed order so two
 * equal lists serialise equally. A Service entry's `ipMode` has no Ingress
 * counterpart and is dropped.
 */
export function normalize(entries: readonly LoadBalancerIngress[] | undefined): LoadBalancerIngress[] {
  return (entries ?? []).map((e) => {
    const out: LoadBalancerIngress = {}
    if (e.ip) out.ip = e.ip
    if (e.hostname) out.hostname = e.hostname
    if (e.ports && e.ports.length > 0) {
      out.ports = e.ports.map((p) => ({ port: p.port, protocol: p.protocol, ...(p.error ? { error: p.error } : {}) }))
    }
    return out
  })
}

function sameStatus(ingress: Ingress, want: string): boolean {
  return JSON.stringify(normalize(ingress.status?.loadBalancer?.ingress)) === want
}

/** The two calls the loop makes: networking.k8s.io/v1 ingresses/status patch and get. */
export interface IngressStatusApi {
  patchNamespacedIngressStatus(param: { name: string; namespace: string; body: unknown }, options?: ReturnType<typeof setHeaderOptions>): Promise<Ingress>
  readNamespacedIngressStatus(param: { name: string; namespace: string }): Promise<Ingress>
}

/** Where the loop reads the current state from (the controller's caches). */
export interface StatusSource {
  /** Keys (`namespace/name`) of the Ingresses the last translation found ours. */
  owned(): ReadonlySet<string>
  ingress(key: string): Ingress | undefined
  services(): readonly Service[]
}

export interface StatusUpdaterOptions {
  api: IngressStatusApi
  log: Logger
  publish: PublishSettings
  source: StatusSource
  /**
   * Whether this replica may write status now (it leads: leader-election.ts).
   * A pass while it may not does nothing; the controller schedules a full
   * pass when it starts leading.
   */
  active?: () => boolean
  /** Requests in flight at most (ingress-nginx uses 10). */
  concurrency?: number
  /** Attempts per Ingress and pass (conflicts and errors). */
  maxAttempts?: number
  quietMs?: number
  maxWaitMs?: number
  /** Wait before a pass that retries failed Ingresses. */
  retryMs?: number
  clock?: Clock
}

export interface StatusStats {
  /** PATCH requests sent. */
  patches: number
  /** 409 Conflict answers (each followed by a fresh read). */
  conflicts: number
  /** Ingresses given up on in a pass (retried by a later pass). */
  failures: number
  /** Most requests that were in flight at once. */
  maxInFlight: number
  /** Passes run. */
  passes: number
}

interface Job {
  key: string
  /** Normalised JSON of the wanted entries. */
  want: string
  entries: LoadBalancerIngress[]
  /** For a clear: only if the status is still this (what we published). */
  onlyIf?: string
}

export class StatusUpdater {
  private readonly opts: Required<Omit<StatusUpdaterOptions, 'clock'>>
  private readonly debouncer: Debouncer
  /** Ingresses we have reconciled as ours, so we can clear them when they stop being ours. */
  private managed = new Set<string>()
  /** The addresses last published, for clearing only what we wrote. */
  private published: string | undefined
  /**
   * Our own writes the cache may not show yet: key → the resourceVersion we
   * patched from and what we wrote. Until the watch delivers our change the
   * cache holds the old object; without this a pass in that window would
   * send the same patch again (and get a 409).
   */
  private readonly inFlightWrites = new Map<string, { from: string; want: string }>()
  private running: Promise<void> | undefined
  private again = false
  /** The next pass looks at every Ingress... */
  private full = false
  /** ...or only at these, which changed. */
  private dirty = new Set<string>()
  private retryTimer: NodeJS.Timeout | undefined
  private stopped = false
  private inFlight = 0
  readonly stats: StatusStats = { patches: 0, conflicts: 0, failures: 0, maxInFlight: 0, passes: 0 }

  constructor(opts: StatusUpdaterOptions) {
    this.opts = { concurrency: 10, maxAttempts: 5, quietMs: 200, maxWaitMs: 1000, retryMs: 10_000, active: () => true, ...opts }
    this.debouncer = new Debouncer(() => void this.pass(), { quietMs: this.opts.quietMs, maxWaitMs: this.opts.maxWaitMs, clock: opts.clock })
  }

  /**
   * Something status depends on may have changed: a pass follows soon. With
   * `keys`, only those Ingresses changed (an event on each); without, look
   * at all of them (a rebuild, a new address).
   */
  schedule(keys?: readonly string[]): void {
    if (this.stopped) return
    if (keys === undefined) this.full = true
    else for (const k of keys) this.dirty.add(k)
    this.debouncer.trigger()
  }

  /** Resolves when no pass is running or due (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.running || this.debouncer.pending) {
      if (this.running) await this.running
      else await new Promise((r) => setTimeout(r, 20))
    }
  }

  /** Stops scheduling passes; a pass in progress ends after its requests in flight. */
  async stop(): Promise<void> {
    this.stopped = true
    this.debouncer.cancel()
    clearTimeout(this.retryTimer)
    await this.running
  }

  private pass(): Promise<void> {
    if (this.stopped) return Promise.resolve()
    if (this.running) {
      this.again = true
      return this.running
    }
    this.running = this.passOnce()
      .catch((err: unknown) => this.opts.log.error({ err }, 'updating ingress status failed'))
      .finally(() => {
        this.running = undefined
        if (this.again && !this.stopped) {
          this.again = false
          this.debouncer.trigger()
        }
      })
    return this.running
  }

  private async passOnce(): Promise<void> {
    const { source, publish } = this.opts
    const full = this.full
    const dirty = this.dirty
    this.full = false
    this.dirty = new Set()
    // A follower writes nothing and keeps no record of what it would have
    // written: when it starts leading it looks at every Ingress afresh.
    if (!this.opts.active()) return
    const desired = desiredAddresses(publish, source.services())
    if (desired === undefined) return
    this.stats.passes++
    const want = JSON.stringify(desired)
    const previous = this.published
    const owned = source.owned()
    const jobs: Job[] = []
    const consider = (key: string): void => {
      const ingress = source.ingress(key)
      if (!ingress) return
      if (owned.has(key)) {
        if (this.needsWrite(key, ingress, want)) jobs.push({ key, want, entries: desired })
        return
      }
      // No longer ours: clear what we published (and only that: another
      // controller may already have written its own status there).
      if (!this.managed.has(key)) return
      const ours = normalizedJson(ingress)
      if (ours !== '[]' && (ours === want || ours === previous)) jobs.push({ key, want: '[]', entries: [], onlyIf: ours })
    }
    if (full) {
      for (const key of owned) consider(key)
      for (const key of this.managed) if (!owned.has(key)) consider(key)
      this.managed = new Set(owned)
      this.published = want
    } else {
      for (const key of dirty) consider(key)
    }
    if (jobs.length === 0) return
    const started = performance.now()
    const before = { ...this.stats }
    // Only a request to look at everything (new addresses, a rebuild) cuts
    // a pass short; single Ingresses that changed meanwhile (the echo of our
    // own patches, mostly) wait for the next pass.
    const failedJobs = await this.runJobs(jobs, () => this.stopped || this.full || !this.opts.active())
    const failed = failedJobs.length
    // A clear that failed stays ours to clear: the retry pass looks at managed Ingresses.
    for (const job of failedJobs) if (job.onlyIf !== undefined) this.managed.add(job.key)
    // One line per pass: at 10,000 Ingresses a line per Ingress would flood the log.
    this.opts.log.info(
      {
        ingresses: jobs.length,
        patches: this.stats.patches - before.patches,
        conflicts: this.stats.conflicts - before.conflicts,
        failed,
        addresses: desired,
        duration_ms: Math.round(performance.now() - started),
      },
      'ingress status updated',
    )
    // Cut short by a full pass, which will look at the rest (and this pass's
    // own Ingresses again, in case it was a partial one).
    if (this.full && !full) for (const job of jobs) this.dirty.add(job.key)
    if (failed > 0 && !this.stopped) {
      clearTimeout(this.retryTimer)
      const retry = jobs.map((j) => j.key)
      this.retryTimer = setTimeout(() => this.schedule(full ? undefined : retry), this.opts.retryMs)
      this.retryTimer.unref()
    }
  }

  private needsWrite(key: string, ingress: Ingress, want: string): boolean {
    const rv = ingress.metadata.resourceVersion ?? ''
    const pending = this.inFlightWrites.get(key)
    if (pending && pending.from !== rv) this.inFlightWrites.delete(key) // the cache has caught up
    else if (pending && pending.want === want) return false
    return !sameStatus(ingress, want)
  }

  /**
   * Clears the status we published from every Ingress we own, as
   * ingress-nginx's --update-status-on-shutdown does: for the shutdown of
   * the last replica, so that `kubectl get ingress` stops showing an address
   * nothing serves any more. Stops the loop first. Returns how many
   * Ingresses were cleared.
   */
  async clearPublished(): Promise<number> {
    await this.stop()
    const { source, publish } = this.opts
    const desired = desiredAddresses(publish, source.services())
    if (desired === undefined) return 0
    const candidates = new Set([JSON.stringify(desired), this.published])
    const jobs: Job[] = []
    for (const key of source.owned()) {
      const ingress = source.ingress(key)
      if (!ingress) continue
      const current = normalizedJson(ingress)
      if (current !== '[]' && candidates.has(current)) jobs.push({ key, want: '[]', entries: [], onlyIf: current })
    }
    const before = this.stats.patches
    await this.runJobs(jobs, () => false)
    return Math.min(jobs.length, this.stats.patches - before)
  }

  /**
   * Runs the jobs with at most `concurrency` in flight; returns those that
   * failed. `abandon` is asked before each job: new inputs arrived, or the
   * loop is stopping, and the rest of this pass is not worth doing.
   */
  private async runJobs(jobs: Job[], abandon: () => boolean): Promise<Job[]> {
    let next = 0
    const failed: Job[] = []
    const worker = async (): Promise<void> => {
      while (next < jobs.length) {
        if (abandon()) return
        const job = jobs[next++]!
        if (!(await this.apply(job))) failed.push(job)
      }
    }
    await Promise.all(Array.from({ length: Math.min(this.opts.concurrency, jobs.length) }, worker))
    return failed
  }

  /** Brings one Ingress's status to `job.want`; false if it gave up. */
  private async apply(job: Job): Promise<boolean> {
    const { api, log, source, maxAttempts } = this.opts
    let ingress = source.ingress(job.key)
    for (let attempt = 1; ingress; attempt++) {
      const current = normalizedJson(ingress)
      if (current === job.want) return true
      if (job.onlyIf !== undefined && current !== job.onlyIf) return true // someone else's status now
      const name = ingress.metadata.name ?? ''
      const namespace = ingress.metadata.namespace ?? 'default'
      const from = ingress.metadata.resourceVersion ?? ''
      try {
        this.inFlight++
        this.stats.maxInFlight = Math.max(this.stats.maxInFlight, this.inFlight)
        this.stats.patches++
        await api.patchNamespacedIngressStatus(
          {
            name,
            namespace,
            body: { metadata: { resourceVersion: from }, status: { loadBalancer: { ingress: job.entries } } },
          },
          setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
        )
        this.inFlightWrites.set(job.key, { from, want: job.want })
        log.debug({ ingress: job.key, addresses: job.entries }, job.entries.length > 0 ? 'ingress status updated' : 'ingress status cleared')
        return true
      } catch (err) {
        const code = (err as { code?: number }).code
        if (code === 404) return true // deleted meanwhile: nothing to do
        if (attempt >= maxAttempts) {
          this.stats.failures++
          log.warn({ err: (err as Error).message, ingress: job.key, attempts: attempt }, 'could not update ingress status')
          return false
        }
        if (code === 409) {
          // Changed since we read it: read it again and decide again.
          this.stats.conflicts++
          log.debug({ ingress: job.key }, 'ingress status conflict; re-reading')
        } else {
          await new Promise((r) => setTimeout(r, 100 * 2 ** (attempt - 1)))
        }
        try {
          ingress = await api.readNamespacedIngressStatus({ name, namespace })
        } catch (readErr) {
          if ((readErr as { code?: number }).code === 404) return true
        }
      } finally {
        this.inFlight--
      }
    }
    return true
  }
}

function normalizedJson(ingress: Ingress): string {
  return JSON.stringify(normalize(ingress.status?.loadBalancer?.ingress))
}
