// The listening socket: HTTP or HTTPS, the limits that protect it, and a
// graceful shutdown.

import { createServer as createHttpServer, STATUS_CODES, type Server } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import type { Socket } from 'node:net'
import type { SecureContextOptions } from 'node:tls'
import type { ProxyContext } from './proxy-context.ts'
import type { RequestHandler } from './request-handler.ts'
import { TLS_POLICY } from './tls.ts'

/**
 * Idle keep-alive connections are kept 65 s: longer than the default 60 s
 * idle timeout of AWS load balancers in front, so the balancer, not the
 * proxy, closes first and never sends on a connection being closed.
 */
const KEEP_ALIVE_TIMEOUT_MS = 65_000

export function createProxyServer(ctx: ProxyContext, handler: RequestHandler, tls?: SecureContextOptions): Server {
  const { settings } = ctx
  const options = {
    // Slow clients: the request head must arrive within TIMEOUT (checked
    // every second); after that, any silence longer than IDLE_TIMEOUT ends
    // the connection (server.setTimeout below). There is deliberately no
    // limit on a whole request: a large upload on a slow link is legitimate.
    headersTimeout: settings.timeoutMs,
    requestTimeout: 0,
    connectionsCheckingInterval: Math.min(1000, settings.timeoutMs),
    keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
    // Request smuggling defences stay on: strict parsing (insecureHTTPParser
    // off), Host required on HTTP/1.1 (RFC 9112 §3.2), 16 KiB of headers max.
    insecureHTTPParser: false,
    requireHostHeader: true,
    maxHeaderSize: 16 * 1024,
    noDelay: true,
  }
  const server = tls ? createHttpsServer({ ...options, ...tls, ...TLS_POLICY }) : createHttpServer(options)
  // Never shorter than TIMEOUT: a client waiting for response headers is silent too.
  server.setTimeout(Math.max(settings.idleTimeoutMs, settings.timeoutMs))

  server.on('request', (req, res) => handler.handle(req, res))
  // Registering this listener stops Node from answering 100 Continue before
  // the request is routed; the forwarder sends it (see forward.ts).
  server.on('checkContinue', (req, res) => handler.handle(req, res, true))
  server.on('upgrade', (req, socket, head) => handler.handleUpgrade(req, socket, head))

  // A reverse proxy is not a forward proxy: CONNECT tunnels are refused
  // (RFC 9110 §9.3.6 lets a server decline them) instead of Node's silent close.
  server.on('connect', (_req, socket: Socket) => {
    socket.end('HTTP/1.1 405 Method Not Allowed\r\nallow: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS\r\ncontent-length: 0\r\nconnection: close\r\n\r\n')
  })

  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    // A malformed request (bad request line, Content-Length and
    // Transfer-Encoding together, oversized head, too slow) is answered
    // with a 4xx by the proxy itself and never reaches an upstream.
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400
    const quiet = err.code === 'ECONNRESET' || err.code === 'EPIPE'
    if (!quiet) {
      ctx.log.info(
        { status, error: err.code ?? 'ERR', reason: err.message, client: socket.remoteAddress },
        'rejected malformed request',
      )
    }
    // A broken body is found after the head was parsed and the request is
    // already streaming upstream: a 400 can still be sent if the response
    // has not started; closing the socket then aborts the upstream request.
    const busy = (socket as Socket & { _httpMessage?: { headersSent: boolean } })._httpMessage
    if (quiet || !socket.writable || busy?.headersSent) {
      socket.destroy()
      return
    }
    socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n`)
  })
  if (tls) {
    server.on('tlsClientError', (err: Error, socket: Socket) => {
      ctx.log.debug({ err, client: socket.remoteAddress }, 'TLS handshake with client failed')
    })
  }
  return server
}

/**
 * Listens on `port`. With `shared`, each worker process binds its own socket
 * with SO_REUSEPORT and the kernel spreads connections among them (no
 * round-robin through a primary process, unlike the cluster module's default).
 */
export function listen(server: Server, port: number, shared = false): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen({ port, reusePort: shared, exclusive: shared }, () => {
      server.off('error', reject)
      const address = server.address()
      resolve(typeof address === 'object' && address ? address.port : port)
    })
  })
}

/**
 * Graceful shutdown: stop accepting, close idle keep-alive connections, let
 * requests in flight finish (their responses carry `Connection: close`),
 * and after `graceMs` cut whatever is left, WebSocket tunnels included.
 * Resolves with whether everything finished within the grace period.
 */
export async function drain(server: Server, ctx: ProxyContext, handler: RequestHandler, graceMs: number): Promise<boolean> {
  ctx.draining = true
  const closed = new Promise<void>((resolve) => server.close(() => resolve()))
  server.closeIdleConnections()
  // Connections that finish their last response while we wait become idle:
  // close those too, so keep-alive clients move to another replica.
  const sweep = setInterval(() => server.closeIdleConnections(), 100)
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), graceMs)
  })
  const clean = await Promise.race([handler.idle().then(() => true as const), deadline])
  clearInterval(sweep)
  clearTimeout(timer)
  handler.closeTunnels()
  server.closeAllConnections()
  await closed
  return clean
}
