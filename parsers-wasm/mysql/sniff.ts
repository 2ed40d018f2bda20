// Detection from the first bytes of one direction.
//
//   server: greeting  len:u24 seq=0 0x0a "5.7.30\0" ...   (protocol 10, printable version)
//           or an ERR before the greeting ("Host ... is not allowed to connect")
//   client: a command len:u24 seq=0 cmd ...  whose length matches what was written (a COM_QUERY
//           may carry query attributes before its text), or a
//           handshake response (seq 1, CLIENT_PROTOCOL_41) picked up mid-handshake, or (seq 2)
//           the first plaintext after an SSL request (a TLS connection read from the library).
// Ports are hints only: a MySQL server on 8080 is still found by its greeting.
//           A connection under the compressed protocol picked up after its login: a compressed
//           packet (comp_seq 0) whose payload, sent as is or inflated, is such a command, or a
//           zstd frame (compressedCommand).
import { looksLikeAttributes, queryTextOffset } from "./params";
import { isCommand, CLIENT_PROTOCOL_41, COM_QUERY, COM_STMT_PREPARE, COM_INIT_DB } from "./types";
import { Inflater, isZlib } from "./inflate";

/** A chunk head detect() scores this high is taken as a command when resynchronising. */
export const RESYNC_SCORE: i32 = 30;

export function detect(dir: i32, p: usize, n: i32): i32 {
  if (dir == 0 && n >= 12 && !sniffing) {
    const c = compressedCommand(p, n);
    // two lengths that agree (the compressed packet's and its command's) beat a plain command
    // read from inside it (75): mysql2 writes the 7-byte header and the payload apart
    if (c == COMP_RAW || c == COMP_ZLIB) return n == <i32>u24(p) + 7 ? 80 : 50;
    if (c == COMP_ZSTD) return 35;
  }
  if (n < 4) return n >= 3 && dir == 1 && load<u8>(p + 2) == 0 ? 5 : 0;
  const len = <i32>load<u8>(p) | (<i32>load<u8>(p, 1) << 8) | (<i32>load<u8>(p, 2) << 16);
  const seq = <i32>load<u8>(p, 3);
  if (len == 0) return 0;
  if (n == 4) return 5;
  const b = <u32>load<u8>(p, 4);
  if (dir == 1) {
    if (seq == 0 && b == 10 && len >= 20) {
      // greeting: version is printable up to a NUL
      let i = 5;
      while (i < n && i < 5 + 64) {
        const c = <u32>load<u8>(p + <usize>i);
        if (c == 0) return i > 6 ? 95 : 0;
        if (c < 0x20 || c > 0x7e) return 0;
        i++;
      }
      return i >= n ? 60 : 0;
    }
    if (seq == 0 && b == 0xff && len >= 9 && len < 1024) {
      const code = <i32>load<u8>(p, 5) | (<i32>load<u8>(p, 6) << 8);
      return code >= 1000 && code < 3000 ? 60 : 0;
    }
    // a response picked up mid-connection: OK / ERR with sequence 1
    if (seq == 1 && (b == 0 || b == 0xff) && len + 4 == n && len >= 7 && len < 1024) return 35;
    return 0;
  }
  // COM_SLEEP (0) is the server's internal state, never sent; a compressed packet sent as is
  // (comp_len:u24 comp_seq=0 uncomp_len=0:u24) looks like one: seen mid-way it is not ours
  if (seq == 0 && isCommand(b) && b != 0) {
    // exactly one packet, or one followed by the header of another command (a window that
    // grew over several writes)
    const exact = len + 4 == n || (n >= len + 9 && nextCommand(p + <usize>(len + 4)));
    if (b == COM_QUERY || b == COM_STMT_PREPARE || b == COM_INIT_DB) {
      // text: printable ASCII / UTF-8 / whitespace, after the query attributes if any
      const end = n < 4 + len ? n : 4 + len;
      let start = 5;
      if (b == COM_QUERY && looksLikeAttributes(p + 5, end - 5)) {
        const off = queryTextOffset(p + 5, end - 5, null);
        if (off < 0) return n < 4 + len ? 40 : 0; // cut inside the block: its head fits
        start += off;
      }
      for (let i = start; i < end; i++) {
        const c = <u32>load<u8>(p + <usize>i);
        if (c < 0x20 && c != 0x09 && c != 0x0a && c != 0x0d) return 0;
      }
      if (len < 2) return 0;
      return exact ? 75 : n < 4 + len ? 55 : 40;
    }
    if (exact) return len == 1 ? 30 : 45;
    return 0;
  }
  // seq 2: the handshake response after an SSL request, the first plaintext of a TLS upgrade
  if ((seq == 1 || seq == 2) && len >= 32 && n >= 8) {
    const caps = <u32>load<u8>(p, 4) | (<u32>load<u8>(p, 5) << 8);
    if ((caps & CLIENT_PROTOCOL_41) != 0 && (len + 4 == n || len == 32)) return 60;
  }
  return 0;
}

/** A command packet header at p (5 bytes readable): length > 0, sequence 0, a command byte. */
function nextCommand(p: usize): bool {
  const len = <i32>load<u8>(p) | (<i32>load<u8>(p, 1) << 8) | (<i32>load<u8>(p, 2) << 16);
  return len > 0 && load<u8>(p, 3) == 0 && isCommand(<u32>load<u8>(p, 4));
}

// ---- the compressed protocol, seen from the middle ----
//
//   compressed packet   comp_len:u24le comp_seq:u8 uncomp_len:u24le payload (comp_len bytes)
//   a command in one    comp_seq = 0, and the payload is exactly the command packet: sent as is
//                       (uncomp_len 0: len:u24 seq=0 cmd ..., len + 4 = comp_len), a zlib stream
//                       inflating to it (len + 4 = uncomp_len), or a zstd frame (28 b5 2f fd) we
//                       cannot look into
//
// A plain command never looks like one: its byte 4 is the command (never COM_SLEEP, 0) where a
// packet sent as is has 0, and its bytes 7-8 are not a zlib header followed by a stream that
// inflates to a command.

/** compressedCommand(): not a compressed command / cannot tell yet / one sent as is / zlib / zstd. */
export const COMP_NONE: i32 = 0;
export const COMP_MAYBE: i32 = -1;
export const COMP_RAW: i32 = 1;
export const COMP_ZLIB: i32 = 2;
export const COMP_ZSTD: i32 = 3;

/** Largest compressed packet inflated to look at its command (a bigger one waits for the next command). */
const MAX_SNIFF_PACKET: i32 = 64 << 10;
const ZSTD_MAGIC: u32 = 0xfd2fb528; // 28 b5 2f fd

let sniffInflater: Inflater | null = null;
/** Inside compressedCommand(): the payload's command is read as a plain one, never as compressed again. */
let sniffing: bool = false;

@inline function u24(p: usize): u32 {
  return <u32>load<u8>(p) | (<u32>load<u8>(p, 1) << 8) | (<u32>load<u8>(p, 2) << 16);
}

/**
 * Whether p[0..n), the head of a client chunk, is a compressed packet holding a command. MAYBE
 * only while the bytes so far fit one and, read as a plain packet, they are not a whole one (a
 * plain command that is all there is decides at once).
 */
export function compressedCommand(p: usize, n: i32): i32 {
  sniffing = true;
  const r = compressedHead(p, n);
  sniffing = false;
  return r;
}

function compressedHead(p: usize, n: i32): i32 {
  if (n < 4) return COMP_MAYBE;
  const clen = <i32>u24(p);
  if (load<u8>(p, 3) != 0 || clen < 5) return COMP_NONE;
  const maybe = clen + 4 <= n ? COMP_NONE : COMP_MAYBE; // read as a plain packet, it is whole
  if (n < 7) {
    for (let i = 4; i < n; i++) if (load<u8>(p + <usize>i) != 0) return n >= 5 && clen >= 9 ? maybe : COMP_NONE;
    return maybe;
  }
  const ulen = <i32>u24(p + 4);
  const z = p + 7;
  if (ulen == 0) {
    // the command packet itself, within the compressed packet
    if (n < 12) return maybe;
    const ilen = <i32>u24(z);
    // a client sends one command per compressed packet: it fills the packet exactly
    if (load<u8>(z, 3) != 0 || ilen == 0 || ilen + 4 != clen || load<u8>(z, 4) == 0) return COMP_NONE;
    return detect(0, z, min(ilen + 4, n - 7)) >= RESYNC_SCORE ? COMP_RAW : COMP_NONE;
  }
  if (clen < 9 || ulen < 5) return COMP_NONE;
  if (n < 9) return maybe;
  if (isZlib(z)) {
    if (clen > MAX_SNIFF_PACKET || ulen > MAX_SNIFF_PACKET) return COMP_NONE;
    // a plain command's bytes 7-8 are not a zlib header (SQL keywords, statement ids): wait
    // for the whole compressed packet even where a plain one would be whole
    if (n < clen + 7) return COMP_MAYBE;
    let inf = sniffInflater;
    if (inf === null) sniffInflater = inf = new Inflater();
    const out = heap.alloc(<usize>ulen);
    const got = inf.inflate(z, clen, out, ulen);
    let r = COMP_NONE;
    if (got == ulen) {
      const ilen = <i32>u24(out);
      if (load<u8>(out, 3) == 0 && ilen > 0 && ilen + 4 == ulen && load<u8>(out, 4) != 0 && detect(0, out, min(ilen + 4, ulen)) >= RESYNC_SCORE) r = COMP_ZLIB;
    }
    heap.free(out);
    return r;
  }
  if (n < 11) return maybe;
  return load<u32>(z) == ZSTD_MAGIC ? COMP_ZSTD : COMP_NONE;
}
