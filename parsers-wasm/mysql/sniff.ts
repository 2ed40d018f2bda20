// Detection from the first bytes of one direction.
//
//   server: greeting  len:u24 seq=0 0x0a "5.7.30\0" ...   (protocol 10, printable version)
//           or an ERR before the greeting ("Host ... is not allowed to connect")
//   client: a command len:u24 seq=0 cmd ...  whose length matches what was written (a COM_QUERY
//           may carry query attributes before its text), or a
//           handshake response (seq 1, CLIENT_PROTOCOL_41) picked up mid-handshake, or (seq 2)
//           the first plaintext after an SSL request (a TLS connection read from the library).
// Ports are hints only: a MySQL server on 8080 is still found by its greeting.
import { looksLikeAttributes, queryTextOffset } from "./params";
import { isCommand, CLIENT_PROTOCOL_41, COM_QUERY, COM_STMT_PREPARE, COM_INIT_DB } from "./types";

/** A chunk head detect() scores this high is taken as a command when resynchronising. */
export const RESYNC_SCORE: i32 = 30;

export function detect(dir: i32, p: usize, n: i32): i32 {
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
