// Warning Events on Ingresses, so `kubectl describe ingress` tells users
// what is wrong with theirs (an invalid annotation, a missing Service, a
// conflict lost to an older Ingress).
//
// The same problem is reported once, not on every rebuild: a problem is
// remembered by Ingress UID + reason + message, and forgotten when it goes
// away, so it is reported again if it comes back.
//
// With several replicas only the leader sends Events (leader-election.ts).
// A follower remembers nothing as reported: when it starts leading, it
// reports the problems present then once more. The old leader may already
// have reported them (one duplicate per problem and change of leader, as
// after a controller restart), but a problem that appeared while nobody led
// is not lost.

import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node'
import type { Logger } from '../log.ts'
import type { Ingress } from './snapshot.ts'
import type { Diagnostic } from './translate.ts'

export const COMPONENT = 'nanoproxy-controller'

export class EventRecorder {
  private readonly api: CoreV1Api
  private readonly log: Logger
  private readonly active: () => boolean
  /** Problems logged (every replica logs each problem once)... */
  private logged = new Set<string>()
  /** ...and sent as Events (only while leading). */
  private reported = new Set<string>()
  /** The last report's inputs, for the report a new leader makes. */
  private last: { diagnostics: readonly Diagnostic[]; ingresses: readonly Ingress[] } | undefined
  /** Events the API server accepted, and those it refused (metrics). */
  sent = 0
  failed = 0

  /** `active`: whether this replica may send Events now (it leads). */
  constructor(kubeConfig: KubeConfig, log: Logger, active: () => boolean = () => true) {
    this.api = kubeConfig.makeApiClient(CoreV1Api)
    this.log = log
    this.active = active
  }

  /** Reports the last diagnostics again: this replica has just started leading. */
  async reportAgain(): Promise<void> {
    if (this.last) await this.report(this.last.diagnostics, this.last.ingresses)
  }

  /** Reports the diagnostics not reported yet; `ingresses` supplies UIDs. */
  async report(diagnostics: readonly Diagnostic[], ingresses: readonly Ingress[]): Promise<void> {
    this.last = { diagnostics, ingresses }
    const active = this.active()
    const uid = new Map(ingresses.map((i) => [`${i.metadata.namespace}/${i.metadata.name}`, i.metadata.uid ?? '']))
    const current = new Set<string>()
    const fresh: { d: Diagnostic; uid: string }[] = []
    for (const d of diagnostics) {
      const id = uid.get(`${d.namespace}/${d.name}`) ?? ''
      const key = `${id}\n${d.reason}\n${d.message}`
      current.add(key)
      if (!this.logged.has(key)) this.log.warn({ ingress: `${d.namespace}/${d.name}`, reason: d.reason }, d.message)
      if (active && !this.reported.has(key)) fresh.push({ d, uid: id })
    }
    this.logged = current
    this.reported = active ? current : new Set()
    for (const { d, uid: id } of fresh) {
      if (!this.active()) break // stopped leading meanwhile
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
        // Not fatal: the log line carries the same message.
        this.failed++
        this.log.warn({ err: (err as Error).message, ingress: `${d.namespace}/${d.name}` }, 'could not record event')
      }
    }
  }
}
