// Controller settings from the environment.

import { ERROR_CODES, NanoProxyError } from '../errors.ts'
import { logLevelProblem } from '../settings.ts'
import type { TranslateOptions } from './snapshot.ts'
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
  }
}

export interface ControllerSettings extends TranslateOptions {
  /** Port of the /healthz and /readyz endpoints. */
  port: number
  namespace: string | undefined
  publish: PublishSettings
  /** Clear the published Ingress status when the last replica shuts down (UPDATE_STATUS_ON_SHUTDOWN). */
  updateStatusOnShutdown: boolean
  /** GATEWAY_API=true: serve the Gateway API too, once its CRDs are served (docs/gateway-api.md). */
  gatewayApi: boolean
  /** GATEWAY_CONTROLLER_NAME: spec.controllerName of the GatewayClasses served. */
  gatewayControllerName: string
  debug: boolean
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
    gatewayApi: gatewayApi === 'true',
    gatewayControllerName,
    debug: (env.DEBUG ?? '') !== '',
  }
}
