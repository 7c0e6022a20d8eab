// The controller's probe endpoints: /healthz (the process is alive) and
// /readyz (every cache is synced and the config has been written once); and
// /metrics for Prometheus. One server in the controller's own container: the
// port is already there for the kubelet, and a scrape needs nothing more.

import { createServer, type Server } from 'node:http'
import { EXPOSITION_CONTENT_TYPE, renderFamilies, type Family } from '../metrics/metric-families.ts'

export function createHealthServer(ready: () => { ready: boolean; detail: Record<string, unknown> }, metrics?: () => Family[]): Server {
  return createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]
    if (path === '/metrics' && metrics !== undefined) {
      res.writeHead(200, { 'content-type': EXPOSITION_CONTENT_TYPE })
      res.end(renderFamilies(metrics()))
      return
    }
    if (path === '/healthz' || path === '/livez') {
      res.writeHead(200, { 'content-type': 'text/plain' })
      res.end('ok\n')
      return
    }
    if (path === '/readyz') {
      const { ready: ok, detail } = ready()
      res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ ready: ok, ...detail }) + '\n')
      return
    }
    res.writeHead(404, { 'content-type': 'text/plain' })
    res.end('not found\n')
  })
}
