// spec.tls against a real kube-apiserver: the controller (as the
// ServiceAccount of deploy/rbac.yaml) turns TLS Secrets into certificate
// files and the config's `certificates` section; a real proxy reads them,
// and node:tls clients with SNI check which certificate each name gets.

import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { connect as tlsConnect } from 'node:tls'
import { CoreV1Api, type KubernetesObject } from '@kubernetes/client-node'
import { parseConfig } from '../../src/config/load.ts'
import type { ProxyConfig } from '../../src/config/schema.ts'
import { createPki, type Pki } from '../helpers/certs.ts'
import { send } from '../helpers/http-client.ts'
import { KubeCluster } from '../helpers/kube-cluster.ts'
import { startProxy, tempDir, type ProxyProcess } from '../helpers/proxy-process.ts'

let cluster: KubeCluster
let controller: ProxyProcess
let proxy: ProxyProcess
let configFile: string
let pki: Pki

before(
  async () => {
    pki = createPki()
    cluster = new KubeCluster()
    await cluster.start()
    const kubeconfig = await cluster.controllerKubeconfig()
    const dir = tempDir()
    configFile = join(dir, 'config.yaml')
    await cluster.apply([{ apiVersion: 'networking.k8s.io/v1', kind: 'IngressClass', metadata: { name: 'nanoproxy' }, spec: { controller: 'benc-uk/nanoproxy' } } as KubernetesObject])
    await cluster.apply([namespace('tls-default'), tlsSecret('tls-default', 'fallback', pki.issue(['fallback.example.com']))])
    controller = await startProxy({
      args: ['controller', '-c', configFile],
      env: { KUBECONFIG: kubeconfig, DEFAULT_TLS_SECRET: 'tls-default/fallback', HSTS: 'true', HSTS_MAX_AGE: '600' },
      noWait: true,
    })
    await controller.waitForLog((l) => typeof l.health_port === 'number', 10_000)
    await controller.waitForLog((l) => l.msg === 'config written', 10_000)
    proxy = await startProxy({ dir, env: { HTTPS_PORT: '0' } })
  },
  { timeout: 15 * 60_000 },
)

after(async () => {
  await proxy?.stop()
  await controller?.stop()
  await cluster?.stop()
})

function namespace(name: string): KubernetesObject {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name } }
}

/** A namespace and the Service `web` its Ingresses send to. */
function namespaceWithService(name: string): KubernetesObject[] {
  return [namespace(name), { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: name }, spec: { ports: [{ port: 80 }] } } as KubernetesObject]
}

function tlsSecret(ns: string, name: string, pair: { cert: string; key: string }, type = 'kubernetes.io/tls'): KubernetesObject {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name, namespace: ns },
    type,
    data: { 'tls.crt': Buffer.from(pair.cert).toString('base64'), 'tls.key': Buffer.from(pair.key).toString('base64') },
  } as KubernetesObject
}

function tlsIngress(ns: string, name: string, host: string, secretName: string, annotations?: Record<string, string>): KubernetesObject {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'Ingress',
    metadata: { name, namespace: ns, annotations },
    spec: {
      ingressClassName: 'nanoproxy',
      tls: [{ hosts: [host], secretName }],
      rules: [{ host, http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'web', port: { number: 80 } } } }] } }],
    },
  } as KubernetesObject
}

function readConfig(): ProxyConfig {
  return parseConfig(readFileSync(configFile, 'utf8'), configFile)
}

/** The first DNS name of the certificate the proxy shows `servername`. */
function served(servername: string): Promise<{ name: string; fingerprint: string }> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ port: proxy.httpsPort, host: '127.0.0.1', servername, rejectUnauthorized: false }, () => {
      const cert = socket.getPeerCertificate()
      resolve({ name: (cert.subjectaltname ?? '').replace(/^DNS:/, '').split(', ')[0] ?? '', fingerprint: cert.fingerprint256 })
      socket.end()
    })
    socket.on('error', reject)
  })
}

/** Polls until the proxy shows `servername` a certificate for which `check` holds; returns the time it took. */
async function waitForCertificate(servername: string, check: (c: { name: string; fingerprint: string }) => boolean, limitMs: number): Promise<number> {
  const started = Date.now()
  for (;;) {
    const c = await served(servername).catch(() => undefined)
    if (c && check(c)) return Date.now() - started
    if (Date.now() - started > limitMs) assert.fail(`${servername} never got the expected certificate within ${limitMs} ms (last: ${JSON.stringify(c)})`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

async function waitForEvent(ns: string, ingressName: string, pattern: RegExp): Promise<string> {
  const core = cluster.adminConfig.makeApiClient(CoreV1Api)
  const started = Date.now()
  for (;;) {
    const list = await core.listNamespacedEvent({ namespace: ns })
    const events = list.items.filter((e) => e.involvedObject.name === ingressName && e.type === 'Warning').map((e) => `${e.reason}: ${e.message}`)
    const found = events.find((e) => pattern.test(e))
    if (found) return found
    if (Date.now() - started > 5000) assert.fail(`no Warning event matching ${pattern} on ${ns}/${ingressName}; events: ${JSON.stringify(events)}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

describe('spec.tls, served by the proxy', () => {
  it('serves the default certificate from DEFAULT_TLS_SECRET to names without a certificate', async () => {
    await waitForCertificate('nobody.example.com', (c) => c.name === 'fallback.example.com', 5000)
  })

  it('follows cert-manager\'s order: Ingress first (SecretNotFound), Secret later, served within 2 s without a restart', async () => {
    await cluster.apply([...namespaceWithService('tls-a'), tlsIngress('tls-a', 'shop', 'shop.example.com', 'shop-tls')])
    await waitForEvent('tls-a', 'shop', /^SecretNotFound: spec\.tls\[0\]: no Secret of type kubernetes\.io\/tls named tls-a\/shop-tls/)
    assert.equal((await served('shop.example.com')).name, 'fallback.example.com')
    // cert-manager writes the Secret minutes later.
    await cluster.apply([tlsSecret('tls-a', 'shop-tls', pki.issue(['shop.example.com']))])
    const took = await waitForCertificate('shop.example.com', (c) => c.name === 'shop.example.com', 2000)
    assert.ok(took <= 2000, `served after ${took} ms`)
  })

  it('serves a renewed Secret within 2 s, writes key files 0600, and removes the old files once nothing names them', async () => {
    const before = await served('shop.example.com')
    assert.equal(before.name, 'shop.example.com')
    await cluster.apply([tlsSecret('tls-a', 'shop-tls', pki.issue(['shop.example.com']))])
    await waitForCertificate('shop.example.com', (c) => c.fingerprint !== before.fingerprint, 2000)
    const config = readConfig()
    const entry = config.certificates?.find((c) => c.hosts.includes('shop.example.com'))
    assert.ok(entry?.certFile !== undefined && entry.keyFile !== undefined)
    const dir = dirname(configFile)
    assert.equal(statSync(join(dir, entry.keyFile)).mode & 0o777, 0o600)
    assert.equal(statSync(join(dir, entry.certFile)).mode & 0o777, 0o600)
    // Two more renewals: files of configs older than the previous one are gone.
    await cluster.apply([tlsSecret('tls-a', 'shop-tls', pki.issue(['shop.example.com']))])
    await waitForCertificate('shop.example.com', (c) => c.fingerprint !== before.fingerprint, 2000)
    const keys = () => readdirSync(join(dir, 'certs')).filter((f) => f.endsWith('.key'))
    // At most the default's pair, the current pair and the previous config's pair.
    const started = Date.now()
    while (keys().length > 3 && Date.now() - started < 3000) await new Promise((r) => setTimeout(r, 100))
    assert.ok(keys().length <= 3, `key files: ${keys().join(', ')}`)
  })

  it('fails no HTTPS request in 10 s of a client loop while the Secret is replaced 10 times', async () => {
    await cluster.apply([...namespaceWithService('tls-g'), tlsSecret('tls-g', 'loop-tls', pki.issue(['loop.example.com'])), tlsIngress('tls-g', 'loop', 'loop.example.com', 'loop-tls')])
    await waitForCertificate('loop.example.com', (c) => c.name === 'loop.example.com', 3000)
    let stop = false
    let ok = 0
    const failures: string[] = []
    const fingerprints = new Set<string>()
    // A new TLS connection per request (the proxy's own health endpoint: no upstream in this cluster).
    const loop = async (): Promise<void> => {
      while (!stop) {
        try {
          const reply = await send(`https://127.0.0.1:${proxy.httpsPort}/.nanoproxy/health`, { ca: pki.caCert, servername: 'loop.example.com', headers: { host: 'loop.example.com' } })
          if (reply.status === 200) ok++
          else failures.push(`status ${reply.status}`)
        } catch (err) {
          failures.push((err as Error).message)
        }
      }
    }
    const clients = [loop(), loop()]
    const started = Date.now()
    for (let i = 0; i < 10; i++) {
      await cluster.apply([tlsSecret('tls-g', 'loop-tls', pki.issue(['loop.example.com']))])
      await new Promise((r) => setTimeout(r, 1000))
      fingerprints.add((await served('loop.example.com')).fingerprint)
    }
    while (Date.now() - started < 10_000) await new Promise((r) => setTimeout(r, 100))
    stop = true
    await Promise.all(clients)
    assert.deepEqual(failures, [])
    assert.ok(ok > 50, `${ok} requests succeeded`)
    assert.ok(fingerprints.size >= 8, `the client saw ${fingerprints.size} of the 10 certificates`)
  })

  it('redirects by default and writes sslRedirect: false for nanoproxy/ssl-redirect: "false"', async () => {
    await cluster.apply([
      ...namespaceWithService('tls-b'),
      tlsSecret('tls-b', 'open-tls', pki.issue(['open.example.com'])),
      tlsIngress('tls-b', 'open', 'open.example.com', 'open-tls', { 'nanoproxy/ssl-redirect': 'false' }),
    ])
    await waitForCertificate('open.example.com', (c) => c.name === 'open.example.com', 3000)
    const config = readConfig()
    assert.equal(config.rules.find((r) => r.host === 'open.example.com')?.sslRedirect, false)
    assert.equal(config.rules.find((r) => r.host === 'shop.example.com')?.sslRedirect, undefined)
  })

  it('redirects a host whose Secret does not exist yet to https, where it gets the default certificate (as ingress-nginx does)', async () => {
    await cluster.apply([...namespaceWithService('tls-g'), tlsIngress('tls-g', 'later', 'later.example.com', 'later-tls')])
    await waitForEvent('tls-g', 'later', /^SecretNotFound: /)
    const started = Date.now()
    for (;;) {
      const reply = await send(`${proxy.url}/x?y=1`, { headers: { host: 'later.example.com' } })
      if (reply.status === 308) {
        assert.equal(reply.headers.location, 'https://later.example.com/x?y=1')
        break
      }
      if (Date.now() - started > 3000) assert.fail(`plain HTTP to later.example.com got ${reply.status}, not 308`)
      await new Promise((r) => setTimeout(r, 50))
    }
    assert.equal((await served('later.example.com')).name, 'fallback.example.com')
    const entry = readConfig().certificates?.find((c) => c.hosts.includes('later.example.com'))
    assert.deepEqual(entry, { hosts: ['later.example.com'], default: false, hstsMaxAge: 600, hstsIncludeSubDomains: true })
  })

  it('writes the HSTS settings into every certificate with hosts, and none into the default\'s', () => {
    const certificates = readConfig().certificates ?? []
    const shop = certificates.find((c) => c.hosts.includes('shop.example.com'))
    assert.equal(shop?.hstsMaxAge, 600)
    assert.equal(shop?.hstsIncludeSubDomains, true)
    assert.equal(shop?.hstsPreload, undefined)
    const fallback = certificates.find((c) => c.default)
    assert.deepEqual(fallback?.hosts, [])
    assert.equal(fallback?.hstsMaxAge, undefined)
  })

  it('reports InvalidCertificate for a key that does not match, and keeps serving other hosts', async () => {
    const a = pki.issue(['bad.example.com'])
    const b = pki.issue(['other.example.com'])
    await cluster.apply([...namespaceWithService('tls-c'), tlsSecret('tls-c', 'bad-tls', { cert: a.cert, key: b.key }), tlsIngress('tls-c', 'bad', 'bad.example.com', 'bad-tls')])
    await waitForEvent('tls-c', 'bad', /^InvalidCertificate: spec\.tls\[0\]: Secret tls-c\/bad-tls does not hold a usable certificate and key/)
    assert.equal((await served('bad.example.com')).name, 'fallback.example.com')
    assert.equal((await served('shop.example.com')).name, 'shop.example.com')
  })

  it('never sees a Secret of another type (field selector): SecretNotFound', async () => {
    await cluster.apply([...namespaceWithService('tls-d'), tlsSecret('tls-d', 'opaque', pki.issue(['opaque.example.com']), 'Opaque'), tlsIngress('tls-d', 'opaque', 'opaque.example.com', 'opaque')])
    await waitForEvent('tls-d', 'opaque', /^SecretNotFound: spec\.tls\[0\]: no Secret of type kubernetes\.io\/tls named tls-d\/opaque/)
  })

  it('reports CertificateMismatch for a host the certificate does not name, and serves it anyway', async () => {
    await cluster.apply([...namespaceWithService('tls-e'), tlsSecret('tls-e', 'wrong', pki.issue(['right.example.com'])), tlsIngress('tls-e', 'wrong', 'wrong.example.com', 'wrong')])
    await waitForEvent('tls-e', 'wrong', /^CertificateMismatch: spec\.tls\[0\]: the certificate in Secret tls-e\/wrong does not cover host "wrong\.example\.com"/)
    await waitForCertificate('wrong.example.com', (c) => c.name === 'right.example.com', 3000)
  })

  it('reports Conflict on the younger of two Ingresses naming different Secrets for one host; the older wins', async () => {
    await cluster.apply([...namespaceWithService('tls-f'), tlsSecret('tls-f', 'first', pki.issue(['both.example.com'])), tlsIngress('tls-f', 'older', 'both.example.com', 'first')])
    await waitForCertificate('both.example.com', (c) => c.name === 'both.example.com', 3000)
    const first = await served('both.example.com')
    // A second to be sure of the creationTimestamp order (one-second resolution).
    await new Promise((r) => setTimeout(r, 1100))
    await cluster.apply([tlsSecret('tls-f', 'second', pki.issue(['both.example.com'])), tlsIngress('tls-f', 'younger', 'both.example.com', 'second')])
    await waitForEvent('tls-f', 'younger', /^Conflict: spec\.tls\[0\]: host "both\.example\.com" already has Secret tls-f\/first from Ingress tls-f\/older/)
    assert.equal((await served('both.example.com')).fingerprint, first.fingerprint)
  })
})
