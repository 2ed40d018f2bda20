// Small byte helpers over raw memory (pointer + length), allocation-free and throw-free.

/** ASCII lower-case of one byte. */
@inline export function lower(b: u32): u32 {
  return b - 0x41 < 26 ? b | 0x20 : b;
}

/** True when `n` bytes at `p` equal the ASCII string `s` ignoring ASCII case. */
export function eqIgnoreCase(p: usize, n: i32, s: string): bool {
  if (n != s.length) return false;
  const sp = changetype<usize>(s);
  for (let i = 0; i < n; i++) {
    if (lower(<u32>load<u8>(p + <usize>i)) != lower(<u32>load<u16>(sp + (<usize>i << 1)))) return false;
  }
  return true;
}

/** True when `n` bytes at `p` equal the ASCII string `s` exactly. */
export function eqAscii(p: usize, n: i32, s: string): bool {
  if (n != s.length) return false;
  const sp = changetype<usize>(s);
  for (let i = 0; i < n; i++) {
    if (<u32>load<u8>(p + <usize>i) != <u32>load<u16>(sp + (<usize>i << 1))) return false;
  }
  return true;
}

/** True when the `n` bytes at `p` start with `s`, ignoring ASCII case. */
export function startsWithIgnoreCase(p: usize, n: i32, s: string): bool {
  const m = s.length;
  if (n < m) return false;
  return eqIgnoreCase(p, m, s);
}

/** Number of decimal digits at the start of `n` bytes at `p`. */
export function digitRun(p: usize, n: i32): i32 {
  let i = 0;
  while (i < n && <u32>load<u8>(p + <usize>i) - 0x30 < 10) i++;
  return i;
}

/**
 * Parses a non-negative decimal integer filling all `n` bytes (surrounding spaces/tabs
 * allowed). Returns -1 when empty, not all digits, or above 2^62.
 */
export function parseDec(p: usize, n: i32): i64 {
  let i = 0;
  while (i < n && isSpace(<u32>load<u8>(p + <usize>i))) i++;
  while (n > i && isSpace(<u32>load<u8>(p + <usize>(n - 1)))) n--;
  if (i >= n) return -1;
  let v: i64 = 0;
  for (; i < n; i++) {
    const d = <u32>load<u8>(p + <usize>i) - 0x30;
    if (d >= 10) return -1;
    v = v * 10 + <i64>d;
    if (v > 0x4000000000000000) return -1;
  }
  return v;
}

/** Like parseDec but allows a leading '-' (RESP integers, Kafka-style text). Returns i64.MIN_VALUE on error. */
export function parseSignedDec(p: usize, n: i32): i64 {
  if (n > 0 && load<u8>(p) == 0x2d) {
    const v = parseDec(p + 1, n - 1);
    return v < 0 ? i64.MIN_VALUE : -v;
  }
  const v = parseDec(p, n);
  return v < 0 ? i64.MIN_VALUE : v;
}

/**
 * Parses hexadecimal digits at the start of `n` bytes (HTTP chunk sizes). Sets nothing; returns
 * -1 when there is no digit or the value exceeds 2^60. Stops at the first non-hex byte.
 */
export function parseHexPrefix(p: usize, n: i32): i64 {
  let v: i64 = 0;
  let i = 0;
  for (; i < n; i++) {
    const d = hexVal(<u32>load<u8>(p + <usize>i));
    if (d < 0) break;
    v = (v << 4) | <i64>d;
    if (v > 0x1000000000000000) return -1;
  }
  return i == 0 ? -1 : v;
}

/** Value of one hex digit, or -1. */
@inline export function hexVal(b: u32): i32 {
  if (b - 0x30 < 10) return <i32>(b - 0x30);
  const l = b | 0x20;
  if (l - 0x61 < 6) return <i32>(l - 0x61 + 10);
  return -1;
}

/**
 * Decodes `2*m` hex characters at `src` into `m` bytes at `dst` (traceparent ids). Returns false
 * on a non-hex character.
 */
export function hexDecode(src: usize, dst: usize, m: i32): bool {
  for (let i = 0; i < m; i++) {
    const hi = hexVal(<u32>load<u8>(src + (<usize>i << 1)));
    const lo = hexVal(<u32>load<u8>(src + (<usize>i << 1) + 1));
    if (hi < 0 || lo < 0) return false;
    store<u8>(dst + <usize>i, <u8>((hi << 4) | lo));
  }
  return true;
}

@inline export function isSpace(b: u32): bool {
  return b == 0x20 || b == 0x09;
}

/** True for bytes allowed in an HTTP token (method, header name): RFC 9110 tchar. */
export function isTchar(b: u32): bool {
  if (b - 0x61 < 26 || b - 0x41 < 26 || b - 0x30 < 10) return true;
  // !#$%&'*+-.^_`|~
  return b == 0x21 || (b >= 0x23 && b <= 0x27) || b == 0x2a || b == 0x2b || b == 0x2d || b == 0x2e || b == 0x5e || b == 0x5f || b == 0x60 || b == 0x7c || b == 0x7e;
}

/** True for printable ASCII (0x20..0x7e). */
@inline export function isPrint(b: u32): bool {
  return b - 0x20 < 0x5f;
}

/** Offset of byte `b` in `n` bytes at `p`, or -1. */
export function indexOfByte(p: usize, n: i32, b: u8): i32 {
  for (let i = 0; i < n; i++) if (load<u8>(p + <usize>i) == b) return i;
  return -1;
}

/** Pre-encoded UTF-8 of an AssemblyScript string (e.g. table keys built once at start). */
export function utf8(s: string): ArrayBuffer {
  return String.UTF8.encode(s);
}
