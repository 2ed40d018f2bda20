// Detection from the first bytes of one direction, and the message-boundary test used to
// resynchronise after a gap. Both rest on the same facts: a message is `type len:i32be body`,
// each type has a length rule (types.ts), fixed-size messages have exactly that length, and a
// few messages can be validated to the last byte (Query and Parse texts end in NUL,
// ReadyForQuery carries I/T/E, ErrorResponse is a list of `code text\0` fields).
//
//   client, connection start   00 00 00 29  00 03 00 00  "user\0app\0database\0db\0\0"
//                              00 00 00 08  04 d2 16 2f                      (SSLRequest)
//   client, mid-stream         'Q' 00 00 00 0e "SELECT 1\0"
//                              'P' len "s1\0" "SELECT $1\0" 00 01 ... 'B' ... 'E' ... 'S' 00 00 00 04
//   server, connection start   'N' (SSLRequest refused)  'R' 00 00 00 08 00 00 00 00 (AuthenticationOk)
//   server, mid-stream         'T' ... 'D' ... 'C' len "SELECT 1\0" 'Z' 00 00 00 05 'I'
//
// Ports are only hints: a server on any port is recognised by what it says.
import {
  PROTOCOL_3, SSL_REQUEST, GSSENC_REQUEST, CANCEL_REQUEST, MAX_STARTUP, be32, frontLenOk, backLenOk, readyStatusOk, authCodeOk,
  F_QUERY, F_PARSE, F_SYNC, B_READY, B_AUTH, B_ERROR, B_NOTICE, B_COMMAND_COMPLETE, B_DATA_ROW,
} from "./types";

/** Messages longer than this do not count as evidence during detection (a window is ≤ 4 KiB). */
const DETECT_MAX_LEN: u32 = 1 << 20;

/** Text bytes of a statement: printable ASCII, whitespace or UTF-8 (no NUL, no other control). */
@inline function textByte(c: u32): bool {
  return c >= 0x20 || c == 0x09 || c == 0x0a || c == 0x0d;
}

/**
 * Checks a NUL-terminated text at p[i..): returns the offset after its NUL, 0 when the window
 * ends before it (all bytes so far fine), -1 on a byte no statement contains.
 */
function cstr(p: usize, i: i32, n: i32): i32 {
  while (i < n) {
    const c = <u32>load<u8>(p + <usize>i);
    if (c == 0) return i + 1;
    if (!textByte(c)) return -1;
    i++;
  }
  return 0;
}

/** Untyped message at the start of a client stream: startup, SSL/GSS request, cancel. */
function untyped(p: usize, n: i32): i32 {
  // the length's high bytes are zero: a few bytes of it are only a weak hint
  for (let i = 0; i < n && i < 2; i++) if (load<u8>(p + <usize>i) != 0) return 0;
  if (n < 8) return 10;
  const len = be32(p);
  const code = be32(p + 4);
  if (code == SSL_REQUEST || code == GSSENC_REQUEST) return len == 8 ? 100 : 0;
  if (code == CANCEL_REQUEST) return len == 16 ? 95 : 0;
  if ((code & 0xffff0000) != PROTOCOL_3 || (code & 0xffff) > 2 || len < 9 || len > MAX_STARTUP) return 0;
  // parameters: name\0 value\0 ... \0 ; the first name is a word ("user", "database", ...)
  if (n == 8) return 40;
  const c = <u32>load<u8>(p + 8);
  if (!(c - 0x61 < 26 || c == 0x5f || (c == 0 && len == 9))) return 0;
  const end = <i32>len < n ? <i32>len : n;
  for (let i = 8; i < end; i++) {
    const b = <u32>load<u8>(p + <usize>i);
    if (b != 0 && !textByte(b)) return 0;
  }
  return 100;
}

/** Validates the body of a complete message whose evidence is strong; true when it passes. */
function strongBody(dir: i32, t: u32, p: usize, len: i32): bool {
  // p points at the type byte; body is p[5 .. 1 + len)
  const end = 1 + len;
  if (dir == 0) {
    if (t == F_QUERY) return cstr(p, 5, end) == end && len > 5;
    if (t == F_PARSE) {
      const a = cstr(p, 5, end);
      if (a <= 0 || a - 5 > 64) return false;
      const b = cstr(p, a, end);
      if (b <= 0 || b + 2 > end) return false;
      const np = (<i32>load<u8>(p + <usize>b) << 8) | <i32>load<u8>(p + <usize>b + 1);
      return b + 2 + 4 * np == end;
    }
    return false;
  }
  if (t == B_READY) return readyStatusOk(<u32>load<u8>(p + 5));
  if (t == B_AUTH) {
    const code = be32(p + 5);
    return authCodeOk(code) && (code != 0 || len == 8) && (code != 5 || len == 12);
  }
  if (t == B_ERROR || t == B_NOTICE) {
    // fields: code:u8 text\0 ... then a final \0
    let i = 5;
    let fields = 0;
    while (i < end) {
      const f = <u32>load<u8>(p + <usize>i);
      if (f == 0) return i + 1 == end && fields >= 3;
      if (f - 0x41 >= 26 && f - 0x61 >= 26) return false;
      const j = cstr(p, i + 1, end);
      if (j <= 0) return false;
      i = j;
      fields++;
    }
    return false;
  }
  if (t == B_COMMAND_COMPLETE) return cstr(p, 5, end) == end;
  return false;
}

/**
 * Confidence 0..100 that `n` bytes at `p`, the first of direction `dir` (0 = client), are
 * PostgreSQL. Walks the window as a chain of messages: every header must obey its type's length
 * rule; strong evidence is a validated Query/Parse (client), an authentication request,
 * ReadyForQuery or ErrorResponse (server), or the startup packet.
 */
export function detect(dir: i32, p: usize, n: i32): i32 {
  if (n <= 0) return 0;
  const b0 = <u32>load<u8>(p);
  if (dir == 0 && b0 == 0) return untyped(p, n);
  if (dir == 1 && b0 == 0x4e) {
    // 'N' alone: an SSLRequest refused (the client's side decides); 'N' then a chain: same.
    if (n == 1) return 15;
    const s = chain(1, p, n, 0);
    if (s > 0) return s;
  }
  return chain(dir, p, n, 0);
}

/** A message type of that direction (every type accepts a length of 4, 5, 12 or 20). */
function isType(dir: i32, t: u32): bool {
  return dir == 0 ? frontLenOk(t, 4) || frontLenOk(t, 20) : backLenOk(t, 4) || backLenOk(t, 5) || backLenOk(t, 12);
}

function chain(dir: i32, p: usize, n: i32, from: i32): i32 {
  let i = from;
  let complete = 0;
  let strong = false;
  let sync = false;
  while (i < n) {
    const t = <u32>load<u8>(p + <usize>i);
    if (i + 5 > n) {
      // a header cut by the window: its type at least must be one of ours
      if (!isType(dir, t)) return 0;
      break;
    }
    const len = be32(p + <usize>i + 1);
    if (!(dir == 0 ? frontLenOk(t, len) : backLenOk(t, len)) || len > DETECT_MAX_LEN) return 0;
    if (i + 1 + <i32>len > n) {
      // incomplete: what arrived of a statement text must look like text
      if (dir == 0 && (t == F_QUERY || t == F_PARSE) && complete == 0) {
        const k = cstr(p, i + 5, n);
        if (k < 0) return 0;
        if (t == F_QUERY && k > 0) return 0; // NUL before the end of the message
        return n - i >= 64 ? 60 : 30;
      }
      break;
    }
    if (strongBody(dir, t, p + <usize>i, <i32>len)) strong = true;
    else if (dir == 0 ? t == F_QUERY || t == F_PARSE : t == B_READY || t == B_ERROR || t == B_COMMAND_COMPLETE || (t == B_AUTH && i == from)) return 0;
    if (dir == 0 && t == F_SYNC) sync = true;
    complete++;
    i += 1 + <i32>len;
    if (complete >= 32) break;
  }
  if (strong) return 90;
  if (complete >= 2 && (dir == 1 || sync) && i == n) return 60;
  return complete > 0 ? 25 : 20;
}

/**
 * A header announcing more than the 64 KiB we are willing to wait for: believed only for the
 * messages that are long in real traffic (rows, statements, bound parameters) when what arrived
 * of the body fits: a DataRow's column count and first length, a statement's first bytes.
 */
function longMessage(dir: i32, t: u32, len: u32, p: usize, n: i32): i32 {
  if (len > (256 << 20)) return -1;
  if (dir == 1) {
    if (t != B_DATA_ROW) return -1;
    if (n < 11) return 0;
    const cols = (<u32>load<u8>(p + 5) << 8) | <u32>load<u8>(p + 6);
    const first = be32(p + 7);
    return cols > 0 && cols <= 1664 && (first == 0xffffffff || first <= len - 10) ? 1 : -1;
  }
  if (t != F_QUERY && t != F_PARSE) return -1;
  if (n < 5 + 32) return 0;
  return cstr(p, 5, 5 + 32) == 0 ? 1 : -1;
}

/**
 * Whether a message of direction `dir` starts at p[0] (the queue head after a gap): 1 yes, 0 need
 * more bytes to tell, -1 no. A header is believed when its length rule holds and either the
 * message ends exactly where the bytes do (a write boundary) or the next header is plausible too;
 * a message too long to wait for is believed on its header. Constant work per position, so
 * hunting byte by byte stays linear.
 */
export function boundaryAt(dir: i32, p: usize, n: i32): i32 {
  if (n <= 0) return 0;
  const t = <u32>load<u8>(p);
  if (n < 5) return isType(dir, t) || (dir == 0 && t == 0) ? 0 : -1;
  if (dir == 0 && t == 0) {
    if (n < 8) return 0;
    return untyped(p, n) >= 50 ? 1 : -1;
  }
  const len = be32(p + 1);
  if (!(dir == 0 ? frontLenOk(t, len) : backLenOk(t, len))) return -1;
  if (t == B_READY && dir == 1 && !readyStatusOk(<u32>load<u8>(p + 5))) return -1;
  const end = <i64>len + 1;
  if (end > <i64>n) return len <= (64 << 10) ? 0 : longMessage(dir, t, len, p, n);
  if (end == <i64>n) return 1;
  if (<i64>n < end + 5) return 0;
  const e = <i32>end;
  const t2 = <u32>load<u8>(p + <usize>e);
  const len2 = be32(p + <usize>e + 1);
  return (dir == 0 ? frontLenOk(t2, len2) : backLenOk(t2, len2)) ? 1 : -1;
}
