// The controller's core: a pure function from a snapshot of Kubernetes
// objects to the proxy's config. No I/O, no clock, no randomness: the same
// snapshot always gives the same config, byte for byte once serialised, so
// the writer can skip unchanged output and tests can use fixture files.
//
// Matching rules are those of the Ingress docs
// (kubernetes.io/docs/concepts/services-networking/ingress/): the proxy
// tries rules in file order and takes the first match, so precedence is
// expressed as order — exact hosts, then wildcard hosts, then rules without
// a host; within a host the longest path first and, at equal length, Exact
// before Prefix; the defaultBackend last, for whatever matched nothing.

import type { MatchMode, ProxyConfig, RuleConfig, UpstreamConfig } from '../config/schema.ts'
import { compilePathRegex, groupCount, highestGroup, PathRegexError } from '../router/path-regex.ts'
import { readAnnotations } from './annotations.ts'
import { endpointServers, slicesByService } from './endpoints.ts'
import { IngressClassIndex } from './ingress-class.ts'
import { keyOf, type Ingress, type IngressBackend, type Service, type ServicePort, type Snapshot, type TranslateOptions } from './snapshot.ts'

export const BACKEND_PROTOCOL_ANNOTATION = 'nanoproxy/backend-protocol'
export const STRIP_PATH_ANNOTATION = 'nanoproxy/strip-path'
/** `"false"`: plain HTTP is not redirected to https for this Ingress's paths (ingress-nginx's ssl-redirect). */
export const SSL_REDIRECT_ANNOTATION = 'nanoproxy/ssl-redirect'
/** "true": send to the Service's own DNS name (its cluster IP), not to its endpoints (ingress-nginx's service-upstream). */
export const SERVICE_UPSTREAM_ANNOTATION = 'nanoproxy/service-upstream'

/** Something wrong with one Ingress, reported as a Warning Event on it. */
export interface Diagnostic {
  namespace: string
  name: string
  /** Event reason, CamelCase as Kubernetes reasons are. */
  reason: 'InvalidAnnotation' | 'UnsupportedAnnotation' | 'BackendNotFound' | 'UnsupportedBackend' | 'InvalidPath' | 'Conflict' | 'SecretNotFound' | 'InvalidCertificate' | 'CertificateMismatch'
  message: string
}

export interface Translation {
  config: ProxyConfig
  diagnostics: Diagnostic[]
  /** The Ingresses this controller owns (their status is ours to set). */
  owned: Ingress[]
}

interface Candidate {
  rule: RuleConfig
  /** 0 exact host, 1 wildcard host, 2 no host. */
  hostRank: number
  /** Length that decides precedence: Prefix paths without their trailing slash. */
  length: number
  /** Position in the oldest-first walk, to keep the sort stable and deterministic. */
  seq: number
}

export function translate(snapshot: Snapshot, options: TranslateOptions): Translation {
  const classes = new IngressClassIndex(snapshot.ingressClasses, options.controllerName)
  const services = new Map<string, Service>(snapshot.services.map((s) => [keyOf(s.metadata), s]))
  const slices = slicesByService(snapshot.endpointSlices)
  // Oldest first: the first claim on a host+path wins a conflict, deterministically.
  const owned = byAge(snapshot.ingresses.filter((i) => classes.classOf(i) !== undefined))

  const diagnostics: Diagnostic[] = []
  const upstreams = new Map<string, UpstreamConfig>()
  const candidates: Candidate[] = []
  const claims = new Map<string, string>()
  let fallback: { rule: RuleConfig; owner: string } | undefined

  for (const ingress of owned) {
    const namespace = ingress.metadata.namespace ?? 'default'
    const name = ingress.metadata.name ?? ''
    const owner = `${namespace}/${name}`
    const report = (reason: Diagnostic['reason'], message: string): void => {
      diagnostics.push({ namespace, name, reason, message })
    }

    // An annotation that cannot be honoured leaves the whole Ingress out
    // (fail closed: annotations.ts).
    const { settings, problems } = readAnnotations(ingress.metadata.annotations ?? {})
    for (const p of problems) report(p.kind === 'unsupported' ? 'UnsupportedAnnotation' : 'InvalidAnnotation', p.message)
    if (problems.length > 0) continue

    const upstreamFor = (backend: IngressBackend, where: string): string | undefined => {
      const resolved = resolveBackend(backend, namespace, services, where, report)
      if (resolved === undefined) return undefined
      const { service, port, spec } = resolved
      let upstreamName = settings.scheme === 'https' ? `${namespace}/${service}:${port.port}/https` : `${namespace}/${service}:${port.port}`
      const common = { scheme: settings.scheme, noHostRewrite: false }
      if (settings.serviceUpstream) {
        // Today's behaviour on request: kube-proxy picks a pod per connection.
        upstreamName += '/service-upstream'
        upstreams.set(upstreamName, { name: upstreamName, host: `${service}.${namespace}.svc.${options.clusterDomain}`, port: port.port, ...common })
      } else if (spec.spec?.type === 'ExternalName') {
        // An ExternalName Service is a DNS alias (a CNAME): the proxy resolves
        // the name itself, to all its addresses, on the Service's port.
        const host = (spec.spec.externalName ?? '').replace(/\.$/, '')
        upstreams.set(upstreamName, { name: upstreamName, servers: host === '' ? [] : [{ host, port: port.port, weight: 1 }], ...common })
      } else {
        // HTTPS to pod IPs: SNI and the certificate check use the Service's
        // DNS name, what a certificate for the Service is issued for.
        const serverName = settings.scheme === 'https' ? { serverName: `${service}.${namespace}.svc.${options.clusterDomain}` } : {}
        upstreams.set(upstreamName, { name: upstreamName, servers: endpointServers(slices.get(`${namespace}/${service}`), port), ...serverName, ...common })
      }
      return upstreamName
    }

    const policies: Partial<RuleConfig> = {
      ...(settings.forceSslRedirect ? { forceSslRedirect: true } : {}),
      ...(settings.maxBodySize !== undefined ? { maxBodySize: settings.maxBodySize } : {}),
      ...(settings.timeouts !== undefined ? { timeouts: settings.timeouts } : {}),
      ...(settings.allow !== undefined ? { allow: settings.allow } : {}),
      ...(settings.deny !== undefined ? { deny: settings.deny } : {}),
      ...(settings.forwardedPrefix !== undefined ? { requestHeaders: { set: [{ name: 'X-Forwarded-Prefix', value: settings.forwardedPrefix }] } } : {}),
    }
    const hosts = new Set<string>()
    ;(ingress.spec?.rules ?? []).forEach((rule, r) => {
      const host = (rule.host ?? '').toLowerCase()
      hosts.add(host)
      ;(rule.http?.paths ?? []).forEach((p, i) => {
        const where = `spec.rules[${r}].http.paths[${i}]`
        let matchMode = matchModeFor(p.pathType)
        if (matchMode === undefined) {
          report('InvalidPath', `${where}.pathType ${JSON.stringify(p.pathType)} is not supported (accepted: Exact, Prefix, ImplementationSpecific)`)
          return
        }
        const path = p.path === undefined || p.path === '' ? '/' : p.path
        // use-regex / rewrite-target: every non-Exact path is a
        // case-insensitive regex from the start of the path, as
        // ingress-nginx's `location ~* "^…"` (docs/ingress-nginx.md).
        if (settings.regex && matchMode !== 'exact') matchMode = 'regex'
        const pathProblem = checkPath(path, matchMode, settings.rewriteTarget)
        if (pathProblem !== undefined) {
          report('InvalidPath', `${where}.path ${JSON.stringify(path)} ${pathProblem}; this path is not served`)
          return
        }
        const upstream = upstreamFor(p.backend, `${where}.backend`)
        if (upstream === undefined) return
        const key = matchMode === 'exact' ? path : path.replace(/\/+$/, '')
        const claim = `${host}\n${matchMode}\n${key}`
        const holder = claims.get(claim)
        if (holder !== undefined) {
          report(
            'Conflict',
            `${where}: host ${JSON.stringify(host || '*')} path ${JSON.stringify(path)} (${p.pathType ?? 'ImplementationSpecific'}) is already served by ` +
              `${holder === owner ? 'an earlier path of this Ingress' : `Ingress ${holder}, which is older`}; this path is ignored`,
          )
          return
        }
        claims.set(claim, owner)
        candidates.push({
          rule: {
            upstream,
            path,
            host,
            matchMode,
            stripPath: settings.stripPath,
            ...(settings.sslRedirect ? {} : { sslRedirect: false }),
            ...(matchMode === 'regex' ? { ignoreCase: true } : {}),
            ...policies,
            ...(settings.rewriteTarget !== undefined || settings.upstreamVhost !== undefined
              ? {
                  rewrite: {
                    ...(settings.upstreamVhost !== undefined ? { hostname: settings.upstreamVhost } : {}),
                    ...(settings.rewriteTarget !== undefined ? { path: settings.rewriteTarget } : {}),
                  },
                }
              : {}),
          },
          hostRank: host === '' ? 2 : host.startsWith('*.') ? 1 : 0,
          length: key.length,
          seq: candidates.length,
        })
      })
    })

    // app-root: ingress-nginx answers `/` itself with a 302 to it (`if ($uri
    // = /) { return 302 …; }`), on every host of the Ingress.
    if (settings.appRoot !== undefined) {
      for (const host of [...hosts].sort(compare)) {
        const claim = `${host}\nexact\n/`
        const holder = claims.get(claim)
        if (holder !== undefined && holder !== owner) {
          report('Conflict', `app-root: host ${JSON.stringify(host || '*')} path "/" (Exact) is already served by Ingress ${holder}, which is older; the app-root redirect is ignored`)
          continue
        }
        claims.set(claim, owner)
        candidates.push({
          rule: { path: '/', host, matchMode: 'exact', stripPath: false, ...(settings.forceSslRedirect ? { forceSslRedirect: true } : {}), redirect: { path: settings.appRoot, statusCode: 302 } },
          hostRank: host === '' ? 2 : host.startsWith('*.') ? 1 : 0,
          // Before every other path of the host: an Exact `/` of the
          // Ingress itself would be served by nginx's return first too.
          length: Number.MAX_SAFE_INTEGER,
          seq: candidates.length,
        })
      }
    }

    const defaultBackend = ingress.spec?.defaultBackend
    if (defaultBackend) {
      if (fallback !== undefined) {
        report('Conflict', `spec.defaultBackend: Ingress ${fallback.owner} (older) already provides the default backend; this one is ignored`)
      } else {
        const upstream = upstreamFor(defaultBackend, 'spec.defaultBackend')
        if (upstream !== undefined) {
          fallback = { rule: { upstream, path: '/', host: '', matchMode: 'prefix', stripPath: false }, owner }
        }
      }
    }
  }

  candidates.sort(
    (a, b) =>
      a.hostRank - b.hostRank ||
      compare(a.rule.host, b.rule.host) ||
      b.length - a.length ||
      (a.rule.matchMode === 'exact' ? 0 : 1) - (b.rule.matchMode === 'exact' ? 0 : 1) ||
      a.seq - b.seq,
  )
  const rules = candidates.map((c) => c.rule)
  if (fallback) rules.push(fallback.rule)

  return {
    config: { upstreams: [...upstreams.values()].sort((a, b) => compare(a.name, b.name)), rules },
    diagnostics,
    owned,
  }
}

/** Why the proxy could not serve `path` with `matchMode` (and rewrite-target), or undefined. */
function checkPath(path: string, matchMode: MatchMode, rewriteTarget: string | undefined): string | undefined {
  if (matchMode !== 'regex') {
    if (!/^\/[^\s?#]*$/.test(path)) return 'must start with "/" and contain no spaces, "?" or "#"'
    if (rewriteTarget !== undefined && highestGroup(rewriteTarget) > 0) return `is Exact and has no capture groups for rewrite-target ${JSON.stringify(rewriteTarget)}`
    return undefined
  }
  if (!/^\/\S*$/.test(path)) return 'must start with "/" and contain no spaces'
  let groups: number
  try {
    groups = groupCount(compilePathRegex(path, true))
  } catch (err) {
    if (!(err instanceof PathRegexError)) throw err
    return err.message
  }
  const wanted = rewriteTarget === undefined ? 0 : highestGroup(rewriteTarget)
  if (wanted > groups) return `has ${groups} capture group${groups === 1 ? '' : 's'}, and rewrite-target ${JSON.stringify(rewriteTarget)} uses $${wanted}`
  return undefined
}

/** Exact → exact; Prefix and ImplementationSpecific → Kubernetes element-wise prefix. */
function matchModeFor(pathType: string | undefined): MatchMode | undefined {
  switch (pathType ?? 'ImplementationSpecific') {
    case 'Exact':
      return 'exact'
    case 'Prefix':
    case 'ImplementationSpecific':
      return 'pathPrefix'
    default:
      return undefined
  }
}

function resolveBackend(
  backend: IngressBackend,
  namespace: string,
  services: ReadonlyMap<string, Service>,
  where: string,
  report: (reason: Diagnostic['reason'], message: string) => void,
): { service: string; port: ServicePort; spec: Service } | undefined {
  const svc = backend.service
  if (!svc) {
    const kind = backend.resource ? `${backend.resource.kind} ${backend.resource.name}` : 'nothing'
    report('UnsupportedBackend', `${where}: only Service backends are supported, found ${kind}; this path is not served`)
    return undefined
  }
  const service = services.get(`${namespace}/${svc.name}`)
  if (!service) {
    report('BackendNotFound', `${where}: Service ${namespace}/${svc.name} does not exist; this path is not served until it does`)
    return undefined
  }
  const ports = service.spec?.ports ?? []
  const wanted = svc.port
  // A Service port given by name is resolved through spec.ports (the name of
  // a *Service* port, not a container's targetPort).
  const match =
    wanted?.name !== undefined && wanted.name !== ''
      ? ports.find((p) => p.name === wanted.name)
      : wanted?.number !== undefined
        ? ports.find((p) => p.port === wanted.number)
        : ports.length === 1
          ? ports[0]
          : undefined
  if (!match) {
    const asked = wanted?.name ? `named ${JSON.stringify(wanted.name)}` : wanted?.number !== undefined ? String(wanted.number) : '(none given)'
    const known = ports.map((p) => (p.name ? `${p.name}=${p.port}` : String(p.port))).join(', ') || 'none'
    report('BackendNotFound', `${where}: Service ${namespace}/${svc.name} has no port ${asked} (its ports: ${known}); this path is not served`)
    return undefined
  }
  return { service: svc.name, port: match, spec: service }
}

/** Oldest first, then by namespace/name. Sort keys computed once: parsing a timestamp per comparison cost most of a rebuild at 10,000 Ingresses. */
function byAge(ingresses: Ingress[]): Ingress[] {
  return ingresses
    .map((ingress) => ({ ingress, t: time(ingress.metadata.creationTimestamp), key: keyOf(ingress.metadata) }))
    .sort((a, b) => a.t - b.t || compare(a.key, b.key))
    .map((e) => e.ingress)
}

function time(t: Date | string | undefined): number {
  if (t === undefined) return Number.MAX_SAFE_INTEGER
  const ms = t instanceof Date ? t.getTime() : Date.parse(t)
  return Number.isNaN(ms) ? Number.MAX_SAFE_INTEGER : ms
}

/** Locale-independent string order, so output never depends on the machine. */
function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}
