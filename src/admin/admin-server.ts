// The admin port (ADMIN_PORT): /metrics for Prometheus, the dashboard and
// the JSON it polls. Separate from the traffic ports, so that neither a
// client of the proxy nor a rule can reach it, and a NetworkPolicy can
// open it to the monitoring namespace only. Read-only: GET and HEAD.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { Logger } from '../log.ts'
import { EXPOSITION_CONTENT_TYPE, renderFamilies } from '../metrics/metric-families.ts'
import { DASHBOARD_FILES } from './dashboard-files.ts'
import type { SnapshotSource } from './snapshot.ts'

export function createAdminServer(source: SnapshotSource, log: Logger): Server {
  return createServer((req, res) => {
    void handle(source, req, res).catch((err: unknown) => {
      log.warn({ err, path: req.url }, 'admin request failed')
      if (!res.headersSent) send(res, 503, 'text/plain; charset=utf-8', `metrics unavailable: ${(err as Error).message}\n`)
      else res.destroy()
    })
  })
}

async function handle(source: SnapshotSource, req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('allow', 'GET, HEAD')
    send(res, 405, 'text/plain; charset=utf-8', 'read-only: GET or HEAD\n')
    return
  }
  const path = (req.url ?? '/').split('?')[0]
  if (path === '/metrics') {
    const snapshot = await source.snapshot()
    send(res, 200, EXPOSITION_CONTENT_TYPE, renderFamilies(snapshot.families))
    return
  }
  if (path === '/api/snapshot') {
    const snapshot = await source.snapshot()
    send(res, 200, 'application/json', JSON.stringify({ time: Date.now(), ...snapshot }))
    return
  }
  const file = DASHBOARD_FILES[path === '/' ? '/index.html' : (path ?? '')]
  if (file !== undefined) {
    send(res, 200, file.type, file.body)
    return
  }
  send(res, 404, 'text/plain; charset=utf-8', 'not found: try /metrics or /\n')
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, {
    'content-type': type,
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    // The page loads nothing from elsewhere (no CDN): the browser is told so.
    'content-security-policy': "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'",
    'x-content-type-options': 'nosniff',
  })
  res.end(res.req.method === 'HEAD' ? undefined : body)
}

/** Listens on `port` (0: a free one); resolves with the port. */
export function listenAdmin(server: Server, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, () => {
      server.off('error', reject)
      const address = server.address()
      resolve(typeof address === 'object' && address ? address.port : port)
    })
  })
}
