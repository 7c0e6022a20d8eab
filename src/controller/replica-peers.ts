// Whether other replicas of this controller are running: the question
// ingress-nginx asks before clearing Ingress status on shutdown
// (internal/ingress/status/status.go, isRunningMultiplePods).
//
// Our pod's labels, minus the ones that differ between revisions
// (pod-template-hash, controller-revision-hash, pod-template-generation),
// select the pods of the same Deployment across a rolling update. Unlike
// ingress-nginx, which counts every such pod, only pods that are Ready and
// not being deleted count: during `helm uninstall` every pod is terminating,
// each would see the others and none would clear the status; during a
// rolling update the new pods are Ready before the old ones stop, so the old
// ones leave the status alone.

import { readFileSync } from 'node:fs'
import { hostname } from 'node:os'
import type { CoreV1Api } from '@kubernetes/client-node'

export interface PodIdentity {
  name: string
  namespace: string
}

const SERVICE_ACCOUNT_NAMESPACE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace'
const REVISION_LABELS = new Set(['pod-template-hash', 'controller-revision-hash', 'pod-template-generation'])

/**
 * This pod's name and namespace: POD_NAME / POD_NAMESPACE (downward API)
 * when set, else the host name (a pod's host name is its name unless
 * spec.hostname says otherwise) and the service account's namespace file.
 */
export function podIdentity(env: Record<string, string | undefined>, namespaceFile = SERVICE_ACCOUNT_NAMESPACE): PodIdentity | undefined {
  const name = env.POD_NAME || hostname()
  let namespace = env.POD_NAMESPACE
  if (!namespace) {
    try {
      namespace = readFileSync(namespaceFile, 'utf8').trim()
    } catch {
      return undefined // not in a pod, and not told
    }
  }
  return namespace ? { name, namespace } : undefined
}

type PodApi = Pick<CoreV1Api, 'readNamespacedPod' | 'listNamespacedPod'>

/** Names of the other Ready, not terminating pods with our pod's labels. Throws when it cannot tell. */
export async function otherReadyReplicas(api: PodApi, me: PodIdentity): Promise<string[]> {
  const pod = await api.readNamespacedPod({ name: me.name, namespace: me.namespace })
  const labels = Object.entries(pod.metadata?.labels ?? {}).filter(([k]) => !REVISION_LABELS.has(k))
  if (labels.length === 0) throw new Error(`pod ${me.namespace}/${me.name} has no labels to find its replicas by`)
  const labelSelector = labels.map(([k, v]) => `${k}=${v}`).join(',')
  const pods = await api.listNamespacedPod({ namespace: me.namespace, labelSelector })
  return pods.items
    .filter((p) => p.metadata?.name !== me.name && !p.metadata?.deletionTimestamp)
    .filter((p) => p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'))
    .map((p) => p.metadata?.name ?? '')
}
