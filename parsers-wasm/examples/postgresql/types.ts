// PostgreSQL frontend/backend protocol 3.0: message codes and the length rules used both by
// detection and by resynchronisation after a gap.
//
//   typed message     type:u8  len:i32be (counts itself, not the type)  body[len - 4]
//   untyped (start)   len:i32be  code:i32be  body[len - 8]     StartupMessage, SSLRequest,
//                                                              GSSENCRequest, CancelRequest
//   reply to SSLRequest / GSSENCRequest: one byte, 'S' / 'G' (TLS or GSSAPI follows) or 'N'

export const PROTOCOL_3: u32 = 0x00030000; // 196608: protocol 3.0 (minor versions 3.x accepted)
export const SSL_REQUEST: u32 = 80877103;
export const GSSENC_REQUEST: u32 = 80877104;
export const CANCEL_REQUEST: u32 = 80877102;

/** Longest startup packet the server accepts (MAX_STARTUP_PACKET_LENGTH). */
export const MAX_STARTUP: u32 = 10000;
/** Longest message PostgreSQL sends or accepts (PQ_LARGE_MESSAGE_LIMIT is 1 GiB - 1). */
export const MAX_MESSAGE: u32 = 0x3fffffff;

// frontend (client) message types
export const F_QUERY: u32 = 0x51; // Q
export const F_PARSE: u32 = 0x50; // P
export const F_BIND: u32 = 0x42; // B
export const F_DESCRIBE: u32 = 0x44; // D
export const F_EXECUTE: u32 = 0x45; // E
export const F_SYNC: u32 = 0x53; // S
export const F_FLUSH: u32 = 0x48; // H
export const F_CLOSE: u32 = 0x43; // C
export const F_TERMINATE: u32 = 0x58; // X
export const F_PASSWORD: u32 = 0x70; // p: PasswordMessage, SASLInitialResponse, SASLResponse, GSSResponse
export const F_FUNCTION_CALL: u32 = 0x46; // F
export const COPY_DATA: u32 = 0x64; // d (both directions)
export const COPY_DONE: u32 = 0x63; // c (both directions)
export const F_COPY_FAIL: u32 = 0x66; // f

// backend (server) message types
export const B_AUTH: u32 = 0x52; // R
export const B_KEY_DATA: u32 = 0x4b; // K
export const B_PARAMETER_STATUS: u32 = 0x53; // S
export const B_READY: u32 = 0x5a; // Z
export const B_ROW_DESCRIPTION: u32 = 0x54; // T
export const B_DATA_ROW: u32 = 0x44; // D
export const B_COMMAND_COMPLETE: u32 = 0x43; // C
export const B_ERROR: u32 = 0x45; // E
export const B_NOTICE: u32 = 0x4e; // N
export const B_EMPTY_QUERY: u32 = 0x49; // I
export const B_PARSE_COMPLETE: u32 = 0x31; // 1
export const B_BIND_COMPLETE: u32 = 0x32; // 2
export const B_CLOSE_COMPLETE: u32 = 0x33; // 3
export const B_NO_DATA: u32 = 0x6e; // n
export const B_PARAMETER_DESCRIPTION: u32 = 0x74; // t
export const B_PORTAL_SUSPENDED: u32 = 0x73; // s
export const B_COPY_IN: u32 = 0x47; // G
export const B_COPY_OUT: u32 = 0x48; // H
export const B_COPY_BOTH: u32 = 0x57; // W
export const B_NOTIFICATION: u32 = 0x41; // A
export const B_FUNCTION_RESULT: u32 = 0x56; // V
export const B_NEGOTIATE_VERSION: u32 = 0x76; // v

/**
 * Whether `len` is a possible length for a frontend message of type `t` (0 = not a frontend
 * type). Fixed-size messages must match exactly: that is what makes a header recognisable in the
 * middle of a stream.
 */
export function frontLenOk(t: u32, len: u32): bool {
  if (len > MAX_MESSAGE) return false;
  switch (t) {
    case F_SYNC:
    case F_FLUSH:
    case F_TERMINATE:
    case COPY_DONE:
      return len == 4;
    case F_QUERY:
      return len >= 5;
    case F_PARSE:
      return len >= 8; // name\0 query\0 count:i16
    case F_BIND:
      return len >= 12; // portal\0 stmt\0 i16 i16 i16
    case F_DESCRIBE:
    case F_CLOSE:
      return len >= 6; // 'S'|'P' name\0
    case F_EXECUTE:
      return len >= 9; // portal\0 maxRows:i32
    case F_PASSWORD:
    case F_COPY_FAIL:
      return len >= 5;
    case COPY_DATA:
      return len >= 4;
    case F_FUNCTION_CALL:
      return len >= 14;
  }
  return false;
}

/** Same as frontLenOk for backend messages. */
export function backLenOk(t: u32, len: u32): bool {
  if (len > MAX_MESSAGE) return false;
  switch (t) {
    case B_READY:
      return len == 5;
    case B_PARSE_COMPLETE:
    case B_BIND_COMPLETE:
    case B_CLOSE_COMPLETE:
    case B_NO_DATA:
    case B_EMPTY_QUERY:
    case B_PORTAL_SUSPENDED:
    case COPY_DONE:
      return len == 4;
    case B_AUTH:
      return len >= 8;
    case B_KEY_DATA:
      return len >= 12 && len <= 264; // protocol 3.2 allows keys up to 256 bytes
    case B_PARAMETER_STATUS:
    case B_ROW_DESCRIPTION:
    case B_DATA_ROW:
    case B_PARAMETER_DESCRIPTION:
      return len >= 6;
    case B_COMMAND_COMPLETE:
    case B_ERROR:
    case B_NOTICE:
      return len >= 5;
    case B_COPY_IN:
    case B_COPY_OUT:
    case B_COPY_BOTH:
      return len >= 7;
    case COPY_DATA:
      return len >= 4;
    case B_NOTIFICATION:
      return len >= 10;
    case B_FUNCTION_RESULT:
      return len >= 8;
    case B_NEGOTIATE_VERSION:
      return len >= 12;
  }
  return false;
}

/** A ReadyForQuery transaction status byte: idle, in a transaction, in a failed transaction. */
@inline export function readyStatusOk(b: u32): bool {
  return b == 0x49 || b == 0x54 || b == 0x45;
}

/** Authentication request codes of 'R' messages (Ok, KerberosV5, Cleartext, MD5, GSS, GSSContinue, SSPI, SASL, SASLContinue, SASLFinal). */
export function authCodeOk(c: u32): bool {
  return c == 0 || c == 2 || c == 3 || c == 5 || (c >= 7 && c <= 12);
}

@inline export function be32(p: usize): u32 {
  return bswap<u32>(load<u32>(p));
}
