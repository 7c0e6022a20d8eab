// WebSocket echo upstream for the bench (the `ws` package); answers plain
// HTTP with 426 so a misrouted request is visible.
import { createServer } from 'node:http'
import { WebSocketServer } from 'ws'

const server = createServer((_req, res) => {
  res.writeHead(426, { 'content-type': 'text/plain' })
  res.end('upgrade required\n')
})
const wss = new WebSocketServer({ server })
wss.on('connection', (ws) => ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })))
server.listen(Number(process.argv[2]), '127.0.0.1')
process.on('SIGTERM', () => process.exit(0))
