// examples/httpbin: what `nanoproxy render` makes of the sample app together
// with the IngressClass that the chart and deploy/kubernetes/nanoproxy.yaml
// create. fixtures/httpbin.expected.yaml was written by hand from the
// Ingress (Prefix /httpbin on any host, strip-path) in the style of
// test/controller/fixtures, not copied from the output. The example has no
// EndpointSlices (the cluster's controller makes them): no servers.

import assert from 'node:assert/strict'
import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { stringify } from 'yaml'
import { parseConfig } from '../../src/config/load.ts'
import { parseManifests } from '../helpers/helm.ts'
import { runCli, tempDir } from '../helpers/proxy-process.ts'

const ROOT = new URL('../../', import.meta.url).pathname
const EXAMPLE = join(ROOT, 'examples/httpbin')
const EXPECTED = new URL('./fixtures/httpbin.expected.yaml', import.meta.url).pathname

/** The IngressClass of the plain manifests (the chart's, with its defaults). */
function shippedIngressClass(): string {
  const objects = parseManifests(readFileSync(join(ROOT, 'deploy/kubernetes/nanoproxy.yaml'), 'utf8'))
  const ingressClass = objects.find((o) => o.kind === 'IngressClass')
  assert.ok(ingressClass, 'deploy/kubernetes/nanoproxy.yaml has an IngressClass')
  const file = join(tempDir('nanoproxy-example-'), 'ingressclass.yaml')
  writeFileSync(file, stringify(ingressClass))
  return file
}

describe('the httpbin example', () => {
  it('renders to the expected proxy config with the IngressClass NanoProxy installs, without warnings', async () => {
    const files = readdirSync(EXAMPLE)
      .filter((f) => f.endsWith('.yaml'))
      .sort()
      .map((f) => join(EXAMPLE, f))
    assert.deepEqual(
      files.map((f) => f.slice(EXAMPLE.length + 1)),
      ['deployment.yaml', 'ingress.yaml', 'service.yaml'],
    )
    const { code, stdout, stderr } = await runCli(['render', ...files, shippedIngressClass()])
    assert.equal(code, 0, stderr)
    assert.equal(stdout, readFileSync(EXPECTED, 'utf8'))
    // Only the Deployment is skipped (render reads Ingress, IngressClass and Service).
    assert.equal(stderr, `${join(EXAMPLE, 'deployment.yaml')}: skipping kind "Deployment"\n`)
    assert.doesNotThrow(() => parseConfig(stdout, 'rendered'))
  })

  it('routes nothing without NanoProxy\'s IngressClass', async () => {
    const files = readdirSync(EXAMPLE)
      .filter((f) => f.endsWith('.yaml'))
      .map((f) => join(EXAMPLE, f))
    const { code, stdout } = await runCli(['render', ...files])
    assert.equal(code, 0)
    assert.match(stdout, /^upstreams: \[\]\nrules: \[\]\n$/m)
  })
})
