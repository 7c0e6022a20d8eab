// `nanoproxy controller`: watch Ingresses and write the proxy's config file.

import { existsSync } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { KubeConfig } from '@kubernetes/client-node'
import { ERROR_CODES, NanoProxyError } from '../errors.ts'
import { configPath } from '../config/config-file.ts'
import { readControllerSettings } from '../controller/controller-settings.ts'
import { createHealthServer } from '../controller/health-server.ts'
import { GatewayController } from '../controller/gateway-controller.ts'
import { IngressController } from '../controller/ingress-controller.ts'
import { LeaderElector, leaseApi } from '../controller/leader-election.ts'
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

  // Leader election needs to know which pod this is and its namespace (the
  // Lease lives there). Outside a pod, and not told, there is nobody to
  // elect with: this process is the only controller and leads.
  const me = podIdentity(env)
  const { leaderElection } = settings
  let elector: LeaderElector | undefined
  if (leaderElection.enabled && !me) log.warn('leader election off: not running in a pod (no POD_NAME/POD_NAMESPACE); this controller writes status and Events alone')
  let gateways: GatewayController | undefined
  const controller = new IngressController({ ...settings, kubeConfig, log, configFile, leading: !(leaderElection.enabled && me), onSourceChange: () => gateways?.sourceChanged() })
  const metrics = new ControllerMetrics(controller)
  metrics.setLeader(controller.leading)
  if (leaderElection.enabled && me) {
    elector = new LeaderElector({
      ...leaderElection,
      api: leaseApi(kubeConfig, me.namespace, leaderElection.leaseName),
      lease: `${me.namespace}/${leaderElection.leaseName}`,
      identity: me.name,
      log,
      onChange: (leading) => {
        controller.setLeading(leading)
        metrics.setLeader(leading)
      },
    })
  }
  if (settings.gatewayApi) {
    gateways = new GatewayController({
      kubeConfig,
      log,
      controllerName: settings.gatewayControllerName,
      source: { services: () => controller.serviceList(), secrets: () => controller.secretList() },
    })
  }
  const health = createHealthServer(
    () => ({
      ready: controller.synced && controller.written,
      detail: { synced: controller.synced, written: controller.written, leading: controller.leading, watch_failures: controller.watchFailures },
    }),
    () => metrics.families(),
  )
  const port = await listen(health, settings.port)
  controller.start()
  elector?.start()
  gateways?.start()
  log.info(
    {
      version: VERSION,
      server: cluster.server,
      controller_name: settings.controllerName,
      gateway_controller_name: settings.gatewayApi ? settings.gatewayControllerName : '(Gateway API off)',
      namespace: settings.namespace ?? '(all)',
      config: configFile,
      health_port: port,
      publish: settings.publish,
      leader_election: elector ? { lease: `${me!.namespace}/${leaderElection.leaseName}`, identity: me!.name } : false,
    },
    `NanoProxy controller ${VERSION} watching ${cluster.server}`,
  )

  const stop = (signal: NodeJS.Signals): void => {
    log.info({ signal }, 'shutting down')
    health.close()
    void (async () => {
      await Promise.all([controller.stop(), gateways?.stop()])
      if (settings.updateStatusOnShutdown) {
        // Bounded: the pod's grace period must not run out on a slow API server.
        const limit = new Promise<void>((r) => setTimeout(r, STATUS_ON_SHUTDOWN_LIMIT_MS).unref())
        await Promise.race([controller.clearStatusIfLastReplica(me).catch((err: unknown) => log.warn({ err }, 'clearing ingress status failed')), limit])
      }
      // Last: the leader hands the lease over only once it has stopped
      // writing, so that another replica takes over at its next try.
      await elector?.stop()
      exitAfterLogs(0)
    })()
  }
  process.once('SIGTERM', stop)
  process.once('SIGINT', stop)
}
