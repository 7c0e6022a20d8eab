// The status the controller publishes on GatewayClasses, Gateways and
// HTTPRoutes: a pure function of a snapshot (no clock: lastTransitionTime is
// filled in by withTransitionTimes when writing), like translate.ts. It also
// returns which route attaches to which listener, with the effective
// hostnames, for the translation (gateway-translate.ts).
//
// Condition types and reasons are the spec's (gateway-api apis/v1:
// gatewayclass_types.go, gateway_types.go, httproute_types.go,
// shared_types.go); each condition's observedGeneration is the object's
// metadata.generation.

import { X509Certificate, createPrivateKey } from 'node:crypto'
import { intersectHostnames, sameListenerHostname } from './gateway-hostnames.ts'
import {
  GATEWAY_GROUP,
  type BackendRef,
  type Condition,
  type Gateway,
  type GatewaySnapshot,
  type GatewayStatus,
  type HTTPRoute,
  type Listener,
  type ListenerStatus,
  type ParentReference,
  type RouteParentStatus,
} from './gateway-objects.ts'
import { namespaceLabels, referencePermitted, selectorMatches } from './gateway-references.ts'
import { keyOf, type Secret } from './snapshot.ts'

export const DEFAULT_GATEWAY_CONTROLLER_NAME = 'nanoproxy.io/gateway-controller'
/** The listener protocols served (HTTP, and HTTPS terminated by the proxy). */
const PROTOCOLS = new Set(['HTTP', 'HTTPS'])
const HTTPROUTE_KIND = { group: GATEWAY_GROUP, kind: 'HTTPRoute' }

export interface GatewayStatusOptions {
  controllerName: string
  /** GatewayClass status.supportedFeatures: the features that pass the conformance suite. */
  supportedFeatures: readonly string[]
  /** Each Gateway's data-plane addresses by namespace/name; none yet: absent. */
  addresses: ReadonlyMap<string, { type: 'IPAddress' | 'Hostname'; value: string }[]>
}

/** A route attached to one listener of a Gateway, for the translation. */
export interface Attachment {
  route: HTTPRoute
  gateway: Gateway
  listener: Listener
  /** undefined: every host; else the effective hostnames (intersection). */
  hostnames: string[] | undefined
}

export interface GatewayStatuses {
  /** By GatewayClass name: ours only. */
  gatewayClasses: Map<string, { conditions: Condition[]; supportedFeatures: { name: string }[] }>
  /** By namespace/name: the Gateways of our accepted classes. */
  gateways: Map<string, GatewayStatus>
  /** By namespace/name: our entries of status.parents (those of other controllers are left alone). */
  httpRoutes: Map<string, RouteParentStatus[]>
  attachments: Attachment[]
}

type Cond = Omit<Condition, 'lastTransitionTime'>

function cond(type: string, ok: boolean, reason: string, message: string, generation: number | undefined): Cond {
  return { type, status: ok ? 'True' : 'False', reason, message, ...(generation === undefined ? {} : { observedGeneration: generation }) }
}

interface ListenerVerdict {
  listener: Listener
  status: ListenerStatus
  /** Accepted and not in conflict: routes may attach. */
  usable: boolean
  /** Usable with its references resolved: can be programmed. */
  valid: boolean
}

export function gatewayStatuses(snapshot: GatewaySnapshot, options: GatewayStatusOptions): GatewayStatuses {
  const result: GatewayStatuses = { gatewayClasses: new Map(), gateways: new Map(), httpRoutes: new Map(), attachments: [] }
  const ourClasses = new Set<string>()
  for (const gc of snapshot.gatewayClasses) {
    if (gc.spec?.controllerName !== options.controllerName || !gc.metadata.name) continue
    ourClasses.add(gc.metadata.name)
    result.gatewayClasses.set(gc.metadata.name, {
      conditions: [cond('Accepted', true, 'Accepted', 'served by NanoProxy', gc.metadata.generation)] as Condition[],
      supportedFeatures: [...options.supportedFeatures].sort().map((name) => ({ name })),
    })
  }

  const services = new Map(snapshot.services.map((s) => [keyOf(s.metadata), s]))
  const secrets = new Map(snapshot.secrets.map((s) => [keyOf(s.metadata), s]))
  const verdicts = new Map<string, ListenerVerdict[]>()
  const gateways = new Map<string, Gateway>()
  for (const gw of snapshot.gateways) {
    if (!ourClasses.has(gw.spec?.gatewayClassName ?? '')) continue
    const key = keyOf(gw.metadata)
    gateways.set(key, gw)
    const listeners = judgeListeners(gw, snapshot, secrets, options.addresses.has(key))
    verdicts.set(key, listeners)
  }

  for (const route of byAge(snapshot.httpRoutes)) {
    const routeNs = route.metadata.namespace ?? 'default'
    const parents: RouteParentStatus[] = []
    const resolved = resolveBackends(route, snapshot, services)
    for (const ref of route.spec?.parentRefs ?? []) {
      if ((ref.group ?? GATEWAY_GROUP) !== GATEWAY_GROUP || (ref.kind ?? 'Gateway') !== 'Gateway') continue
      const gwKey = `${ref.namespace ?? routeNs}/${ref.name}`
      const gw = gateways.get(gwKey)
      const listeners = verdicts.get(gwKey)
      if (!gw || !listeners) continue // not a Gateway of ours (or not one that exists)
      const generation = route.metadata.generation
      const accepted = attach(route, ref, gw, listeners, snapshot)
      for (const a of accepted.attached) {
        a.verdict.status.attachedRoutes++
        result.attachments.push({ route, gateway: gw, listener: a.verdict.listener, hostnames: a.hostnames })
      }
      parents.push({
        parentRef: ref,
        controllerName: options.controllerName,
        conditions: [
          cond('Accepted', accepted.reason === 'Accepted', accepted.reason, accepted.message, generation),
          cond('ResolvedRefs', resolved.reason === 'ResolvedRefs', resolved.reason, resolved.message, generation),
        ] as Condition[],
      })
    }
    if (parents.length > 0) result.httpRoutes.set(keyOf(route.metadata), parents)
  }

  for (const [key, gw] of gateways) {
    const listeners = verdicts.get(key)!
    const generation = gw.metadata.generation
    const addresses = options.addresses.get(key)
    const invalid = listeners.filter((l) => !l.valid).map((l) => l.listener.name)
    const conditions: Cond[] = []
    if ((gw.spec?.addresses ?? []).length > 0) {
      // Static addresses would need the data plane to own them (an extended feature, not supported).
      conditions.push(cond('Accepted', false, 'UnsupportedAddress', 'spec.addresses is not supported: the address is that of the Gateway\'s Service', generation))
      conditions.push(cond('Programmed', false, 'Invalid', 'the Gateway is not accepted', generation))
    } else {
      const someUsable = listeners.some((l) => l.usable)
      conditions.push(
        invalid.length === 0
          ? cond('Accepted', true, 'Accepted', 'accepted', generation)
          : cond('Accepted', someUsable, 'ListenersNotValid', `listeners not valid: ${invalid.join(', ')}`, generation),
      )
      conditions.push(
        addresses && addresses.length > 0
          ? cond('Programmed', someUsable, someUsable ? 'Programmed' : 'Invalid', someUsable ? 'programmed' : 'no listener can be programmed', generation)
          : cond('Programmed', false, 'AddressNotAssigned', 'the Gateway\'s Service has no address yet', generation),
      )
    }
    result.gateways.set(key, {
      ...(addresses && addresses.length > 0 ? { addresses } : {}),
      conditions: conditions,
      listeners: listeners.map((l) => l.status),
    })
  }
  return result
}

function judgeListeners(gw: Gateway, snapshot: GatewaySnapshot, secrets: Map<string, Secret>, hasAddress: boolean): ListenerVerdict[] {
  const generation = gw.metadata.generation
  const gwNs = gw.metadata.namespace ?? 'default'
  const listeners = gw.spec?.listeners ?? []
  // Conflicts (gateway_types.go, ListenerConditionConflicted): listeners on
  // one port must share a protocol (else ProtocolConflict), and be distinct
  // by hostname (else HostnameConflict).
  const byPort = new Map<number, Listener[]>()
  for (const l of listeners) byPort.set(l.port, [...(byPort.get(l.port) ?? []), l])
  return listeners.map((l): ListenerVerdict => {
    const samePort = byPort.get(l.port)!
    const conflict = samePort.some((o) => o.protocol !== l.protocol)
      ? 'ProtocolConflict'
      : samePort.some((o) => o !== l && sameListenerHostname(o.hostname, l.hostname))
        ? 'HostnameConflict'
        : undefined
    const protocolOk = PROTOCOLS.has(l.protocol)
    const kinds = l.allowedRoutes?.kinds
    const supportedKinds = !protocolOk ? [] : kinds === undefined || kinds.length === 0 ? [{ ...HTTPROUTE_KIND }] : kinds.filter((k) => (k.group ?? GATEWAY_GROUP) === GATEWAY_GROUP && k.kind === 'HTTPRoute').map(() => ({ ...HTTPROUTE_KIND }))
    const badKinds = (kinds ?? []).filter((k) => !((k.group ?? GATEWAY_GROUP) === GATEWAY_GROUP && k.kind === 'HTTPRoute'))
    let refs: { reason: string; message: string } | undefined
    if (badKinds.length > 0) refs = { reason: 'InvalidRouteKinds', message: `route kinds not supported: ${badKinds.map((k) => k.kind).join(', ')} (supported: HTTPRoute)` }
    else if (l.protocol === 'HTTPS') refs = certificateProblem(l, gwNs, snapshot, secrets)
    const accepted = protocolOk
    const usable = accepted && conflict === undefined
    const valid = usable && refs === undefined
    const conditions: Cond[] = [
      accepted ? cond('Accepted', true, 'Accepted', 'accepted', generation) : cond('Accepted', false, 'UnsupportedProtocol', `protocol ${l.protocol} is not supported (HTTP, HTTPS)`, generation),
      refs ? cond('ResolvedRefs', false, refs.reason, refs.message, generation) : cond('ResolvedRefs', true, 'ResolvedRefs', 'resolved', generation),
      conflict ? cond('Conflicted', true, conflict, `another listener on port ${l.port} ${conflict === 'ProtocolConflict' ? 'has another protocol' : 'has the same hostname'}`, generation) : cond('Conflicted', false, 'NoConflicts', 'no conflicts', generation),
      !valid
        ? cond('Programmed', false, 'Invalid', 'the listener is not valid', generation)
        : hasAddress
          ? cond('Programmed', true, 'Programmed', 'programmed', generation)
          : cond('Programmed', false, 'Pending', 'waiting for the Gateway\'s address', generation),
    ]
    return { listener: l, usable, valid, status: { name: l.name, supportedKinds, attachedRoutes: 0, conditions: conditions } }
  })
}

/** Why an HTTPS listener's certificates cannot be used, or undefined. */
function certificateProblem(l: Listener, gwNs: string, snapshot: GatewaySnapshot, secrets: Map<string, Secret>): { reason: string; message: string } | undefined {
  if ((l.tls?.mode ?? 'Terminate') !== 'Terminate') return { reason: 'InvalidCertificateRef', message: `tls.mode ${l.tls?.mode} is not supported on HTTPS (Terminate)` }
  const refs = l.tls?.certificateRefs ?? []
  if (refs.length === 0) return { reason: 'InvalidCertificateRef', message: 'an HTTPS listener needs tls.certificateRefs' }
  for (const ref of refs) {
    const ns = ref.namespace ?? gwNs
    const where = `${ns}/${ref.name}`
    if ((ref.group ?? '') !== '' || (ref.kind ?? 'Secret') !== 'Secret') return { reason: 'InvalidCertificateRef', message: `certificateRef ${ref.kind ?? 'Secret'} ${where}: only core Secrets are supported` }
    if (!referencePermitted(snapshot.referenceGrants, { group: GATEWAY_GROUP, kind: 'Gateway', namespace: gwNs }, { group: '', kind: 'Secret', namespace: ns, name: ref.name })) {
      return { reason: 'RefNotPermitted', message: `certificateRef Secret ${where}: no ReferenceGrant in ${ns} allows it` }
    }
    const secret = secrets.get(where)
    if (!secret) return { reason: 'InvalidCertificateRef', message: `Secret ${where} does not exist or is not of type kubernetes.io/tls` }
    const problem = keyPairProblem(secret)
    if (problem) return { reason: 'InvalidCertificateRef', message: `Secret ${where}: ${problem}` }
  }
  return undefined
}

/** Whether a TLS Secret holds a parseable certificate and private key. */
function keyPairProblem(secret: Secret): string | undefined {
  const crt = secret.data?.['tls.crt']
  const key = secret.data?.['tls.key']
  if (!crt || !key) return 'tls.crt and tls.key are both required'
  try {
    new X509Certificate(Buffer.from(crt, 'base64'))
  } catch {
    return 'tls.crt is not a PEM certificate'
  }
  try {
    createPrivateKey(Buffer.from(key, 'base64'))
  } catch {
    return 'tls.key is not a PEM private key'
  }
  return undefined
}

/** Whether a route's parentRef attaches it, to which listeners, and the Accepted reason (httproute_types.go / shared_types.go). */
function attach(route: HTTPRoute, ref: ParentReference, gw: Gateway, listeners: ListenerVerdict[], snapshot: GatewaySnapshot): { reason: string; message: string; attached: { verdict: ListenerVerdict; hostnames: string[] | undefined }[] } {
  const routeNs = route.metadata.namespace ?? 'default'
  const gwNs = gw.metadata.namespace ?? 'default'
  const candidates = listeners.filter((v) => (ref.sectionName === undefined || v.listener.name === ref.sectionName) && (ref.port === undefined || v.listener.port === ref.port))
  if (candidates.length === 0) {
    return { reason: 'NoMatchingParent', message: `Gateway ${keyOf(gw.metadata)} has no listener${ref.sectionName ? ` named ${ref.sectionName}` : ''}${ref.port ? ` on port ${ref.port}` : ''}`, attached: [] }
  }
  const allowed = candidates.filter((v) => {
    if (!v.usable || !v.status.supportedKinds.some((k) => k.kind === 'HTTPRoute')) return false
    const from = v.listener.allowedRoutes?.namespaces?.from ?? 'Same'
    if (from === 'All') return true
    if (from === 'Same') return routeNs === gwNs
    const labels = namespaceLabels(snapshot.namespaces, routeNs)
    return labels !== undefined && selectorMatches(v.listener.allowedRoutes?.namespaces?.selector, labels)
  })
  if (allowed.length === 0) return { reason: 'NotAllowedByListeners', message: `no listener of Gateway ${keyOf(gw.metadata)} allows HTTPRoutes from namespace ${routeNs}`, attached: [] }
  const attached = allowed.map((verdict) => ({ verdict, hostnames: intersectHostnames(verdict.listener.hostname, route.spec?.hostnames) })).filter((a) => a.hostnames === undefined || a.hostnames.length > 0)
  if (attached.length === 0) return { reason: 'NoMatchingListenerHostname', message: `no hostname of the route matches a listener hostname of Gateway ${keyOf(gw.metadata)}`, attached: [] }
  return { reason: 'Accepted', message: 'accepted', attached }
}

/** ResolvedRefs of a route: the first backendRef that cannot be used decides the reason. */
function resolveBackends(route: HTTPRoute, snapshot: GatewaySnapshot, services: Map<string, { spec?: { ports?: { port: number }[] } }>): { reason: string; message: string } {
  const routeNs = route.metadata.namespace ?? 'default'
  for (const [r, rule] of (route.spec?.rules ?? []).entries()) {
    for (const [b, ref] of (rule.backendRefs ?? []).entries()) {
      const problem = backendProblem(ref, routeNs, snapshot, services)
      if (problem) return { reason: problem.reason, message: `spec.rules[${r}].backendRefs[${b}]: ${problem.message}` }
    }
  }
  return { reason: 'ResolvedRefs', message: 'resolved' }
}

/** Why a backendRef cannot be used, or undefined (shared with the translation). */
export function backendProblem(
  ref: BackendRef,
  routeNs: string,
  snapshot: Pick<GatewaySnapshot, 'referenceGrants'>,
  services: Map<string, { spec?: { ports?: { port: number }[] } }>,
): { reason: 'InvalidKind' | 'RefNotPermitted' | 'BackendNotFound'; message: string } | undefined {
  const ns = ref.namespace ?? routeNs
  const where = `${ns}/${ref.name}`
  if ((ref.group ?? '') !== '' || (ref.kind ?? 'Service') !== 'Service') return { reason: 'InvalidKind', message: `${ref.kind ?? 'Service'} ${where}: only core Services are supported` }
  if (!referencePermitted(snapshot.referenceGrants, { group: GATEWAY_GROUP, kind: 'HTTPRoute', namespace: routeNs }, { group: '', kind: 'Service', namespace: ns, name: ref.name })) {
    return { reason: 'RefNotPermitted', message: `Service ${where}: no ReferenceGrant in ${ns} allows it` }
  }
  const service = services.get(where)
  if (!service) return { reason: 'BackendNotFound', message: `Service ${where} does not exist` }
  if (ref.port === undefined) return { reason: 'BackendNotFound', message: `Service ${where}: backendRef has no port` }
  if (!(service.spec?.ports ?? []).some((p) => p.port === ref.port)) return { reason: 'BackendNotFound', message: `Service ${where} has no port ${ref.port}` }
  return undefined
}

/** Oldest first, then namespace/name: the spec's tie-break between routes. */
export function byAge<T extends { metadata: { creationTimestamp?: Date | string; namespace?: string; name?: string } }>(objects: readonly T[]): T[] {
  const time = (o: T): number => (o.metadata.creationTimestamp === undefined ? 0 : new Date(o.metadata.creationTimestamp).getTime())
  return [...objects].sort((a, b) => time(a) - time(b) || keyOf(a.metadata).localeCompare(keyOf(b.metadata)))
}

/**
 * Fills lastTransitionTime (required by the CRDs): kept from the current
 * status while a condition's status is unchanged, else `now` (meta/v1
 * Condition: the last time the condition went from one status to another).
 */
export function withTransitionTimes(desired: readonly Omit<Condition, 'lastTransitionTime'>[], current: readonly Condition[] | undefined, now: string): Condition[] {
  return desired.map((c) => {
    const old = current?.find((o) => o.type === c.type)
    return { ...c, lastTransitionTime: old && old.status === c.status && old.lastTransitionTime ? old.lastTransitionTime : now }
  })
}
