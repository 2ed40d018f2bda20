// Request/response pairing for HTTP/1.x: a FIFO of requests in order sent (pipelining), each
// answered by the next final response; and the Record each pair becomes.

import { Rec } from "../common/index";
import { Req, MAX_PENDING } from "./types";
import { writeTarget } from "./url";
import { TraceCtx, TRACE_NONE, TRACE_W3C } from "./trace";

export class Pending {
  private ring: StaticArray<Req | null> = new StaticArray<Req | null>(8);
  private first: i32 = 0;
  count: i32 = 0;

  /** A fresh (reset) request at the back of the queue, or null when MAX_PENDING are waiting. */
  push(): Req | null {
    if (this.count == MAX_PENDING) return null;
    if (this.count == this.ring.length) this.grow();
    const cap = this.ring.length;
    const i = (this.first + this.count) & (cap - 1);
    let r = unchecked(this.ring[i]);
    if (r == null) {
      r = new Req();
      unchecked((this.ring[i] = r));
    }
    r.reset();
    this.count++;
    return r;
  }

  /** Oldest waiting request (count > 0). */
  @inline head(): Req {
    return changetype<Req>(unchecked(this.ring[this.first]));
  }

  /** The i-th oldest waiting request (i < count). */
  @inline at(i: i32): Req {
    return changetype<Req>(unchecked(this.ring[(this.first + i) & (this.ring.length - 1)]));
  }

  /** Newest request (count > 0). */
  @inline last(): Req {
    return changetype<Req>(unchecked(this.ring[(this.first + this.count - 1) & (this.ring.length - 1)]));
  }

  /** Takes back the request just pushed (it did not parse). */
  dropLast(): void {
    if (this.count > 0) this.count--;
  }

  pop(): void {
    if (this.count == 0) return;
    this.first = (this.first + 1) & (this.ring.length - 1);
    this.count--;
  }

  private grow(): void {
    const old = this.ring;
    const cap = old.length;
    const next = new StaticArray<Req | null>(cap * 2);
    for (let k = 0; k < cap; k++) unchecked((next[k] = old[(this.first + k) & (cap - 1)]));
    this.ring = next;
    this.first = 0;
  }

  free(): void {
    for (let k = 0; k < this.ring.length; k++) {
      const r = unchecked(this.ring[k]);
      if (r != null) r.free();
    }
  }
}

/**
 * Writes the record of one request. `status` < 0 = no response seen; `incomplete` = the
 * response was not seen to its end (or not at all). reqBytes / respBytes count message body
 * bytes (chunked: the chunk data).
 */
export function emitHttp1(r: Req, status: i32, respBytes: i64, endTs: i64, incomplete: bool, proto: string = "http1"): void {
  Rec.begin(proto);
  Rec.startNs(r.startTs);
  if (status >= 0 && endTs >= r.startTs) Rec.durationNs(endTs - r.startTs);
  Rec.operationRaw(r.method(), r.methodLen);
  Rec.attrRaw("http.request.method", r.method(), r.methodLen);
  if (r.isConnect) {
    Rec.resourceRaw(r.target(), r.targetLen);
  } else {
    writeTarget(r.target(), r.targetLen);
  }
  if (r.hostLen > 0) Rec.attrRaw("server.address", r.host(), r.hostLen);
  Rec.attrStr("network.protocol.version", r.minor == 0 ? "1.0" : "1.1");
  if (status >= 0) {
    Rec.status(<i64>status);
    Rec.error(status >= 500);
    Rec.attrInt("http.response.status_code", <i64>status);
  }
  if (incomplete || status < 0) Rec.incomplete();
  Rec.requestBytes(r.bodyBytes);
  Rec.responseBytes(respBytes);
  writeTrace(r.trace);
  Rec.end();
}

/** Writes Record.trace when the request carried a trace context (shared with HTTP/2). */
export function writeTrace(t: TraceCtx): void {
  if (t.format == TRACE_NONE) return;
  Rec.trace(t.traceId, t.spanId, t.flags, t.format == TRACE_W3C ? "w3c" : "b3");
}
