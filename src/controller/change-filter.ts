// Which watch events can change the config: the others skip the rebuild.
//
// At 10,000 Ingresses a rebuild (translate, serialise, compare) costs a
// noticeable fraction of a CPU-second, and most events in a large cluster
// change nothing the config is made of: an Ingress's status (our own status
// writes echo back as events), another controller's Ingress, a Service no
// Ingress of ours points at, labels and managedFields. As Contour does
// (internal/contour/handler.go: "skipping update, no changes to relevant
// fields"), such events are dropped before the debounce.
//
// The filter answers from the state of the last rebuild (the classes that
// were ours, the Services our Ingresses named). That can be out of date only
// while a change that matters (an IngressClass, an Ingress of ours) is
// waiting for its rebuild, and that rebuild reads every cache afresh: an
// event the filter wrongly drops meanwhile is still included.

import { serviceKeyOf } from './endpoints.ts'
import { IngressClassIndex } from './ingress-class.ts'
import { keyOf, type EndpointSlice, type Ingress, type IngressBackend, type IngressClass, type Service } from './snapshot.ts'

/** What of an Ingress the translation reads: not its status, not resourceVersion, labels or managedFields. */
export function ingressFingerprint(i: Ingress): string {
  const m = i.metadata
  // A Date from a list, an RFC 3339 string from a watch event: compare instants.
  const created = m.creationTimestamp instanceof Date ? m.creationTimestamp.getTime() : m.creationTimestamp ? Date.parse(m.creationTimestamp) : undefined
  return JSON.stringify([m.uid, m.annotations, created, i.spec])
}

/** What of a Service the translation reads: its ports, type and external name (its existence is the event itself). */
export function serviceFingerprint(s: Service): string {
  return JSON.stringify([s.spec?.ports ?? [], s.spec?.type, s.spec?.externalName])
}

/** What of an EndpointSlice the translation reads: not its labels' other entries, resourceVersion or endpoint hints. */
export function endpointSliceFingerprint(s: EndpointSlice): string {
  return JSON.stringify([serviceKeyOf(s), s.addressType, s.ports, (s.endpoints ?? []).map((e) => [e.addresses, e.conditions])])
}

export class ChangeFilter {
  private readonly controllerName: string
  /** Undefined until the first rebuild: until then everything matters. */
  private classes: IngressClassIndex | undefined
  private referenced = new Set<string>()

  constructor(controllerName: string) {
    this.controllerName = controllerName
  }

  /** Called with the inputs of each rebuild. */
  rebuilt(ingressClasses: readonly IngressClass[], owned: readonly Ingress[]): void {
    this.classes = new IngressClassIndex(ingressClasses, this.controllerName)
    const referenced = new Set<string>()
    const add = (namespace: string, b: IngressBackend | undefined): void => {
      if (b?.service?.name) referenced.add(`${namespace}/${b.service.name}`)
    }
    for (const i of owned) {
      const ns = i.metadata.namespace ?? 'default'
      add(ns, i.spec?.defaultBackend)
      for (const rule of i.spec?.rules ?? []) for (const p of rule.http?.paths ?? []) add(ns, p.backend)
    }
    this.referenced = referenced
  }

  ingressMatters(old: Ingress | undefined, next: Ingress | undefined): boolean {
    if (old && next && ingressFingerprint(old) === ingressFingerprint(next)) return false
    const classes = this.classes
    if (!classes) return true
    // Not ours before, not ours after: another controller's business.
    return (old !== undefined && classes.classOf(old) !== undefined) || (next !== undefined && classes.classOf(next) !== undefined)
  }

  /**
   * Only slices of Services our Ingresses name: in a cluster, pods come and
   * go all the time, and most belong to Services no Ingress points at.
   */
  endpointSliceMatters(old: EndpointSlice | undefined, next: EndpointSlice | undefined): boolean {
    if (old && next && endpointSliceFingerprint(old) === endpointSliceFingerprint(next)) return false
    if (!this.classes) return true
    for (const slice of [old, next]) {
      const key = slice === undefined ? undefined : serviceKeyOf(slice)
      if (key !== undefined && this.referenced.has(key)) return true
    }
    return false
  }

  serviceMatters(old: Service | undefined, next: Service | undefined): boolean {
    if (old && next && serviceFingerprint(old) === serviceFingerprint(next)) return false
    if (!this.classes) return true
    const obj = next ?? old
    return obj !== undefined && this.referenced.has(keyOf(obj.metadata))
  }
}
