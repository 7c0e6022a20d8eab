// `nanoproxy controller`: watch Ingresses and write the proxy's config file.

import { KubeConfig } from '@kubernetes/client-node'
import { configPath } from '../config/config-file.ts'
import { readControllerSettings } from '../controller/controller-settings.ts'
import { createHealthServer } from '../controller/health-server.ts'
import { IngressController } from '../controller/ingress-controller.ts'
import { createLogger } from '../log.ts'
import { listen } from '../proxy/server.ts'
import { VERSION } from '../version.ts'

export async function runController(options: { config?: string | undefined }, env: Record<string, string | undefined>): Promise<void> {
  const settings = readControllerSettings(env)
  const log = createLogger({ debug: settings.debug, name: 'controller' })
  const kubeConfig = new KubeConfig()
  // KUBECONFIG, else ~/.kube/config, else the in-cluster service account.
  kubeConfig.loadFromDefault()
  const cluster = kubeConfig.getCurrentCluster()
  if (!cluster) throw new Error('no Kubernetes cluster configured (KUBECONFIG, ~/.kube/config or in-cluster service account)')
  const configFile = configPath(options.config, env)

  const controller = new IngressController({ ...settings, kubeConfig, log, configFile })
  const health = createHealthServer(() => ({
    ready: controller.synced && controller.written,
    detail: { synced: controller.synced, written: controller.written },
  }))
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
    void controller.stop().then(() => process.exit(0))
  }
  process.once('SIGTERM', stop)
  process.once('SIGINT', stop)
}
