// How much response data may wait in a socket before the other side is
// paused. Shared by the client and upstream connections: each pauses the
// other when its own socket holds more than this.

/**
 * Node's default (16 KiB) is less than one 64 KiB read, so every read would
 * pause and resume the upstream; a few reads' worth keeps both sockets busy
 * and still bounds the memory per connection.
 */
export const WRITE_BUFFER = 256 * 1024
