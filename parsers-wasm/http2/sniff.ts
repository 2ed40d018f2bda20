// HTTP/2 detection from the first bytes of either direction.
//
//   prior knowledge   client sends "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" (RFC 9113 3.4): certain
//   h2c upgrade       client sends an HTTP/1.1 request with "Upgrade: h2c" (RFC 7540 3.2)
//   mid-stream        a run of well-formed frame headers (9 bytes: length, type, flags, stream)
//
//   +-----------------------------------------------+
//   |                 Length (24)                   |
//   +---------------+---------------+---------------+
//   |   Type (8)    |   Flags (8)   |
//   +-+-------------+---------------+-------------------------------+
//   |R|                 Stream Identifier (31)                      |
//   +=+=============================================================+

import { eqAscii } from "../common/index";
import { methodKnown, asksH2c, headerComplete } from "../http1/sniff";

const PREFACE = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/** 1 = p[0..n) is the whole preface or a prefix of it, 0 = not. */
export function prefaceMatch(p: usize, n: i32): bool {
  const m = n < 24 ? n : 24;
  return eqAscii(p, m, PREFACE.substring(0, m));
}

/** Plausibility of one frame header at p (9 bytes available). */
export function frameHeaderOk(p: usize): bool {
  const len = (<u32>load<u8>(p) << 16) | (<u32>load<u8>(p + 1) << 8) | <u32>load<u8>(p + 2);
  const type = <u32>load<u8>(p + 3);
  const flags = <u32>load<u8>(p + 4);
  const sid = bswap<u32>(load<u32>(p + 5));
  if ((sid & 0x80000000) != 0) return false; // reserved bit
  if (len > 16384 && type != 0) return false; // beyond the default maximum only for DATA (after SETTINGS)
  if (len > 1 << 20) return false;
  switch (type) {
    case 0: return sid != 0 && (flags & ~0x09) == 0; // DATA: END_STREAM, PADDED
    case 1: return sid != 0 && (flags & ~0x2d) == 0; // HEADERS: END_STREAM, END_HEADERS, PADDED, PRIORITY
    case 2: return sid != 0 && len == 5 && flags == 0;
    case 3: return sid != 0 && len == 4 && flags == 0;
    case 4: return sid == 0 && (flags & ~0x01) == 0 && len % 6 == 0 && (flags == 0 || len == 0);
    case 5: return sid != 0 && (flags & ~0x0c) == 0 && len >= 4;
    case 6: return sid == 0 && (flags & ~0x01) == 0 && len == 8;
    case 7: return sid == 0 && flags == 0 && len >= 8;
    case 8: return len == 4 && flags == 0;
    case 9: return sid != 0 && (flags & ~0x04) == 0;
  }
  return false;
}

/**
 * Sanity of a frame header while decoding: the fixed lengths and stream-id rules of RFC 9113 6.
 * Unlike frameHeaderOk, unknown flags and extension frame types pass (receivers ignore them).
 */
export function frameHeaderSane(p: usize): bool {
  const len = (<u32>load<u8>(p) << 16) | (<u32>load<u8>(p + 1) << 8) | <u32>load<u8>(p + 2);
  const type = <u32>load<u8>(p + 3);
  const sid = bswap<u32>(load<u32>(p + 5)) & 0x7fffffff;
  switch (type) {
    case 0: case 1: case 9: return sid != 0;
    case 2: return sid != 0 && len == 5;
    case 3: return sid != 0 && len == 4;
    case 4: return sid == 0 && len % 6 == 0;
    case 5: return sid != 0 && len >= 4;
    case 6: return sid == 0 && len == 8;
    case 7: return sid == 0 && len >= 8;
    case 8: return len == 4;
  }
  return len <= 16384;
}

/** Number of consecutive plausible frames at the start of p[0..n) (-1: the first is implausible). */
export function plausibleFrames(p: usize, n: i32): i32 {
  let off = 0;
  let count = 0;
  while (off + 9 <= n) {
    if (!frameHeaderOk(p + <usize>off)) return count == 0 ? -1 : count;
    const len = (<i32>load<u8>(p + <usize>off) << 16) | (<i32>load<u8>(p + <usize>off + 1) << 8) | <i32>load<u8>(p + <usize>off + 2);
    off += 9 + len;
    count++;
  }
  return count;
}

/** Frames followed from one candidate offset at most (bounds resyncOffset's work to 32 × n). */
const RESYNC_CHAIN: i32 = 32;

/**
 * After lost bytes, where the frames resume inside p[0..n): the first offset from which a chain
 * of plausible frame headers (frameHeaderOk) ends exactly at n (or runs on for RESYNC_CHAIN
 * frames), or -1. A chain must account for every byte to the end, so a header-looking byte run
 * inside a payload is not taken for one (its length would have to land exactly on the end of the
 * bytes seen). Linear: at most RESYNC_CHAIN frames are followed per offset.
 */
export function resyncOffset(p: usize, n: i32): i32 {
  for (let o = 0; o + 9 <= n; o++) {
    let off = o;
    let k = 0;
    while (off + 9 <= n && k < RESYNC_CHAIN && frameHeaderOk(p + <usize>off)) {
      off += 9 + ((<i32>load<u8>(p + <usize>off) << 16) | (<i32>load<u8>(p + <usize>off + 1) << 8) | <i32>load<u8>(p + <usize>off + 2));
      k++;
    }
    if ((k > 0 && off == n) || k == RESYNC_CHAIN) return o;
  }
  return -1;
}

/** Confidence (0..100) that the first bytes of direction `dir` are HTTP/2. */
export function detectHttp2(dir: i32, p: usize, n: i32): i32 {
  // Small non-zero scores mean "cannot tell yet": the host keeps growing this window instead of
  // restarting it at the next chunk (which it does when every plugin says 0).
  if (dir == 0) {
    if (prefaceMatch(p, n)) return n >= 4 ? 100 : 30;
    const m = methodKnown(p, n);
    if (m == 2) return asksH2c(p, n) ? 95 : headerComplete(p, n) ? 0 : 10;
    if (m == 1) return 10;
  } else {
    const m = n < 12 ? n : 12;
    if (eqAscii(p, m, "HTTP/1.1 101".substring(0, m))) return m == 12 ? 60 : 10; // h2c's 101
  }
  // mid-stream pickup: frames only
  if (n < 9) return load<u8>(p) <= 0x10 ? 5 : 0; // a frame length's high byte (at most 1 MiB)
  const f = plausibleFrames(p, n);
  if (f <= 0) return 0;
  if (n >= 9 && load<u8>(p + 3) == 4 && load<u8>(p + 4) == 0) return f >= 2 ? 90 : 80; // SETTINGS first
  return f >= 3 ? 75 : f == 2 ? 60 : 35;
}
