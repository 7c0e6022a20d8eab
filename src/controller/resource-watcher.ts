// A cache of one kind of Kubernetes object, kept current by list + watch.
//
// @kubernetes/client-node's informer stops for good on any watch error but
// 410 Gone and never relists (kubernetes-client/javascript #596, #958), so
// this does the loop itself, the way client-go's reflector does:
// - list, remember the list's resourceVersion, then watch from it;
// - a watch the server ends (timeoutSeconds) is resumed from the last
//   resourceVersion seen (bookmarks keep it fresh on quiet kinds);
// - 410 Gone (the version was compacted away) → list again;
// - any other failure → retry with exponential backoff and jitter;
// - a watch silent for longer than the server's timeout plus a margin is
//   presumed stalled (a half-dead TCP connection) and restarted;
// - after a failure the next watch starts from a fresh list, so changes made
//   while the API server was unreachable are caught up;
// - every `resyncMs` a full relist repairs whatever drift a watch missed.

import { Watch, type KubeConfig } from '@kubernetes/client-node'
import type { Logger } from '../log.ts'
import { keyOf, type ObjectMeta } from './snapshot.ts'

export interface ListResult<T> {
  items: T[]
  metadata?: { resourceVersion?: string }
}

export interface ResourceWatcherOptions<T> {
  /** For logs: `ingresses`, `services`... */
  kind: string
  kubeConfig: KubeConfig
  list: () => Promise<ListResult<T>>
  /** API path to watch, e.g. /apis/networking.k8s.io/v1/ingresses. */
  watchPath: string
  /**
   * Called after the cache changed. `relevant` is what `matters` said of
   * the change (always true after a list): false when it cannot change the
   * config, so no rebuild is needed.
   */
  onChange: (relevant: boolean, key: string | undefined) => void
  /**
   * Whether a change from `old` to `next` (either undefined for an addition
   * or a deletion) can change the config. Without it every change can.
   */
  matters?: ((old: T | undefined, next: T | undefined) => boolean) | undefined
  log: Logger
  resyncMs?: number
  /** Server-side watch timeout (the API server closes the watch after this). */
  watchTimeoutSeconds?: number
  maxBackoffMs?: number
}

interface KubeObjectLike {
  metadata?: ObjectMeta
}

export class ResourceWatcher<T extends KubeObjectLike> {
  private readonly opts: Required<Omit<ResourceWatcherOptions<T>, 'matters'>> & Pick<ResourceWatcherOptions<T>, 'matters'>
  private readonly items = new Map<string, T>()
  private resourceVersion: string | undefined
  private stopped = false
  private abort: AbortController | undefined
  private wake: (() => void) | undefined
  private needList = true
  private resyncTimer: NodeJS.Timeout | undefined
  /** True once the first list has completed. */
  synced = false
  /** Failures in a row, for backoff and for /readyz's detail. */
  failures = 0
  /** Watches restarted after a failure, since start (metrics). */
  restarts = 0

  constructor(opts: ResourceWatcherOptions<T>) {
    this.opts = {
      ...opts,
      // Traefik relists every 10 minutes; the server ends each watch after 5.
      resyncMs: opts.resyncMs ?? 10 * 60_000,
      watchTimeoutSeconds: opts.watchTimeoutSeconds ?? 300,
      maxBackoffMs: opts.maxBackoffMs ?? 30_000,
    }
  }

  /** The objects as last seen, in no particular order. */
  list(): T[] {
    return [...this.items.values()]
  }

  /** Objects in the cache. */
  get size(): number {
    return this.items.size
  }

  /** One object by `namespace/name` as last seen. */
  get(key: string): T | undefined {
    return this.items.get(key)
  }

  start(): void {
    this.resyncTimer = setInterval(() => this.relist('periodic resync'), this.opts.resyncMs)
    this.resyncTimer.unref()
    void this.run()
  }

  stop(): void {
    this.stopped = true
    clearInterval(this.resyncTimer)
    this.abort?.abort()
    this.wake?.()
  }

  /** Forces a fresh list (and a new watch) as soon as possible. */
  relist(reason: string): void {
    this.opts.log.debug({ kind: this.opts.kind, reason }, 'relisting')
    this.needList = true
    this.abort?.abort()
    this.wake?.()
  }

  private async run(): Promise<void> {
    const { kind, log } = this.opts
    while (!this.stopped) {
      try {
        if (this.needList) await this.fullList()
        await this.watchOnce()
        this.failures = 0
      } catch (err) {
        if (this.stopped) break
        // Whatever happened while the watch was down (the API server
        // restarting, objects deleted meanwhile), a fresh list catches up.
        this.needList = true
        this.failures++
        this.restarts++
        const delay = Math.min(this.opts.maxBackoffMs, 250 * 2 ** Math.min(this.failures, 10)) * (0.5 + Math.random() / 2)
        log.warn({ kind, err: errorSummary(err), retry_ms: Math.round(delay), failures: this.failures }, 'watch failed; retrying')
        await this.sleep(delay)
      }
    }
  }

  private async fullList(): Promise<void> {
    const result = await this.opts.list()
    this.items.clear()
    for (const item of result.items) {
      if (item.metadata) this.items.set(keyOf(item.metadata), slim(item))
    }
    this.resourceVersion = result.metadata?.resourceVersion
    this.needList = false
    const first = !this.synced
    this.synced = true
    this.opts.log.debug({ kind: this.opts.kind, count: this.items.size, resource_version: this.resourceVersion }, 'listed')
    if (first) this.opts.log.info({ kind: this.opts.kind, count: this.items.size }, 'initial list complete')
    this.opts.onChange(true, undefined)
  }

  /** One watch request, from the current resourceVersion until it ends. */
  private watchOnce(): Promise<void> {
    const { kubeConfig, watchPath, watchTimeoutSeconds } = this.opts
    return new Promise<void>((resolve, reject) => {
      let settled = false
      const finish = (err?: unknown): void => {
        if (settled) return
        settled = true
        this.wake = undefined
        if (err && !this.needList && !this.stopped) reject(err instanceof Error ? err : new Error(errorSummary(err)))
        else resolve()
      }
      this.wake = () => finish()
      const watch = new Watch(kubeConfig)
      // The client's inactivity timeout (30 s by default) would cut quiet
      // watches long before the server ends them. Allow the server's timeout
      // plus a margin: a watch silent for that long, not even sending a
      // bookmark, is a dead connection and is restarted.
      ;(watch as unknown as { requestTimeoutMs: number }).requestTimeoutMs = (watchTimeoutSeconds + 60) * 1000
      watch
        .watch(
          watchPath,
          { resourceVersion: this.resourceVersion, allowWatchBookmarks: true, timeoutSeconds: watchTimeoutSeconds },
          (phase: string, obj: T & { code?: number; message?: string }) => this.onEvent(phase, obj),
          (err: unknown) => finish(err ?? undefined),
        )
        .then(
          (controller) => {
            this.abort = controller
            if (settled) controller.abort()
          },
          (err: unknown) => finish(err),
        )
    })
  }

  private onEvent(phase: string, obj: T & { code?: number; message?: string }): void {
    const rv = obj.metadata?.resourceVersion
    const key = obj.metadata ? keyOf(obj.metadata) : undefined
    const old = key === undefined ? undefined : this.items.get(key)
    let next: T | undefined
    switch (phase) {
      case 'ADDED':
      case 'MODIFIED':
        next = obj
        if (key !== undefined) this.items.set(key, slim(obj))
        break
      case 'DELETED':
        if (key !== undefined) this.items.delete(key)
        break
      case 'BOOKMARK':
        if (rv) this.resourceVersion = rv
        return
      case 'ERROR':
        // 410 Gone: our resourceVersion is too old to resume from.
        this.opts.log.info({ kind: this.opts.kind, code: obj.code, reason: obj.message }, 'watch expired; relisting')
        this.relist(`watch error ${obj.code ?? ''}`)
        return
      default:
        return
    }
    if (rv) this.resourceVersion = rv
    this.opts.onChange(this.opts.matters?.(old, next) ?? true, key)
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms)
      this.wake = () => {
        clearTimeout(t)
        resolve()
      }
    })
  }
}

/**
 * Drops `metadata.managedFields` (server-side apply bookkeeping, often the
 * largest part of a small object) before caching: nothing here reads it,
 * and at 10,000 Ingresses it is tens of megabytes. controller-runtime's
 * caches do the same (cache.TransformStripManagedFields).
 */
function slim<T extends KubeObjectLike>(obj: T): T {
  if (obj.metadata && 'managedFields' in obj.metadata) delete (obj.metadata as { managedFields?: unknown }).managedFields
  return obj
}

function errorSummary(err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${err.message}`
  return String(err)
}
