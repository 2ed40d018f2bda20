// HTTP/1.1 decoder state (RFC 9112). One H1Parser per connection; requests wait in a FIFO until
// their response (pipelining: several may wait).

import { TraceCtx } from "./trace";

// Per-direction parser states.
export const S_START: i32 = 0; // expecting a start line (request or status line)
export const S_BODY: i32 = 1; // Content-Length body: `remaining` bytes to go
export const S_CHUNK_SIZE: i32 = 2; // chunked: expecting "<hex>[;ext]\r\n"
export const S_CHUNK_DATA: i32 = 3; // chunked: `remaining` bytes of chunk data
export const S_CHUNK_CRLF: i32 = 4; // chunked: the CRLF after chunk data
export const S_TRAILERS: i32 = 5; // chunked: trailer fields until an empty line
export const S_UNTIL_CLOSE: i32 = 6; // response body delimited by the connection closing
export const S_RESYNC: i32 = 7; // lost track (gap, garbage): wait for a chunk that starts a message
export const S_PAUSED: i32 = 8; // request side waits for the answer to an h2c Upgrade
export const S_OPAQUE: i32 = 9; // after 101 Switching Protocols / CONNECT: not HTTP/1 any more

/** Longest header section accepted (start line included). */
export const MAX_HEADER: i32 = 65536;
/** Most requests waiting for responses (pipelining depth) before the connection is given up. */
export const MAX_PENDING: i32 = 1024;

/** One request, kept until its response completes. Pooled: reset() reuses the storage. */
export class Req {
  /** Copy of method, target and host bytes: [method][target][host]. */
  buf: usize = 0;
  cap: i32 = 0;
  methodLen: i32 = 0;
  targetLen: i32 = 0;
  hostLen: i32 = 0;
  /** 0 = HTTP/1.0, 1 = HTTP/1.1 */
  minor: i32 = 1;
  startTs: i64 = 0;
  bodyBytes: i64 = 0;
  isHead: bool = false;
  isConnect: bool = false;
  upgradeH2c: bool = false;
  /** An Upgrade header (any protocol; `upgradeWs` when it names websocket). */
  upgradeAny: bool = false;
  upgradeWs: bool = false;
  trace: TraceCtx = new TraceCtx();

  reset(): void {
    this.methodLen = 0;
    this.targetLen = 0;
    this.hostLen = 0;
    this.minor = 1;
    this.startTs = 0;
    this.bodyBytes = 0;
    this.isHead = false;
    this.isConnect = false;
    this.upgradeH2c = false;
    this.upgradeAny = false;
    this.upgradeWs = false;
    this.trace.reset();
  }

  /** Stores method and target (host is appended later by setHost). */
  setLine(m: usize, mlen: i32, t: usize, tlen: i32): void {
    this.reserve(mlen + tlen + 256);
    memory.copy(this.buf, m, <usize>mlen);
    memory.copy(this.buf + <usize>mlen, t, <usize>tlen);
    this.methodLen = mlen;
    this.targetLen = tlen;
    this.hostLen = 0;
  }

  setHost(h: usize, hlen: i32): void {
    const off = this.methodLen + this.targetLen;
    this.reserve(off + hlen);
    memory.copy(this.buf + <usize>off, h, <usize>hlen);
    this.hostLen = hlen;
  }

  @inline method(): usize {
    return this.buf;
  }
  @inline target(): usize {
    return this.buf + <usize>this.methodLen;
  }
  @inline host(): usize {
    return this.buf + <usize>(this.methodLen + this.targetLen);
  }

  private reserve(n: i32): void {
    if (n <= this.cap) return;
    let c = this.cap < 128 ? 128 : this.cap;
    while (c < n) c <<= 1;
    const nb = heap.alloc(<usize>c);
    const used = this.methodLen + this.targetLen + this.hostLen;
    if (this.buf != 0) {
      if (used > 0) memory.copy(nb, this.buf, <usize>(used < this.cap ? used : this.cap));
      heap.free(this.buf);
    }
    this.buf = nb;
    this.cap = c;
  }

  free(): void {
    if (this.buf != 0) heap.free(this.buf);
    this.buf = 0;
    this.cap = 0;
    this.trace.free();
  }
}
