// ingress-nginx annotations end to end without a cluster: Ingress YAML →
// `nanoproxy render` (the controller's translation) → the real proxy → a
// real upstream (an ExternalName Service naming 127.0.0.1), asserting what
// a client sees.

import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { send, sendJson } from '../helpers/http-client.ts'
import { runCli, startProxy, tempDir, type ProxyProcess } from '../helpers/proxy-process.ts'
import { startUpstream, type SeenRequest, type Upstream } from '../helpers/upstreams.ts'

function ingress(name: string, host: string, annotations: Record<string, string>, paths: { path: string; pathType: string }[]): string {
  return `---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: ${name}
  namespace: default
  annotations: ${JSON.stringify(annotations)}
spec:
  ingressClassName: nanoproxy
  rules:
    - host: ${host}
      http:
        paths: ${JSON.stringify(paths.map((p) => ({ ...p, backend: { service: { name: 'app', port: { name: 'http' } } } })))}
`
}

describe('ingress-nginx annotations through the real proxy', () => {
  let up: Upstream
  let proxy: ProxyProcess

  before(async () => {
    up = await startUpstream()
    const objects =
      `apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: nanoproxy}
spec: {controller: benc-uk/nanoproxy}
---
apiVersion: v1
kind: Service
metadata: {name: app, namespace: default}
spec: {type: ExternalName, externalName: 127.0.0.1, ports: [{name: http, port: ${up.port}}]}
` +
      ingress('rewrite', 'rewrite.bar.com', { 'nginx.ingress.kubernetes.io/use-regex': 'true', 'nginx.ingress.kubernetes.io/rewrite-target': '/$2' }, [
        { path: '/something(/|$)(.*)', pathType: 'ImplementationSpecific' },
      ]) +
      ingress('approot', 'approot.bar.com', { 'nginx.ingress.kubernetes.io/app-root': '/app1' }, [{ path: '/', pathType: 'Prefix' }]) +
      ingress('force', 'secure.bar.com', { 'nginx.ingress.kubernetes.io/force-ssl-redirect': 'true' }, [{ path: '/', pathType: 'Prefix' }]) +
      ingress('upload', 'upload.bar.com', { 'nginx.ingress.kubernetes.io/proxy-body-size': '1k', 'nginx.ingress.kubernetes.io/upstream-vhost': 'files.internal', 'nginx.ingress.kubernetes.io/x-forwarded-prefix': '/files' }, [
        { path: '/', pathType: 'Prefix' },
      ]) +
      ingress('private', 'private.bar.com', { 'nginx.ingress.kubernetes.io/whitelist-source-range': '10.0.0.0/8' }, [{ path: '/', pathType: 'Prefix' }]) +
      ingress('snippet', 'snippet.bar.com', { 'nginx.ingress.kubernetes.io/server-snippet': 'allow 10.0.0.0/8; deny all;' }, [{ path: '/', pathType: 'Prefix' }])
    const dir = tempDir()
    const input = join(dir, 'ingresses.yaml')
    writeFileSync(input, objects)
    const rendered = await runCli(['render', input])
    assert.equal(rendered.code, 0, rendered.stderr)
    assert.match(rendered.stderr, /default\/snippet UnsupportedAnnotation: annotation nginx\.ingress\.kubernetes\.io\/server-snippet is raw nginx configuration/)
    proxy = await startProxy({ config: rendered.stdout })
  })
  after(async () => {
    await proxy?.stop()
    await up?.close()
  })

  it('rewrite-target with use-regex sends /$2 of /something(/|$)(.*), matching the path in any case', async () => {
    const { json } = await sendJson<SeenRequest>(`${proxy.url}/something/new?x=1`, { headers: { host: 'rewrite.bar.com' } })
    assert.equal(json.url, '/new?x=1')
    assert.equal((await sendJson<SeenRequest>(`${proxy.url}/SomeThing`, { headers: { host: 'rewrite.bar.com' } })).json.url, '/')
  })

  it('app-root answers / with 302 to the app root and forwards the rest', async () => {
    const reply = await send(`${proxy.url}/`, { headers: { host: 'approot.bar.com' } })
    assert.equal(reply.status, 302)
    assert.equal(reply.headers.location, 'http://approot.bar.com/app1')
    assert.equal((await sendJson<SeenRequest>(`${proxy.url}/app1`, { headers: { host: 'approot.bar.com' } })).json.url, '/app1')
  })

  it('force-ssl-redirect answers plain HTTP with 308 to https', async () => {
    const reply = await send(`${proxy.url}/login?next=%2F`, { headers: { host: 'secure.bar.com' } })
    assert.equal(reply.status, 308)
    assert.equal(reply.headers.location, 'https://secure.bar.com/login?next=%2F')
  })

  it('proxy-body-size 1k answers 413 above 1024 bytes; upstream-vhost and x-forwarded-prefix reach the upstream', async () => {
    const big = await send(`${proxy.url}/u`, { method: 'POST', headers: { host: 'upload.bar.com' }, body: 'x'.repeat(1025) })
    assert.equal(big.status, 413)
    const { json } = await sendJson<SeenRequest>(`${proxy.url}/u`, { method: 'POST', headers: { host: 'upload.bar.com' }, body: 'x'.repeat(1024) })
    assert.equal(json.bodyLength, 1024)
    assert.equal(json.headers.host, 'files.internal')
    assert.equal(json.headers['x-forwarded-prefix'], '/files')
  })

  it('whitelist-source-range answers 403 to a client outside the ranges', async () => {
    const reply = await send(`${proxy.url}/`, { headers: { host: 'private.bar.com' } })
    assert.equal(reply.status, 403)
  })

  it('an Ingress with a snippet is not served at all (fail closed)', async () => {
    const before = up.requests.length
    const reply = await send(`${proxy.url}/`, { headers: { host: 'snippet.bar.com' } })
    assert.equal(reply.status, 404)
    assert.equal(up.requests.length, before)
  })
})
