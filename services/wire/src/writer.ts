// The protobuf writing of the hand-written writers: varints into a caller's array (the parser's
// RecordBatch, sized first and written once; the probe's DataEvents, sized first and written at a
// WireWriter's end) and a growable buffer with field writers, one per message or reused for many
// (the parser's host fields, the probe's RawBatch messages). Tags are the generated ones
// (gen/wire/fields.ts); zero values are the caller's to leave out, as proto3 does.

import { ProcessInfoTag } from "./gen/wire/fields.js";
import type { ProcessInfo } from "./gen/wirescope/v1/raw_pb.js";

/** Bytes of `v` (a uint32) as a varint. */
export function varintLen(v: number): number {
  v >>>= 0;
  return v < 0x80 ? 1 : v < 0x4000 ? 2 : v < 0x20_0000 ? 3 : v < 0x1000_0000 ? 4 : 5;
}

/** Bytes of the uint64 (lo, hi) (two uint32 halves) as a varint. */
export function varint64Len(lo: number, hi: number): number {
  // 32 + the high half's bits, 7 to a byte
  return hi === 0 ? varintLen(lo) : ((70 - Math.clz32(hi)) / 7) | 0;
}

/** Writes `v` (a uint32) as a varint at out[i]; returns the position after it. */
export function writeVarint(out: Uint8Array, i: number, v: number): number {
  v >>>= 0;
  while (v >= 0x80) {
    out[i++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  out[i++] = v;
  return i;
}

/** Writes the uint64 (lo, hi) as a varint at out[i]; returns the position after it. */
export function writeVarint64(out: Uint8Array, i: number, lo: number, hi: number): number {
  while (hi > 0 || lo > 0x7f) {
    out[i++] = (lo & 0x7f) | 0x80;
    lo = ((lo >>> 7) | (hi << 25)) >>> 0;
    hi >>>= 7;
  }
  out[i++] = lo;
  return i;
}

/**
 * A growable buffer with protobuf field writers. `buf` and `len` are open to a caller that writes
 * a run of varints itself (after `ensure`, with writeVarint at `len`), as the probe does per event.
 */
export class WireWriter {
  buf: Buffer;
  len = 0;
  constructor(size = 256) {
    this.buf = Buffer.allocUnsafe(size);
  }
  /** Room for `n` more bytes: the buffer doubles until they fit (what was written is kept). */
  ensure(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const b = Buffer.allocUnsafe(size);
    this.buf.copy(b, 0, 0, this.len);
    this.buf = b;
  }
  varint32(v: number): void {
    this.ensure(5);
    this.len = writeVarint(this.buf, this.len, v);
  }
  /** A uint64 given as a number (exact below 2^53) or a BigInt (two's complement for a negative one). */
  varint64(v: number | bigint): void {
    this.ensure(10);
    if (typeof v === "number" && v >= 0 && v <= 0xffff_ffff) this.len = writeVarint(this.buf, this.len, v);
    else {
      const x = BigInt.asUintN(64, BigInt(v));
      this.len = writeVarint64(this.buf, this.len, Number(x & 0xffff_ffffn), Number(x >> 32n));
    }
  }
  /** A varint field; nothing for 0 (proto3 default). */
  uint(tag: number, v: number | bigint): void {
    if (!v) return;
    this.varint32(tag);
    this.varint64(v);
  }
  /** A varint field holding the uint64 (lo, hi) (two uint32 halves, no BigInt); nothing for 0. */
  uint64(tag: number, lo: number, hi: number): void {
    if (!lo && !hi) return;
    this.ensure(15);
    this.len = writeVarint64(this.buf, writeVarint(this.buf, this.len, tag), lo, hi);
  }
  /** A LEN field holding a UTF-8 string; nothing for "" or undefined (proto3 default). */
  string(tag: number, s: string | undefined): void {
    if (!s) return;
    const n = Buffer.byteLength(s);
    this.ensure(n + 10);
    this.len = writeVarint(this.buf, writeVarint(this.buf, this.len, tag), n);
    this.len += this.buf.write(s, this.len, "utf8");
  }
  /** A LEN field holding `src` (a sub-message or bytes) as it is; nothing when undefined. */
  lenField(tag: number, src: Uint8Array | undefined): void {
    if (!src) return;
    this.ensure(src.length + 10);
    this.len = writeVarint(this.buf, writeVarint(this.buf, this.len, tag), src.length);
    this.buf.set(src, this.len);
    this.len += src.length;
  }
  /** An I32 field holding a float. */
  float(tag: number, v: number): void {
    this.varint32(tag);
    this.ensure(4);
    this.len = this.buf.writeFloatLE(v, this.len);
  }
  /**
   * Starts a LEN field whose length is not known yet (a sub-message written in place, no copy):
   * its tag and `room` bytes for the length. Returns where the body starts, for `endLen`.
   */
  beginLen(tag: number, room = 2): number {
    this.ensure(5 + room);
    this.len = writeVarint(this.buf, this.len, tag) + room;
    return this.len;
  }
  /**
   * Ends the LEN field begun at `start` (beginLen's answer, the same `room`): writes its length in
   * the fewest bytes, as protobuf-es does, moving the body when that is not `room` bytes.
   */
  endLen(start: number, room = 2): void {
    const n = this.len - start;
    const k = varintLen(n);
    if (k !== room) {
      this.ensure(k - room);
      this.buf.copyWithin(start - room + k, start, this.len);
      this.len += k - room;
    }
    writeVarint(this.buf, start - room, n);
  }
  /** Appends `src` as it is (fields encoded before, e.g. a message's constant head). */
  raw(src: Uint8Array): void {
    this.ensure(src.length);
    this.buf.set(src, this.len);
    this.len += src.length;
  }
  /** Forgets what was written (the buffer is kept): one writer serves many messages. */
  reset(): this {
    this.len = 0;
    return this;
  }
  /** The bytes written, as a view: valid until the writer is written to or reset again. */
  view(): Uint8Array {
    return new Uint8Array(this.buf.buffer, this.buf.byteOffset, this.len);
  }
  /** The bytes written, as a copy (the writer may be reused). */
  bytes(): Uint8Array {
    const out = new Uint8Array(this.len);
    out.set(this.view());
    return out;
  }
}

/** What a ProcessInfo holds besides its pid and name (the probe's ProcInfo, protobuf-es's ProcessInfo). */
export type ProcessFields = Pick<ProcessInfo, "exe" | "cmdline" | "containerId" | "pod" | "namespace" | "container" | "workload">;

/**
 * A ProcessInfo's fields (without its tag and length), in field order: the probe's ConnEvents
 * carry all of them, the parser's record endpoints the process's identity only (`commandLine`
 * false: no exe or cmdline, which no consumer of records reads and which would cost every record
 * up to 4 KiB per end; docs/wire.md, "Records").
 */
export function writeProcessInfo(w: WireWriter, pid: number, name: string, p: ProcessFields, commandLine = true): void {
  w.uint(ProcessInfoTag.pid, pid);
  w.string(ProcessInfoTag.name, name);
  if (commandLine) {
    w.string(ProcessInfoTag.exe, p.exe);
    w.string(ProcessInfoTag.cmdline, p.cmdline);
  }
  w.string(ProcessInfoTag.containerId, p.containerId);
  w.string(ProcessInfoTag.pod, p.pod);
  w.string(ProcessInfoTag.namespace, p.namespace);
  w.string(ProcessInfoTag.container, p.container);
  w.string(ProcessInfoTag.workload, p.workload);
}
