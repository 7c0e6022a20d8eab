// The controller loop: caches kept current by watches, and on any change
// that matters (after a bounded debounce) translate → write → report. Ingress
// status has its own loop (status-updater.ts), told after each rebuild and on
// each event; config never waits for it.
//
// With several replicas every one of them watches and writes its own pod's
// config file, but only the leader (leader-election.ts) sets Ingress status
// and sends Events: N replicas look like one controller to the API server.
//
// Nothing is written before every cache has completed its first list: a
// controller that restarts must not hand the proxy an empty config just
// because it has not finished reading the cluster yet.

import { CoreV1Api, DiscoveryV1Api, NetworkingV1Api, type KubeConfig } from '@kubernetes/client-node'
import type { Logger } from '../log.ts'
import { Histogram } from '../metrics/histogram.ts'
import { serializeConfigJson, writeIfChanged } from './config-writer.ts'
import { ChangeFilter } from './change-filter.ts'
import { Debouncer, type Clock } from './debouncer.ts'
import { EventRecorder } from './event-recorder.ts'
import { ResourceWatcher } from './resource-watcher.ts'
import { keyOf, type EndpointSlice, type Ingress, type IngressClass, type Secret, type Service, type TranslateOptions } from './snapshot.ts'
import { CertificateFiles } from './certificate-files.ts'
import { defaultSecretProblem, TLS_SECRET_TYPE, translateTls } from './tls-translate.ts'
import { ingressStatusClient } from './ingress-status-client.ts'
import { otherReadyReplicas, type PodIdentity } from './replica-peers.ts'
import { StatusUpdater, type IngressStatusApi, type PublishSettings } from './status-updater.ts'
import { translate } from './translate.ts'

export interface ControllerOptions extends TranslateOptions {
  kubeConfig: KubeConfig
  log: Logger
  /** The proxy's config file (shared volume). */
  configFile: string
  /** Only this namespace's Ingresses and Services; undefined for all. */
  namespace?: string | undefined
  publish: PublishSettings
  /** Quiet time after the last change before a rebuild (200 ms). */
  debounceMs?: number
  /** Longest a change waits for its rebuild while changes keep coming (1 s). */
  maxDelayMs?: number
  resyncMs?: number
  clock?: Clock
  /**
   * Whether this replica starts as the one that writes status and Events.
   * With leader election it starts as a follower (false) and is told by
   * setLeading(); without, it is the only one (true).
   */
  leading?: boolean
  /** Told when a Service or TLS Secret changes (the Gateway API side reads the same caches). */
  onSourceChange?: () => void
}

/** Quiet time and ceiling of the rebuild debounce; see debouncer.ts and docs/kubernetes.md. */
export const DEBOUNCE_MS = 200
export const MAX_DELAY_MS = 1000
/** Status patches in flight at most (ingress-nginx uses 10). */
const STATUS_CONCURRENCY = 10

export class IngressController {
  private readonly opts: ControllerOptions
  private readonly ingresses: ResourceWatcher<Ingress>
  private readonly classes: ResourceWatcher<IngressClass>
  private readonly services: ResourceWatcher<Service>
  /** TLS Secrets only (field selector on `type`): the controller never caches other Secrets. */
  private readonly secrets: ResourceWatcher<Secret>
  private readonly certificateFiles: CertificateFiles
  private defaultSecretProblem: string | undefined
  private readonly endpointSlices: ResourceWatcher<EndpointSlice>
  private readonly events: EventRecorder
  private readonly status: StatusUpdater
  private readonly debouncer: Debouncer
  private readonly filter: ChangeFilter
  /** Keys of the Ingresses the last translation found ours, for the status loop. */
  private owned: ReadonlySet<string> = new Set()
  private running: Promise<void> | undefined
  private again = false
  private leadingNow: boolean
  /** Set after the first config write: the readiness signal. */
  written = false
  writes = 0
  /** Rebuilds (translate, write, report) by how long they took (metrics). */
  readonly syncDuration = new Histogram()

  constructor(opts: ControllerOptions) {
    this.opts = opts
    this.leadingNow = opts.leading ?? true
    const { kubeConfig, log, namespace, resyncMs } = opts
    const net = kubeConfig.makeApiClient(NetworkingV1Api)
    const core = kubeConfig.makeApiClient(CoreV1Api)
    this.debouncer = new Debouncer(() => void this.rebuild(), {
      quietMs: opts.debounceMs ?? DEBOUNCE_MS,
      maxWaitMs: opts.maxDelayMs ?? MAX_DELAY_MS,
      clock: opts.clock,
    })
    this.filter = new ChangeFilter(opts.controllerName)
    const onChange = (relevant: boolean): void => {
      if (relevant) this.schedule()
    }
    const ns = namespace ? `/namespaces/${namespace}` : ''
    this.ingresses = new ResourceWatcher<Ingress>({
      kind: 'ingresses',
      kubeConfig,
      log,
      onChange: (relevant, key) => {
        onChange(relevant)
        // Status looks at this one Ingress again (someone may have changed
        // its status); a rebuild makes it look at all of them.
        if (key !== undefined && this.written && !relevant) this.status.schedule([key])
      },
      resyncMs,
      matters: (old, next) => this.filter.ingressMatters(old, next),
      list: () => (namespace ? net.listNamespacedIngress({ namespace }) : net.listIngressForAllNamespaces()) as Promise<{ items: Ingress[] }>,
      watchPath: `/apis/networking.k8s.io/v1${ns}/ingresses`,
    })
    this.classes = new ResourceWatcher<IngressClass>({
      kind: 'ingressclasses',
      kubeConfig,
      log,
      onChange,
      resyncMs,
      list: () => net.listIngressClass() as Promise<{ items: IngressClass[] }>,
      watchPath: '/apis/networking.k8s.io/v1/ingressclasses',
    })
    this.services = new ResourceWatcher<Service>({
      kind: 'services',
      kubeConfig,
      log,
      onChange: (relevant, key) => {
        onChange(relevant)
        opts.onSourceChange?.()
        // The publish Service's status is what Ingress status copies.
        if (key !== undefined && key === opts.publish.service && this.written) this.status.schedule()
      },
      resyncMs,
      matters: (old, next) => this.filter.serviceMatters(old, next),
      list: () => (namespace ? core.listNamespacedService({ namespace }) : core.listServiceForAllNamespaces()) as Promise<{ items: Service[] }>,
      watchPath: `/api/v1${ns}/services`,
    })
    const tlsOnly = `type=${TLS_SECRET_TYPE}`
    this.secrets = new ResourceWatcher<Secret>({
      kind: 'secrets',
      kubeConfig,
      log,
      onChange: (relevant) => {
        onChange(relevant)
        opts.onSourceChange?.()
      },
      resyncMs,
      list: () =>
        (namespace
          ? core.listNamespacedSecret({ namespace, fieldSelector: tlsOnly })
          : core.listSecretForAllNamespaces({ fieldSelector: tlsOnly })) as Promise<{ items: Secret[] }>,
      // The watch client appends its own parameters to this query.
      watchPath: `/api/v1${ns}/secrets?fieldSelector=${encodeURIComponent(tlsOnly)}`,
    })
    this.certificateFiles = new CertificateFiles(opts.configFile)
    const discovery = kubeConfig.makeApiClient(DiscoveryV1Api)
    // The endpoints of the Services our Ingresses name (endpoints.ts). A
    // rolling update is a burst of slice events: the debounce makes it one
    // write, or one a second while it lasts.
    this.endpointSlices = new ResourceWatcher<EndpointSlice>({
      kind: 'endpointslices',
      kubeConfig,
      log,
      onChange,
      resyncMs,
      matters: (old, next) => this.filter.endpointSliceMatters(old, next),
      list: () =>
        (namespace ? discovery.listNamespacedEndpointSlice({ namespace }) : discovery.listEndpointSliceForAllNamespaces()) as Promise<{ items: EndpointSlice[] }>,
      watchPath: `/apis/discovery.k8s.io/v1${ns}/endpointslices`,
    })
    const active = (): boolean => this.leadingNow
    this.events = new EventRecorder(kubeConfig, log, active)
    this.status = new StatusUpdater({
      active,
      api: ingressStatusClient(kubeConfig, STATUS_CONCURRENCY) ?? (net as unknown as IngressStatusApi),
      concurrency: STATUS_CONCURRENCY,
      log,
      publish: opts.publish,
      source: {
        owned: () => this.owned,
        ingress: (key) => this.ingresses.get(key),
        services: () => this.services.list(),
      },
    })
  }

  start(): void {
    this.ingresses.start()
    this.classes.start()
    this.services.start()
    this.secrets.start()
    this.endpointSlices.start()
  }

  async stop(): Promise<void> {
    this.debouncer.cancel()
    this.ingresses.stop()
    this.classes.stop()
    this.services.stop()
    this.secrets.stop()
    this.endpointSlices.stop()
    await this.running
    await this.status.stop()
  }

  /** Whether this replica writes Ingress status and sends Events. */
  get leading(): boolean {
    return this.leadingNow
  }

  /**
   * This replica starts or stops leading. A new leader publishes status from
   * its own caches at once (a full pass: the old leader may have died with
   * a change unpublished) and reports the problems it knows of.
   */
  setLeading(leading: boolean): void {
    if (leading === this.leadingNow) return
    this.leadingNow = leading
    if (!leading || !this.written) return // not written yet: the first rebuild does both
    this.status.schedule()
    void this.events.reportAgain().catch((err: unknown) => this.opts.log.error({ err }, 'reporting problems failed'))
  }

  /**
   * On shutdown (after stop()): clear the Ingress status this controller
   * published, if no other replica is left to serve it. `me` is this pod;
   * without it, or when the pods cannot be read, nothing is cleared: a
   * status left behind is better than an Ingress without an address while
   * other replicas still serve it.
   */
  async clearStatusIfLastReplica(me: PodIdentity | undefined): Promise<void> {
    const { log } = this.opts
    if (!this.written) return
    // Only the leader: a follower leaves status to it (it still leads until
    // it releases the lease, after this).
    if (!this.leadingNow) return
    if (!me) {
      log.info('not running in a pod (no POD_NAME/POD_NAMESPACE): ingress status left as it is')
      return
    }
    try {
      const others = await otherReadyReplicas(this.opts.kubeConfig.makeApiClient(CoreV1Api), me)
      if (others.length > 0) {
        log.info({ replicas: others }, 'other replicas are running: ingress status left to them')
        return
      }
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'cannot tell whether other replicas are running: ingress status left as it is')
      return
    }
    const cleared = await this.status.clearPublished()
    log.info({ ingresses: cleared }, 'last replica: ingress status cleared')
  }

  /** The Services as last seen (shared with the Gateway API side). */
  serviceList(): Service[] {
    return this.services.list()
  }

  /** The TLS Secrets as last seen (shared with the Gateway API side). */
  secretList(): Secret[] {
    return this.secrets.list()
  }

  /** Counters of the status loop (for logs and tests). */
  get statusStats(): StatusUpdater['stats'] {
    return this.status.stats
  }

  /** Consecutive failures of each watch (0 when healthy), for /readyz. */
  get watchFailures(): Record<string, number> {
    return {
      ingresses: this.ingresses.failures,
      ingressclasses: this.classes.failures,
      services: this.services.failures,
      secrets: this.secrets.failures,
      endpointslices: this.endpointSlices.failures,
    }
  }

  /** Every cache has completed its first list. */
  get synced(): boolean {
    return this.ingresses.synced && this.classes.synced && this.services.synced && this.secrets.synced && this.endpointSlices.synced
  }

  /**
   * Coalesces bursts of changes (a `kubectl apply` of many objects) into one
   * rebuild, without letting a steady stream of changes hold it back for
   * more than the debounce's maximum.
   */
  private schedule(): void {
    this.debouncer.trigger()
  }

  private async rebuild(): Promise<void> {
    if (!this.synced) return
    if (this.running) {
      this.again = true
      return
    }
    this.running = this.rebuildOnce()
      .catch((err: unknown) => this.opts.log.error({ err }, 'rebuilding the config failed'))
      .finally(() => {
        this.running = undefined
        if (this.again) {
          this.again = false
          this.schedule()
        }
      })
    await this.running
  }

  private async rebuildOnce(): Promise<void> {
    const { log, configFile } = this.opts
    const ingresses = this.ingresses.list()
    const services = this.services.list()
    const ingressClasses = this.classes.list()
    const endpointSlices = this.endpointSlices.list()
    const started = performance.now()
    const { config, diagnostics, owned } = translate({ ingresses, ingressClasses, services, endpointSlices }, this.opts)
    this.filter.rebuilt(ingressClasses, owned)
    const secrets = this.secrets.list()
    const tls = translateTls(owned, secrets, this.opts.defaultTlsSecret, this.opts.hsts)
    if (tls.certificates.length > 0) config.certificates = tls.certificates
    diagnostics.push(...tls.diagnostics)
    this.reportDefaultSecret(secrets)
    // Certificate files first, then the config that names them, then the
    // files nothing names any more (certificate-files.ts).
    await this.certificateFiles.write(tls.pairs)
    const changed = await writeIfChanged(configFile, serializeConfigJson(config))
    await this.certificateFiles.prune(tls.pairs)
    if (!changed) log.debug({ duration_ms: Math.round((performance.now() - started) * 100) / 100 }, 'config unchanged')
    if (changed) {
      this.writes++
      log.info(
        {
          config: configFile,
          ingresses: owned.length,
          upstreams: config.upstreams.length,
          rules: config.rules.length,
          certificates: tls.certificates.length,
          duration_ms: Math.round((performance.now() - started) * 100) / 100,
        },
        'config written',
      )
    }
    this.written = true
    this.owned = new Set(owned.map((i) => keyOf(i.metadata)))
    this.status.schedule()
    await this.events.report(diagnostics, ingresses)
    this.syncDuration.observe((performance.now() - started) / 1000)
  }

  /** What /metrics reads (controller-metrics.ts). */
  get counts(): { writes: number; eventsSent: number; eventsFailed: number; watches: { kind: string; restarts: number; cached: number }[] } {
    const watchers = [this.ingresses, this.classes, this.services, this.secrets, this.endpointSlices]
    const kinds = ['ingresses', 'ingressclasses', 'services', 'secrets', 'endpointslices']
    return {
      writes: this.writes,
      eventsSent: this.events.sent,
      eventsFailed: this.events.failed,
      watches: watchers.map((w, i) => ({ kind: kinds[i]!, restarts: w.restarts, cached: w.size })),
    }
  }

  /** A DEFAULT_TLS_SECRET that cannot be used has no Ingress to carry an Event: it is logged, once per problem. */
  private reportDefaultSecret(secrets: readonly Secret[]): void {
    const name = this.opts.defaultTlsSecret
    const problem = name === undefined ? undefined : defaultSecretProblem(secrets, name)
    if (problem !== undefined && problem !== this.defaultSecretProblem) this.opts.log.warn({ secret: name }, problem)
    this.defaultSecretProblem = problem
  }
}
