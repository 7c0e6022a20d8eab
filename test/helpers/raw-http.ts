// Raw HTTP/1.1 over plain TCP, for tests that must control or see the exact
// bytes: a server that numbers and tracks its connections, an upstream that
// answers each request with the script for its path, and client sockets that
// can all be destroyed at the end of a test file.

import { once } from 'node:events'
import { connect, createServer, type Socket } from 'node:net'

export interface RawServer {
  port: number
  /** Destroys the connections still open, then stops listening. */
  close(): Promise<void>
}

/**
 * A TCP server on 127.0.0.1 (on a port of the kernel's choice) that hands
 * each accepted connection to `onConnection` with its number (1, 2, ... in
 * order of acceptance). Socket errors are ignored.
 */
export async function startRawServer(onConnection: (socket: Socket, id: number) => void): Promise<RawServer> {
  const sockets = new Set<Socket>()
  let accepted = 0
  const server = createServer((socket) => {
    const id = ++accepted
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => {})
    onConnection(socket, id)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    port: (server.address() as { port: number }).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy()
        server.close(() => resolve())
      }),
  }
}

// ---------------------------------------------------------------------------
// A scripted upstream: parses just enough of each request (request line,
// headers; a Content-Length body is skipped) and hands it to the script
// registered for its path, which writes whatever bytes it likes.

export interface UpstreamConnection {
  /** 1, 2, 3... in order of acceptance. */
  readonly id: number
  readonly socket: Socket
  /** Request lines received on this connection, in order. */
  readonly requests: string[]
}

export interface ScriptedRequest {
  method: string
  target: string
  version: string
  /** The raw request head, request line included, without the final CRLF CRLF. */
  head: string
  /** Header values by lower-cased name (the last one wins). */
  headers: Record<string, string>
  conn: UpstreamConnection
  socket: Socket
}

/**
 * Answers one request by writing to `req.socket`. What it returns is ignored,
 * except a promise that rejects: that destroys the connection.
 */
export type Script = (req: ScriptedRequest) => unknown

export class ScriptedUpstream {
  readonly connections: UpstreamConnection[] = []
  readonly requests: ScriptedRequest[] = []
  private readonly scripts = new Map<string, Script>()
  private readonly fallback: Script
  private readonly noDelay: boolean
  private server: RawServer | undefined

  private constructor(fallback: Script, noDelay: boolean) {
    this.fallback = fallback
    this.noDelay = noDelay
  }

  /**
   * Listens on 127.0.0.1; requests for paths without a script of their own
   * go to `fallback`. `noDelay` turns Nagle's algorithm off on the upstream's
   * side of each connection, so that every write leaves at once.
   */
  static async start(fallback: Script, opts: { noDelay?: boolean } = {}): Promise<ScriptedUpstream> {
    const up = new ScriptedUpstream(fallback, opts.noDelay ?? false)
    up.server = await startRawServer((socket, id) => up.accept(socket, id))
    return up
  }

  get port(): number {
    return this.server!.port
  }

  /** Answers requests for exactly `path` (query excluded) with `script`, or with the bytes `script`. */
  on(path: string, script: Script | string): void {
    this.scripts.set(path, typeof script === 'string' ? ({ socket }) => void socket.write(script, 'latin1') : script)
  }

  /** Requests received for `path` (query excluded). */
  requestsFor(path: string): ScriptedRequest[] {
    return this.requests.filter((r) => r.target.split('?')[0] === path)
  }

  close(): Promise<void> {
    return this.server!.close()
  }

  private accept(socket: Socket, id: number): void {
    const conn: UpstreamConnection = { id, socket, requests: [] }
    this.connections.push(conn)
    if (this.noDelay) socket.setNoDelay(true)
    let buf: Buffer = Buffer.alloc(0)
    let skip = 0 // request body bytes still to discard
    socket.on('data', (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk])
      for (;;) {
        if (skip > 0) {
          const n = Math.min(skip, buf.length)
          skip -= n
          buf = buf.subarray(n)
          if (skip > 0) return
        }
        const end = buf.indexOf('\r\n\r\n')
        if (end === -1) return
        const head = buf.subarray(0, end).toString('latin1')
        buf = buf.subarray(end + 4)
        const [line = '', ...fields] = head.split('\r\n')
        const [method = '', target = '', version = ''] = line.split(' ')
        const headers: Record<string, string> = {}
        for (const f of fields) {
          const colon = f.indexOf(':')
          headers[f.slice(0, colon).trim().toLowerCase()] = f.slice(colon + 1).trim()
        }
        skip = Number(headers['content-length'] ?? 0)
        conn.requests.push(line)
        const req: ScriptedRequest = { method, target, version, head, headers, conn, socket }
        this.requests.push(req)
        const script = this.scripts.get(target.split('?')[0]!) ?? this.fallback
        void Promise.resolve(script(req)).catch(() => socket.destroy())
      }
    })
  }
}

// ---------------------------------------------------------------------------
// Client sockets.

/** Every socket connectRaw opened that has not closed yet. */
const openSockets = new Set<Socket>()

/** A TCP connection to 127.0.0.1:`port` with Nagle's algorithm off, once connected (rejects on a connect error). */
export async function connectRaw(port: number): Promise<Socket> {
  const socket = connect(port, '127.0.0.1')
  socket.setNoDelay(true)
  openSockets.add(socket)
  socket.once('close', () => openSockets.delete(socket))
  await once(socket, 'connect')
  return socket
}

/** Destroys every socket connectRaw opened that is still open, so that none keeps the test process alive. */
export function destroyOpenSockets(): void {
  for (const s of openSockets) s.destroy()
}
