// References across namespaces (ReferenceGrant, GEP-709) and namespace
// label selectors (allowedRoutes.namespaces.from: Selector), for the
// Gateway API status and translation.

import type { LabelSelector, Namespace, ReferenceGrant } from './gateway-objects.ts'

export interface RefFrom {
  group: string
  kind: string
  namespace: string
}

export interface RefTo {
  group: string
  kind: string
  namespace: string
  name: string
}

/**
 * Whether a reference from an object in one namespace to an object in
 * another is allowed: always within a namespace; across namespaces only when
 * a ReferenceGrant in the target's namespace lists the source (group, kind,
 * namespace) in `from` and the target (group, kind, and name if it names
 * one) in `to` (apis/v1beta1/referencegrant_types.go).
 */
export function referencePermitted(grants: readonly ReferenceGrant[], from: RefFrom, to: RefTo): boolean {
  if (from.namespace === to.namespace) return true
  return grants.some(
    (g) =>
      (g.metadata.namespace ?? 'default') === to.namespace &&
      (g.spec?.from ?? []).some((f) => f.group === from.group && f.kind === from.kind && f.namespace === from.namespace) &&
      (g.spec?.to ?? []).some((t) => t.group === to.group && t.kind === to.kind && (t.name === undefined || t.name === '' || t.name === to.name)),
  )
}

/** A label selector (meta/v1 LabelSelector) against a set of labels; an empty selector matches everything. */
export function selectorMatches(selector: LabelSelector | undefined, labels: Record<string, string> | undefined): boolean {
  const l = labels ?? {}
  for (const [k, v] of Object.entries(selector?.matchLabels ?? {})) if (l[k] !== v) return false
  for (const e of selector?.matchExpressions ?? []) {
    const has = Object.hasOwn(l, e.key)
    const values = e.values ?? []
    const ok =
      e.operator === 'In' ? has && values.includes(l[e.key]!)
      : e.operator === 'NotIn' ? !has || !values.includes(l[e.key]!)
      : e.operator === 'Exists' ? has
      : e.operator === 'DoesNotExist' ? !has
      : false
    if (!ok) return false
  }
  return true
}

/** The labels of a namespace by name (undefined when the namespace is unknown). */
export function namespaceLabels(namespaces: readonly Namespace[], name: string): Record<string, string> | undefined {
  const ns = namespaces.find((n) => n.metadata.name === name)
  // Every namespace carries kubernetes.io/metadata.name (set by the API server since 1.21).
  return ns ? { 'kubernetes.io/metadata.name': name, ...ns.metadata.labels } : undefined
}
