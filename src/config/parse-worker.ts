// The worker thread's side of config parsing (see background-parser.ts):
// parse and validate a config file's bytes with the same code as every
// other reader (load.ts), then send the result back in small parts.
//
// Why parts: the main thread deserialises each message in one go, between
// requests. A 10,000-Ingress config (20,000 rules) sent whole costs the main
// thread ~15-20 ms to receive, in one piece; in parts of PART_SIZE entries
// each message costs about a millisecond and requests run in between.

import { parentPort } from 'node:worker_threads'
import { ConfigError } from '../errors.ts'
import { parseConfig } from './load.ts'
import type { ParseReply, ParseRequest } from './parse-messages.ts'

/** Entries per message: ~1 ms of deserialising on the main thread. */
const PART_SIZE = 1000

const port = parentPort
if (!port) throw new Error('parse-worker.ts runs as a worker thread only')

port.on('message', (request: ParseRequest) => {
  const { id, file } = request
  const send = (reply: ParseReply): void => port.postMessage(reply)
  try {
    // Buffer's decoding, as loadConfigFile's readFile(…, 'utf8') does (a BOM is kept, bad bytes become U+FFFD).
    const text = Buffer.from(request.bytes.buffer, request.bytes.byteOffset, request.bytes.byteLength).toString('utf8')
    const config = parseConfig(text, file)
    for (let i = 0; i < config.upstreams.length; i += PART_SIZE) send({ id, kind: 'upstreams', items: config.upstreams.slice(i, i + PART_SIZE) })
    for (let i = 0; i < config.rules.length; i += PART_SIZE) send({ id, kind: 'rules', items: config.rules.slice(i, i + PART_SIZE) })
    send({ id, kind: 'done', certificates: config.certificates })
  } catch (err) {
    if (err instanceof ConfigError) send({ id, kind: 'invalid', problems: [...err.problems] })
    else send({ id, kind: 'failed', message: (err as Error).message ?? String(err) })
  }
})
