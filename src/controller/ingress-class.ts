// Which Ingresses belong to this controller.
//
// kubernetes.io/docs/concepts/services-networking/ingress/#ingress-class:
// - `spec.ingressClassName` names an IngressClass; it is ours when that
//   class's `spec.controller` is our controller name;
// - an Ingress with no class is ours when one of our IngressClasses carries
//   `ingressclass.kubernetes.io/is-default-class: "true"`;
// - the deprecated annotation `kubernetes.io/ingress.class: <name>` is
//   honoured where `spec.ingressClassName` is absent (…/#deprecated-annotation).

import type { Ingress, IngressClass } from './snapshot.ts'

export const DEFAULT_CLASS_ANNOTATION = 'ingressclass.kubernetes.io/is-default-class'
export const LEGACY_CLASS_ANNOTATION = 'kubernetes.io/ingress.class'

export class IngressClassIndex {
  /** Names of IngressClasses whose controller is ours. */
  private readonly ours = new Set<string>()
  /** Whether one of our classes is marked as the cluster default. */
  readonly ourDefault: string | undefined

  constructor(classes: readonly IngressClass[], controllerName: string) {
    let ourDefault: string | undefined
    for (const c of classes) {
      const name = c.metadata.name
      if (!name || c.spec?.controller !== controllerName) continue
      this.ours.add(name)
      if (c.metadata.annotations?.[DEFAULT_CLASS_ANNOTATION] === 'true') ourDefault ??= name
    }
    this.ourDefault = ourDefault
  }

  /** The class that makes `ingress` ours, or undefined when it is not ours. */
  classOf(ingress: Ingress): string | undefined {
    const named = ingress.spec?.ingressClassName
    if (named !== undefined && named !== '') return this.ours.has(named) ? named : undefined
    const legacy = ingress.metadata.annotations?.[LEGACY_CLASS_ANNOTATION]
    if (legacy !== undefined && legacy !== '') return this.ours.has(legacy) ? legacy : undefined
    return this.ourDefault
  }

  get size(): number {
    return this.ours.size
  }
}
