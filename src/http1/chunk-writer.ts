// Writing a body in the chunked coding (RFC 9112 §7.1): the proxy frames
// every chunked body it sends itself, in both directions.

import type { Socket } from 'node:net'

/** Ends a chunked body: the last chunk and an empty trailer section. */
export const LAST_CHUNK = '0\r\n\r\n'

/** Writes `data` as one chunk, in one write(2) (the socket is corked around the three pieces). */
export function writeChunk(socket: Socket, data: Buffer): void {
  socket.cork()
  socket.write(`${data.length.toString(16)}\r\n`, 'latin1')
  socket.write(data)
  socket.write('\r\n', 'latin1')
  socket.uncork()
}
