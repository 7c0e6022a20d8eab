// The Gateway API side of the controller (docs/gateway-api.md): caches of
// GatewayClasses, Gateways, HTTPRoutes, ReferenceGrants and Namespaces,
// and on any change (debounced) the status of the ones that are ours,
// computed by gateway-status.ts and written with merge patches.
//
// It runs only with GATEWAY_API=true, and only while the CRDs are served:
// it asks for GatewayClasses once at start and then every minute until the
// API group answers, so the CRDs can be installed after NanoProxy and a
// cluster without them loses nothing (the Ingress side never waits for it).
//
// The data plane for Gateways is not built yet (docs/gateway-api.md, "Data
// plane"): no Gateway has an address, so Gateways say Programmed=False
// (AddressNotAssigned) — the truth — while GatewayClass, listener and route
// conditions are already what the spec asks for.

import { CoreV1Api, CustomObjectsApi, PatchStrategy, setHeaderOptions, type KubeConfig } from '@kubernetes/client-node'
import type { Logger } from '../log.ts'
import { Debouncer } from './debouncer.ts'
import { GATEWAY_GROUP, type Condition, type Gateway, type GatewayClass, type HTTPRoute, type Namespace, type ReferenceGrant, type RouteParentStatus } from './gateway-objects.ts'
import { gatewayStatuses, withTransitionTimes } from './gateway-status.ts'
import { ResourceWatcher, type ListResult } from './resource-watcher.ts'
import type { Secret, Service } from './snapshot.ts'

const VERSION = 'v1'
/**
 * The features claimed in GatewayClass status.supportedFeatures: the core
 * features of the GATEWAY-HTTP profile, without which the conformance
 * suite does not start. Extended features are added only once they pass.
 */
export const SUPPORTED_FEATURES = ['Gateway', 'HTTPRoute', 'ReferenceGrant'] as const

export interface GatewayControllerOptions {
  kubeConfig: KubeConfig
  log: Logger
  controllerName: string
  /** The Ingress side's caches, shared (Services for backendRefs, TLS Secrets for certificateRefs). */
  source: { services: () => Service[]; secrets: () => Secret[] }
  resyncMs?: number
  /** How often to look for the CRDs while they are not served (60 s). */
  crdPollMs?: number
  debounceMs?: number
  now?: () => string
}

export class GatewayController {
  private readonly opts: GatewayControllerOptions
  private readonly custom: CustomObjectsApi
  private watchers: {
    classes: ResourceWatcher<GatewayClass>
    gateways: ResourceWatcher<Gateway>
    routes: ResourceWatcher<HTTPRoute>
    grants: ResourceWatcher<ReferenceGrant>
    namespaces: ResourceWatcher<Namespace>
  } | undefined
  private readonly debouncer: Debouncer
  private poll: NodeJS.Timeout | undefined
  private stopped = false
  private running: Promise<void> | undefined
  private again = false
  /** Status patches sent (for logs and tests). */
  patches = 0

  constructor(opts: GatewayControllerOptions) {
    this.opts = opts
    this.custom = opts.kubeConfig.makeApiClient(CustomObjectsApi)
    this.debouncer = new Debouncer(() => void this.reconcile(), { quietMs: opts.debounceMs ?? 200, maxWaitMs: 1000 })
  }

  /** Whether the CRDs are served and the caches are running. */
  get active(): boolean {
    return this.watchers !== undefined
  }

  get synced(): boolean {
    return this.watchers !== undefined && Object.values(this.watchers).every((w) => w.synced)
  }

  start(): void {
    void this.probe()
  }

  async stop(): Promise<void> {
    this.stopped = true
    clearTimeout(this.poll)
    this.debouncer.cancel()
    for (const w of Object.values(this.watchers ?? {})) w.stop()
    await this.running
  }

  /** A change on the Ingress side that may matter here (a Service or Secret). */
  sourceChanged(): void {
    if (this.watchers) this.debouncer.trigger()
  }

  private async probe(): Promise<void> {
    if (this.stopped) return
    try {
      await this.custom.listClusterCustomObject({ group: GATEWAY_GROUP, version: VERSION, plural: 'gatewayclasses', limit: 1 })
    } catch (err) {
      const code = (err as { code?: number }).code
      this.opts.log.info({ code, retry_ms: this.opts.crdPollMs ?? 60_000 }, code === 404 ? 'Gateway API CRDs not installed; looking again later' : 'cannot list GatewayClasses; looking again later')
      this.poll = setTimeout(() => void this.probe(), this.opts.crdPollMs ?? 60_000)
      this.poll.unref()
      return
    }
    this.opts.log.info('Gateway API CRDs found: watching GatewayClasses, Gateways, HTTPRoutes, ReferenceGrants')
    this.startWatchers()
  }

  private startWatchers(): void {
    const { kubeConfig, log, resyncMs } = this.opts
    const onChange = (): void => this.debouncer.trigger()
    const custom = <T>(plural: string, namespaced: boolean): ResourceWatcher<T & { metadata?: object }> =>
      new ResourceWatcher<T & { metadata?: object }>({
        kind: plural,
        kubeConfig,
        log,
        onChange,
        resyncMs,
        list: () =>
          (namespaced
            ? this.custom.listCustomObjectForAllNamespaces({ group: GATEWAY_GROUP, version: VERSION, resourcePlural: plural })
            : this.custom.listClusterCustomObject({ group: GATEWAY_GROUP, version: VERSION, plural })) as Promise<ListResult<T & { metadata?: object }>>,
        watchPath: `/apis/${GATEWAY_GROUP}/${VERSION}/${plural}`,
      })
    const core = kubeConfig.makeApiClient(CoreV1Api)
    this.watchers = {
      classes: custom<GatewayClass>('gatewayclasses', false),
      gateways: custom<Gateway>('gateways', true),
      routes: custom<HTTPRoute>('httproutes', true),
      grants: custom<ReferenceGrant>('referencegrants', true),
      // allowedRoutes.namespaces.from: Selector matches namespace labels.
      namespaces: new ResourceWatcher<Namespace>({ kind: 'namespaces', kubeConfig, log, onChange, resyncMs, list: () => core.listNamespace() as Promise<ListResult<Namespace>>, watchPath: '/api/v1/namespaces' }),
    }
    for (const w of Object.values(this.watchers)) w.start()
  }

  private async reconcile(): Promise<void> {
    if (!this.synced || this.stopped) return
    if (this.running) {
      this.again = true
      return
    }
    this.running = this.reconcileOnce()
      .catch((err: unknown) => this.opts.log.error({ err }, 'publishing Gateway API status failed'))
      .finally(() => {
        this.running = undefined
        if (this.again) {
          this.again = false
          this.debouncer.trigger()
        }
      })
    await this.running
  }

  private async reconcileOnce(): Promise<void> {
    const w = this.watchers!
    const now = this.opts.now?.() ?? new Date().toISOString().replace(/\.\d+Z$/, 'Z')
    const statuses = gatewayStatuses(
      {
        gatewayClasses: w.classes.list(),
        gateways: w.gateways.list(),
        httpRoutes: w.routes.list(),
        referenceGrants: w.grants.list(),
        namespaces: w.namespaces.list(),
        services: this.opts.source.services(),
        secrets: this.opts.source.secrets(),
      },
      // No data plane for Gateways yet: no addresses (see the header).
      { controllerName: this.opts.controllerName, supportedFeatures: SUPPORTED_FEATURES, addresses: new Map() },
    )
    const jobs: Promise<void>[] = []
    for (const [name, desired] of statuses.gatewayClasses) {
      const current = w.classes.get(`default/${name}`)
      if (!current) continue
      if (same(current.status?.conditions, desired.conditions) && JSON.stringify(current.status?.supportedFeatures ?? []) === JSON.stringify(desired.supportedFeatures)) continue
      const status = { ...desired, conditions: withTransitionTimes(desired.conditions, current.status?.conditions, now) }
      jobs.push(this.patch('gatewayclasses', undefined, name, current.metadata.resourceVersion, status))
    }
    for (const [key, desired] of statuses.gateways) {
      const current = w.gateways.get(key)
      if (!current) continue
      const cur = current.status
      const unchanged =
        same(cur?.conditions, desired.conditions) &&
        JSON.stringify(cur?.addresses ?? []) === JSON.stringify(desired.addresses ?? []) &&
        (cur?.listeners ?? []).length === desired.listeners.length &&
        desired.listeners.every((l, i) => {
          const c = cur!.listeners[i]!
          return c.name === l.name && c.attachedRoutes === l.attachedRoutes && JSON.stringify(c.supportedKinds) === JSON.stringify(l.supportedKinds) && same(c.conditions, l.conditions)
        })
      if (unchanged) continue
      const status = {
        ...desired,
        conditions: withTransitionTimes(desired.conditions, cur?.conditions, now),
        listeners: desired.listeners.map((l) => ({ ...l, conditions: withTransitionTimes(l.conditions, cur?.listeners?.find((c) => c.name === l.name)?.conditions, now) })),
      }
      const [ns, name] = split(key)
      jobs.push(this.patch('gateways', ns, name, current.metadata.resourceVersion, status))
    }
    for (const route of w.routes.list()) {
      const key = `${route.metadata.namespace}/${route.metadata.name}`
      const ours = statuses.httpRoutes.get(key) ?? []
      const current = route.status?.parents ?? []
      const mine = current.filter((p) => p.controllerName === this.opts.controllerName)
      if (mine.length === ours.length && ours.every((p, i) => JSON.stringify(p.parentRef) === JSON.stringify(mine[i]!.parentRef) && same(mine[i]!.conditions, p.conditions))) continue
      // Entries of other controllers are kept as they are (merge patch replaces the list).
      const parents: RouteParentStatus[] = [
        ...current.filter((p) => p.controllerName !== this.opts.controllerName),
        ...ours.map((p) => ({ ...p, conditions: withTransitionTimes(p.conditions, mine.find((m) => JSON.stringify(m.parentRef) === JSON.stringify(p.parentRef))?.conditions, now) })),
      ]
      const [ns, name] = split(key)
      jobs.push(this.patch('httproutes', ns, name, route.metadata.resourceVersion, { parents }))
    }
    await Promise.all(jobs)
  }

  /** Merge patch of a status subresource; resourceVersion makes a concurrent change fail with 409, and its watch event brings a new try. */
  private async patch(plural: string, namespace: string | undefined, name: string, resourceVersion: string | undefined, status: unknown): Promise<void> {
    const body = { metadata: { resourceVersion }, status }
    const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch)
    try {
      if (namespace === undefined) await this.custom.patchClusterCustomObjectStatus({ group: GATEWAY_GROUP, version: VERSION, plural, name, body }, merge)
      else await this.custom.patchNamespacedCustomObjectStatus({ group: GATEWAY_GROUP, version: VERSION, namespace, plural, name, body }, merge)
      this.patches++
      this.opts.log.debug({ kind: plural, namespace, name }, 'status written')
    } catch (err) {
      const code = (err as { code?: number }).code
      if (code === 409 || code === 404) return // changed or gone meanwhile: its watch event brings the next try
      this.opts.log.warn({ kind: plural, namespace, name, code, err: (err as Error).message }, 'writing status failed')
      this.debouncer.trigger()
    }
  }
}

/** Conditions equal apart from lastTransitionTime. */
function same(current: readonly Condition[] | undefined, desired: readonly Omit<Condition, 'lastTransitionTime'>[]): boolean {
  if ((current ?? []).length !== desired.length) return false
  return desired.every((d, i) => {
    const c = current![i]!
    return c.type === d.type && c.status === d.status && c.reason === d.reason && c.message === d.message && c.observedGeneration === d.observedGeneration
  })
}

function split(key: string): [string, string] {
  const i = key.indexOf('/')
  return [key.slice(0, i), key.slice(i + 1)]
}
