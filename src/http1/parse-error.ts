// Why a message could not be parsed. The codes follow llhttp's (the parser
// behind node:http) so log queries written for either keep working.

export type ParseErrorCode =
  | 'HPE_INVALID_METHOD'
  | 'HPE_INVALID_URL'
  | 'HPE_INVALID_VERSION'
  | 'HPE_INVALID_HEADER_TOKEN'
  | 'HPE_INVALID_CONTENT_LENGTH'
  | 'HPE_UNEXPECTED_CONTENT_LENGTH'
  | 'HPE_INVALID_TRANSFER_ENCODING'
  | 'HPE_INVALID_CHUNK_SIZE'
  | 'HPE_STRICT'
  | 'HPE_LF_EXPECTED'
  | 'HPE_CR_EXPECTED'
  | 'HPE_HEADER_OVERFLOW'
  | 'HPE_INVALID_STATUS'
  | 'HPE_NOT_IMPLEMENTED'
  | 'HPE_MISSING_HOST'
  | 'HPE_DUPLICATE_HOST'
  | 'ERR_HTTP_REQUEST_TIMEOUT'
  /** A chunked request body grew past its rule's maxBodySize (413). */
  | 'ERR_BODY_TOO_LARGE'

export class ParseError extends Error {
  readonly code: ParseErrorCode
  /** The status a client gets for this error in its request. */
  readonly status: number

  constructor(code: ParseErrorCode, message: string, status = 400) {
    super(message)
    this.name = 'ParseError'
    this.code = code
    this.status = status
  }
}
