// The messages between the proxy's main thread and its config parsing
// thread (background-parser.ts ↔ parse-worker.ts).

import type { ConfigProblem } from '../errors.ts'
import type { CertificateConfig, RuleConfig, UpstreamConfig } from './schema.ts'

export interface ParseRequest {
  id: number
  /** The file's bytes, decoded in the worker. */
  bytes: Uint8Array
  /** Named in error messages. */
  file: string
}

/** A valid config arrives as parts (upstreams, then rules), then `done`; an invalid one as `invalid`. */
export type ParseReply =
  | { id: number; kind: 'upstreams'; items: UpstreamConfig[] }
  | { id: number; kind: 'rules'; items: RuleConfig[] }
  | { id: number; kind: 'done'; certificates: CertificateConfig[] | undefined }
  | { id: number; kind: 'invalid'; problems: ConfigProblem[] }
  | { id: number; kind: 'failed'; message: string }
