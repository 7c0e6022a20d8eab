// The controller loop: caches kept current by watches, and on any change
// (after a short debounce) translate → write → report → update status.
//
// Nothing is written before every cache has completed its first list: a
// controller that restarts must not hand the proxy an empty config just
// because it has not finished reading the cluster yet.

import { CoreV1Api, NetworkingV1Api, type KubeConfig } from '@kubernetes/client-node'
import type { Logger } from '../log.ts'
import { serializeConfig, writeIfChanged } from './config-writer.ts'
import { EventRecorder } from './event-recorder.ts'
import { ResourceWatcher } from './resource-watcher.ts'
import type { Ingress, IngressClass, Service, TranslateOptions } from './snapshot.ts'
import { StatusUpdater, type PublishSettings } from './status-updater.ts'
import { translate } from './translate.ts'

export interface ControllerOptions extends TranslateOptions {
  kubeConfig: KubeConfig
  log: Logger
  /** The proxy's config file (shared volume). */
  configFile: string
  /** Only this namespace's Ingresses and Services; undefined for all. */
  namespace?: string | undefined
  publish: PublishSettings
  debounceMs?: number
  resyncMs?: number
}

export class IngressController {
  private readonly opts: ControllerOptions
  private readonly ingresses: ResourceWatcher<Ingress>
  private readonly classes: ResourceWatcher<IngressClass>
  private readonly services: ResourceWatcher<Service>
  private readonly events: EventRecorder
  private readonly status: StatusUpdater
  private timer: NodeJS.Timeout | undefined
  private running: Promise<void> | undefined
  private again = false
  /** Set after the first config write: the readiness signal. */
  written = false
  writes = 0

  constructor(opts: ControllerOptions) {
    this.opts = opts
    const { kubeConfig, log, namespace, resyncMs } = opts
    const net = kubeConfig.makeApiClient(NetworkingV1Api)
    const core = kubeConfig.makeApiClient(CoreV1Api)
    const onChange = (): void => this.schedule()
    const ns = namespace ? `/namespaces/${namespace}` : ''
    this.ingresses = new ResourceWatcher<Ingress>({
      kind: 'ingresses',
      kubeConfig,
      log,
      onChange,
      resyncMs,
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
      onChange,
      resyncMs,
      list: () => (namespace ? core.listNamespacedService({ namespace }) : core.listServiceForAllNamespaces()) as Promise<{ items: Service[] }>,
      watchPath: `/api/v1${ns}/services`,
    })
    this.events = new EventRecorder(kubeConfig, log)
    this.status = new StatusUpdater(kubeConfig, log, opts.publish)
  }

  start(): void {
    this.ingresses.start()
    this.classes.start()
    this.services.start()
  }

  async stop(): Promise<void> {
    clearTimeout(this.timer)
    this.ingresses.stop()
    this.classes.stop()
    this.services.stop()
    await this.running
  }

  /** Consecutive failures of each watch (0 when healthy), for /readyz. */
  get watchFailures(): Record<string, number> {
    return { ingresses: this.ingresses.failures, ingressclasses: this.classes.failures, services: this.services.failures }
  }

  /** Every cache has completed its first list. */
  get synced(): boolean {
    return this.ingresses.synced && this.classes.synced && this.services.synced
  }

  /** Coalesces bursts of changes (a `kubectl apply` of many objects) into one rebuild. */
  private schedule(): void {
    clearTimeout(this.timer)
    this.timer = setTimeout(() => void this.rebuild(), this.opts.debounceMs ?? 200)
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
    const started = performance.now()
    const { config, diagnostics, owned } = translate({ ingresses, ingressClasses: this.classes.list(), services }, this.opts)
    const changed = await writeIfChanged(configFile, serializeConfig(config))
    if (changed) {
      this.writes++
      log.info(
        {
          config: configFile,
          ingresses: owned.length,
          upstreams: config.upstreams.length,
          rules: config.rules.length,
          duration_ms: Math.round((performance.now() - started) * 100) / 100,
        },
        'config written',
      )
    }
    this.written = true
    await this.events.report(diagnostics, ingresses)
    await this.status.update(owned, ingresses, services)
  }
}
