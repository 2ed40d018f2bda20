// Trace context carried in HTTP headers (shared by the HTTP/1.1 and HTTP/2 decoders):
//   W3C  traceparent: 00-<32 hex trace id>-<16 hex parent span id>-<2 hex flags>
//        https://www.w3.org/TR/trace-context/#traceparent-header
//   B3   X-B3-TraceId (16 or 32 hex), X-B3-SpanId (16 hex), X-B3-Sampled (0/1), or the single
//        header b3: <trace id>-<span id>[-<sampled>[-<parent span id>]]
//        https://github.com/openzipkin/b3-propagation
// The caller's span id becomes Record.trace.parent_span_id. traceparent wins over B3.

import { hexVal, hexDecode } from "../common/index";

export const TRACE_NONE: i32 = 0;
export const TRACE_W3C: i32 = 1;
export const TRACE_B3: i32 = 2;

function allZero(p: usize, n: i32): bool {
  for (let i = 0; i < n; i++) if (load<u8>(p + <usize>i) != 0) return false;
  return true;
}

/** Trace context of one request, assembled from whichever headers it carries. */
export class TraceCtx {
  /** 16-byte trace id followed by the 8-byte parent span id. */
  ids: usize = heap.alloc(24);
  format: i32 = TRACE_NONE;
  flags: u32 = 0;
  // B3 multi-header parts arrive separately
  private b3Trace: bool = false;
  private b3Span: bool = false;
  private sampled: i32 = -1;

  reset(): void {
    this.format = TRACE_NONE;
    this.flags = 0;
    this.b3Trace = false;
    this.b3Span = false;
    this.sampled = -1;
  }

  free(): void {
    heap.free(this.ids);
  }

  copyFrom(o: TraceCtx): void {
    memory.copy(this.ids, o.ids, 24);
    this.format = o.format;
    this.flags = o.flags;
    this.b3Trace = o.b3Trace;
    this.b3Span = o.b3Span;
    this.sampled = o.sampled;
  }

  @inline get traceId(): usize {
    return this.ids;
  }
  @inline get spanId(): usize {
    return this.ids + 16;
  }

  /** traceparent value. */
  w3c(p: usize, len: i32): void {
    // version "00" is 55 chars; later versions may append fields after another '-'
    if (len < 55) return;
    if (load<u8>(p + 2) != 0x2d || load<u8>(p + 35) != 0x2d || load<u8>(p + 52) != 0x2d) return;
    if (len > 55 && load<u8>(p + 55) != 0x2d) return;
    if (hexVal(<u32>load<u8>(p)) < 0 || hexVal(<u32>load<u8>(p + 1)) < 0) return;
    if (load<u8>(p) == 0x66 && load<u8>(p + 1) == 0x66) return; // version ff is invalid
    const tmp = heap.alloc(25);
    if (hexDecode(p + 3, tmp, 16) && hexDecode(p + 36, tmp + 16, 8) && hexDecode(p + 53, tmp + 24, 1)) {
      if (!allZero(tmp, 16) && !allZero(tmp + 16, 8)) {
        memory.copy(this.ids, tmp, 24);
        this.flags = <u32>load<u8>(tmp + 24);
        this.format = TRACE_W3C;
      }
    }
    heap.free(tmp);
  }

  /** X-B3-TraceId value (64- or 128-bit). */
  b3TraceId(p: usize, len: i32): void {
    if (this.format == TRACE_W3C) return;
    if (len != 32 && len != 16) return;
    const tmp = heap.alloc(16);
    memory.fill(tmp, 0, 16);
    // a 64-bit id is the low half of the 128-bit one
    if (hexDecode(p, tmp + <usize>(16 - (len >> 1)), len >> 1) && !allZero(tmp, 16)) {
      memory.copy(this.ids, tmp, 16);
      this.b3Trace = true;
      this.settleB3();
    }
    heap.free(tmp);
  }

  /** X-B3-SpanId value. */
  b3SpanId(p: usize, len: i32): void {
    if (this.format == TRACE_W3C || len != 16) return;
    const tmp = heap.alloc(8);
    if (hexDecode(p, tmp, 8) && !allZero(tmp, 8)) {
      memory.copy(this.ids + 16, tmp, 8);
      this.b3Span = true;
      this.settleB3();
    }
    heap.free(tmp);
  }

  /** X-B3-Sampled value ("1"/"0", or "true"/"false" from old clients). */
  b3Sampled(p: usize, len: i32): void {
    if (len < 1) return;
    const c = load<u8>(p);
    this.sampled = c == 0x31 || c == 0x74 ? 1 : 0;
    if (this.format == TRACE_B3) this.flags = <u32>this.sampled;
  }

  /** Single b3 header: {trace}-{span}[-{sampled}[-{parent}]]; "0", "1", "d" alone carry no ids. */
  b3Single(p: usize, len: i32): void {
    if (this.format == TRACE_W3C) return;
    let dash = -1;
    for (let i = 0; i < len; i++) {
      if (load<u8>(p + <usize>i) == 0x2d) {
        dash = i;
        break;
      }
    }
    if (dash != 16 && dash != 32) return;
    if (len < dash + 17) return;
    if (len > dash + 17 && load<u8>(p + <usize>(dash + 17)) != 0x2d) return;
    this.b3TraceId(p, dash);
    this.b3SpanId(p + <usize>dash + 1, 16);
    if (len > dash + 18) {
      const s = load<u8>(p + <usize>(dash + 18));
      this.sampled = s == 0x31 || s == 0x64 ? 1 : 0; // "d" = debug implies sampled
    }
    this.settleB3();
  }

  private settleB3(): void {
    if (this.b3Trace && this.b3Span) {
      this.format = TRACE_B3;
      this.flags = this.sampled > 0 ? 1 : 0;
    }
  }
}
