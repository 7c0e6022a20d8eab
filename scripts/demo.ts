// `npm start`: the proxy on :8080 in front of two small demo upstreams, so a
// newcomer sees it route requests with no set-up. Ctrl-C stops everything.

import { spawn } from 'node:child_process'
import { createServer } from 'node:http'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const port = process.env.PORT ?? '8080'

// "api": answers JSON describing the request it received.
const api = createServer((req, res) => {
  res.setHeader('content-type', 'application/json')
  res.end(JSON.stringify({ upstream: 'api', method: req.method, url: req.url, headers: req.headers }, null, 2) + '\n')
})
// "web": a tiny HTML page.
const web = createServer((req, res) => {
  res.setHeader('content-type', 'text/html; charset=utf-8')
  res.end(`<!doctype html><title>NanoProxy demo</title><h1>Hello from the web upstream</h1><p>You asked for <code>${escape(req.url ?? '')}</code>.</p>\n`)
})
function escape(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
}

await Promise.all([
  new Promise<void>((r) => api.listen(3001, '127.0.0.1', r)),
  new Promise<void>((r) => web.listen(3002, '127.0.0.1', r)),
])

const proxy = spawn(`${root}bin/nanoproxy`, ['proxy', '-c', `${root}examples/demo.yaml`], {
  env: { ...process.env, PORT: port },
  stdio: ['ignore', 'inherit', 'inherit'],
})

setTimeout(() => {
  process.stderr.write(`
  NanoProxy demo: the proxy listens on http://localhost:${port}
    curl http://localhost:${port}/               -> web upstream (127.0.0.1:3002)
    curl http://localhost:${port}/api/users?x=1  -> api upstream as /users?x=1
    curl http://localhost:${port}/.nanoproxy/health
  Config: examples/demo.yaml (edit it: the proxy reloads). Ctrl-C to stop.

`)
}, 800).unref()

const stop = (): void => {
  proxy.kill('SIGTERM')
}
process.on('SIGINT', stop)
process.on('SIGTERM', stop)
proxy.on('exit', (code) => {
  api.close()
  web.close()
  process.exit(code ?? 0)
})
