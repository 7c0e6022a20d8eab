// The Kubernetes objects the controller reads, reduced to the fields it
// uses. Plain data: what the API server returns, and what `nanoproxy render`
// reads from YAML files, both fit these shapes.

export interface ObjectMeta {
  name?: string
  namespace?: string
  uid?: string
  annotations?: Record<string, string>
  labels?: Record<string, string>
  /** A Date from the API client, an RFC 3339 string from a YAML file. */
  creationTimestamp?: Date | string
  resourceVersion?: string
}

/**
 * One entry of `status.loadBalancer.ingress`: Service (core/v1
 * LoadBalancerIngress) and Ingress (networking.k8s.io/v1
 * IngressLoadBalancerIngress) share these fields.
 */
export interface LoadBalancerIngress {
  ip?: string
  hostname?: string
  ports?: { port: number; protocol: string; error?: string }[]
}

export interface ServiceBackendPort {
  name?: string
  number?: number
}

export interface IngressBackend {
  service?: { name: string; port?: ServiceBackendPort }
  resource?: { apiGroup?: string; kind: string; name: string }
}

export interface HTTPIngressPath {
  path?: string
  pathType?: string
  backend: IngressBackend
}

export interface IngressRule {
  host?: string
  http?: { paths: HTTPIngressPath[] }
}

export interface Ingress {
  apiVersion?: string
  kind?: string
  metadata: ObjectMeta
  spec?: {
    ingressClassName?: string
    defaultBackend?: IngressBackend
    rules?: IngressRule[]
    tls?: { hosts?: string[]; secretName?: string }[]
  }
  status?: { loadBalancer?: { ingress?: LoadBalancerIngress[] } }
}

export interface IngressClass {
  apiVersion?: string
  kind?: string
  metadata: ObjectMeta
  spec?: { controller?: string }
}

export interface ServicePort {
  name?: string
  port: number
  protocol?: string
  /** A container port number or name; pods may differ (EndpointSlices carry the number). */
  targetPort?: number | string
}

export interface Service {
  apiVersion?: string
  kind?: string
  metadata: ObjectMeta
  spec?: { ports?: ServicePort[]; type?: string; externalName?: string }
  status?: { loadBalancer?: { ingress?: LoadBalancerIngress[] } }
}

/** A Secret as the controller caches it: only TLS Secrets are listed (field selector on `type`). */
export interface Secret {
  apiVersion?: string
  kind?: string
  metadata: ObjectMeta
  type?: string
  /** Base64 values, as the API returns them. */
  data?: Record<string, string>
}

/**
 * discovery.k8s.io/v1 EndpointSlice: some of the endpoints of the Service
 * named by its `kubernetes.io/service-name` label
 * (kubernetes.io/docs/concepts/services-networking/endpoint-slices/).
 * The API returns null for empty lists and unset conditions.
 */
export interface EndpointSlice {
  apiVersion?: string
  kind?: string
  metadata: ObjectMeta
  /** IPv4, IPv6 or FQDN (deprecated). */
  addressType?: string
  endpoints?: EndpointSliceEndpoint[] | null
  /** Port names are the Service's port names; numbers are this slice's target ports. */
  ports?: { name?: string | null; port?: number | null; protocol?: string | null }[] | null
}

export interface EndpointSliceEndpoint {
  addresses: string[]
  conditions?: { ready?: boolean | null; serving?: boolean | null; terminating?: boolean | null } | null
}

/** Everything the translation looks at, as of one moment. */
export interface Snapshot {
  ingresses: readonly Ingress[]
  ingressClasses: readonly IngressClass[]
  services: readonly Service[]
  /** TLS Secrets (type kubernetes.io/tls), for spec.tls; absent: no certificates. */
  secrets?: readonly Secret[]
  /** Absent: none (every Service then has no endpoints). */
  endpointSlices?: readonly EndpointSlice[]
}

export interface TranslateOptions {
  /** IngressClass `spec.controller` value that marks a class as ours. */
  controllerName: string
  /** Cluster DNS domain for `<service>.<namespace>.svc.<domain>`. */
  clusterDomain: string
  /** DEFAULT_TLS_SECRET: `namespace/name` of the Secret with the default certificate. */
  defaultTlsSecret?: string | undefined
  /** The HSTS settings: the header for the HTTPS responses of every host in spec.tls; undefined for none. */
  hsts?: HstsPolicy | undefined
}

/** Strict-Transport-Security (RFC 6797 §6.1) as ingress-nginx's ConfigMap sets it: hsts-max-age, hsts-include-subdomains, hsts-preload. */
export interface HstsPolicy {
  maxAge: number
  includeSubDomains: boolean
  preload: boolean
}

/** `namespace/name`, the key objects are known by in logs and events. */
export function keyOf(meta: ObjectMeta): string {
  return `${meta.namespace ?? 'default'}/${meta.name ?? ''}`
}
