// Ring-buffer records as the kernel programs write them and the addon hands them over, for the
// probe's unit tests (offsets from the generated ../gen/layout.ts, never hand-copied).

import { HDR } from "../gen/layout.js";

/** Frames one record the way the addon does: u32 length, the record, padding to 8 bytes. */
export function frameRecord(rec: Buffer): Buffer {
  const b = Buffer.alloc((4 + rec.length + 7) & ~7);
  b.writeUInt32LE(rec.length, 0);
  rec.copy(b, 4);
  return b;
}

/** A zeroed record of `size` bytes with its common header (struct ws_hdr) filled in. */
export function eventRecord(type: number, key: bigint, size: number, h: { tgid: number; tid: number; tsNs: bigint }): Buffer {
  const b = Buffer.alloc(size);
  b.writeUInt32LE(type, HDR.type);
  b.writeUInt32LE(h.tgid, HDR.tgid);
  b.writeUInt32LE(h.tid, HDR.tid);
  b.writeBigUInt64LE(h.tsNs, HDR.ts_ns);
  b.writeBigUInt64LE(key, HDR.conn_key);
  return b;
}
