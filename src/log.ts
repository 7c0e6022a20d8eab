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
