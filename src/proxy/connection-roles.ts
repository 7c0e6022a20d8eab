// What each part of a proxied request needs from the others, as small
// interfaces. The client connection, the exchange, the request handler, the
// upstream connection and its pool call each other both ways; with these
// each file imports the role it talks to instead of the class that plays
// it, and src/proxy has no import cycle (scripts/check-import-cycles.ts,
// run by `npm run lint`, keeps it so).

import type { Socket } from 'node:net'
import type { SecureContext } from 'node:tls'
import type { NanoProxyError } from '../errors.ts'
import type { ParseError } from '../http1/parse-error.ts'
import type { RequestHead } from '../http1/request-head.ts'
import type { Logger } from '../log.ts'
import type { ProxyMetrics, RouteStats } from '../metrics/proxy-metrics.ts'
import type { ProxySettings } from '../settings.ts'
import type { DeadlineSweeper } from './deadlines.ts'

/** How one request ended, for the access log. */
export interface ExchangeResult {
  status: number
  bytes: number
  error?: NanoProxyError | undefined
  /** The client went away before the response was complete. */
  aborted?: boolean
  /** Forwarded requests: servers tried (1 unless retried). */
  attempts?: number
  /** Forwarded requests: the server of the last attempt, `scheme://address:port`. */
  server?: string
  /** Metrics: the stats of the rule that routed the request. */
  stats?: RouteStats | undefined
  /** Metrics: seconds from the request head to the upstream's response head. */
  headSeconds?: number
  /** Metrics: request body bytes forwarded. */
  bytesIn?: number
}

/** The client connection as an exchange sees it (played by ClientConnection). */
export interface ExchangeClient {
  write(data: string | Buffer): boolean
  writeChunk(data: Buffer): boolean
  awaitDrain(): void
  resumeReading(): void
  becomeTunnel(upstream: Socket, responseHead: string, rest: Buffer | undefined, closed: (bytes: number) => void): void
  responseFinished(close: boolean, discard?: boolean): void
  reject(err: ParseError): void
  destroy(): void
}

/** The exchange in progress as its client connection sees it (played by Exchange). */
export interface ClientExchange {
  sendBody(data: Buffer): boolean
  bodyDone(): void
  onClientDrain(): void
  clientBodyFailed(err: ParseError): void
  clientGone(): void
}

/** The request handler as an exchange sees it (played by RequestHandler). */
export interface ExchangeOwner {
  readonly ctx: { readonly draining: boolean; readonly log: Logger; readonly metrics: ProxyMetrics | undefined }
  readonly identity: string
  /** The route's responseHeaders policy, if any. */
  readonly editResponse?: ((lines: string) => string) | undefined
  requestDone(conn: ExchangeClient, head: RequestHead, started: number, result: ExchangeResult, upstream: string | undefined): void
  sendError(conn: ExchangeClient, head: RequestHead, error: NanoProxyError, close: boolean): { status: number; bytes: number; close: boolean }
}

/** The request handler as a client connection sees it (played by RequestHandler). */
export interface ConnectionOwner<Connection> {
  readonly ctx: { readonly draining: boolean; readonly settings: ProxySettings }
  readonly bodyIdleMs: number
  track(conn: Connection): void
  untrack(conn: Connection): void
  dispatch(conn: Connection, head: RequestHead): void
  logRejected(conn: Connection, err: ParseError): void
}

/** Where an upstream connection goes: the pool's target. */
export interface ConnectTarget {
  host: string
  port: number
  /** Set for HTTPS upstreams. */
  secureContext: SecureContext | undefined
  /** SNI name: the upstream host unless it is an IP address. */
  servername: string | undefined
}

/** The pool as one of its upstream connections sees it (played by UpstreamPool). */
export interface ConnectionPool<Connection> {
  readonly name: string
  readonly target: ConnectTarget
  readonly timeoutMs: number
  readonly idleTimeoutMs: number
  readonly verify: boolean
  readonly sweeper: DeadlineSweeper
  release(conn: Connection, keepAliveS: number): void
  forget(conn: Connection): void
}
