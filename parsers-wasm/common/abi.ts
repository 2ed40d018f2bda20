// The ABI exports (docs/plugin-abi.md). A plugin's entry file does
//
//   export * from "../common/abi";
//   import { register, ... } from "../common/index";
//   register(detect, () => new MyConnection());
//
// and nothing else is exported. This file is the only place that knows the handle table.
// ABI version 2: the version 1 exports plus feed_batch (several chunks of any connections in one
// call) and conn_stats (the per-connection counters). abi-v1.ts exports the version 1 subset,
// for plugins that must load in hosts speaking only version 1.

import { Connection } from "./conn";
import { OK, BROKEN, SWITCHED } from "./status";
import { outPtr, outBytes, outRecords, outClear, outRaw, Rec } from "./record";
import { _detect, _create, _setRedact, _maxConns } from "./plugin";

/** ABI version implemented by this library. */
const ABI_VERSION: i32 = 2;
/** Largest input chunk the host may copy in at once. */
const MAX_INPUT: i32 = 16 << 20;

let inBuf: usize = 0;
let inCap: i32 = 0;

// Handle table: handle h lives at conns[h - 1]; freed slots are reused (LIFO).
const conns = new Array<Connection | null>();
const freeSlots = new Array<i32>();
let live: i32 = 0;

export function abi_version(): i32 {
  return ABI_VERSION;
}

export function input_buffer(len: i32): usize {
  if (len < 0 || len > MAX_INPUT) return 0;
  if (len > inCap) {
    let c = inCap < 65536 ? 65536 : inCap;
    while (c < len) c <<= 1;
    inBuf = inBuf == 0 ? heap.alloc(<usize>c) : heap.realloc(inBuf, <usize>c);
    inCap = c;
  }
  return inBuf;
}

export function detect(dir: i32, ptr: usize, len: i32): i32 {
  if (len <= 0) return 0;
  const s = _detect(dir, ptr, len);
  return s < 0 ? 0 : s > 100 ? 100 : s;
}

/** The host's memory cap for this instance in 64 KiB pages (configure bits 8..31; 0 = not given). */
let capPages: i32 = 0;

export function configure(flags: i32): void {
  _setRedact((flags & 1) != 0);
  capPages = flags >>> 8;
}

export function conn_new(): i32 {
  if (live >= _maxConns()) return 0;
  // Refuse while a quarter of the cap is still free: the connections already here need room to
  // buffer partial messages, and an allocation past the cap traps the whole instance. The host
  // starts another instance for new connections.
  if (capPages > 0 && <i32>memory.size() > capPages - (capPages >> 2)) return 0;
  const c = _create();
  live++;
  if (freeSlots.length > 0) {
    const i = freeSlots.pop();
    unchecked((conns[i] = c));
    return i + 1;
  }
  conns.push(c);
  return conns.length;
}

@inline function lookup(h: i32): Connection | null {
  if (h <= 0 || h > conns.length) return null;
  return unchecked(conns[h - 1]);
}

export function conn_free(h: i32): void {
  const c = lookup(h);
  if (c == null) return;
  c.q0.free();
  c.q1.free();
  c.onFree();
  unchecked((conns[h - 1] = null));
  freeSlots.push(h - 1);
  live--;
}

@inline function answer(c: Connection, st: i32): i32 {
  if (st < 0) {
    c.dead = st;
    Rec.cancel();
    return st;
  }
  Rec.end(); // a decoder that forgot end() still leaves a well-formed buffer
  return outRecords();
}

export function feed(h: i32, dir: i32, ptr: usize, len: i32, ts: i64): i32 {
  const c = lookup(h);
  if (c == null) return BROKEN;
  if (c.dead < 0) return c.dead;
  if (len <= 0) return outRecords();
  const q = c.q(dir & 1);
  // The chunk goes in as pieces that fit under the queue's limit, the decoder running after
  // each: a chunk as large as the limit after a partial message is not refused. onData is
  // called even when a piece went entirely into a pending skip, so that a decoder waiting for a
  // skipped body to end (q.skipping() == 0) learns it at the right chunk.
  let st = OK;
  while (st == OK && len > 0) {
    const n = q.take(ptr, len, ts);
    if (n < 0) {
      st = n;
      break;
    }
    ptr += <usize>n;
    len -= n;
    st = c.onData(dir & 1, q, ts);
  }
  if (st == SWITCHED && len > 0) {
    c.restPtr = ptr;
    c.restLen = len;
    c.restDir = dir & 1;
  }
  q.settle();
  return answer(c, st);
}

/**
 * After a feed answered SWITCHED (-4): the bytes of direction `dir` the plugin did not consume,
 * oldest first, written to the output buffer (emptied first) for the host to copy from out_ptr;
 * returns their count. The host calls it for both directions, then out_clear and conn_free.
 */
export function conn_tail(h: i32, dir: i32): i32 {
  const c = lookup(h);
  outClear();
  if (c == null || c.dead != SWITCHED) return 0;
  const q = c.q(dir & 1);
  outRaw(q.ptr(), q.avail());
  if (c.restDir == (dir & 1)) outRaw(c.restPtr, c.restLen);
  return outBytes();
}

export function gap(h: i32, dir: i32, len: i32, ts: i64): i32 {
  const c = lookup(h);
  if (c == null) return BROKEN;
  if (c.dead < 0) return c.dead;
  const q = c.q(dir & 1);
  if (q.absorbGap(<i64>len)) return outRecords();
  q.clear(<i64>(len < 0 ? 0 : len));
  return answer(c, c.onGap(dir & 1, len, ts));
}

export function close(h: i32, ts: i64): i32 {
  const c = lookup(h);
  if (c == null) return BROKEN;
  if (c.dead < 0) return c.dead;
  return answer(c, c.onClose(ts));
}

// ---- ABI v2: batches and counters ----

/**
 * One batch entry (docs/plugin-abi.md, "feed_batch"), little-endian, 48 bytes:
 *
 *    0  h        i32  in    connection handle
 *    4  op       i32  in    bits 0..7: 0 feed, 1 gap, 2 close; bit 8: dir
 *    8  len      i32  in    feed: bytes (they follow the entries, in entry order); gap: missed bytes
 *   12  (zero)
 *   16  ts_ns    i64  in
 *   24  status   i32  out   what feed/gap/close would have returned
 *   28  out_end  i32  out   out_len() after this entry: its records are the frames before it
 *   32  errors   u32  out   growth of the connection's counters during this entry
 *   36  drops    u32  out
 *   40  dropped  i64  out   bytes dropped
 */
const ENTRY: usize = 48;
const OP_FEED: i32 = 0;
const OP_GAP: i32 = 1;

export function feed_batch(ptr: usize, n: i32): i32 {
  if (n <= 0) return 0;
  let data = ptr + <usize>n * ENTRY;
  for (let i = 0; i < n; i++) {
    const e = ptr + <usize>i * ENTRY;
    const h = load<i32>(e);
    const op = load<i32>(e, 4);
    const len = load<i32>(e, 8);
    const ts = load<i64>(e, 16);
    const dir = (op >> 8) & 1;
    const kind = op & 0xff;
    let st: i32;
    if (kind == OP_FEED) {
      st = feed(h, dir, data, len, ts);
      if (len > 0) data += <usize>len;
    } else if (kind == OP_GAP) st = gap(h, dir, len, ts);
    else st = close(h, ts);
    store<i32>(e, st, 24);
    store<i32>(e, outBytes(), 28);
    const c = lookup(h);
    if (c != null) report(c, e + 32);
    else {
      store<i64>(e, 0, 32);
      store<i64>(e, 0, 40);
    }
  }
  return n;
}

/** Writes the growth of c's counters since the last report at p (u32, u32, i64) and marks them reported. */
function report(c: Connection, p: usize): void {
  c.syncCounters();
  // a counter that went down (a decoder replaced a part that kept it) reports nothing
  store<u32>(p, c.errors > c.repErrors ? <u32>(c.errors - c.repErrors) : 0);
  store<u32>(p, c.drops > c.repDrops ? <u32>(c.drops - c.repDrops) : 0, 4);
  store<i64>(p, c.droppedBytes > c.repDroppedBytes ? c.droppedBytes - c.repDroppedBytes : 0, 8);
  c.repErrors = c.errors;
  c.repDrops = c.drops;
  c.repDroppedBytes = c.droppedBytes;
}

const stats = new StaticArray<i64>(2);

/**
 * The growth of connection h's counters since they were last reported (here or in a
 * feed_batch entry): a pointer to errors (u32), drops (u32), dropped bytes (i64); zeros for an
 * unknown handle. The host asks before conn_free.
 */
export function conn_stats(h: i32): usize {
  const p = changetype<usize>(stats);
  const c = lookup(h);
  if (c != null) report(c, p);
  else {
    store<i64>(p, 0);
    store<i64>(p, 0, 8);
  }
  return p;
}

export function out_ptr(): usize {
  return outPtr();
}

export function out_len(): i32 {
  return outBytes();
}

export function out_clear(): void {
  outClear();
}
