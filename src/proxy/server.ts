// The listening sockets: plain TCP or TLS, each accepted connection handed
// to a ClientConnection, and a graceful shutdown.

import { createServer as createTcpServer, type Server, type Socket } from 'node:net'
import type { Server as TlsServer, TLSSocket } from 'node:tls'
import type { CertificateStore, KeyPair } from './certificate-store.ts'
import { ClientConnection } from './client-connection.ts'
import type { ProxyContext } from './proxy-context.ts'
import type { RequestHandler } from './request-handler.ts'
import { loadTls, TLS_POLICY } from './tls.ts'

/** What a TLS listener serves: certificates by SNI, and the session ticket keys every worker shares. */
export interface TlsListenerOptions {
  store: CertificateStore
  ticketKeys: Buffer
}

export function createProxyServer(ctx: ProxyContext, handler: RequestHandler, tls?: TlsListenerOptions): Server {
  // allowHalfOpen: a client that shuts down its sending side after the
  // request (netcat, some scripts) still gets the response.
  const options = { allowHalfOpen: true, noDelay: true }
  if (tls === undefined) {
    return createTcpServer(options, (socket: Socket) => new ClientConnection(handler, socket, 'http'))
  }
  const store = tls.store
  const server = loadTls().createServer(
    {
      ...options,
      ...TLS_POLICY,
      // The default certificate is the listener's own context: it is what a
      // handshake without SNI gets, and what SNICallback falls back to.
      ...store.defaultPair,
      ticketKeys: tls.ticketKeys,
      // A TLS handshake has TIMEOUT to complete, like a request head.
      handshakeTimeout: ctx.settings.timeoutMs,
      // Called for every ClientHello with a server name; reads the store's
      // current lookup, so a reload reaches the next handshake.
      SNICallback: (servername, callback) => callback(null, store.sniContextFor(servername)),
    },
    // No setNoDelay() here: the `noDelay` option has net.Server set
    // TCP_NODELAY on the accepted socket, which the TLS socket wraps (a
    // second call was one more setsockopt per handshake).
    (socket: TLSSocket) => {
      if (ctx.metrics !== undefined) ctx.metrics.tlsHandshakes++
      new ClientConnection(handler, socket, 'https')
    },
  )
  // Until its handshake completes a connection has no ClientConnection:
  // the handler keeps it apart, so a shutdown can cut it too.
  server.on('connection', (socket: Socket) => handler.trackHandshake(socket))
  server.on('tlsClientError', (err: Error, socket: Socket) => {
    ctx.log.debug({ err, client: socket.remoteAddress }, 'TLS handshake with client failed')
    if (ctx.metrics !== undefined) ctx.metrics.tlsFailures++
    // Node reports a handshake timeout or failure here but leaves the
    // socket open: without this a client could hold it forever.
    socket.destroy()
  })
  return server
}

/**
 * Makes `pair` the certificate of handshakes without SNI (or none), keeping
 * the ticket keys: setSecureContext() builds a new context, which would
 * otherwise get keys of its own and refuse every worker's tickets.
 */
export function setDefaultCertificate(server: Server, pair: KeyPair | undefined, ticketKeys: Buffer): void {
  ;(server as TlsServer).setSecureContext({ ...TLS_POLICY, ...pair, ticketKeys })
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
 * How long a connection must have waited for its next request before a
 * shutdown closes it. Closing a keep-alive connection races the client
 * reusing it (RFC 9112 §9.3.1: the request is lost in flight and only an
 * idempotent one may be retried), and a busy client reuses its connection
 * within milliseconds of each response. So a connection in use is left to
 * its next request, whose response carries `Connection: close`, and only
 * connections quiet for this long are closed (as Go's Server.Shutdown
 * spares a new connection that has not sent its first request yet).
 */
const DRAIN_IDLE_MS = 1000

/**
 * Graceful shutdown: stop accepting, close connections idle for
 * DRAIN_IDLE_MS, let requests in flight finish (their responses carry
 * `Connection: close`, and each connection closes after its next one), and
 * after `graceMs` cut whatever is left, WebSocket tunnels included.
 * Resolves with whether everything finished within the grace period.
 */
export async function drain(servers: readonly Server[], ctx: ProxyContext, handler: RequestHandler, graceMs: number): Promise<boolean> {
  ctx.draining = true
  const closed = Promise.all(servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))))
  handler.closeIdleConnections(DRAIN_IDLE_MS)
  const sweep = setInterval(() => handler.closeIdleConnections(DRAIN_IDLE_MS), 50)
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), graceMs)
  })
  // The last responses may still sit in socket buffers (a slow reader):
  // settled() waits for them to reach the kernel before anything is cut.
  const clean = await Promise.race([handler.settled().then(() => true as const), deadline])
  clearInterval(sweep)
  clearTimeout(timer)
  handler.closeAllConnections()
  await closed
  return clean
}
