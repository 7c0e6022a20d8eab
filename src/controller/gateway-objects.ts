// The Gateway API objects the controller reads (gateway.networking.k8s.io,
// standard channel v1.6), reduced to the fields it uses, and the status it
// writes. Field names and meanings: gateway-api apis/v1/gatewayclass_types.go,
// gateway_types.go, httproute_types.go, shared_types.go,
// apis/v1beta1/referencegrant_types.go.

import type { ObjectMeta, Secret, Service } from './snapshot.ts'

export const GATEWAY_GROUP = 'gateway.networking.k8s.io'

/** metadata.generation is what status conditions' observedGeneration refers to. */
export interface GatewayObjectMeta extends ObjectMeta {
  generation?: number
}

export interface Condition {
  type: string
  status: 'True' | 'False' | 'Unknown'
  reason: string
  message: string
  observedGeneration?: number
  lastTransitionTime?: string
}

export interface GatewayClass {
  apiVersion?: string
  kind?: string
  metadata: GatewayObjectMeta
  spec?: { controllerName?: string }
  status?: { conditions?: Condition[]; supportedFeatures?: { name: string }[] }
}

export interface SecretObjectReference {
  group?: string
  kind?: string
  name: string
  namespace?: string
}

export interface LabelSelector {
  matchLabels?: Record<string, string>
  matchExpressions?: { key: string; operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist'; values?: string[] }[]
}

export interface Listener {
  name: string
  hostname?: string
  port: number
  protocol: string
  tls?: { mode?: string; certificateRefs?: SecretObjectReference[] }
  allowedRoutes?: {
    namespaces?: { from?: 'All' | 'Same' | 'Selector'; selector?: LabelSelector }
    kinds?: { group?: string; kind: string }[]
  }
}

export interface Gateway {
  apiVersion?: string
  kind?: string
  metadata: GatewayObjectMeta
  spec?: { gatewayClassName?: string; listeners?: Listener[]; addresses?: { type?: string; value: string }[] }
  status?: GatewayStatus
}

export interface ListenerStatus {
  name: string
  supportedKinds: { group: string; kind: string }[]
  attachedRoutes: number
  conditions: Condition[]
}

export interface GatewayStatus {
  addresses?: { type: 'IPAddress' | 'Hostname'; value: string }[]
  conditions: Condition[]
  listeners: ListenerStatus[]
}

export interface ParentReference {
  group?: string
  kind?: string
  namespace?: string
  name: string
  sectionName?: string
  port?: number
}

export interface BackendRef {
  group?: string
  kind?: string
  name: string
  namespace?: string
  port?: number
  weight?: number
}

export interface HTTPPathMatch {
  type?: 'Exact' | 'PathPrefix' | 'RegularExpression'
  value?: string
}

export interface HTTPRouteMatch {
  path?: HTTPPathMatch
  headers?: unknown[]
  queryParams?: unknown[]
  method?: string
}

export interface HTTPRouteRule {
  name?: string
  matches?: HTTPRouteMatch[]
  filters?: unknown[]
  backendRefs?: BackendRef[]
  timeouts?: unknown
}

export interface RouteParentStatus {
  parentRef: ParentReference
  controllerName: string
  conditions: Condition[]
}

export interface HTTPRoute {
  apiVersion?: string
  kind?: string
  metadata: GatewayObjectMeta
  spec?: { parentRefs?: ParentReference[]; hostnames?: string[]; rules?: HTTPRouteRule[] }
  status?: { parents?: RouteParentStatus[] }
}

export interface ReferenceGrant {
  apiVersion?: string
  kind?: string
  metadata: GatewayObjectMeta
  spec?: {
    from?: { group: string; kind: string; namespace: string }[]
    to?: { group: string; kind: string; name?: string }[]
  }
}

export interface Namespace {
  metadata: ObjectMeta
}

/** Everything the Gateway API status and translation look at, as of one moment. */
export interface GatewaySnapshot {
  gatewayClasses: readonly GatewayClass[]
  gateways: readonly Gateway[]
  httpRoutes: readonly HTTPRoute[]
  referenceGrants: readonly ReferenceGrant[]
  /** For allowedRoutes.namespaces.from: Selector (namespace labels). */
  namespaces: readonly Namespace[]
  services: readonly Service[]
  /** TLS Secrets, for HTTPS listeners' certificateRefs. */
  secrets: readonly Secret[]
}
