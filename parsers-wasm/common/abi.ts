// The ABI exports (docs/plugin-abi.md). A plugin's entry file does
//
//   export * from "../common/abi";
//   import { register, ... } from "../common/index";
//   register(detect, () => new MyConnection());
//
// and nothing else is exported. This file is the only place that knows the handle table.

import { Connection } from "./conn";
import { OK, BROKEN, SWITCHED } from "./status";
import { outPtr, outBytes, outRecords, outClear, outRaw, Rec } from "./record";
import { _detect, _create, _setRedact, _maxConns } from "./plugin";

/** ABI version implemented by this library. */
const ABI_VERSION: i32 = 1;
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

export function out_ptr(): usize {
  return outPtr();
}

export function out_len(): i32 {
  return outBytes();
}

export function out_clear(): void {
  outClear();
}
