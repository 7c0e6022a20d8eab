// Controller settings from the environment.

import type { TranslateOptions } from './snapshot.ts'

/**
 * The original NanoProxy's IngressClass controller name, so IngressClass
 * objects created for it keep working unchanged.
 */
export const DEFAULT_CONTROLLER_NAME = 'benc-uk/nanoproxy'

export function controllerOptions(env: Record<string, string | undefined>): TranslateOptions {
  return {
    controllerName: env.CONTROLLER_NAME || DEFAULT_CONTROLLER_NAME,
    clusterDomain: env.CLUSTER_DOMAIN || 'cluster.local',
  }
}
