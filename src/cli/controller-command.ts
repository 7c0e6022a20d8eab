// `nanoproxy controller`: watch Ingresses and write the proxy's config file.

import { existsSync } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { KubeConfig } from '@kubernetes/client-node'
import { ERROR_CODES, NanoProxyError } from '../errors.ts'
import { configPath } from '../config/config-file.ts'
import { readControllerSettings } from '../controller/controller-settings.ts'
import { createHealthServer } from '../controller/health-server.ts'
import { IngressController } from '../controller/ingress-controller.ts'
import { podIdentity } from '../controller/replica-peers.ts'
import { createLogger, exitAfterLogs } from '../log.ts'
import { ControllerMetrics } from '../metrics/controller-metrics.ts'
import { listen } from '../proxy/server.ts'
import { VERSION } from '../version.ts'

/** Longest the shutdown waits for the Ingress status to be cleared. */
const STATUS_ON_SHUTDOWN_LIMIT_MS = 10_000

export async function runController(options: { config?: string | undefined }, env: Record<string, string | undefined>): Promise<void> {
  const settings = readControllerSettings(env)
  const log = createLogger({ debug: settings.debug, name: 'controller' })
  // KUBECONFIG, else ~/.kube/config, else the in-cluster service account.
  // With none of them the client library would quietly try localhost:8080.
  const home = join(homedir(), '.kube', 'config')
  if (!env.KUBECONFIG && !existsSync(home) && !env.KUBERNETES_SERVICE_HOST) {
    throw new NanoProxyError(ERROR_CODES.SETTINGS_INVALID, `no Kubernetes credentials: set KUBECONFIG, create ${home}, or run in a pod with a service account`)
  }
  const kubeConfig = new KubeConfig()
  kubeConfig.loadFromDefault()
  const cluster = kubeConfig.getCurrentCluster()
  if (!cluster) throw new NanoProxyError(ERROR_CODES.SETTINGS_INVALID, 'the Kubernetes config names no current cluster')
  const configFile = configPath(options.config, env)

  const controller = new IngressController({ ...settings, kubeConfig, log, configFile })
  // Leader election sets the leader gauge with metrics.setLeader().
  const metrics = new ControllerMetrics(controller)
  const health = createHealthServer(
    () => ({
      ready: controller.synced && controller.written,
      detail: { synced: controller.synced, written: controller.written, watch_failures: controller.watchFailures },
    }),
    () => metrics.families(),
  )
  const port = await listen(health, settings.port)
  controller.start()
  log.info(
    {
      version: VERSION,
      server: cluster.server,
      controller_name: settings.controllerName,
      namespace: settings.namespace ?? '(all)',
      config: configFile,
      health_port: port,
      publish: settings.publish,
    },
    `NanoProxy controller ${VERSION} watching ${cluster.server}`,
  )

  const stop = (signal: NodeJS.Signals): void => {
    log.info({ signal }, 'shutting down')
    health.close()
    void (async () => {
      await controller.stop()
      if (settings.updateStatusOnShutdown) {
        // Bounded: the pod's grace period must not run out on a slow API server.
        const limit = new Promise<void>((r) => setTimeout(r, STATUS_ON_SHUTDOWN_LIMIT_MS).unref())
        await Promise.race([controller.clearStatusIfLastReplica(podIdentity(env)).catch((err: unknown) => log.warn({ err }, 'clearing ingress status failed')), limit])
      }
      exitAfterLogs(0)
    })()
  }
  process.once('SIGTERM', stop)
  process.once('SIGINT', stop)
}
