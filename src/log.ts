// Structured JSON logs (pino) on stdout, one object per line: what log
// shippers in Kubernetes (Fluent Bit, Vector, Promtail) expect.

import { pino, type Logger } from 'pino'

export type { Logger }

export function createLogger(options: { debug?: boolean; name?: string } = {}): Logger {
  return pino({
    level: options.debug ? 'debug' : (process.env.LOG_LEVEL ?? 'info'),
    base: options.name ? { name: options.name } : { pid: process.pid },
    // ISO time reads better in `kubectl logs` than epoch milliseconds.
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  })
}

/**
 * Exits once the last log lines had a moment to go out. pino writes
 * asynchronously and flushes what is still queued synchronously on exit;
 * exiting in the same tick as the last line leaves that line queued behind
 * the write in flight, and if stdout is gone (a log reader that died) the
 * exit-time flush then retries EPIPE forever: the process never exits.
 * A short pause lets the write in flight finish (or fail, after which pino
 * stops writing), so the flush at exit has nothing left to retry.
 */
export function exitAfterLogs(code: number): void {
  setTimeout(() => process.exit(code), 100)
}

/**
 * Writes text lines (the `combined` access log) to the logger's own
 * destination, so they keep their order with its JSON lines and share its
 * buffering, instead of racing it on file descriptor 1.
 */
export function lineWriter(log: Logger): (line: string) => void {
  const stream = (log as unknown as Record<symbol, { write(chunk: string): unknown } | undefined>)[pino.symbols.streamSym]
  if (stream === undefined) return (line) => void process.stdout.write(line)
  return (line) => void stream.write(line)
}
