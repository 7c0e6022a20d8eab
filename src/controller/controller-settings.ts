// Controller settings from the environment.

import { ERROR_CODES, NanoProxyError } from '../errors.ts'
import { logLevelProblem } from '../settings.ts'
import { DEFAULT_TIMINGS, timingsProblem, type LeaderElectionTimings } from './leader-election.ts'
import type { HstsPolicy, TranslateOptions } from './snapshot.ts'
import type { PublishSettings } from './status-updater.ts'
import { DEFAULT_GATEWAY_CONTROLLER_NAME } from './gateway-status.ts'

/**
 * The original NanoProxy's IngressClass controller name, so IngressClass
 * objects created for it keep working unchanged.
 */
export const DEFAULT_CONTROLLER_NAME = 'benc-uk/nanoproxy'

export function controllerOptions(env: Record<string, string | undefined>): TranslateOptions {
  return {
    controllerName: env.CONTROLLER_NAME || DEFAULT_CONTROLLER_NAME,
    clusterDomain: env.CLUSTER_DOMAIN || 'cluster.local',
    // ingress-nginx's --default-ssl-certificate: served for hosts without a certificate and without SNI.
    defaultTlsSecret: env.DEFAULT_TLS_SECRET?.trim() || undefined,
    hsts: hstsSettings(env, []),
  }
}

/** ingress-nginx's default hsts-max-age: one year. */
export const DEFAULT_HSTS_MAX_AGE = 31_536_000

/**
 * HSTS, HSTS_MAX_AGE, HSTS_INCLUDE_SUBDOMAINS, HSTS_PRELOAD: ingress-nginx's
 * ConfigMap keys hsts, hsts-max-age, hsts-include-subdomains, hsts-preload,
 * with its defaults once HSTS is on (one year, includeSubDomains, no
 * preload). Off unless HSTS=true, unlike ingress-nginx: a browser keeps the
 * policy for max-age and refuses plain HTTP to the host (and, with
 * includeSubDomains, to every name under it) until then, so it is the
 * operator's decision, not a default. Problems go to `problems`; a policy
 * with problems is left out.
 */
export function hstsSettings(env: Record<string, string | undefined>, problems: string[]): HstsPolicy | undefined {
  const bool = (name: string, fallback: boolean): boolean => {
    const raw = (env[name] ?? '').trim().toLowerCase()
    if (raw === '') return fallback
    if (raw === 'true' || raw === 'false') return raw === 'true'
    problems.push(`${name}=${JSON.stringify(env[name])} is not valid: expected true or false`)
    return fallback
  }
  const before = problems.length
  const on = bool('HSTS', false)
  const includeSubDomains = bool('HSTS_INCLUDE_SUBDOMAINS', true)
  const preload = bool('HSTS_PRELOAD', false)
  const rawAge = (env.HSTS_MAX_AGE ?? '').trim()
  const maxAge = rawAge === '' ? DEFAULT_HSTS_MAX_AGE : Number(rawAge)
  if (!/^\d*$/.test(rawAge) || !Number.isSafeInteger(maxAge)) problems.push(`HSTS_MAX_AGE=${JSON.stringify(env.HSTS_MAX_AGE)} is not valid: expected whole seconds (0 or more)`)
  return on && problems.length === before ? { maxAge, includeSubDomains, preload } : undefined
}

export interface ControllerSettings extends TranslateOptions {
  /** Port of the /healthz and /readyz endpoints. */
  port: number
  namespace: string | undefined
  publish: PublishSettings
  /** Clear the published Ingress status when the last replica shuts down (UPDATE_STATUS_ON_SHUTDOWN). */
  updateStatusOnShutdown: boolean
  leaderElection: LeaderElectionSettings
  /** GATEWAY_API=true: serve the Gateway API too, once its CRDs are served (docs/gateway-api.md). */
  gatewayApi: boolean
  /** GATEWAY_CONTROLLER_NAME: spec.controllerName of the GatewayClasses served. */
  gatewayControllerName: string
  debug: boolean
}

export interface LeaderElectionSettings extends LeaderElectionTimings {
  /** LEADER_ELECTION (true): only one replica sets Ingress status and sends Events. */
  enabled: boolean
  /** LEADER_ELECTION_LEASE: the Lease's name, in the controller's own namespace. */
  leaseName: string
}

/** The Lease's name when LEADER_ELECTION_LEASE is not set (the chart sets `<release>-leader`). */
export const DEFAULT_LEASE_NAME = 'nanoproxy-leader'

/** A duration in seconds (`15` or `15s`), in milliseconds. */
function seconds(env: Record<string, string | undefined>, name: string, fallbackMs: number, problems: string[]): number {
  const raw = (env[name] ?? '').trim()
  if (raw === '') return fallbackMs
  const value = Number(raw.replace(/s$/, ''))
  if (!Number.isFinite(value) || value <= 0) {
    problems.push(`${name}=${JSON.stringify(env[name])} is not valid: expected a number of seconds greater than 0`)
    return fallbackMs
  }
  return Math.round(value * 1000)
}

function readLeaderElection(env: Record<string, string | undefined>, problems: string[]): LeaderElectionSettings {
  const enabled = (env.LEADER_ELECTION ?? '').trim().toLowerCase()
  if (!['', 'true', 'false'].includes(enabled)) problems.push(`LEADER_ELECTION=${JSON.stringify(env.LEADER_ELECTION)} is not valid: expected true or false`)
  const leaseName = (env.LEADER_ELECTION_LEASE ?? '').trim() || DEFAULT_LEASE_NAME
  // A Lease's name is a DNS subdomain (RFC 1123), at most 253 characters.
  if (leaseName.length > 253 || !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(leaseName)) {
    problems.push(`LEADER_ELECTION_LEASE=${JSON.stringify(leaseName)} is not valid: expected a DNS subdomain name (lower case letters, digits, '-' and '.')`)
  }
  const timings: LeaderElectionTimings = {
    leaseDurationMs: seconds(env, 'LEADER_ELECTION_LEASE_DURATION', DEFAULT_TIMINGS.leaseDurationMs, problems),
    renewDeadlineMs: seconds(env, 'LEADER_ELECTION_RENEW_DEADLINE', DEFAULT_TIMINGS.renewDeadlineMs, problems),
    retryPeriodMs: seconds(env, 'LEADER_ELECTION_RETRY_PERIOD', DEFAULT_TIMINGS.retryPeriodMs, problems),
  }
  const problem = timingsProblem(timings)
  if (problem) {
    problems.push(
      `LEADER_ELECTION_LEASE_DURATION=${timings.leaseDurationMs / 1000}, LEADER_ELECTION_RENEW_DEADLINE=${timings.renewDeadlineMs / 1000}, LEADER_ELECTION_RETRY_PERIOD=${timings.retryPeriodMs / 1000} are not valid: ${problem}`,
    )
  }
  return { enabled: enabled !== 'false', leaseName, ...timings }
}

export function readControllerSettings(env: Record<string, string | undefined>): ControllerSettings {
  const problems: string[] = []
  const rawPort = (env.PORT ?? '').trim()
  const port = rawPort === '' ? 9090 : Number(rawPort)
  if (!Number.isInteger(port) || port < 0 || port > 65535) problems.push(`PORT=${JSON.stringify(rawPort)} is not valid: expected a port number 0-65535`)
  const publishService = env.PUBLISH_SERVICE || undefined
  if (publishService !== undefined && !/^[a-z0-9-]+\/[a-z0-9.-]+$/.test(publishService)) {
    problems.push(`PUBLISH_SERVICE=${JSON.stringify(publishService)} is not valid: expected namespace/name`)
  }
  const addresses = (env.PUBLISH_ADDRESS ?? '').split(',').map((s) => s.trim()).filter((s) => s !== '')
  const onShutdown = (env.UPDATE_STATUS_ON_SHUTDOWN ?? '').trim().toLowerCase()
  if (!['', 'true', 'false'].includes(onShutdown)) problems.push(`UPDATE_STATUS_ON_SHUTDOWN=${JSON.stringify(env.UPDATE_STATUS_ON_SHUTDOWN)} is not valid: expected true or false`)
  const defaultTlsSecret = env.DEFAULT_TLS_SECRET?.trim() || undefined
  if (defaultTlsSecret !== undefined && !/^[a-z0-9-]+\/[a-z0-9.-]+$/.test(defaultTlsSecret)) {
    problems.push(`DEFAULT_TLS_SECRET=${JSON.stringify(defaultTlsSecret)} is not valid: expected namespace/name`)
  }
  hstsSettings(env, problems)
  const leaderElection = readLeaderElection(env, problems)
  const gatewayApi = (env.GATEWAY_API ?? '').trim().toLowerCase()
  if (!['', 'true', 'false'].includes(gatewayApi)) problems.push(`GATEWAY_API=${JSON.stringify(env.GATEWAY_API)} is not valid: expected true or false`)
  // gateway-api apis/v1 GatewayController: a domain-prefixed path (DOMAIN/PATH).
  const gatewayControllerName = env.GATEWAY_CONTROLLER_NAME?.trim() || DEFAULT_GATEWAY_CONTROLLER_NAME
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/[A-Za-z0-9/\-._~%!$&'()*+,;=:]+$/.test(gatewayControllerName) || gatewayControllerName.length > 253) {
    problems.push(`GATEWAY_CONTROLLER_NAME=${JSON.stringify(gatewayControllerName)} is not valid: expected a domain-prefixed path such as ${DEFAULT_GATEWAY_CONTROLLER_NAME}`)
  }
  const logProblem = logLevelProblem(env)
  if (logProblem) problems.push(logProblem)
  if (problems.length > 0) throw new NanoProxyError(ERROR_CODES.SETTINGS_INVALID, problems.join('\n'))
  return {
    ...controllerOptions(env),
    port,
    namespace: env.WATCH_NAMESPACE || undefined,
    publish: { service: publishService, addresses },
    updateStatusOnShutdown: onShutdown !== 'false',
    leaderElection,
    gatewayApi: gatewayApi === 'true',
    gatewayControllerName,
    debug: (env.DEBUG ?? '') !== '',
  }
}
