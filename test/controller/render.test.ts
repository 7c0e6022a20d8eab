// `nanoproxy render` fixtures, one folder per scenario (the Traefik way):
// input.yaml holds the Kubernetes objects, expected.yaml the proxy config
// the controller must produce, warnings.txt the Warning events (if any).
// The first comment line of input.yaml names the test. Expected files are
// checked by hand against the Ingress docs, never just copied from output.

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseConfig } from '../../src/config/load.ts'
import { runCli } from '../helpers/proxy-process.ts'

const fixtures = new URL('./fixtures/', import.meta.url).pathname

describe('nanoproxy render', () => {
  for (const scenario of readdirSync(fixtures).sort()) {
    const dir = join(fixtures, scenario)
    const description = /^#\s*(.*)/.exec(readFileSync(join(dir, 'input.yaml'), 'utf8'))?.[1] ?? scenario
    it(`${scenario}: ${description}`, async () => {
      const { code, stdout, stderr } = await runCli(['render', join(dir, 'input.yaml')])
      assert.equal(code, 0, stderr)
      assert.equal(stdout, readFileSync(join(dir, 'expected.yaml'), 'utf8'))
      const warnings = join(dir, 'warnings.txt')
      assert.equal(stderr, existsSync(warnings) ? readFileSync(warnings, 'utf8') : '')
      // What the controller writes must be a config the proxy accepts.
      assert.doesNotThrow(() => parseConfig(stdout, 'rendered'))
    })
  }

  it('writes the HSTS settings into the certificates of spec.tls hosts, with or without a Secret', async () => {
    const { stdout, code, stderr } = await runCli(['render', join(fixtures, 'tls', 'input.yaml')], { HSTS: 'true', HSTS_MAX_AGE: '600', HSTS_PRELOAD: 'true' })
    assert.equal(code, 0, stderr)
    const certificates = parseConfig(stdout, 'rendered').certificates ?? []
    assert.ok(certificates.length >= 3)
    for (const c of certificates) {
      assert.deepEqual([c.hstsMaxAge, c.hstsIncludeSubDomains, c.hstsPreload], [600, true, true], c.hosts.join(','))
    }
    assert.ok(certificates.some((c) => c.certFile === undefined && c.hosts.includes('new.example.com')))
  })

  it('lists a spec.tls host without a Secret as served with the default certificate, unless a wildcard certificate covers it', async () => {
    const { writeFileSync } = await import('node:fs')
    const { tempDir } = await import('../helpers/proxy-process.ts')
    const { createPki } = await import('../helpers/certs.ts')
    const wild = createPki().issue(['*.apps.example.com'])
    const b64 = (s: string) => Buffer.from(s).toString('base64')
    const ingress = (name: string, created: string, tls: string) =>
      `apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: ${name}, namespace: shop, creationTimestamp: "${created}"}\n` +
      `spec:\n  ingressClassName: nanoproxy\n  tls: [${tls}]\n  rules:\n    - http: {paths: [{path: /${name}, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}]}\n`
    const file = join(tempDir(), 'input.yaml')
    writeFileSync(
      file,
      [
        'apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: nanoproxy}\nspec: {controller: benc-uk/nanoproxy}\n',
        'apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec: {ports: [{port: 80}]}\n',
        `apiVersion: v1\nkind: Secret\nmetadata: {name: wild, namespace: shop}\ntype: kubernetes.io/tls\ndata: {tls.crt: ${b64(wild.cert)}, tls.key: ${b64(wild.key)}}\n`,
        ingress('apps', '2026-01-01T00:00:00Z', '{hosts: ["*.apps.example.com"], secretName: wild}'),
        ingress('later', '2026-01-02T00:00:00Z', '{hosts: [a.apps.example.com, Later.Example.com.], secretName: not-yet}, {hosts: [nosecret.example.com]}'),
      ].join('---\n'),
    )
    const { code, stdout, stderr } = await runCli(['render', file])
    assert.equal(code, 0, stderr)
    const certificates = parseConfig(stdout, 'rendered').certificates ?? []
    assert.deepEqual(
      certificates.map((c) => [c.hosts, c.certFile !== undefined]),
      [
        [['*.apps.example.com'], true],
        [['later.example.com', 'nosecret.example.com'], false],
      ],
    )
    assert.match(stderr, /Warning shop\/later SecretNotFound: spec\.tls\[0\]: no Secret of type kubernetes\.io\/tls named shop\/not-yet/)
  })

  it('exits 1 with file:line:column on YAML it cannot parse', async () => {
    const { writeFileSync } = await import('node:fs')
    const { tempDir } = await import('../helpers/proxy-process.ts')
    const file = join(tempDir(), 'broken.yaml')
    writeFileSync(file, 'kind: Ingress\nmetadata: [\n')
    const { code, stderr } = await runCli(['render', file])
    assert.equal(code, 1)
    assert.match(stderr, new RegExp(`^${file}:\\d+:\\d+: `))
  })
})

describe('the addresses published in Ingress status', () => {
  it('are PUBLISH_ADDRESS entries, IPs as ip and names as hostname, ahead of a publish Service', async () => {
    const { desiredAddresses } = await import('../../src/controller/status-updater.ts')
    const services = [{ metadata: { name: 'np', namespace: 'x' }, status: { loadBalancer: { ingress: [{ ip: '198.51.100.1' }] } } }]
    assert.deepEqual(desiredAddresses({ addresses: ['203.0.113.10', 'lb.example.com'], service: 'x/np' }, services), [
      { ip: '203.0.113.10' },
      { hostname: 'lb.example.com' },
    ])
    assert.deepEqual(desiredAddresses({ service: 'x/np' }, services), [{ ip: '198.51.100.1' }])
    assert.equal(desiredAddresses({}, services), undefined, 'without either setting, status is left alone')
  })
})
