// The popular Node reverse proxy `http-proxy` as the bench's Node peer,
// configured the way its README suggests for production: a keep-alive agent.
import { Agent, createServer } from 'node:http'
import httpProxy from 'http-proxy'

const [port = '0', up = '0', wsUp = '0'] = process.argv.slice(2)
const agent = new Agent({ keepAlive: true, maxSockets: 256 })
const proxy = httpProxy.createProxyServer({ agent })
proxy.on('error', (_err, _req, res) => {
  if ('writeHead' in res && !res.headersSent) res.writeHead(502)
  res.end()
})
const server = createServer((req, res) => proxy.web(req, res, { target: `http://127.0.0.1:${req.url?.startsWith('/ws') ? wsUp : up}` }))
server.on('upgrade', (req, socket, head) => proxy.ws(req, socket, head, { target: `http://127.0.0.1:${wsUp}` }))
server.listen(Number(port), '127.0.0.1')
process.on('SIGTERM', () => process.exit(0))
