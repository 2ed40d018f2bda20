// HTTP/2 decoder state (RFC 9113): per-direction framing and HPACK, per-stream request/response.

import { TraceCtx } from "../http1/trace";

// Frame types (RFC 9113 6)
export const T_DATA: u32 = 0;
export const T_HEADERS: u32 = 1;
export const T_PRIORITY: u32 = 2;
export const T_RST_STREAM: u32 = 3;
export const T_SETTINGS: u32 = 4;
export const T_PUSH_PROMISE: u32 = 5;
export const T_PING: u32 = 6;
export const T_GOAWAY: u32 = 7;
export const T_WINDOW_UPDATE: u32 = 8;
export const T_CONTINUATION: u32 = 9;

// Flags
export const F_END_STREAM: u32 = 0x1;
export const F_ACK: u32 = 0x1;
export const F_END_HEADERS: u32 = 0x4;
export const F_PADDED: u32 = 0x8;
export const F_PRIORITY: u32 = 0x20;

/** Largest frame payload buffered whole (HEADERS, CONTINUATION, PUSH_PROMISE, SETTINGS...). */
export const MAX_BUFFERED_FRAME: i32 = 1 << 20;
/** Largest header block (HEADERS + CONTINUATIONs) decoded; beyond it the block is dropped. */
export const MAX_BLOCK: i32 = 1 << 20;
/** Most open streams tracked per connection; more are counted and ignored. */
export const MAX_STREAMS: i32 = 4096;

// Values kept per stream.
export const V_METHOD: i32 = 0;
export const V_PATH: i32 = 1;
export const V_AUTHORITY: i32 = 2;
export const V_GRPC_MESSAGE: i32 = 3;
export const V_COUNT: i32 = 4;

/** gRPC length-prefixed message counter for one direction (PROTOCOL-HTTP2.md "Length-Prefixed-Message"). */
export class GrpcCounter {
  /** Prefix bytes still expected (5 at a message boundary), 0 while inside a message body. */
  hdrLeft: i32 = 5;
  len: u32 = 0;
  bodyLeft: u32 = 0;
  messages: i32 = 0;

  reset(): void {
    this.hdrLeft = 5;
    this.len = 0;
    this.bodyLeft = 0;
    this.messages = 0;
  }

  /** Accounts `n` DATA payload bytes at p. Only the 5-byte prefixes are read. */
  feed(p: usize, n: i32): void {
    if (this.hdrLeft < 0) return;
    let i = 0;
    while (i < n) {
      if (this.hdrLeft > 0) {
        // bytes 1..4 of the prefix are the big-endian length; byte 0 the compressed flag (0 or 1:
        // anything else is not a length-prefixed message, and counting stops)
        const b = <u32>load<u8>(p + <usize>i);
        if (this.hdrLeft <= 4) this.len = (this.len << 8) | b;
        else if (b > 1) {
          this.hdrLeft = -1;
          return;
        }
        this.hdrLeft--;
        i++;
        if (this.hdrLeft == 0) {
          this.bodyLeft = this.len;
          this.len = 0;
          if (this.bodyLeft == 0) {
            this.messages++;
            this.hdrLeft = 5;
          }
        }
        continue;
      }
      const k = <u32>(n - i) < this.bodyLeft ? <u32>(n - i) : this.bodyLeft;
      i += <i32>k;
      this.bodyLeft -= k;
      if (this.bodyLeft == 0) {
        this.messages++;
        this.hdrLeft = 5;
      }
    }
  }

  /** At a message boundary with every byte accounted for (no partial message, no loss). */
  @inline get whole(): bool {
    return this.hdrLeft == 5;
  }

  /** Bytes lost: the message in progress can no longer be delimited. */
  lose(n: i32): void {
    if (this.hdrLeft < 0) return;
    if (this.hdrLeft == 0 && <u32>n <= this.bodyLeft) {
      this.bodyLeft -= <u32>n;
      if (this.bodyLeft == 0) {
        this.messages++;
        this.hdrLeft = 5;
      }
    } else this.hdrLeft = -1; // counting stops
  }
}

/** One HTTP/2 stream: a request and its response. Pooled per connection. */
export class Stream {
  id: u32 = 0;
  // kept header values, packed in one buffer
  buf: usize = 0;
  cap: i32 = 0;
  used: i32 = 0;
  off: StaticArray<i32> = new StaticArray<i32>(V_COUNT);
  len: StaticArray<i32> = new StaticArray<i32>(V_COUNT);

  startTs: i64 = 0;
  endTs: i64 = 0;
  status: i32 = -1; // :status of the final response
  grpcStatus: i32 = -1;
  isGrpc: bool = false;
  reqHeaders: bool = false; // request header block seen
  respHeaders: bool = false; // final response headers seen
  reqEnd: bool = false;
  respEnd: bool = false;
  /** The response ended with a HEADERS block carrying END_STREAM (trailers, or trailers-only). */
  respEndHeaders: bool = false;
  /** Header fields of this stream's blocks that could not be decoded (dynamic entries from before pickup). */
  unknownFields: i32 = 0;
  /** Some request fields could not be decoded (unknown dynamic-table entries, lost blocks). */
  reqUnknown: bool = false;
  respUnknown: bool = false;
  pushed: bool = false;
  upgraded: bool = false; // stream 1 of an h2c upgrade (request was HTTP/1.1)
  rstCode: i64 = -1;
  reqBytes: i64 = 0;
  respBytes: i64 = 0;
  reqMsgs: GrpcCounter = new GrpcCounter();
  respMsgs: GrpcCounter = new GrpcCounter();
  trace: TraceCtx = new TraceCtx();

  reset(id: u32): void {
    this.id = id;
    this.used = 0;
    for (let i = 0; i < V_COUNT; i++) unchecked((this.len[i] = -1));
    this.startTs = 0;
    this.endTs = 0;
    this.status = -1;
    this.grpcStatus = -1;
    this.isGrpc = false;
    this.reqHeaders = false;
    this.respHeaders = false;
    this.reqEnd = false;
    this.respEnd = false;
    this.respEndHeaders = false;
    this.unknownFields = 0;
    this.reqUnknown = false;
    this.respUnknown = false;
    this.pushed = false;
    this.upgraded = false;
    this.rstCode = -1;
    this.reqBytes = 0;
    this.respBytes = 0;
    this.reqMsgs.reset();
    this.respMsgs.reset();
    this.trace.reset();
  }

  @inline has(v: i32): bool {
    return unchecked(this.len[v]) >= 0;
  }
  @inline ptr(v: i32): usize {
    return this.buf + <usize>unchecked(this.off[v]);
  }
  @inline size(v: i32): i32 {
    return unchecked(this.len[v]);
  }

  /** Keeps a header value (the first one wins). */
  set(v: i32, p: usize, n: i32): void {
    if (this.has(v)) return;
    if (this.used + n > this.cap) {
      let c = this.cap < 128 ? 128 : this.cap;
      while (c < this.used + n) c <<= 1;
      const nb = heap.alloc(<usize>c);
      if (this.buf != 0) {
        memory.copy(nb, this.buf, <usize>this.used);
        heap.free(this.buf);
      }
      this.buf = nb;
      this.cap = c;
    }
    memory.copy(this.buf + <usize>this.used, p, <usize>n);
    unchecked((this.off[v] = this.used));
    unchecked((this.len[v] = n));
    this.used += n;
  }

  free(): void {
    if (this.buf != 0) heap.free(this.buf);
    this.buf = 0;
    this.cap = 0;
    this.trace.free();
  }
}

/**
 * Open streams of one connection, by stream id: open addressing with linear probing (ids are
 * odd/even sequences, so id >> 1 spreads them perfectly) and backward-shift deletion. Allocates
 * only when it grows.
 */
export class StreamTable {
  private keys: StaticArray<u32> = new StaticArray<u32>(16);
  private vals: StaticArray<Stream | null> = new StaticArray<Stream | null>(16);
  private mask: u32 = 15;
  size: i32 = 0;

  @inline private home(id: u32): u32 {
    return ((id >>> 1) ^ (id >>> 17)) & this.mask;
  }

  find(id: u32): Stream | null {
    let i = this.home(id);
    while (true) {
      const k = unchecked(this.keys[i]);
      if (k == id) return unchecked(this.vals[i]);
      if (k == 0) return null;
      i = (i + 1) & this.mask;
    }
  }

  @inline has(id: u32): bool {
    return this.find(id) != null;
  }

  add(s: Stream): void {
    if ((this.size + 1) * 2 > this.keys.length) this.grow();
    let i = this.home(s.id);
    while (unchecked(this.keys[i]) != 0 && unchecked(this.keys[i]) != s.id) i = (i + 1) & this.mask;
    if (unchecked(this.keys[i]) == 0) this.size++;
    unchecked((this.keys[i] = s.id));
    unchecked((this.vals[i] = s));
  }

  private grow(): void {
    const oldK = this.keys;
    const oldV = this.vals;
    const cap = oldK.length * 2;
    this.keys = new StaticArray<u32>(cap);
    this.vals = new StaticArray<Stream | null>(cap);
    this.mask = <u32>cap - 1;
    this.size = 0;
    for (let j = 0; j < oldK.length; j++) {
      const v = unchecked(oldV[j]);
      if (unchecked(oldK[j]) != 0 && v != null) this.add(v);
    }
  }

  remove(id: u32): void {
    let i = this.home(id);
    while (true) {
      const k = unchecked(this.keys[i]);
      if (k == 0) return;
      if (k == id) break;
      i = (i + 1) & this.mask;
    }
    // backward shift: pull later entries of the probe run into the hole
    let j = i;
    while (true) {
      j = (j + 1) & this.mask;
      const k = unchecked(this.keys[j]);
      if (k == 0) break;
      const h = this.home(k);
      // move k to i unless its home lies cyclically in (i, j]
      const inRange = i <= j ? h > i && h <= j : h > i || h <= j;
      if (!inRange) {
        unchecked((this.keys[i] = k));
        unchecked((this.vals[i] = this.vals[j]));
        i = j;
      }
    }
    unchecked((this.keys[i] = 0));
    unchecked((this.vals[i] = null));
    this.size--;
  }

  /** Slots to iterate with slot(i) (some are empty). */
  @inline get slots(): i32 {
    return this.keys.length;
  }
  @inline slot(i: i32): Stream | null {
    return unchecked(this.keys[i]) != 0 ? unchecked(this.vals[i]) : null;
  }

  clear(): void {
    for (let i = 0; i < this.keys.length; i++) {
      unchecked((this.keys[i] = 0));
      unchecked((this.vals[i] = null));
    }
    this.size = 0;
  }
}
