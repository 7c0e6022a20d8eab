// Real upstream servers on 127.0.0.1 for the proxy to forward to.

import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import { WebSocketServer } from 'ws'

export interface SeenRequest {
  method: string
  url: string
  headers: Record<string, string | string[] | undefined>
  rawHeaders: string[]
  bodyLength: number
  servername?: string
}

export interface Upstream {
  port: number
  server: Server
  /** Every request the upstream received, in order. */
  requests: SeenRequest[]
  close(): Promise<void>
}

type Handler = (req: IncomingMessage, res: ServerResponse, seen: SeenRequest) => void

/**
 * An echo server: answers every request with a JSON description of what it
 * received (method, target, headers, body length). `handler` may take over
 * particular requests first.
 */
export async function startUpstream(opts: { tls?: { cert: string; key: string }; handler?: Handler } = {}): Promise<Upstream> {
  const requests: SeenRequest[] = []
  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const seen: SeenRequest = {
      method: req.method ?? '',
      url: req.url ?? '',
      headers: req.headers,
      rawHeaders: req.rawHeaders,
      bodyLength: 0,
      servername: (req.socket as { servername?: string }).servername,
    }
    requests.push(seen)
    if (opts.handler) {
      opts.handler(req, res, seen)
      if (res.headersSent || res.writableEnded) return
      if ((res as { handled?: boolean }).handled) return
    }
    req.on('data', (c: Buffer) => (seen.bodyLength += c.length))
    req.on('end', () => {
      const body = JSON.stringify(seen)
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
      res.end(body)
    })
  }
  const server = opts.tls ? createHttpsServer({ cert: opts.tls.cert, key: opts.tls.key }, onRequest) : createHttpServer(onRequest)
  server.keepAliveTimeout = 5000
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    port: (server.address() as AddressInfo).port,
    server,
    requests,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

/** Marks a response as taken over by a custom handler that answers later. */
export function handled(res: ServerResponse): void {
  ;(res as { handled?: boolean }).handled = true
}

/** A WebSocket echo server (the `ws` package) that also reports the handshake it saw. */
export async function startWebSocketEcho(): Promise<Upstream & { wss: WebSocketServer }> {
  const up = await startUpstream({
    handler: (_req, res) => {
      res.writeHead(426, { 'content-type': 'text/plain' })
      res.end('upgrade required')
    },
  })
  const wss = new WebSocketServer({ noServer: true })
  up.server.on('upgrade', (req: IncomingMessage, socket, head) => {
    up.requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders, bodyLength: 0 })
    if (req.url?.startsWith('/deny')) {
      socket.end('HTTP/1.1 401 Unauthorized\r\ncontent-type: text/plain\r\ncontent-length: 6\r\nconnection: close\r\n\r\ndenied')
      return
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }))
    })
  })
  return { ...up, wss, close: async () => {
    for (const c of wss.clients) c.terminate()
    wss.close()
    await up.close()
  } }
}

/** A config with one upstream `name` on 127.0.0.1:port and the given rules (YAML). */
export function config(upstreams: Record<string, number | { port: number; scheme?: string; host?: string; noHostRewrite?: boolean }>, rules: string): string {
  let out = 'upstreams:\n'
  for (const [name, u] of Object.entries(upstreams)) {
    const o = typeof u === 'number' ? { port: u } : u
    out += `  - name: ${name}\n    host: ${o.host ?? '127.0.0.1'}\n    port: ${o.port}\n`
    if (o.scheme) out += `    scheme: ${o.scheme}\n`
    if (o.noHostRewrite) out += `    noHostRewrite: true\n`
  }
  return `${out}rules:\n${rules}`
}
