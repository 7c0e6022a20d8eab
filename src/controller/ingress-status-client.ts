// The two API calls of the status loop (get and merge-patch an Ingress's
// status subresource) over one pool of kept-alive HTTPS connections.
//
// @kubernetes/client-node 2.x builds a new connection pool (an undici Agent)
// for every request it sends, so each request pays a TLS handshake on both
// sides and leaves a pool behind for the garbage collector. For a watch or
// an occasional call that does not matter; for a status storm (10,000
// patches when the load balancer's address changes) it made the API server
// and the controller spend their time on handshakes. Credentials, CA and
// TLS settings still come from the KubeConfig for each request (a rotated
// service-account token is picked up), only the sockets are kept.

import { Agent, request, type RequestOptions } from 'node:https'
import type { KubeConfig } from '@kubernetes/client-node'
import type { Ingress } from './snapshot.ts'
import type { IngressStatusApi } from './status-updater.ts'

/** An error answer of the API server; `code` is its HTTP status, as the library's ApiException has. */
export class KubeApiError extends Error {
  readonly code: number
  constructor(code: number, message: string) {
    super(message)
    this.code = code
  }
}

/**
 * A client for the status loop, or undefined when the cluster is reached in
 * a way this does not handle (plain HTTP, a proxy): the library's client is
 * used then.
 */
export function ingressStatusClient(kubeConfig: KubeConfig, maxSockets: number): IngressStatusApi | undefined {
  const cluster = kubeConfig.getCurrentCluster()
  if (!cluster || cluster.proxyUrl || !cluster.server.startsWith('https://')) return undefined
  const server = new URL(cluster.server)
  const prefix = server.pathname.replace(/\/+$/, '')
  const agent = new Agent({ keepAlive: true, maxSockets })

  const call = async (method: 'GET' | 'PATCH', path: string, body?: unknown): Promise<Ingress> => {
    const auth: RequestOptions & { headers?: Record<string, string> } = {}
    await kubeConfig.applyToHTTPSOptions(auth)
    const payload = body === undefined ? undefined : JSON.stringify(body)
    return new Promise((resolve, reject) => {
      const req = request(
        {
          agent,
          host: server.hostname.replace(/^\[(.*)\]$/, '$1'),
          port: server.port || 443,
          path: prefix + path,
          method,
          ca: auth.ca,
          cert: auth.cert,
          key: auth.key,
          auth: auth.auth,
          servername: auth.servername,
          ...(auth.rejectUnauthorized === undefined ? {} : { rejectUnauthorized: auth.rejectUnauthorized }),
          headers: {
            ...auth.headers,
            accept: 'application/json',
            ...(payload === undefined ? {} : { 'content-type': 'application/merge-patch+json', 'content-length': Buffer.byteLength(payload) }),
          },
          timeout: 30_000,
        },
        (res) => {
          const chunks: Buffer[] = []
          res.on('data', (c: Buffer) => chunks.push(c))
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8')
            const status = res.statusCode ?? 0
            if (status >= 200 && status < 300) {
              try {
                resolve(JSON.parse(text) as Ingress)
              } catch (err) {
                reject(err instanceof Error ? err : new Error(String(err)))
              }
              return
            }
            let reason = text.slice(0, 200)
            try {
              reason = (JSON.parse(text) as { message?: string }).message ?? reason
            } catch {
              // not a Status object
            }
            reject(new KubeApiError(status, `${method} ${path}: ${status} ${reason}`))
          })
          res.on('error', reject)
        },
      )
      req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer within 30 s`)))
      req.on('error', reject)
      req.end(payload)
    })
  }

  const statusPath = (namespace: string, name: string): string =>
    `/apis/networking.k8s.io/v1/namespaces/${encodeURIComponent(namespace)}/ingresses/${encodeURIComponent(name)}/status`
  return {
    patchNamespacedIngressStatus: ({ name, namespace, body }) => call('PATCH', statusPath(namespace, name), body),
    readNamespacedIngressStatus: ({ name, namespace }) => call('GET', statusPath(namespace, name)),
  }
}
