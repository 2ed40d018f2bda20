// Decodes one native batch (services/probe/native/addon.cc) into events. Offsets come from
// gen/layout.ts, generated from bpf/wirescope.h: nothing here restates the kernel's structs.
//
//   batch := record*        record := u32le len | len bytes (one ring-buffer record) | pad to 8
//
// A malformed record is counted (DecodeStats.errors) and the rest of the batch is skipped: a
// length we cannot trust means we cannot find the next record.
import { HDR, DATA, CONN, WS_EV_DATA, WS_EV_OPEN, WS_EV_CLOSE, WS_CONN_F_INFERRED, WS_COMM_LEN } from "./gen/layout.js";
import type { ConnRecord, DataRecord, EventBatch } from "./events.js";

export interface DecodeStats {
  records: number;
  errors: number;
}

const AF_INET = 2;
const decoder = new TextDecoder();

/** IPv4 dotted quad or RFC 5952 IPv6 text from 16 address bytes. */
export function formatAddress(b: Uint8Array, family: 4 | 6): string {
  if (family === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  // IPv4-mapped IPv6 (::ffff:a.b.c.d) is shown as such
  if (b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff) return `::ffff:${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((b[i] << 8) | b[i + 1]);
  // longest run of >= 2 zero groups becomes ::
  let best = -1, bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) { best = i; bestLen = j - i; }
    i = j;
  }
  const hex = (g: number[]) => g.map((x) => x.toString(16)).join(":");
  if (best < 0) return hex(groups);
  return `${hex(groups.slice(0, best))}::${hex(groups.slice(best + bestLen))}`;
}

function cString(b: Uint8Array): string {
  const end = b.indexOf(0);
  return decoder.decode(end < 0 ? b : b.subarray(0, end));
}

/** Decodes a batch; payloads are views into `buf` (no copies). */
export function decodeBatch(buf: Uint8Array, stats: DecodeStats = { records: 0, errors: 0 }): EventBatch {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const conns: ConnRecord[] = [];
  const data: DataRecord[] = [];
  let off = 0;
  while (off + 4 <= buf.length) {
    const len = dv.getUint32(off, true);
    const start = off + 4;
    const end = start + len;
    if (len < HDR.size || end > buf.length) {
      stats.errors++;
      break;
    }
    const type = dv.getUint32(start + HDR.type, true);
    const tgid = dv.getUint32(start + HDR.tgid, true);
    const tid = dv.getUint32(start + HDR.tid, true);
    const tsMono = dv.getBigUint64(start + HDR.ts_ns, true);
    const connKey = dv.getBigUint64(start + HDR.conn_key, true);
    if (type === WS_EV_DATA) {
      const plen = len >= DATA.headerSize ? dv.getUint32(start + DATA.len, true) : -1;
      if (plen < 0 || DATA.headerSize + plen > len) {
        stats.errors++;
        break;
      }
      data.push({
        connKey, tgid, tid, tsMono,
        direction: buf[start + DATA.direction],
        seq: dv.getBigUint64(start + DATA.seq, true),
        originalLength: dv.getUint32(start + DATA.original_length, true),
        payload: buf.subarray(start + DATA.payload, start + DATA.payload + plen),
        syscall: buf[start + DATA.syscall],
        fd: dv.getUint32(start + DATA.fd, true),
      });
    } else if (type === WS_EV_OPEN || type === WS_EV_CLOSE) {
      if (len < CONN.size) {
        stats.errors++;
        break;
      }
      let family: 4 | 6 = dv.getUint16(start + CONN.family, true) === AF_INET ? 4 : 6;
      let localAddress = formatAddress(buf.subarray(start + CONN.laddr, start + CONN.laddr + 16), family);
      let remoteAddress = formatAddress(buf.subarray(start + CONN.raddr, start + CONN.raddr + 16), family);
      // a dual-stack (::) server's end of an IPv4 connection: name it as its IPv4 peer does, so
      // both ends of one connection carry the same addresses
      if (family === 6 && localAddress.startsWith("::ffff:") && remoteAddress.startsWith("::ffff:")) {
        family = 4;
        localAddress = localAddress.slice(7);
        remoteAddress = remoteAddress.slice(7);
      }
      conns.push({
        kind: type === WS_EV_OPEN ? "open" : "close",
        connKey, tgid, tid, tsMono,
        cgroupId: dv.getBigUint64(start + CONN.cgroup_id, true),
        family,
        localAddress,
        localPort: dv.getUint16(start + CONN.lport, true),
        remoteAddress,
        remotePort: dv.getUint16(start + CONN.rport, true),
        role: buf[start + CONN.role],
        inferred: (buf[start + CONN.flags] & WS_CONN_F_INFERRED) !== 0,
        fd: dv.getUint32(start + CONN.fd, true),
        comm: cString(buf.subarray(start + CONN.comm, start + CONN.comm + WS_COMM_LEN)),
        sentBytes: dv.getBigUint64(start + CONN.sent_bytes, true),
        recvBytes: dv.getBigUint64(start + CONN.recv_bytes, true),
      });
    } else {
      stats.errors++; // unknown record type: skip it, its length is still trustworthy
    }
    stats.records++;
    off = (end + 7) & ~7;
  }
  return { conns, data };
}
