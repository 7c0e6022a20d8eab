// deploy/kubernetes/nanoproxy.yaml is the chart's output with its default
// values (`helm template nanoproxy deploy/helm/nanoproxy --namespace
// nanoproxy`) plus the Namespace, without the two labels that only make
// sense for helm-managed objects. This test keeps the two in step; after a
// chart change, regenerate the file with
//   UPDATE_MANIFESTS=1 node_modules/.bin/node --test test/deploy/manifests.test.ts

import assert from 'node:assert/strict'
import { readFileSync, writeFileSync } from 'node:fs'
import { describe, it } from 'node:test'
import type { KubernetesObject } from '@kubernetes/client-node'
import { parseManifests, renderChart, renderChartText } from '../helpers/helm.ts'

const MANIFESTS = new URL('../../deploy/kubernetes/nanoproxy.yaml', import.meta.url).pathname

/** Labels helm adds that do not belong on objects applied with kubectl. */
const HELM_ONLY_LABELS = ['helm.sh/chart', 'app.kubernetes.io/managed-by']

const HEADER = `# NanoProxy (proxy + ingress controller) for kubectl apply, in namespace nanoproxy:
#
#   kubectl apply -f deploy/kubernetes/nanoproxy.yaml
#
# GENERATED from the Helm chart deploy/helm/nanoproxy with its default values
# (helm template nanoproxy deploy/helm/nanoproxy --namespace nanoproxy, plus
# the Namespace; the labels helm.sh/chart and app.kubernetes.io/managed-by
# removed). Do not edit: change the chart, then run
#   UPDATE_MANIFESTS=1 node_modules/.bin/node --test test/deploy/manifests.test.ts
# test/deploy/manifests.test.ts fails when the two differ.
#
# The image "nanoproxy:0.1.0" is your build of the repository's Dockerfile:
# push it to a registry your cluster can pull from and change both
# "image:" lines (or use kustomize's images: field). Settings (TLS, debug,
# default IngressClass, watched namespace...) are values of the chart; see
# deploy/helm/nanoproxy/README.md.
`

const NAMESPACE = `---
apiVersion: v1
kind: Namespace
metadata:
  name: nanoproxy
  labels:
    app.kubernetes.io/name: nanoproxy
    # The pod meets the "restricted" Pod Security Standard.
    pod-security.kubernetes.io/enforce: restricted
`

function withoutHelmLabels(obj: KubernetesObject): KubernetesObject {
  const copy = structuredClone(obj)
  const labels = copy.metadata?.labels
  if (labels) for (const l of HELM_ONLY_LABELS) delete labels[l]
  return copy
}

/** What deploy/kubernetes/nanoproxy.yaml must contain. */
function generate(): string {
  const chart = renderChartText({ release: 'nanoproxy', namespace: 'nanoproxy' })
  const stripped = chart
    .split('\n')
    .filter((line) => !HELM_ONLY_LABELS.some((l) => line.trimStart().startsWith(`${l}: `)))
    .join('\n')
  return HEADER + NAMESPACE + stripped
}

if (process.env.UPDATE_MANIFESTS) writeFileSync(MANIFESTS, generate())

describe('the plain Kubernetes manifests', () => {
  it('hold the same objects as the chart rendered with its default values', () => {
    const chart = renderChart({ release: 'nanoproxy', namespace: 'nanoproxy' }).map(withoutHelmLabels)
    const manifests = parseManifests(readFileSync(MANIFESTS, 'utf8'))
    assert.equal(manifests[0]?.kind, 'Namespace', 'the Namespace comes first, so kubectl apply creates it before what goes in it')
    assert.deepEqual(
      manifests.slice(1),
      chart,
      'deploy/kubernetes/nanoproxy.yaml is out of date: run UPDATE_MANIFESTS=1 node_modules/.bin/node --test test/deploy/manifests.test.ts',
    )
  })

  it('put every namespaced object in the nanoproxy namespace they create', () => {
    const manifests = parseManifests(readFileSync(MANIFESTS, 'utf8'))
    const clusterScoped = new Set(['Namespace', 'ClusterRole', 'ClusterRoleBinding', 'IngressClass'])
    assert.deepEqual(manifests[0]?.metadata, {
      name: 'nanoproxy',
      labels: { 'app.kubernetes.io/name': 'nanoproxy', 'pod-security.kubernetes.io/enforce': 'restricted' },
    })
    for (const obj of manifests) {
      const want = clusterScoped.has(obj.kind!) ? undefined : 'nanoproxy'
      assert.equal(obj.metadata?.namespace, want, `${obj.kind}/${obj.metadata?.name}`)
    }
  })

  it('carry no label that only helm-managed objects should have', () => {
    const text = readFileSync(MANIFESTS, 'utf8')
    for (const label of HELM_ONLY_LABELS) assert.ok(!text.includes(label + ': '), label)
  })
})
