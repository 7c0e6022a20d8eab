// The access log: one line per request, in the format ACCESS_LOG_FORMAT names.
//
// - `json` (the default): a pino object, msg "request", with the route's
//   upstream and server, duration and request id; what log shippers in
//   Kubernetes parse without configuration.
// - `combined`: nginx's predefined combined format (ngx_http_log_module,
//   log_format combined), one text line that every log analyser reads:
//     $remote_addr - $remote_user [$time_local] "$request" $status
//     $body_bytes_sent "$http_referer" "$http_user_agent"
//   $remote_user is always "-" (the proxy does no authentication and does
//   not read Authorization). Values are escaped as nginx's escape=default
//   does: `"`, `\` and bytes outside 0x20-0x7E become \xHH, so a client
//   cannot break a line or forge one.

import type { Logger } from '../log.ts'
import { lineWriter } from '../log.ts'
import { field, scanField } from '../http1/field-line.ts'
import type { RequestHead } from '../http1/request-head.ts'
import type { AccessLogFormat } from '../settings.ts'
import type { ExchangeResult } from './connection-roles.ts'

export interface AccessLogEntry {
  head: RequestHead
  client: string
  result: ExchangeResult
  upstream: string | undefined
  durationMs: number
}

export class AccessLog {
  private readonly log: Logger
  private readonly format: AccessLogFormat
  private readonly writeLine: (line: string) => void
  private readonly clock = new LocalTime()

  constructor(log: Logger, format: AccessLogFormat) {
    this.log = log
    this.format = format
    this.writeLine = format === 'combined' ? lineWriter(log) : () => {}
  }

  write(e: AccessLogEntry): void {
    if (this.format === 'combined') {
      // The access log is at level info, as the json lines are: LOG_LEVEL=warn silences both.
      if (this.log.isLevelEnabled('info')) this.writeLine(this.combined(e))
      return
    }
    const { head, result, upstream } = e
    const error = result.error
    this.log.info(
      {
        method: head.method,
        host: head.host,
        path: head.target,
        status: result.status,
        upstream,
        ...(result.server !== undefined ? { server: result.server, attempts: result.attempts } : {}),
        bytes: result.bytes,
        duration_ms: Math.round(e.durationMs * 1000) / 1000,
        client: e.client,
        ...(head.requestId !== undefined ? { request_id: head.requestId } : {}),
        ...(result.status === 101 ? { upgrade: head.upgrade } : {}),
        ...(error ? { error: error.code } : {}),
        ...(result.aborted ? { aborted: true } : {}),
      },
      'request',
    )
  }

  private combined(e: AccessLogEntry): string {
    const { head, result } = e
    const request = `${head.method} ${head.target} HTTP/1.${head.minor}`
    const referer = headerValue(head.text, 'referer')
    const agent = headerValue(head.text, 'user-agent')
    return `${e.client} - - [${this.clock.now()}] "${escape(request)}" ${result.status} ${result.bytes} "${referer === undefined ? '-' : escape(referer)}" "${agent === undefined ? '-' : escape(agent)}"\n`
  }
}

/** The first value of header `name` (lower case) in a parsed head, or undefined. */
export function headerValue(text: string, name: string): string | undefined {
  let pos = text.indexOf('\r\n') + 2
  while (scanField(text, pos)) {
    if (field.nameEnd - pos === name.length && text.slice(pos, field.nameEnd).toLowerCase() === name) return text.slice(field.valueStart, field.valueEnd)
    pos = field.next
  }
  return undefined
}

/** nginx's escape=default: `"`, `\` and bytes outside 0x20-0x7E as \xHH (the head is latin1: one char per byte). */
export function escape(s: string): string {
  if (PLAIN.test(s)) return s
  let r = ''
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    r += c >= 0x20 && c <= 0x7e && c !== 0x22 && c !== 0x5c ? s[i] : `\\x${(c & 0xff).toString(16).toUpperCase().padStart(2, '0')}`
  }
  return r
}

/** Nothing to escape. */
const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec']

/** $time_local in UTC, `03/Dec/2026:20:15:07 +0000`, built once a second (nginx caches its time strings too). */
class LocalTime {
  private second = -1
  private text = ''

  now(): string {
    const ms = Date.now()
    const second = Math.floor(ms / 1000)
    if (second !== this.second) {
      this.second = second
      const d = new Date(second * 1000)
      const p = (n: number): string => String(n).padStart(2, '0')
      this.text = `${p(d.getUTCDate())}/${MONTHS[d.getUTCMonth()]}/${d.getUTCFullYear()}:${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} +0000`
    }
    return this.text
  }
}
