// Decodes one native batch (services/probe/native/addon.cc) into events. Offsets come from
// gen/layout.ts, generated from bpf/wirescope.h: nothing here restates the kernel's structs.
//
//   batch := record*        record := u32le len | len bytes (one ring-buffer record) | pad to 8
//
// A malformed record is counted (DecodeStats.errors) and the rest of the batch is skipped: a
// length we cannot trust means we cannot find the next record.
import { HDR, DATA, CONN, WS_EV_DATA, WS_EV_OPEN, WS_EV_CLOSE, WS_EV_TLS_LIB, WS_CONN_F_INFERRED, WS_CONN_F_TLS, WS_COMM_LEN, TLS_LIBS, WS_CONN_F_SHED, WS_CONN_F_NEW_PROC, WS_SAMPLE_ONE, SHED_REASONS } from "./gen/layout.js";
import { formatAddress } from "@wirescope/wire";
import type { ConnRecord, DataRecord, EventBatch } from "./events.js";

export interface DecodeStats {
  records: number;
  errors: number;
}

const AF_INET = 2;
const decoder = new TextDecoder();


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
      conns.push(decodeConn(buf, dv, start, type));
    } else if (type !== WS_EV_TLS_LIB) {
      // (library announcements go to their own callback in the addon; one here is not traffic)
      stats.errors++; // unknown record type: skip it, its length is still trustworthy
    }
    stats.records++;
    off = (end + 7) & ~7;
  }
  return { conns, data };
}

/**
 * One connection record (open or close) at `start` of `buf` (its length checked: ≥ CONN.size).
 * Shared by decodeBatch and the encoder's hot path (raw-encoder.ts).
 */
export function decodeConn(buf: Uint8Array, dv: DataView, start: number, type: number): ConnRecord {
  const tgid = dv.getUint32(start + HDR.tgid, true);
  const tid = dv.getUint32(start + HDR.tid, true);
  const tsMono = dv.getBigUint64(start + HDR.ts_ns, true);
  const connKey = dv.getBigUint64(start + HDR.conn_key, true);
  let family: 4 | 6 = dv.getUint16(start + CONN.family, true) === AF_INET ? 4 : 6;
  let localAddress = formatAddress(buf, start + CONN.laddr, family);
  let remoteAddress = formatAddress(buf, start + CONN.raddr, family);
  // a dual-stack (::) server's end of an IPv4 connection: name it as its IPv4 peer does, so
  // both ends of one connection carry the same addresses
  if (family === 6 && localAddress.startsWith("::ffff:") && remoteAddress.startsWith("::ffff:")) {
    family = 4;
    localAddress = localAddress.slice(7);
    remoteAddress = remoteAddress.slice(7);
  }
  return {
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
    tls: (buf[start + CONN.flags] & WS_CONN_F_TLS) !== 0,
    tlsLibrary: (buf[start + CONN.flags] & WS_CONN_F_TLS) !== 0 ? (TLS_LIBS[buf[start + CONN.tls_lib]] ?? "unknown") : "",
    fd: dv.getUint32(start + CONN.fd, true),
    comm: cString(buf.subarray(start + CONN.comm, start + CONN.comm + WS_COMM_LEN)),
    firstOfProcess: type === WS_EV_OPEN && (buf[start + CONN.flags]! & WS_CONN_F_NEW_PROC) !== 0,
    observedFraction: type === WS_EV_OPEN ? dv.getUint16(start + CONN.sample_level, true) / WS_SAMPLE_ONE : undefined,
    shed: type === WS_EV_CLOSE && buf[start + CONN.flags] & WS_CONN_F_SHED ? (SHED_REASONS[buf[start + CONN.shed]!] || "unknown") : undefined,
    sentBytes: dv.getBigUint64(start + CONN.sent_bytes, true),
    recvBytes: dv.getBigUint64(start + CONN.recv_bytes, true),
  };
}
