// Character classes of HTTP/1.1 (RFC 9110 §5.6.2, RFC 9112 §3, §5), as
// byte-indexed tables: one array read per character on the hot path.
//
// Heads are parsed as latin1 strings, so a char code is the byte itself.

function table(accept: (c: number) => boolean): Uint8Array {
  const t = new Uint8Array(256)
  for (let c = 0; c < 256; c++) t[c] = accept(c) ? 1 : 0
  return t
}

const isAlphaNum = (c: number): boolean => (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a)

/** tchar (RFC 9110 §5.6.2): method names and field names. */
export const TOKEN = table((c) => isAlphaNum(c) || "!#$%&'*+-.^_`|~".includes(String.fromCharCode(c)))

/**
 * Method names: upper-case letters, '-' and '_' (nginx's rule). Methods are
 * case-sensitive tokens (RFC 9110 §9.1); `get` is not GET, and no
 * registered method has other characters.
 */
export const METHOD = table((c) => (c >= 0x41 && c <= 0x5a) || c === 0x2d || c === 0x5f)

/**
 * field-vchar, SP and HTAB (RFC 9110 §5.5), obs-text included. CR, LF, NUL
 * and the other controls are refused: a bare CR or LF inside a value is a
 * classic request-smuggling vector (RFC 9112 §2.2).
 */
export const FIELD_VALUE = table((c) => c === 0x09 || (c >= 0x20 && c !== 0x7f))

/**
 * Request-target bytes: visible ASCII only (RFC 3986 characters and a few
 * more that clients send unencoded, as llhttp allows). Raw bytes >= 0x80
 * must be percent-encoded; no space, no controls, no DEL. No `#` either: a
 * request target has no fragment (RFC 9112 §3.2), and a server that cut
 * the path at `#` would route another path than the proxy did (HAProxy's
 * CVE-2023-45539).
 */
export const TARGET = table((c) => c > 0x20 && c < 0x7f && c !== 0x23)

/** Hex digit values, -1 for anything else (chunk sizes, RFC 9112 §7.1). */
export const HEX = new Int8Array(256).fill(-1)
for (let c = 0; c < 10; c++) HEX[0x30 + c] = c
for (let c = 0; c < 6; c++) {
  HEX[0x41 + c] = 10 + c
  HEX[0x61 + c] = 10 + c
}
