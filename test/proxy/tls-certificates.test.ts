// Certificates by SNI from the config file's `certificates` section, plain
// HTTP and HTTPS listeners side by side, redirects, and session resumption
// across workers. Certificates are made with openssl at test time; clients
// are node:tls (with SNI) and `openssl s_client`.

import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { after, before, describe, it } from 'node:test'
import { copyFileSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { connect as tlsConnect, type TLSSocket } from 'node:tls'
import { createPki, type Pki } from '../helpers/certs.ts'
import { send, sendRaw } from '../helpers/http-client.ts'
import { runCli, startProxy, tempDir, type ProxyProcess } from '../helpers/proxy-process.ts'
import { config, startUpstream, type Upstream } from '../helpers/upstreams.ts'

let pki: Pki
let up: Upstream
before(async () => {
  pki = createPki()
  up = await startUpstream()
})
after(async () => {
  await up.close()
})

/** The first DNS name of the certificate a TLS handshake with `servername` gets (undefined: none sent). */
function served(port: number, servername: string | undefined, opts: { session?: Buffer } = {}): Promise<{ name: string; fingerprint: string; reused: boolean; session: Promise<Buffer> }> {
  return new Promise((resolve, reject) => {
    const socket: TLSSocket = tlsConnect(
      { port, host: '127.0.0.1', ...(servername === undefined ? {} : { servername }), rejectUnauthorized: false, ...(opts.session ? { session: opts.session } : {}) },
      () => {
        const cert = socket.getPeerCertificate()
        // TLS 1.3 tickets arrive after the handshake: wait for one, then close.
        const session = new Promise<Buffer>((res) => socket.once('session', (s: Buffer) => res(s)))
        void session.then(() => socket.end())
        setTimeout(() => socket.end(), 500).unref()
        resolve({ name: (cert.subjectaltname ?? '').split(', ')[0]?.replace(/^DNS:/, '') ?? '', fingerprint: cert.fingerprint256, reused: socket.isSessionReused(), session })
      },
    )
    socket.on('error', reject)
  })
}

/** `openssl s_client` with -servername: the subject of the certificate it was shown. */
function sClientSubject(port: number, servername: string, extra: string[] = []): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const child = execFile('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', servername, ...extra], { timeout: 10_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: stdout + stderr })
    })
    child.stdin?.end('Q\n')
  })
}

interface Issued {
  dir: string
}

/** Issues a certificate for `names` into `dir` as `<file>.crt`/`<file>.key`. */
function issueInto(dir: string, file: string, names: string[]): Issued {
  const out = tempDir()
  pki.issue(names, out)
  copyFileSync(join(out, 'cert.pem'), join(dir, `${file}.crt`))
  copyFileSync(join(out, 'key.pem'), join(dir, `${file}.key`))
  return { dir }
}

// The earliest matching rule wins: the opt-out rule comes first.
const RULES = '  - { upstream: echo, host: open.example.com, path: /, sslRedirect: false }\n  - { upstream: echo, path: / }\n'

function tlsConfig(certificates: string): string {
  return `${config({ echo: up.port }, RULES)}certificates:\n${certificates}`
}

describe('certificates by SNI, with plain HTTP and HTTPS listeners', () => {
  let proxy: ProxyProcess
  let dir: string

  before(async () => {
    dir = tempDir()
    issueInto(dir, 'shop', ['shop.example.com'])
    issueInto(dir, 'wild', ['*.apps.example.com'])
    issueInto(dir, 'fallback', ['fallback.example.com'])
    issueInto(dir, 'open', ['open.example.com'])
    // A key that does not belong to its certificate.
    issueInto(dir, 'broken', ['broken.example.com'])
    copyFileSync(join(dir, 'shop.key'), join(dir, 'broken.key'))
    writeFileSync(join(dir, 'config.yaml'), tlsConfig(
      [
        '  - { hosts: [shop.example.com], certFile: shop.crt, keyFile: shop.key }',
        `  - { hosts: ["*.apps.example.com"], certFile: ${join(dir, 'wild.crt')}, keyFile: ${join(dir, 'wild.key')} }`,
        '  - { hosts: [], certFile: fallback.crt, keyFile: fallback.key, default: true }',
        '  - { hosts: [open.example.com], certFile: open.crt, keyFile: open.key, hstsMaxAge: 31536000, hstsIncludeSubDomains: true }',
        '  - { hosts: [broken.example.com], certFile: broken.crt, keyFile: broken.key }',
        // No files: a Secret not issued yet, served with the default certificate.
        '  - { hosts: [pending.example.com], hstsMaxAge: 600, hstsPreload: true }',
        '',
      ].join('\n'),
    ))
    proxy = await startProxy({ dir, env: { HTTPS_PORT: '0', DEBUG: '1' } })
  })
  after(async () => {
    await proxy.stop()
  })

  it('listens on both ports at once', () => {
    assert.ok(proxy.port > 0)
    assert.ok(proxy.httpsPort > 0)
    assert.notEqual(proxy.port, proxy.httpsPort)
  })

  it('serves the exact host its own certificate', async () => {
    assert.equal((await served(proxy.httpsPort, 'shop.example.com')).name, 'shop.example.com')
    assert.equal((await served(proxy.httpsPort, 'SHOP.Example.COM')).name, 'shop.example.com')
  })

  it('serves a one-label wildcard to a name one label deep, and the default two labels deep', async () => {
    assert.equal((await served(proxy.httpsPort, 'a.apps.example.com')).name, '*.apps.example.com')
    assert.equal((await served(proxy.httpsPort, 'a.b.apps.example.com')).name, 'fallback.example.com')
  })

  it('serves the default certificate to unknown names and to handshakes without SNI', async () => {
    assert.equal((await served(proxy.httpsPort, 'unknown.example.org')).name, 'fallback.example.com')
    assert.equal((await served(proxy.httpsPort, undefined)).name, 'fallback.example.com')
  })

  it('leaves out a certificate whose key does not match, with an error naming it, and serves its host the default', async () => {
    const line = await proxy.waitForLog((l) => l.msg.startsWith('certificate left out'))
    assert.match(String(line.cert_file), /broken\.crt$/)
    assert.deepEqual(line.hosts, ['broken.example.com'])
    assert.equal((await served(proxy.httpsPort, 'broken.example.com')).name, 'fallback.example.com')
    assert.equal((await served(proxy.httpsPort, 'shop.example.com')).name, 'shop.example.com')
  })

  it('shows openssl s_client the certificate of the name it sends', async () => {
    const { out } = await sClientSubject(proxy.httpsPort, 'x.apps.example.com')
    assert.match(out, /subject=CN = \*\.apps\.example\.com/)
    const shop = await sClientSubject(proxy.httpsPort, 'shop.example.com')
    assert.match(shop.out, /subject=CN = shop\.example\.com/)
  })

  it('refuses TLS 1.1 and negotiates http/1.1 over ALPN (openssl s_client)', async () => {
    const old = await sClientSubject(proxy.httpsPort, 'shop.example.com', ['-tls1_1'])
    assert.notEqual(old.code, 0)
    const alpn = await sClientSubject(proxy.httpsPort, 'shop.example.com', ['-alpn', 'h2,http/1.1'])
    assert.match(alpn.out, /ALPN protocol: http\/1\.1/)
  })

  it('offers no CBC or RSA-key-exchange suites over TLS 1.2 (Mozilla intermediate)', async () => {
    const cbc = await sClientSubject(proxy.httpsPort, 'shop.example.com', ['-tls1_2', '-cipher', 'ECDHE-ECDSA-AES128-SHA256:AES128-GCM-SHA256'])
    assert.notEqual(cbc.code, 0)
    const gcm = await sClientSubject(proxy.httpsPort, 'shop.example.com', ['-tls1_2', '-cipher', 'ECDHE-ECDSA-AES128-GCM-SHA256'])
    assert.match(gcm.out, /Cipher is ECDHE-ECDSA-AES128-GCM-SHA256/)
  })

  it('forwards HTTPS requests with X-Forwarded-Proto: https', async () => {
    const reply = await send(`https://127.0.0.1:${proxy.httpsPort}/over-tls?q=1`, { ca: pki.caCert, servername: 'shop.example.com', headers: { host: 'shop.example.com' } })
    assert.equal(reply.status, 200)
    const seen = JSON.parse(reply.body) as { url: string; headers: Record<string, string> }
    assert.equal(seen.url, '/over-tls?q=1')
    assert.equal(seen.headers['x-forwarded-proto'], 'https')
  })

  describe('plain HTTP to a host with a certificate', () => {
    const get = (host: string, target: string, method = 'GET') =>
      sendRaw(proxy.port, `${method} ${target} HTTP/1.1\r\nhost: ${host}\r\nconnection: close\r\n\r\n`)

    it('gets 308 to https with the same host, path and query, and no port for 443', async () => {
      const out = await get('shop.example.com', '/cart/../basket?id=7&x=%2F')
      assert.match(out, /^HTTP\/1\.1 308 /)
      assert.match(out, /\r\nlocation: https:\/\/shop\.example\.com\/cart\/\.\.\/basket\?id=7&x=%2F\r\n/)
    })

    it('gets 308 for a name under a wildcard certificate, the port in the Host dropped', async () => {
      const out = await get('a.apps.example.com:80', '/x')
      assert.match(out, /\r\nlocation: https:\/\/a\.apps\.example\.com\/x\r\n/)
    })

    it('gets 308 for a host listed without files, which HTTPS serves the default certificate', async () => {
      assert.match(await get('pending.example.com', '/x?y=1'), /\r\nlocation: https:\/\/pending\.example\.com\/x\?y=1\r\n/)
      assert.equal((await served(proxy.httpsPort, 'pending.example.com')).name, 'fallback.example.com')
    })

    it('percent-encodes in the Location what a URI may not hold, and keeps the rest as sent', async () => {
      const out = await get('shop.example.com', '/a"b<c>{d}|e^f`g/%41?q=<x>&r="y"')
      assert.match(out, /\r\nlocation: https:\/\/shop\.example\.com\/a%22b%3Cc%3E%7Bd%7D%7Ce%5Ef%60g\/%41\?q=%3Cx%3E&r=%22y%22\r\n/)
      const body = out.slice(out.indexOf('\r\n\r\n') + 4)
      assert.doesNotMatch(body, /[<>"]/)
    })

    it('is forwarded for the ACME HTTP-01 challenge path', async () => {
      const out = await get('shop.example.com', '/.well-known/acme-challenge/token123')
      assert.match(out, /^HTTP\/1\.1 200 /)
      assert.match(out, /"url":"\/\.well-known\/acme-challenge\/token123"/)
    })

    it('is answered by the proxy itself for /.nanoproxy/health', async () => {
      const out = await get('shop.example.com', '/.nanoproxy/health')
      assert.match(out, /^HTTP\/1\.1 200 /)
    })

    it('is forwarded for a /.nanoproxy/ path the proxy does not answer itself', async () => {
      const out = await get('shop.example.com', '/.nanoproxy/other')
      assert.match(out, /^HTTP\/1\.1 200 /)
      assert.match(out, /"url":"\/\.nanoproxy\/other"/)
    })

    it('is forwarded when its rule says sslRedirect: false', async () => {
      assert.match(await get('open.example.com', '/x'), /^HTTP\/1\.1 200 /)
    })

    it('is forwarded for a host without a certificate of its own', async () => {
      assert.match(await get('other.example.org', '/x'), /^HTTP\/1\.1 200 /)
    })

    it('is never redirected over HTTPS', async () => {
      const reply = await send(`https://127.0.0.1:${proxy.httpsPort}/x`, { ca: pki.caCert, servername: 'shop.example.com', headers: { host: 'shop.example.com' } })
      assert.equal(reply.status, 200)
    })
  })

  it('adds HSTS to HTTPS responses for a host whose certificate asks for it, never over plain HTTP', async () => {
    const https = await send(`https://127.0.0.1:${proxy.httpsPort}/x`, { ca: pki.caCert, servername: 'open.example.com', headers: { host: 'open.example.com' } })
    assert.equal(https.status, 200)
    assert.equal(https.headers['strict-transport-security'], 'max-age=31536000; includeSubDomains')
    const plain = await send(`${proxy.url}/x`, { headers: { host: 'open.example.com' } })
    assert.equal(plain.status, 200)
    assert.equal(plain.headers['strict-transport-security'], undefined)
    const other = await send(`https://127.0.0.1:${proxy.httpsPort}/x`, { ca: pki.caCert, servername: 'shop.example.com', headers: { host: 'shop.example.com' } })
    assert.equal(other.headers['strict-transport-security'], undefined)
  })

  it('adds HSTS with preload to HTTPS responses for a host listed without files', async () => {
    // The client is shown the default certificate; it checks it for that name.
    const https = await send(`https://127.0.0.1:${proxy.httpsPort}/x`, { ca: pki.caCert, servername: 'fallback.example.com', headers: { host: 'pending.example.com' } })
    assert.equal(https.status, 200)
    assert.equal(https.headers['strict-transport-security'], 'max-age=600; preload')
  })

  it('keeps private keys out of the DEBUG config dump and the logs', async () => {
    const dump = await send(`${proxy.url}/.nanoproxy/config`, { headers: { host: 'other.example.org' } })
    assert.equal(dump.status, 200)
    assert.match(dump.body, /keyFile: shop\.key/)
    assert.doesNotMatch(dump.body, /PRIVATE KEY/)
    assert.doesNotMatch(JSON.stringify(proxy.logs) + proxy.stderr, /PRIVATE KEY|BEGIN/)
  })
})

describe('hosts listed without files and no default certificate', () => {
  it('are not redirected: there is no certificate to serve them over HTTPS', async () => {
    const dir = tempDir()
    issueInto(dir, 'shop', ['shop.example.com'])
    writeFileSync(join(dir, 'config.yaml'), tlsConfig('  - { hosts: [shop.example.com], certFile: shop.crt, keyFile: shop.key }\n  - { hosts: [pending.example.com] }\n'))
    const proxy = await startProxy({ dir, env: { HTTPS_PORT: '0' } })
    try {
      const get = (host: string) => sendRaw(proxy.port, `GET /x HTTP/1.1\r\nhost: ${host}\r\nconnection: close\r\n\r\n`)
      assert.match(await get('pending.example.com'), /^HTTP\/1\.1 200 /)
      assert.match(await get('shop.example.com'), /^HTTP\/1\.1 308 /)
    } finally {
      await proxy.stop()
    }
  })
})

describe('certificate reloads', () => {
  it('serves a changed certificate to new handshakes, leaves open connections alone, and parses only what changed', async () => {
    const dir = tempDir()
    issueInto(dir, 'a', ['a.example.com'])
    issueInto(dir, 'b', ['b.example.com'])
    const entries = (aFile: string) => `  - { hosts: [a.example.com], certFile: ${aFile}.crt, keyFile: ${aFile}.key }\n  - { hosts: [b.example.com], certFile: b.crt, keyFile: b.key }\n`
    writeFileSync(join(dir, 'config.yaml'), tlsConfig(entries('a')))
    const proxy = await startProxy({ dir, env: { HTTPS_PORT: '0' } })
    try {
      const before = await served(proxy.httpsPort, 'a.example.com')
      const bBefore = await served(proxy.httpsPort, 'b.example.com')
      // An established keep-alive connection, made with the old certificate.
      const open = tlsConnect({ port: proxy.httpsPort, host: '127.0.0.1', servername: 'a.example.com', ca: pki.caCert })
      await new Promise((resolve, reject) => open.once('secureConnect', resolve).once('error', reject))
      const exchange = async (): Promise<string> => {
        open.write('GET /kept HTTP/1.1\r\nhost: a.example.com\r\n\r\n')
        const chunk = await new Promise<Buffer>((resolve) => open.once('data', resolve))
        return chunk.toString('latin1')
      }
      assert.match(await exchange(), /^HTTP\/1\.1 200 /)

      issueInto(dir, 'a2', ['a.example.com'])
      writeFileSync(join(dir, 'config.yaml'), tlsConfig(entries('a2')))
      const reloaded = await proxy.waitForLog((l) => l.msg === 'config reloaded', 3000)
      assert.equal(reloaded.certificates, 2)
      assert.equal(reloaded.certificates_parsed, 1, 'the unchanged certificate is not parsed again')
      const afterReload = await served(proxy.httpsPort, 'a.example.com')
      assert.equal(afterReload.name, 'a.example.com')
      assert.notEqual(afterReload.fingerprint, before.fingerprint)
      assert.equal((await served(proxy.httpsPort, 'b.example.com')).fingerprint, bBefore.fingerprint)
      // The old connection still works, with its certificate.
      assert.match(await exchange(), /^HTTP\/1\.1 200 /)
      assert.equal(open.getPeerCertificate().fingerprint256, before.fingerprint)
      open.destroy()
    } finally {
      await proxy.stop()
    }
  })

  it('fails no request while a host\'s certificate is replaced 10 times under a client loop', async () => {
    const dir = tempDir()
    for (let i = 0; i <= 10; i++) issueInto(dir, `r${i}`, ['rotate.example.com'])
    const entry = (i: number) => `  - { hosts: [rotate.example.com], certFile: r${i}.crt, keyFile: r${i}.key }\n`
    writeFileSync(join(dir, 'config.yaml'), tlsConfig(entry(0)))
    const proxy = await startProxy({ dir, env: { HTTPS_PORT: '0' } })
    try {
      let stop = false
      let ok = 0
      const failures: string[] = []
      const fingerprints = new Set<string>()
      // Two clients: each request on a new TLS connection (a new handshake), as a browser after a reload would.
      const loop = async (): Promise<void> => {
        while (!stop) {
          try {
            const reply = await send(`https://127.0.0.1:${proxy.httpsPort}/loop`, { ca: pki.caCert, servername: 'rotate.example.com', headers: { host: 'rotate.example.com' } })
            if (reply.status === 200) ok++
            else failures.push(`status ${reply.status}`)
          } catch (err) {
            failures.push((err as Error).message)
          }
        }
      }
      const clients = [loop(), loop()]
      for (let i = 1; i <= 10; i++) {
        await new Promise((resolve) => setTimeout(resolve, 400))
        writeFileSync(join(dir, 'config.yaml.tmp'), tlsConfig(entry(i)))
        renameSync(join(dir, 'config.yaml.tmp'), join(dir, 'config.yaml'))
        fingerprints.add((await served(proxy.httpsPort, 'rotate.example.com')).fingerprint)
      }
      await new Promise((resolve) => setTimeout(resolve, 400))
      stop = true
      await Promise.all(clients)
      assert.deepEqual(failures, [])
      assert.ok(ok > 20, `${ok} requests succeeded`)
      assert.ok(fingerprints.size >= 5, `the client saw ${fingerprints.size} different certificates`)
    } finally {
      await proxy.stop()
    }
  })

  it('opens the HTTPS listener when a reloaded config brings the first certificate', async () => {
    const dir = tempDir()
    issueInto(dir, 'a', ['a.example.com'])
    writeFileSync(join(dir, 'config.yaml'), config({ echo: up.port }, RULES))
    const proxy = await startProxy({ dir, env: { HTTPS_PORT: '0' } })
    try {
      // HTTPS_PORT set: the listener is there from the start, serving nothing yet.
      assert.ok(proxy.httpsPort > 0)
      await assert.rejects(served(proxy.httpsPort, 'a.example.com'))
      writeFileSync(join(dir, 'config.yaml'), tlsConfig('  - { hosts: [a.example.com], certFile: a.crt, keyFile: a.key }\n'))
      await proxy.waitForLog((l) => l.msg === 'config reloaded', 3000)
      assert.equal((await served(proxy.httpsPort, 'a.example.com')).name, 'a.example.com')
    } finally {
      await proxy.stop()
    }
  })

  it('keeps the original single TLS port with CERT_PATH and no HTTPS_PORT, certificates by SNI included', async () => {
    const dir = tempDir()
    const certDir = tempDir()
    pki.issue(['default.example.com'], certDir)
    issueInto(dir, 'a', ['a.example.com'])
    writeFileSync(join(dir, 'config.yaml'), tlsConfig('  - { hosts: [a.example.com], certFile: a.crt, keyFile: a.key }\n'))
    const proxy = await startProxy({ dir, env: { CERT_PATH: certDir } })
    try {
      assert.equal(proxy.httpsPort, proxy.port)
      assert.equal((await served(proxy.port, 'a.example.com')).name, 'a.example.com')
      assert.equal((await served(proxy.port, 'other.example.com')).name, 'default.example.com')
    } finally {
      await proxy.stop()
    }
  })
})

describe('session resumption', () => {
  it('resumes a TLS session on any worker, with the ticket keys the supervisor shares', async () => {
    const dir = tempDir()
    issueInto(dir, 'a', ['a.example.com'])
    writeFileSync(join(dir, 'config.yaml'), tlsConfig('  - { hosts: [a.example.com], certFile: a.crt, keyFile: a.key }\n'))
    const proxy = await startProxy({ dir, env: { HTTPS_PORT: '0', WORKERS: '2' } })
    try {
      await proxy.waitForLog(() => proxy.logs.filter((l) => l.msg.includes('listening on')).length >= 2, 10_000)
      const first = await served(proxy.httpsPort, 'a.example.com')
      const session = await first.session
      // SO_REUSEPORT spreads connections by their source port: with 12
      // tries, both workers are reached unless the odds are 1 in 2,048.
      const reused: boolean[] = []
      for (let i = 0; i < 12; i++) reused.push((await served(proxy.httpsPort, 'a.example.com', { session })).reused)
      assert.deepEqual(reused, reused.map(() => true))
    } finally {
      await proxy.stop()
    }
  })
})

describe('nanoproxy validate with certificates', () => {
  it('reports a key that does not match, a host the certificate does not cover, and a certificate with no hosts that is not the default', async () => {
    const dir = tempDir()
    issueInto(dir, 'a', ['a.example.com'])
    issueInto(dir, 'b', ['b.example.com'])
    copyFileSync(join(dir, 'a.key'), join(dir, 'b.key'))
    const file = join(dir, 'config.yaml')
    writeFileSync(file, tlsConfig('  - { hosts: [a.example.com, c.example.com], certFile: a.crt, keyFile: a.key }\n  - { hosts: [b.example.com], certFile: b.crt, keyFile: b.key }\n  - { hosts: [], certFile: a.crt, keyFile: a.key }\n'))
    const { code, stderr } = await runCli(['validate', file])
    assert.equal(code, 1)
    assert.match(stderr, /certificate 3 \(no hosts\): warning: has no hosts and is not the default: it is never served/)
    assert.match(stderr, /certificate 1 \(a\.example\.com, c\.example\.com\): warning: does not cover host "c\.example\.com"/)
    assert.match(stderr, /certificate 2 \(b\.example\.com\): error: b\.crt\/b\.key are not a usable certificate and key/)
  })

  it('refuses a certificate file without its key, and a default without files', async () => {
    const dir = tempDir()
    const file = join(dir, 'config.yaml')
    writeFileSync(file, tlsConfig('  - { hosts: [a.example.com], certFile: a.crt }\n  - { default: true }\n  - { hosts: [c.example.com] }\n'))
    const { code, stderr } = await runCli(['validate', file])
    assert.equal(code, 1)
    assert.match(stderr, /certificate 1: "keyFile" is missing \(give both certFile and keyFile, or neither for hosts served with the default certificate\)/)
    assert.match(stderr, /certificate 2: a default certificate needs certFile and keyFile/)
    assert.doesNotMatch(stderr, /certificate 3/)
  })

  it('names the line and column of a host that is not a host name, and of a host with two certificates', async () => {
    const dir = tempDir()
    const file = join(dir, 'config.yaml')
    writeFileSync(file, tlsConfig('  - { hosts: ["https://a.example.com"], certFile: a.crt, keyFile: a.key }\n  - { hosts: [b.example.com], certFile: b.crt, keyFile: b.key }\n  - { hosts: [B.example.com], certFile: c.crt, keyFile: c.key }\n'))
    const { code, stderr } = await runCli(['validate', file])
    assert.equal(code, 1)
    const lines = readFileSync(file, 'utf8').split('\n')
    const first = lines.findIndex((l) => l.includes('https://')) + 1
    assert.match(stderr, new RegExp(`:${first}:\\d+: certificate 1 field "hosts": "https://a\\.example\\.com" must be a host name`))
    assert.match(stderr, new RegExp(`:${first + 2}:\\d+: certificate 3: host "b\\.example\\.com" already has certificate 2`))
  })
})
