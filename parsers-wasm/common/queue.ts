// ByteQueue: the bytes of one direction of one connection that a decoder has not consumed yet.
//
// Framing across arbitrary chunk boundaries is the decoder's hardest job; this class makes it a
// matter of "peek at offset, and if the message is complete, consume it". The unconsumed bytes
// are always contiguous in linear memory (ptr()..ptr()+avail()), so a decoder may also read them
// with load<u8>(q.ptr() + i).
//
// Zero copy in the common case: when the queue is empty, an appended chunk is borrowed in place
// (it sits in the host's input buffer); only bytes left unconsumed after the decoder ran are
// copied into owned storage (settle(), called by the ABI glue).
//
// Every peek is bounds-checked against avail() and returns 0 when out of range, so a decoder bug
// reads zeros rather than trapping; decoders still check avail() before trusting a value.

import { OK, LIMIT } from "./status";

/** Default cap on unconsumed bytes per direction (a decoder may change `limit`). */
export const DEFAULT_QUEUE_LIMIT: i32 = 1 << 20;

const TS_SLOTS: i32 = 16;
/** Owned storage up to this size is kept when the queue drains; beyond it, it is given back. */
const KEEP_CAP: i32 = 64 << 10;

export class ByteQueue {
  /** Owned storage (heap.alloc), `cap` bytes. */
  private buf: usize = 0;
  private cap: i32 = 0;
  /** Where the data lives now: `buf`, or the host's input buffer while borrowed. */
  private base: usize = 0;
  private head: i32 = 0;
  private tail: i32 = 0;
  private borrowed: bool = false;
  /** Bytes still to drop from future input (see skip()). */
  private skipPending: i64 = 0;
  /** Absolute stream offset of the byte at ptr() (bytes consumed or skipped so far). */
  consumed: i64 = 0;
  /** Cap on unconsumed bytes; append() returns LIMIT beyond it. */
  limit: i32 = DEFAULT_QUEUE_LIMIT;
  /** Length in bytes of the last varint read by uvarint()/svarint(): 0 = incomplete, -1 = malformed. */
  vlen: i32 = 0;

  // Chunk timestamps: ring of (absolute start offset, ts_ns) for chunks not yet fully consumed.
  private tsOff: StaticArray<i64> = new StaticArray<i64>(TS_SLOTS);
  private tsVal: StaticArray<i64> = new StaticArray<i64>(TS_SLOTS);
  private tsFirst: i32 = 0;
  private tsCount: i32 = 0;
  /** Timestamp of the most recent chunk. */
  lastTs: i64 = 0;

  /** Number of unconsumed bytes. */
  @inline avail(): i32 {
    return this.tail - this.head;
  }

  /** Address of the first unconsumed byte. */
  @inline ptr(): usize {
    return this.base + <usize>this.head;
  }

  /** Bytes of future input that will be dropped before anything is queued (a body being skipped). */
  @inline skipping(): i64 {
    return this.skipPending;
  }

  // ---- input (called by the ABI glue) ----

  /**
   * Adds as much of a chunk as fits: bytes a pending skip() drops, then up to `limit - avail()`
   * queued bytes. Returns the number of input bytes taken (> 0 when len > 0), or LIMIT when the
   * queue is already full: the decoder left `limit` bytes unconsumed, i.e. it needs a bigger
   * prefix than the limit allows. The glue (abi.ts) runs the decoder after every piece, so a
   * chunk as large as the limit after a partial message is taken in two steps instead of being
   * refused: the limit caps what a connection buffers, whatever the host's chunk size.
   */
  take(ptr: usize, len: i32, ts: i64): i32 {
    this.lastTs = ts;
    let k = 0;
    if (this.skipPending > 0) {
      k = <i32>min<i64>(this.skipPending, <i64>len);
      ptr += <usize>k;
      len -= k;
      this.skipPending -= k;
      this.consumed += k;
    }
    if (len <= 0) return k;
    const room = this.limit - this.avail();
    if (room <= 0) return k > 0 ? k : LIMIT;
    if (len > room) len = room;
    this.pushTs(this.consumed + <i64>this.avail(), ts);
    if (this.head == this.tail) {
      // empty: borrow the input in place
      this.base = ptr;
      this.head = 0;
      this.tail = len;
      this.borrowed = true;
    } else if (this.borrowed && ptr == this.base + <usize>this.tail) {
      // the next piece of the same input chunk: still contiguous, still borrowed
      this.tail += len;
    } else {
      if (this.borrowed) this.own(len);
      this.reserve(len);
      memory.copy(this.base + <usize>this.tail, ptr, <usize>len);
      this.tail += len;
    }
    return k + len;
  }

  /** Copies borrowed bytes into owned storage (the host's input buffer is about to be reused). */
  settle(): void {
    if (this.head == this.tail) {
      this.borrowed = false;
      this.head = 0;
      this.tail = 0;
      this.base = this.buf;
    } else if (this.borrowed) this.own(0);
    this.shrink();
  }

  /** Bytes of owned storage (memory this queue holds between calls). */
  @inline capacity(): i32 {
    return this.cap;
  }

  /**
   * Gives memory back once the queue has drained: storage above KEEP_CAP is released (or
   * reallocated to fit) when at most a quarter of it is in use, so a connection that once
   * buffered a large message does not keep that much for the rest of its life.
   */
  private shrink(): void {
    if (this.cap <= KEEP_CAP) return;
    const live = this.avail();
    if (live > this.cap >> 2) return;
    if (live == 0) {
      heap.free(this.buf);
      this.buf = 0;
      this.cap = 0;
      this.base = 0;
      this.head = 0;
      this.tail = 0;
      return;
    }
    let c = 256;
    while (c < live << 1) c <<= 1;
    const nb = heap.alloc(<usize>c);
    memory.copy(nb, this.buf + <usize>this.head, <usize>live);
    heap.free(this.buf);
    this.buf = nb;
    this.cap = c;
    this.base = nb;
    this.head = 0;
    this.tail = live;
  }

  /** Drops everything queued and any pending skip (after a gap). `consumed` moves past the gap. */
  clear(gapLen: i64): void {
    this.consumed += <i64>this.avail() + this.skipPending + gapLen;
    this.skipPending = 0;
    this.head = 0;
    this.tail = 0;
    this.borrowed = false;
    this.base = this.buf;
    this.tsCount = 0;
    this.shrink();
  }

  /** A gap of `len` bytes: absorbed when it falls inside a pending skip. Returns true when absorbed. */
  absorbGap(len: i64): bool {
    if (len > 0 && this.avail() == 0 && this.skipPending >= len) {
      this.skipPending -= len;
      this.consumed += len;
      return true;
    }
    return false;
  }

  /** Frees owned storage (connection closed). */
  free(): void {
    if (this.buf != 0) heap.free(this.buf);
    this.buf = 0;
    this.cap = 0;
    this.base = 0;
    this.head = 0;
    this.tail = 0;
    this.borrowed = false;
  }

  private own(extra: i32): void {
    const n = this.avail();
    const src = this.ptr();
    this.borrowed = false;
    this.base = this.buf;
    this.head = 0;
    this.tail = 0;
    this.reserve(n + extra);
    if (n > 0) memory.copy(this.base, src, <usize>n);
    this.tail = n;
  }

  /** Makes room for `n` more bytes after tail (compacting or growing owned storage). */
  private reserve(n: i32): void {
    if (this.tail + n <= this.cap) return;
    const live = this.avail();
    if (live + n <= this.cap && this.head > 0) {
      memory.copy(this.buf, this.buf + <usize>this.head, <usize>live);
      this.head = 0;
      this.tail = live;
      this.base = this.buf;
      return;
    }
    let c = this.cap < 256 ? 256 : this.cap;
    while (c < live + n) c <<= 1;
    const nb = heap.alloc(<usize>c);
    if (live > 0) memory.copy(nb, this.buf + <usize>this.head, <usize>live);
    if (this.buf != 0) heap.free(this.buf);
    this.buf = nb;
    this.cap = c;
    this.base = nb;
    this.head = 0;
    this.tail = live;
  }

  // ---- consuming ----

  /** Consumes `n` bytes (clamped to avail()). */
  @inline consume(n: i32): void {
    if (n > this.avail()) n = this.avail();
    if (n < 0) n = 0;
    this.head += n;
    this.consumed += n;
  }

  /**
   * Consumes `n` bytes, of which some may not have arrived yet: those are dropped from future
   * input as it comes (bodies the decoder does not need). A gap inside the skipped range is
   * absorbed without bothering the decoder.
   */
  skip(n: i64): void {
    if (n <= 0) return;
    const a = <i64>this.avail();
    if (n <= a) {
      this.consume(<i32>n);
    } else {
      this.consume(<i32>a);
      this.skipPending += n - a;
    }
  }

  // ---- timestamps ----

  private pushTs(off: i64, ts: i64): void {
    if (this.tsCount > 0) {
      const last = (this.tsFirst + this.tsCount - 1) % TS_SLOTS;
      if (unchecked(this.tsVal[last]) == ts) return;
    }
    if (this.tsCount == TS_SLOTS) {
      this.tsFirst = (this.tsFirst + 1) % TS_SLOTS;
      this.tsCount--;
    }
    const i = (this.tsFirst + this.tsCount) % TS_SLOTS;
    unchecked((this.tsOff[i] = off));
    unchecked((this.tsVal[i] = ts));
    this.tsCount++;
  }

  /** ts_ns of the chunk that carried the byte at offset `off` from ptr() (the last chunk if unknown). */
  tsAt(off: i32): i64 {
    const abs = this.consumed + <i64>off;
    // Forget chunks that end before the head.
    while (this.tsCount > 1) {
      const next = (this.tsFirst + 1) % TS_SLOTS;
      if (unchecked(this.tsOff[next]) <= this.consumed) {
        this.tsFirst = next;
        this.tsCount--;
      } else break;
    }
    let ts = this.lastTs;
    for (let k = 0; k < this.tsCount; k++) {
      const i = (this.tsFirst + k) % TS_SLOTS;
      if (unchecked(this.tsOff[i]) <= abs) ts = unchecked(this.tsVal[i]);
      else break;
    }
    return ts;
  }

  /**
   * Offset (from ptr()) of the first queued chunk stamped at or after `ts`, or -1. Chunks with
   * equal stamps count as one (the first). Used to resynchronise on a message that must have
   * been sent after some event (a reply to a request sent at `ts`).
   */
  chunkAtOrAfter(ts: i64): i32 {
    this.tsAt(0); // forget chunks that end before the head
    for (let k = 0; k < this.tsCount; k++) {
      const i = (this.tsFirst + k) % TS_SLOTS;
      if (unchecked(this.tsVal[i]) >= ts) {
        const off = unchecked(this.tsOff[i]) - this.consumed;
        return off < 0 ? 0 : off >= <i64>this.avail() ? -1 : <i32>off;
      }
    }
    return -1;
  }

  /** ts_ns of the chunk that carried the first unconsumed byte. */
  @inline headTs(): i64 {
    return this.tsAt(0);
  }

  // ---- peeking (offsets are relative to ptr(); out of range reads give 0) ----

  @inline u8(off: i32): u32 {
    return <u32>off < <u32>this.avail() ? <u32>load<u8>(this.ptr() + <usize>off) : 0;
  }

  u16be(off: i32): u32 {
    if (off < 0 || off + 2 > this.avail()) return 0;
    return <u32>bswap<u16>(load<u16>(this.ptr() + <usize>off));
  }

  u16le(off: i32): u32 {
    if (off < 0 || off + 2 > this.avail()) return 0;
    return <u32>load<u16>(this.ptr() + <usize>off);
  }

  u24be(off: i32): u32 {
    if (off < 0 || off + 3 > this.avail()) return 0;
    const p = this.ptr() + <usize>off;
    return (<u32>load<u8>(p) << 16) | (<u32>load<u8>(p, 1) << 8) | <u32>load<u8>(p, 2);
  }

  u24le(off: i32): u32 {
    if (off < 0 || off + 3 > this.avail()) return 0;
    const p = this.ptr() + <usize>off;
    return <u32>load<u8>(p) | (<u32>load<u8>(p, 1) << 8) | (<u32>load<u8>(p, 2) << 16);
  }

  u32be(off: i32): u32 {
    if (off < 0 || off + 4 > this.avail()) return 0;
    return bswap<u32>(load<u32>(this.ptr() + <usize>off));
  }

  u32le(off: i32): u32 {
    if (off < 0 || off + 4 > this.avail()) return 0;
    return load<u32>(this.ptr() + <usize>off);
  }

  u64be(off: i32): u64 {
    if (off < 0 || off + 8 > this.avail()) return 0;
    return bswap<u64>(load<u64>(this.ptr() + <usize>off));
  }

  u64le(off: i32): u64 {
    if (off < 0 || off + 8 > this.avail()) return 0;
    return load<u64>(this.ptr() + <usize>off);
  }

  /**
   * Unsigned LEB128 varint at `off` (protobuf, Kafka compact lengths). Sets `vlen` to its length,
   * 0 when more bytes are needed, -1 when longer than 10 bytes. Returns 0 unless vlen > 0.
   */
  uvarint(off: i32): u64 {
    let v: u64 = 0;
    let shift: u64 = 0;
    const n = this.avail();
    for (let i = off; i < n; i++) {
      const b = <u64>load<u8>(this.ptr() + <usize>i);
      v |= (b & 0x7f) << shift;
      if ((b & 0x80) == 0) {
        this.vlen = i - off + 1;
        return v;
      }
      shift += 7;
      if (shift >= 70) {
        this.vlen = -1;
        return 0;
      }
    }
    this.vlen = 0;
    return 0;
  }

  /** Zig-zag signed varint (Kafka record fields). Same `vlen` convention as uvarint(). */
  svarint(off: i32): i64 {
    const u = this.uvarint(off);
    return <i64>(u >>> 1) ^ -<i64>(u & 1);
  }

  // ---- searching ----

  // The scans below look at 16 bytes per step with SIMD when the build enables it (it does:
  // parsers-wasm/build.mjs passes --enable simd), and finish byte by byte.

  /** Offset of the first `b` at or after `from`, or -1. */
  indexOf(b: u8, from: i32): i32 {
    const n = this.avail();
    const p = this.ptr();
    let i = from < 0 ? 0 : from;
    if (ASC_FEATURE_SIMD) {
      const splat = i8x16.splat(<i8>b);
      while (i + 16 <= n) {
        const m = i8x16.bitmask(i8x16.eq(v128.load(p + <usize>i), splat));
        if (m != 0) return i + ctz<i32>(m);
        i += 16;
      }
    }
    for (; i < n; i++) {
      if (load<u8>(p + <usize>i) == b) return i;
    }
    return -1;
  }

  /** Offset of the first "\r\n" at or after `from` (the offset of the '\r'), or -1. */
  findCRLF(from: i32): i32 {
    const n = this.avail();
    const p = this.ptr();
    let i = from < 0 ? 0 : from;
    if (ASC_FEATURE_SIMD) {
      // look for the '\n' at j >= i + 1, then check the byte before it
      const nl = i8x16.splat(0x0a);
      let j = i + 1;
      while (j + 16 <= n) {
        let m = i8x16.bitmask(i8x16.eq(v128.load(p + <usize>j), nl));
        while (m != 0) {
          const k = j + ctz<i32>(m);
          if (load<u8>(p + <usize>k - 1) == 0x0d) return k - 1;
          m &= m - 1;
        }
        j += 16;
      }
      i = j - 1;
    }
    for (; i < n - 1; i++) {
      if (load<u16>(p + <usize>i) == 0x0a0d) return i;
    }
    return -1;
  }

  /** Offset of the first "\r\n\r\n" at or after `from`, or -1 (HTTP/1 header block end). */
  findCRLFCRLF(from: i32): i32 {
    const n = this.avail();
    const p = this.ptr();
    let i = from < 0 ? 0 : from;
    if (ASC_FEATURE_SIMD) {
      // look for the final '\n' at j >= i + 3, then check the three bytes before it
      const nl = i8x16.splat(0x0a);
      let j = i + 3;
      while (j + 16 <= n) {
        let m = i8x16.bitmask(i8x16.eq(v128.load(p + <usize>j), nl));
        while (m != 0) {
          const k = j + ctz<i32>(m);
          if (load<u32>(p + <usize>k - 3) == 0x0a0d0a0d) return k - 3;
          m &= m - 1;
        }
        j += 16;
      }
      i = j - 3;
    }
    for (; i < n - 3; i++) {
      if (load<u32>(p + <usize>i) == 0x0a0d0a0d) return i;
    }
    return -1;
  }

  /** True when the bytes at `off` equal the ASCII string `s` (case-sensitive). */
  startsWith(off: i32, s: string): bool {
    const n = s.length;
    if (off < 0 || off + n > this.avail()) return false;
    const p = this.ptr() + <usize>off;
    const sp = changetype<usize>(s);
    for (let i = 0; i < n; i++) {
      if (<u32>load<u8>(p + <usize>i) != <u32>load<u16>(sp + (<usize>i << 1))) return false;
    }
    return true;
  }
}
