import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { copyFileSync, mkdirSync, renameSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { connect as tlsConnect, type PeerCertificate } from 'node:tls'
import { createPki, type Pki } from '../helpers/certs.ts'
import { send, sendJson } from '../helpers/http-client.ts'
import { startProxy, tempDir, type ProxyProcess } from '../helpers/proxy-process.ts'
import { config, startUpstream, type SeenRequest, type Upstream } from '../helpers/upstreams.ts'

let pki: Pki
before(() => {
  pki = createPki()
})

function peerCertificate(port: number, opts: { minVersion?: 'TLSv1.2' | 'TLSv1.3'; maxVersion?: 'TLSv1' | 'TLSv1.1' | 'TLSv1.2' } = {}): Promise<{ cert: PeerCertificate; alpn: string | false }> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ port, host: '127.0.0.1', servername: 'proxy.test', ca: pki.caCert, ALPNProtocols: ['h2', 'http/1.1'], ...opts }, () => {
      const result = { cert: socket.getPeerCertificate(), alpn: socket.alpnProtocol ?? false }
      socket.end()
      resolve(result)
    })
    socket.on('error', reject)
  })
}

describe('TLS termination', () => {
  let up: Upstream
  let proxy: ProxyProcess
  let certDir: string

  before(async () => {
    up = await startUpstream()
    certDir = tempDir()
    pki.issue(['proxy.test', '127.0.0.1'], certDir)
    proxy = await startProxy({ env: { CERT_PATH: certDir }, config: config({ echo: up.port }, '  - { upstream: echo, path: / }\n') })
  })
  after(async () => {
    await proxy.stop()
    await up.close()
  })

  it('serves HTTPS with the certificate from CERT_PATH and tells the upstream X-Forwarded-Proto: https', async () => {
    const { reply, json } = await sendJson<SeenRequest>(`https://127.0.0.1:${proxy.port}/secure`, { ca: pki.caCert, servername: 'proxy.test' })
    assert.equal(reply.status, 200)
    assert.equal(json.headers['x-forwarded-proto'], 'https')
  })

  it('negotiates http/1.1 over ALPN, even when the client offers h2', async () => {
    const { alpn } = await peerCertificate(proxy.port)
    assert.equal(alpn, 'http/1.1')
  })

  it('refuses TLS 1.1', async () => {
    await assert.rejects(peerCertificate(proxy.port, { maxVersion: 'TLSv1.1' }))
  })

  it('picks up a certificate replaced on disk without a restart', async () => {
    const before = (await peerCertificate(proxy.port)).cert.fingerprint256
    // Replace both files the way cert-manager's Secret volume does: new files, then rename.
    const next = tempDir()
    pki.issue(['proxy.test', '127.0.0.1'], next)
    copyFileSync(join(next, 'cert.pem'), join(certDir, 'cert.pem.new'))
    copyFileSync(join(next, 'key.pem'), join(certDir, 'key.pem.new'))
    renameSync(join(certDir, 'key.pem.new'), join(certDir, 'key.pem'))
    renameSync(join(certDir, 'cert.pem.new'), join(certDir, 'cert.pem'))
    await proxy.waitForLog((l) => l.msg === 'certificate reloaded')
    const after = (await peerCertificate(proxy.port)).cert.fingerprint256
    assert.notEqual(after, before)
  })

  it('keeps the current certificate when the replacement is invalid', async () => {
    const current = (await peerCertificate(proxy.port)).cert.fingerprint256
    writeFileSync(join(certDir, 'cert.pem'), 'not a certificate')
    await proxy.waitForLog((l) => l.msg.startsWith('new certificate rejected'))
    assert.equal((await peerCertificate(proxy.port)).cert.fingerprint256, current)
  })
})

describe('TLS start-up checks', () => {
  it('refuses to start when CERT_PATH has no cert.pem/key.pem (instead of silently serving HTTP)', async () => {
    const empty = tempDir()
    const proxy = await startProxy({ env: { CERT_PATH: empty }, config: '', noWait: true })
    const { code } = await proxy.exited
    assert.equal(code, 1)
    assert.match(proxy.stderr, /CERT_PATH=.*cert\.pem/)
  })

  it('refuses to start when the key does not match the certificate', async () => {
    const a = pki.issue(['a.test'])
    const b = pki.issue(['b.test'])
    const dir = tempDir()
    writeFileSync(join(dir, 'cert.pem'), a.cert)
    writeFileSync(join(dir, 'key.pem'), b.key)
    const proxy = await startProxy({ env: { CERT_PATH: dir }, config: '', noWait: true })
    const { code } = await proxy.exited
    assert.equal(code, 1)
    assert.match(proxy.stderr, /not a usable certificate and key/)
  })
})

describe('HTTPS upstreams', () => {
  let up: Upstream

  before(async () => {
    const leaf = pki.issue(['localhost'])
    up = await startUpstream({ tls: leaf })
  })
  after(async () => {
    await up.close()
  })

  const httpsConfig = () => config({ secure: { port: up.port, host: 'localhost', scheme: 'https' } }, '  - { upstream: secure, path: / }\n')

  it('verifies the upstream certificate against the trusted CAs and sends SNI', async () => {
    // NODE_EXTRA_CA_CERTS is how a deployment adds a private CA to the system ones.
    const proxy = await startProxy({ env: { NODE_EXTRA_CA_CERTS: pki.caCertFile }, config: httpsConfig() })
    try {
      const { reply, json } = await sendJson<SeenRequest>(`${proxy.url}/over-tls`)
      assert.equal(reply.status, 200)
      assert.equal(json.url, '/over-tls')
      assert.equal(json.servername, 'localhost')
    } finally {
      await proxy.stop()
    }
  })

  it('sends serverName as SNI to servers given by address, and checks the certificate for it', async () => {
    const cfg = (serverName: string) =>
      `upstreams:\n  - name: pods\n    scheme: https\n    serverName: ${serverName}\n    servers: [{ host: 127.0.0.1, port: ${up.port} }]\nrules:\n  - { upstream: pods, path: / }\n`
    const proxy = await startProxy({ env: { NODE_EXTRA_CA_CERTS: pki.caCertFile }, config: cfg('localhost') })
    try {
      const { reply, json } = await sendJson<SeenRequest>(`${proxy.url}/by-address`)
      assert.equal(reply.status, 200)
      assert.equal(json.servername, 'localhost')
      // A name the certificate is not for: refused.
      writeFileSync(proxy.configFile, cfg('other.example'))
      await proxy.waitForLog((l) => l.msg === 'config reloaded')
      const wrong = await send(`${proxy.url}/`)
      assert.equal(wrong.status, 502)
      assert.match(wrong.body, /NP_ERR_UPSTREAM_TLS/)
    } finally {
      await proxy.stop()
    }
  })

  it('answers 502 when the upstream certificate is not trusted, and logs why', async () => {
    const proxy = await startProxy({ config: httpsConfig() })
    try {
      const reply = await send(`${proxy.url}/`)
      assert.equal(reply.status, 502)
      assert.match(reply.body, /NP_ERR_UPSTREAM_TLS/)
      const line = await proxy.waitForLog((l) => l.code === 'NP_ERR_UPSTREAM_TLS')
      assert.match(line.msg, /certificate/i)
    } finally {
      await proxy.stop()
    }
  })

  it('skips verification when TLS_SKIP_VERIFY is set', async () => {
    const proxy = await startProxy({ env: { TLS_SKIP_VERIFY: '1' }, config: httpsConfig() })
    try {
      const reply = await send(`${proxy.url}/`)
      assert.equal(reply.status, 200)
    } finally {
      await proxy.stop()
    }
  })
})

describe('certificate directory layout', () => {
  it('loads a Kubernetes Secret-style directory where cert.pem and key.pem are symlinks', async () => {
    const dir = tempDir()
    const data = join(dir, '..2026_11_28')
    mkdirSync(data)
    pki.issue(['proxy.test', '127.0.0.1'], data)
    const { symlinkSync } = await import('node:fs')
    symlinkSync('..2026_11_28', join(dir, '..data'))
    symlinkSync('..data/cert.pem', join(dir, 'cert.pem'))
    symlinkSync('..data/key.pem', join(dir, 'key.pem'))
    const proxy = await startProxy({ env: { CERT_PATH: dir }, config: '' })
    try {
      const { cert } = await peerCertificate(proxy.port)
      assert.equal(cert.subject.CN, 'proxy.test')
    } finally {
      await proxy.stop()
    }
  })
})
