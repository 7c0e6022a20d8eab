// Warning Events on Ingresses, so `kubectl describe ingress` tells users
// what is wrong with theirs (an invalid annotation, a missing Service, a
// conflict lost to an older Ingress).
//
// The same problem is reported once, not on every rebuild: a problem is
// remembered by Ingress UID + reason + message, and forgotten when it goes
// away, so it is reported again if it comes back.

import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node'
import type { Logger } from '../log.ts'
import type { Ingress } from './snapshot.ts'
import type { Diagnostic } from './translate.ts'

export const COMPONENT = 'nanoproxy-controller'

export class EventRecorder {
  private readonly api: CoreV1Api
  private readonly log: Logger
  private reported = new Set<string>()
  /** Events the API server accepted, and those it refused (metrics). */
  sent = 0
  failed = 0

  constructor(kubeConfig: KubeConfig, log: Logger) {
    this.api = kubeConfig.makeApiClient(CoreV1Api)
    this.log = log
  }

  /** Reports the diagnostics not reported yet; `ingresses` supplies UIDs. */
  async report(diagnostics: readonly Diagnostic[], ingresses: readonly Ingress[]): Promise<void> {
    const uid = new Map(ingresses.map((i) => [`${i.metadata.namespace}/${i.metadata.name}`, i.metadata.uid ?? '']))
    const current = new Set<string>()
    const fresh: { d: Diagnostic; uid: string }[] = []
    for (const d of diagnostics) {
      const id = uid.get(`${d.namespace}/${d.name}`) ?? ''
      const key = `${id}\n${d.reason}\n${d.message}`
      current.add(key)
      if (!this.reported.has(key)) fresh.push({ d, uid: id })
    }
    this.reported = current
    for (const { d, uid: id } of fresh) {
      this.log.warn({ ingress: `${d.namespace}/${d.name}`, reason: d.reason }, d.message)
      const now = new Date()
      try {
        await this.api.createNamespacedEvent({
          namespace: d.namespace,
          body: {
            metadata: { generateName: `${d.name}.`, namespace: d.namespace },
            involvedObject: { apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', name: d.name, namespace: d.namespace, uid: id },
            reason: d.reason,
            message: d.message,
            type: 'Warning',
            source: { component: COMPONENT },
            reportingComponent: COMPONENT,
            firstTimestamp: now,
            lastTimestamp: now,
            count: 1,
          },
        })
        this.sent++
      } catch (err) {
        // Not fatal: the log line above carries the same message.
        this.failed++
        this.log.warn({ err: (err as Error).message, ingress: `${d.namespace}/${d.name}` }, 'could not record event')
      }
    }
  }
}
