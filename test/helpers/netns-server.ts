// An upstream server run inside a test's network namespace
// (`ip netns exec NS node netns-server.ts NAME ADDRESS PORT [DELAY_MS]`):
// answers every request with its name, after DELAY_MS. Prints one JSON line
// once listening. See helpers/netns.ts.

import { createServer } from 'node:http'

const [name = 'server', address = '0.0.0.0', port = '0', delay = '0'] = process.argv.slice(2)
const delayMs = Number(delay)
const server = createServer((req, res) => {
  req.resume()
  const answer = (): void => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(name) })
    res.end(name)
  }
  if (delayMs > 0) setTimeout(answer, delayMs)
  else answer()
})
server.keepAliveTimeout = 5000
server.listen(Number(port), address, () => {
  process.stdout.write(`${JSON.stringify({ listening: true, name, address, port: Number(port) })}\n`)
})
process.on('SIGTERM', () => {
  server.closeAllConnections()
  server.close(() => process.exit(0))
})
