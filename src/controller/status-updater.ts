// Ingress status: the addresses clients reach the proxy at.
//
// As ingress-nginx's --publish-service / --publish-status-address do: with
// PUBLISH_SERVICE=namespace/name the load-balancer addresses of that Service
// (the proxy's own Service) are copied into status.loadBalancer of every
// Ingress we own; PUBLISH_ADDRESS gives the addresses directly. An Ingress
// that stops being ours has the status we wrote cleared. Without either
// setting the controller leaves status alone.

import { isIP } from 'node:net'
import { NetworkingV1Api, PatchStrategy, setHeaderOptions, type KubeConfig } from '@kubernetes/client-node'
import type { Logger } from '../log.ts'
import { keyOf, type Ingress, type Service } from './snapshot.ts'

export interface LoadBalancerIngress {
  ip?: string
  hostname?: string
}

export interface PublishSettings {
  /** `namespace/name` of the Service whose load-balancer addresses to publish. */
  service?: string | undefined
  /** Fixed addresses (IPs or hostnames) to publish. */
  addresses?: string[] | undefined
}

/** The status to publish, or undefined when status is not managed. */
export function desiredAddresses(publish: PublishSettings, services: readonly Service[]): LoadBalancerIngress[] | undefined {
  if (publish.addresses && publish.addresses.length > 0) {
    return publish.addresses.map((a) => (isIP(a) ? { ip: a } : { hostname: a }))
  }
  if (publish.service) {
    const svc = services.find((s) => keyOf(s.metadata) === publish.service)
    return (svc?.status?.loadBalancer?.ingress ?? []).map((i) => (i.ip ? { ip: i.ip } : { hostname: i.hostname ?? '' }))
  }
  return undefined
}

export class StatusUpdater {
  private readonly api: NetworkingV1Api
  private readonly log: Logger
  private readonly publish: PublishSettings
  /** Ingresses whose status we set, so we can clear it when they stop being ours. */
  private managed = new Set<string>()

  constructor(kubeConfig: KubeConfig, log: Logger, publish: PublishSettings) {
    this.api = kubeConfig.makeApiClient(NetworkingV1Api)
    this.log = log
    this.publish = publish
  }

  async update(owned: readonly Ingress[], all: readonly Ingress[], services: readonly Service[]): Promise<void> {
    const desired = desiredAddresses(this.publish, services)
    if (desired === undefined) return
    const ownedKeys = new Set(owned.map((i) => keyOf(i.metadata)))
    for (const ingress of owned) await this.set(ingress, desired)
    for (const ingress of all) {
      const key = keyOf(ingress.metadata)
      if (this.managed.has(key) && !ownedKeys.has(key)) await this.set(ingress, [])
    }
    this.managed = ownedKeys
  }

  private async set(ingress: Ingress, addresses: LoadBalancerIngress[]): Promise<void> {
    const current = (ingress.status?.loadBalancer?.ingress ?? []).map((i) => (i.ip ? { ip: i.ip } : { hostname: i.hostname ?? '' }))
    if (JSON.stringify(current) === JSON.stringify(addresses)) return
    const name = ingress.metadata.name ?? ''
    const namespace = ingress.metadata.namespace ?? 'default'
    try {
      await this.api.patchNamespacedIngressStatus(
        { name, namespace, body: { status: { loadBalancer: { ingress: addresses } } } },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      )
      this.log.info({ ingress: `${namespace}/${name}`, addresses }, addresses.length > 0 ? 'ingress status updated' : 'ingress status cleared')
    } catch (err) {
      this.log.warn({ err: (err as Error).message, ingress: `${namespace}/${name}` }, 'could not update ingress status')
    }
  }
}
