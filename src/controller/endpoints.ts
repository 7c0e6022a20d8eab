// From a Service's EndpointSlices to the servers of its upstream.
//
// The proxy balances over the Service's pods itself, as ingress-nginx,
// Traefik, Contour and Envoy Gateway do, instead of sending everything to
// the Service's virtual IP: kept-alive connections through the virtual IP
// stick to the pods that existed when they opened, and a pod that is
// terminating keeps its connections. Rules, from the EndpointSlice docs
// (kubernetes.io/docs/concepts/services-networking/endpoint-slices/):
// - a slice belongs to the Service named by its kubernetes.io/service-name
//   label; a Service may have several slices (100 endpoints each by
//   default), and one per address family when it is dual-stack;
// - a slice's port named like the Service port carries the target port
//   number for the endpoints of that slice (a named targetPort may resolve
//   to different numbers in different pods, hence in different slices);
// - `ready` unset means ready; `serving` unset means the same as `ready`;
//   `terminating` unset means not terminating;
// - endpoints whose `ready` is true are used; when a Service has none, its
//   endpoints that are `serving` and `terminating` are (KEP-1669, what
//   kube-proxy does since Kubernetes 1.26): a Deployment whose every pod is
//   being replaced keeps serving from the old pods until they stop.

import type { ServerConfig } from '../config/schema.ts'
import { keyOf, type EndpointSlice, type ServicePort } from './snapshot.ts'

/** The label that ties an EndpointSlice to its Service. */
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name'

/** EndpointSlices by `namespace/service`. */
export function slicesByService(slices: readonly EndpointSlice[] | undefined): Map<string, EndpointSlice[]> {
  const out = new Map<string, EndpointSlice[]>()
  for (const slice of slices ?? []) {
    const key = serviceKeyOf(slice)
    if (key === undefined) continue
    const list = out.get(key)
    if (list === undefined) out.set(key, [slice])
    else list.push(slice)
  }
  return out
}

/** `namespace/service` of the Service a slice belongs to, or undefined when it has no service-name label. */
export function serviceKeyOf(slice: EndpointSlice): string | undefined {
  const name = slice.metadata.labels?.[SERVICE_NAME_LABEL]
  if (name === undefined || name === '') return undefined
  return keyOf({ namespace: slice.metadata.namespace, name })
}

/**
 * The servers for Service port `port` (a port of the Service's spec) from
 * the Service's slices: the ready endpoints, or else the serving and
 * terminating ones; sorted, without duplicates. Empty when there is none.
 */
export function endpointServers(slices: readonly EndpointSlice[] | undefined, port: ServicePort): ServerConfig[] {
  const ready: ServerConfig[] = []
  const terminating: ServerConfig[] = []
  const portName = port.name ?? ''
  const protocol = port.protocol ?? 'TCP'
  for (const slice of slices ?? []) {
    // FQDN slices are deprecated and never written by Kubernetes itself.
    if (slice.addressType !== 'IPv4' && slice.addressType !== 'IPv6') continue
    const match = (slice.ports ?? []).find((p) => (p.name ?? '') === portName && (p.protocol ?? 'TCP') === protocol)
    const number = match?.port
    if (typeof number !== 'number' || number < 1 || number > 65535) continue
    for (const endpoint of slice.endpoints ?? []) {
      const c = endpoint.conditions ?? {}
      const isReady = c.ready ?? true
      const isServing = c.serving ?? isReady
      const isTerminating = c.terminating ?? false
      // An endpoint has one address per the API's rules (more are reserved for future use).
      const address = endpoint.addresses[0]
      if (address === undefined) continue
      if (isReady) ready.push({ host: address, port: number, weight: 1 })
      else if (isServing && isTerminating) terminating.push({ host: address, port: number, weight: 1 })
    }
  }
  return unique(ready.length > 0 ? ready : terminating)
}

function unique(servers: ServerConfig[]): ServerConfig[] {
  const seen = new Set<string>()
  const out: ServerConfig[] = []
  for (const s of servers) {
    const key = `${s.host} ${s.port}`
    if (seen.has(key)) continue
    seen.add(key)
    out.push(s)
  }
  return out.sort((a, b) => (a.host < b.host ? -1 : a.host > b.host ? 1 : a.port - b.port))
}
