// A real Kubernetes API server for the controller tests: etcd and
// kube-apiserver built from source by test/k8s/build.sh (no prebuilt binary
// can be downloaded here), started on 127.0.0.1 with certificates made now,
// RBAC on, and no controller-manager (so nothing creates EndpointSlices and
// deleted namespaces stay Terminating: tests use fresh namespaces).

import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync, writeFileSync } from 'node:fs'
import { request } from 'node:https'
import { join } from 'node:path'
import { CoreV1Api, KubeConfig, KubernetesObjectApi, PatchStrategy, type KubernetesObject } from '@kubernetes/client-node'
import { parseAllDocuments } from 'yaml'
import { freePort } from './ports.ts'
import { tempDir } from './proxy-process.ts'

const ROOT = new URL('../../', import.meta.url).pathname

/** Builds (or finds cached) kube-apiserver and etcd; returns their directory. */
export function k8sBinaries(): string {
  const out = execFileSync('bash', [join(ROOT, 'test/k8s/build.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })
  return out.trim().split('\n').at(-1)!
}

function openssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] })
}

export class KubeCluster {
  readonly dir = tempDir('nanoproxy-k8s-')
  readonly bin: string
  apiPort = 0
  private etcdPort = 0
  private etcd: ChildProcess | undefined
  private apiserver: ChildProcess | undefined
  /** Admin credentials (system:masters), for the tests themselves. */
  readonly adminConfig = new KubeConfig()
  adminKubeconfigFile = ''

  constructor() {
    this.bin = k8sBinaries()
  }

  get server(): string {
    return `https://127.0.0.1:${this.apiPort}`
  }

  async start(): Promise<void> {
    this.makePki()
    this.etcdPort = await freePort()
    const peer = await freePort()
    this.apiPort = await freePort()
    const etcdUrl = `http://127.0.0.1:${this.etcdPort}`
    this.etcd = spawn(
      join(this.bin, 'etcd'),
      [
        '--name=test',
        `--data-dir=${join(this.dir, 'etcd')}`,
        `--listen-client-urls=${etcdUrl}`,
        `--advertise-client-urls=${etcdUrl}`,
        `--listen-peer-urls=http://127.0.0.1:${peer}`,
        `--initial-advertise-peer-urls=http://127.0.0.1:${peer}`,
        `--initial-cluster=test=http://127.0.0.1:${peer}`,
        '--unsafe-no-fsync',
        '--log-level=error',
      ],
      { stdio: 'ignore' },
    )
    await this.startApiserver()
    this.writeAdminKubeconfig()
  }

  async startApiserver(): Promise<void> {
    const pki = join(this.dir, 'pki')
    this.apiserver = spawn(
      join(this.bin, 'kube-apiserver'),
      [
        '--bind-address=127.0.0.1',
        '--advertise-address=127.0.0.1',
        `--secure-port=${this.apiPort}`,
        `--etcd-servers=http://127.0.0.1:${this.etcdPort}`,
        `--cert-dir=${join(this.dir, 'apiserver-certs')}`,
        `--tls-cert-file=${pki}/apiserver.crt`,
        `--tls-private-key-file=${pki}/apiserver.key`,
        `--client-ca-file=${pki}/ca.crt`,
        '--authorization-mode=RBAC',
        `--service-account-issuer=${this.server}`,
        `--service-account-key-file=${pki}/sa.pub`,
        `--service-account-signing-key-file=${pki}/sa.key`,
        '--service-cluster-ip-range=10.0.0.0/24',
        // Advertising 127.0.0.1 makes the endpoint reconciler complain; nothing needs it here.
        '--endpoint-reconciler-type=none',
        // No controller-manager creates the `default` ServiceAccount these would need.
        '--disable-admission-plugins=ServiceAccount',
        '--profiling=false',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    )
    let stderr = ''
    this.apiserver.stderr!.on('data', (c: Buffer) => {
      stderr = (stderr + c.toString()).slice(-4000)
    })
    const started = Date.now()
    while (!(await this.ready())) {
      if (this.apiserver.exitCode !== null) throw new Error(`kube-apiserver exited:\n${stderr}`)
      if (Date.now() - started > 120_000) throw new Error(`kube-apiserver not ready after 120 s:\n${stderr}`)
      await new Promise((r) => setTimeout(r, 100))
    }
  }

  /**
   * Stops the API server only (etcd keeps the data). SIGTERM is a graceful
   * stop, which waits up to a minute for open watches; SIGKILL is a crash.
   */
  async stopApiserver(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const p = this.apiserver
    if (!p || p.exitCode !== null) return
    p.kill(signal)
    await once(p, 'exit')
  }

  async stop(): Promise<void> {
    await this.stopApiserver()
    if (this.etcd && this.etcd.exitCode === null) {
      this.etcd.kill('SIGTERM')
      await once(this.etcd, 'exit')
    }
  }

  private ready(): Promise<boolean> {
    const pki = join(this.dir, 'pki')
    return new Promise((resolve) => {
      const req = request(
        {
          host: '127.0.0.1',
          port: this.apiPort,
          path: '/readyz',
          ca: readFileSync(join(pki, 'ca.crt')),
          cert: readFileSync(join(pki, 'admin.crt')),
          key: readFileSync(join(pki, 'admin.key')),
          timeout: 2000,
        },
        (res) => {
          res.resume()
          resolve(res.statusCode === 200)
        },
      )
      req.on('error', () => resolve(false))
      req.on('timeout', () => req.destroy())
      req.end()
    })
  }

  private makePki(): void {
    const pki = join(this.dir, 'pki')
    execFileSync('mkdir', ['-p', pki])
    openssl(pki, ['req', '-x509', '-new', '-nodes', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=nanoproxy-test-ca'])
    const sign = (name: string, subject: string, ext: string): void => {
      openssl(pki, ['req', '-new', '-nodes', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject])
      writeFileSync(join(pki, `${name}.ext`), ext)
      openssl(pki, ['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-out', `${name}.crt`, '-extfile', `${name}.ext`])
    }
    sign('apiserver', '/CN=kube-apiserver', 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n')
    sign('admin', '/O=system:masters/CN=admin', 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n')
    openssl(pki, ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', 'sa.key'])
    openssl(pki, ['pkey', '-in', 'sa.key', '-pubout', '-out', 'sa.pub'])
  }

  private writeAdminKubeconfig(): void {
    const pki = join(this.dir, 'pki')
    this.adminKubeconfigFile = join(this.dir, 'admin.kubeconfig')
    writeFileSync(
      this.adminKubeconfigFile,
      kubeconfigYaml(this.server, readFileSync(join(pki, 'ca.crt'), 'utf8'), {
        'client-certificate-data': b64(readFileSync(join(pki, 'admin.crt'), 'utf8')),
        'client-key-data': b64(readFileSync(join(pki, 'admin.key'), 'utf8')),
      }),
    )
    this.adminConfig.loadFromFile(this.adminKubeconfigFile)
  }

  /**
   * Applies deploy/rbac.yaml and returns a kubeconfig file for its
   * ServiceAccount, with a token from the TokenRequest API: the controller
   * runs with exactly the permissions that manifest grants.
   */
  async controllerKubeconfig(): Promise<string> {
    await this.apply([{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'nanoproxy' } }])
    await this.apply(parseAllDocuments(readFileSync(join(ROOT, 'deploy/rbac.yaml'), 'utf8')).map((d) => d.toJS() as KubernetesObject))
    const core = this.adminConfig.makeApiClient(CoreV1Api)
    const token = await core.createNamespacedServiceAccountToken({
      name: 'nanoproxy',
      namespace: 'nanoproxy',
      body: { spec: { audiences: [], expirationSeconds: 3600 } },
    })
    const file = join(this.dir, 'controller.kubeconfig')
    writeFileSync(file, kubeconfigYaml(this.server, readFileSync(join(this.dir, 'pki/ca.crt'), 'utf8'), { token: token.status?.token ?? '' }))
    return file
  }

  /** Creates or replaces each object (server-side apply, as `kubectl apply --server-side`). */
  async apply(objects: KubernetesObject[]): Promise<void> {
    const api = KubernetesObjectApi.makeApiClient(this.adminConfig)
    for (const obj of objects) {
      await api.patch(obj, undefined, undefined, 'nanoproxy-tests', true, PatchStrategy.ServerSideApply)
    }
  }

  async delete(obj: KubernetesObject): Promise<void> {
    const api = KubernetesObjectApi.makeApiClient(this.adminConfig)
    await api.delete(obj)
  }
}

function b64(s: string): string {
  return Buffer.from(s).toString('base64')
}

function kubeconfigYaml(server: string, ca: string, user: Record<string, string>): string {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'test', cluster: { server, 'certificate-authority-data': b64(ca) } }],
    users: [{ name: 'user', user }],
    contexts: [{ name: 'test', context: { cluster: 'test', user: 'user' } }],
    'current-context': 'test',
  })
}
