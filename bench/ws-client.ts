// WebSocket load: CONNS connections each send a 32-byte message and wait
// for its echo, again and again for SECONDS; prints round trips per second.
import WebSocket from 'ws'

const [url = '', conns = '50', seconds = '5'] = process.argv.slice(2)
const payload = Buffer.alloc(32, 97)
let count = 0
let running = true

const sockets = await Promise.all(
  Array.from({ length: Number(conns) }, () => new Promise<WebSocket>((resolve, reject) => {
    const ws = new WebSocket(url)
    ws.once('open', () => resolve(ws))
    ws.once('error', reject)
  })),
)
const started = performance.now()
for (const ws of sockets) {
  ws.on('message', () => {
    count++
    if (running) ws.send(payload)
  })
  ws.send(payload)
}
await new Promise((r) => setTimeout(r, Number(seconds) * 1000))
running = false
const elapsed = (performance.now() - started) / 1000
process.stdout.write(`${(count / elapsed).toFixed(1)}\n`)
for (const ws of sockets) ws.terminate()
process.exit(0)
