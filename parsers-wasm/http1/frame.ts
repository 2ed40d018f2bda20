// HTTP/1.x message framing (RFC 9112): start line, header section, and the body length rules of
// section 6.3, as a resumable state machine per direction over the connection's ByteQueues.
//
//   request   = method SP target SP "HTTP/1." d CRLF *(field CRLF) CRLF [body]
//   response  = "HTTP/1." d SP 3DIGIT SP reason CRLF *(field CRLF) CRLF [body]
//   chunked   = *(hex[;ext] CRLF data CRLF) "0" CRLF *(trailer CRLF) CRLF
//
// Response body length, first rule that applies: HEAD request, 1xx, 204, 304 -> none;
// 2xx to CONNECT -> tunnel; Transfer-Encoding ending in chunked -> chunked; other
// Transfer-Encoding -> until close; Content-Length -> that many; otherwise -> until close.
// Requests: chunked, Content-Length, or no body.
//
// Bodies are counted, never copied: a body split over many chunks costs one consume() per chunk.

import { ByteQueue, OK, NOT_MINE, LIMIT, SWITCHED, eqIgnoreCase, eqAscii, parseDec, parseHexPrefix, lower } from "../common/index";
import {
  Req, MAX_PENDING, S_START, S_BODY, S_CHUNK_SIZE, S_CHUNK_DATA, S_CHUNK_CRLF, S_TRAILERS, S_UNTIL_CLOSE, S_RESYNC, S_PAUSED,
  S_OPAQUE, MAX_HEADER,
} from "./types";
import { Pending, emitHttp1 } from "./pair";
import { requestStart, requestLine, responseStart } from "./sniff";

/** Lengths of the field names field() looks at (b3, host, upgrade, traceparent, ...). */
const INTERESTING_LENGTHS: i32 = (1 << 2) | (1 << 4) | (1 << 7) | (1 << 11) | (1 << 12) | (1 << 14) | (1 << 17);

/** The subset a response needs (upgrade, content-length, transfer-encoding): responses skip date, host-length names. */
const RESPONSE_LENGTHS: i32 = (1 << 7) | (1 << 14) | (1 << 17);

// Header facts gathered while scanning a header section.
const CL_NONE: i64 = -1;
const CL_BAD: i64 = -2;

export class H1Parser {
  pending: Pending = new Pending();
  /** Set by the HTTP/2 plugin: stop at "Upgrade: h2c" + 101 and hand the connection over. */
  h2cAware: bool = false;
  /** The server switched to HTTP/2 (h2c): `upgradeReq` is stream 1's request. */
  upgraded: bool = false;
  upgradeReq: Req | null = null;

  // request side
  rq: i32 = S_START;
  private rqLeft: i64 = 0;
  private rqScan: i32 = 0;
  private rqReq: Req | null = null;
  private rqPauseAfterBody: bool = false;
  /** The request side is paused for the answer to a CONNECT or an Upgrade request. */
  private rqAwaitSwitch: bool = false;
  // response side
  rs: i32 = S_START;
  private rsLeft: i64 = 0;
  private rsScan: i32 = 0;
  private rsReq: Req | null = null;
  private rsStatus: i32 = 0;
  private rsBytes: i64 = 0;
  private rsLastTs: i64 = 0;

  // scratch filled by scanHeaders()
  private hCL: i64 = CL_NONE;
  private hTE: bool = false;
  private hChunked: bool = false;
  private hH2c: bool = false;
  private hUpgrade: bool = false;
  private hWs: bool = false;

  /** Messages decoded so far (garbage before the first one means "not HTTP/1"). */
  decoded: i32 = 0;
  /** Counters: responses without a request, bytes dropped while resynchronising. */
  orphans: i32 = 0;
  droppedBytes: i64 = 0;
  desyncs: i32 = 0;
  /** Requests written as incomplete because MAX_PENDING were waiting. */
  evicted: i32 = 0;
  /**
   * While resynchronising: bytes held from earlier chunks (a possible start line cut by the
   * chunk's end). Bytes that arrive next begin at this offset, a candidate start of its own.
   */
  private rqHeld: i32 = 0;
  private rsHeld: i32 = 0;
  /** Responses paired with requests; the client was seen to send a request before the previous response. */
  private paired: i32 = 0;
  private pipelined: bool = false;
  /** Response bytes were lost on a connection that does not pipeline (see onGap). */
  private rsAfterGap: bool = false;

  free(): void {
    this.pending.free();
  }

  onData(dir: i32, q: ByteQueue): i32 {
    return dir == 0 ? this.requests(q) : this.responses(q);
  }

  // ---------------------------------------------------------------- requests

  private requests(q: ByteQueue): i32 {
    while (true) {
      const st = this.rq;
      if (st == S_START) {
        skipEmptyLines(q);
        const a = q.avail();
        if (a == 0) return OK;
        if (this.h2cAware && a >= 3 && q.startsWith(0, "PRI")) {
          this.rq = S_PAUSED; // the HTTP/2 preface: the HTTP/2 layer reads it
          return OK;
        }
        const hend = headerEnd(q.ptr(), a, this.rqScan);
        if (hend < 0) {
          if (a > MAX_HEADER || requestStart(q.ptr(), a) == 0) return this.badRequest(q);
          this.rqScan = resumeAt;
          return OK;
        }
        this.rqScan = 0;
        if (this.pending.count == MAX_PENDING) this.evictOldest();
        const r = this.pending.push();
        if (r == null) return LIMIT;
        if (!this.parseRequest(q.ptr(), hend, r)) {
          this.pending.dropLast();
          return this.badRequest(q);
        }
        r.startTs = q.headTs();
        q.consume(hend);
        this.decoded++;
        this.rqReq = r;
        // After a CONNECT or an Upgrade request the client's next bytes may be another protocol:
        // they wait for the answer (2xx / 101: switched; anything else: HTTP/1 goes on).
        this.rqPauseAfterBody = r.isConnect || r.upgradeAny;
        if (this.hChunked) this.rq = S_CHUNK_SIZE;
        else if (this.hCL > 0) {
          this.rq = S_BODY;
          this.rqLeft = this.hCL;
        } else this.requestDone();
        continue;
      }
      if (st == S_BODY || st == S_CHUNK_DATA) {
        const a = q.avail();
        if (a == 0) return OK;
        const n = <i64>a < this.rqLeft ? a : <i32>this.rqLeft;
        q.consume(n);
        this.rqLeft -= n;
        if (this.rqReq != null) changetype<Req>(this.rqReq).bodyBytes += n;
        if (this.rqLeft == 0) {
          if (st == S_BODY) this.requestDone();
          else this.rq = S_CHUNK_CRLF;
        }
        continue;
      }
      if (st == S_CHUNK_SIZE) {
        const r = chunkSize(q);
        if (r == -1) return OK;
        if (r < -1) {
          this.desyncRequests(q);
          return OK;
        }
        if (r == 0) this.rq = S_TRAILERS;
        else {
          this.rq = S_CHUNK_DATA;
          this.rqLeft = r;
        }
        continue;
      }
      if (st == S_CHUNK_CRLF) {
        const r = chunkCrlf(q);
        if (r == 0) return OK;
        if (r < 0) {
          this.desyncRequests(q);
          return OK;
        }
        this.rq = S_CHUNK_SIZE;
        continue;
      }
      if (st == S_TRAILERS) {
        const r = trailerLine(q);
        if (r == 0) return OK;
        if (r < 0) {
          this.desyncRequests(q);
          return OK;
        }
        if (r == 2) this.requestDone();
        continue;
      }
      if (st == S_RESYNC) {
        const a = q.avail();
        const at = resyncAt(q.ptr(), a, false, this.rqHeld);
        if (at != 0) {
          this.droppedBytes += at < 0 ? a : at;
          q.consume(at < 0 ? a : at);
        }
        if (at >= 0 && requestLine(q.ptr(), q.avail()) == 2) {
          this.rq = S_START;
          this.rqHeld = 0;
          continue;
        }
        this.rqHeld = q.avail(); // a possible start line, held: the next chunk begins after it
        return OK;
      }
      if (st == S_OPAQUE) {
        q.consume(q.avail());
        return OK;
      }
      return OK; // S_PAUSED: bytes wait for the HTTP/2 layer or the answer to the upgrade
    }
  }

  /**
   * MAX_PENDING requests wait: their responses are not coming in order (a response direction
   * held back or lost). The oldest is written as incomplete so the connection keeps decoding;
   * a response that arrives for it later counts as an orphan.
   */
  private evictOldest(): void {
    const r = this.pending.head();
    if (this.rsReq == r) {
      this.rsReq = null;
      this.orphans++;
    }
    emitHttp1(r, -1, 0, 0, true);
    this.pending.pop();
    this.evicted++;
  }

  private requestDone(): void {
    this.rqReq = null;
    if (this.rqPauseAfterBody) {
      this.rqPauseAfterBody = false;
      this.rqAwaitSwitch = true;
      this.rq = S_PAUSED; // nothing more until the server answers the upgrade or CONNECT
    } else this.rq = S_START;
  }

  private badRequest(q: ByteQueue): i32 {
    if (this.decoded == 0 && this.pending.count == 0) return NOT_MINE;
    this.desyncRequests(q);
    return OK;
  }

  private desyncRequests(q: ByteQueue): void {
    this.desyncs++;
    this.droppedBytes += q.avail();
    q.consume(q.avail());
    this.rq = S_RESYNC;
    this.rqReq = null;
    this.rqScan = 0;
    this.rqHeld = 0;
  }

  /** Request line and fields in p[0..n) (n includes the last field's CRLF). */
  private parseRequest(p: usize, n: i32, r: Req): bool {
    // method
    let i = 0;
    while (i < n && load<u8>(p + <usize>i) != 0x20) i++;
    if (i == 0 || i >= n || i > 32) return false;
    const mlen = i;
    for (let k = 0; k < mlen; k++) {
      const c = <u32>load<u8>(p + <usize>k);
      if (c - 0x41 >= 26 && c != 0x2d && c != 0x5f) return false;
    }
    // target
    i++;
    const t = i;
    while (i < n && load<u8>(p + <usize>i) != 0x20 && load<u8>(p + <usize>i) != 0x0d) i++;
    if (i >= n || i == t || load<u8>(p + <usize>i) != 0x20) return false;
    const tlen = i - t;
    i++;
    // version
    if (i + 9 > n || !eqAscii(p + <usize>i, 7, "HTTP/1.")) return false;
    const minor = <i32>load<u8>(p + <usize>i + 7) - 0x30;
    const eol = load<u8>(p + <usize>i + 8);
    if (minor < 0 || minor > 9 || (eol != 0x0d && eol != 0x0a)) return false;
    r.setLine(p, mlen, p + <usize>t, tlen);
    r.minor = minor == 0 ? 0 : 1;
    r.isHead = mlen == 4 && eqAscii(p, 4, "HEAD");
    r.isConnect = mlen == 7 && eqAscii(p, 7, "CONNECT");
    if (!this.scanHeaders(p, nextLF(p, i + 8, n) + 1, n, r)) return false;
    r.upgradeH2c = this.hH2c;
    r.upgradeAny = this.hUpgrade;
    r.upgradeWs = this.hWs;
    if (this.hCL == CL_BAD) return false;
    if (this.hTE && !this.hChunked) return false; // a request body of unknown length (RFC 9112 6.3 rule 4)
    return true;
  }

  /**
   * Scans field lines p[from..n). Fills hCL/hTE/hChunked/hH2c, and for requests (r != null) the
   * host and the trace context. False on a malformed line.
   */
  private scanHeaders(p: usize, from: i32, n: i32, r: Req | null): bool {
    this.hCL = CL_NONE;
    this.hTE = false;
    this.hChunked = false;
    this.hH2c = false;
    this.hUpgrade = false;
    this.hWs = false;
    let i = from;
    const known = p == linesP;
    linesP = 0; // good for this one scan: the queue's bytes move once consumed
    let k = 0;
    if (known) while (k < lineCount && unchecked(lineEnds[k]) < from) k++;
    while (i < n) {
      let e: i32;
      if (known) e = k < lineCount ? unchecked(lineEnds[k++]) : -1;
      else e = nextLF(p, i, n);
      if (e < 0 || e >= n) e = n;
      let le = e;
      if (le > i && load<u8>(p + <usize>le - 1) == 0x0d) le--;
      const c0 = load<u8>(p + <usize>i);
      if (le > i && c0 != 0x20 && c0 != 0x09) {
        let colon = nextByte(p, i, le, COLONS);
        if (colon < 0) colon = le;
        if (colon == le || colon == i) return false;
        let nl = colon - i;
        // tolerate spaces before the colon (lenient), not inside the name
        while (nl > 0 && load<u8>(p + <usize>(i + nl - 1)) == 0x20) nl--;
        if (nl > 17 || ((1 << nl) & (r != null ? INTERESTING_LENGTHS : RESPONSE_LENGTHS)) == 0) {
          i = e + 1;
          continue;
        }
        let vs = colon + 1;
        while (vs < le && (load<u8>(p + <usize>vs) == 0x20 || load<u8>(p + <usize>vs) == 0x09)) vs++;
        let ve = le;
        while (ve > vs && (load<u8>(p + <usize>ve - 1) == 0x20 || load<u8>(p + <usize>ve - 1) == 0x09)) ve--;
        this.field(p + <usize>i, nl, p + <usize>vs, ve - vs, r);
      }
      i = e + 1;
    }
    return true;
  }

  private field(name: usize, nl: i32, v: usize, vl: i32, r: Req | null): void {
    switch (nl) {
      case 2:
        if (r != null && eqIgnoreCase(name, nl, "b3")) r.trace.b3Single(v, vl);
        return;
      case 4:
        if (r != null && r.hostLen == 0 && eqIgnoreCase(name, nl, "host")) r.setHost(v, vl);
        return;
      case 7:
        if (eqIgnoreCase(name, nl, "upgrade")) {
          this.hUpgrade = true;
          if (hasToken(v, vl, "h2c")) this.hH2c = true;
          else if (hasToken(v, vl, "websocket")) this.hWs = true;
        }
        return;
      case 11:
        if (r == null) return;
        if (eqIgnoreCase(name, nl, "traceparent")) r.trace.w3c(v, vl);
        else if (eqIgnoreCase(name, nl, "x-b3-spanid")) r.trace.b3SpanId(v, vl);
        return;
      case 12:
        if (r == null) return;
        if (eqIgnoreCase(name, nl, "x-b3-traceid")) r.trace.b3TraceId(v, vl);
        else if (eqIgnoreCase(name, nl, "x-b3-sampled")) r.trace.b3Sampled(v, vl);
        return;
      case 14:
        if (eqIgnoreCase(name, nl, "content-length")) {
          const cl = parseDec(v, vl);
          // repeated identical values are fine (RFC 9110 8.6); anything else is not
          if (cl < 0 || (this.hCL >= 0 && this.hCL != cl)) this.hCL = CL_BAD;
          else if (this.hCL != CL_BAD) this.hCL = cl;
        }
        return;
      case 17:
        if (eqIgnoreCase(name, nl, "transfer-encoding")) {
          this.hTE = true;
          this.hChunked = lastTokenChunked(v, vl);
        }
        return;
    }
  }

  // ---------------------------------------------------------------- responses

  private responses(q: ByteQueue): i32 {
    this.rsLastTs = q.lastTs;
    while (true) {
      const st = this.rs;
      if (st == S_START) {
        skipEmptyLines(q);
        const a = q.avail();
        if (a == 0) return OK;
        const hend = headerEnd(q.ptr(), a, this.rsScan);
        if (hend < 0) {
          if (a > MAX_HEADER || responseStart(q.ptr(), a) == 0) return this.badResponse(q);
          this.rsScan = resumeAt;
          return OK;
        }
        this.rsScan = 0;
        const p = q.ptr();
        if (responseStart(p, hend) != 2) return this.badResponse(q);
        const status = <i32>(load<u8>(p + 9) - 0x30) * 100 + <i32>(load<u8>(p + 10) - 0x30) * 10 + <i32>(load<u8>(p + 11) - 0x30);
        const le = nextLF(p, 12, hend);
        if (!this.scanHeaders(p, le + 1, hend, null)) return this.badResponse(q);
        const headTs = q.headTs();
        const lastTs = q.tsAt(hend - 1);
        q.consume(hend);
        this.decoded++;
        if (status < 200 && status != 101) continue; // interim (100 Continue, 103 Early Hints)
        if (this.rsAfterGap) {
          // First response after lost response bytes, on a connection seen not to pipeline:
          // it answers the newest request sent before it; older ones lost their responses.
          this.rsAfterGap = false;
          while (this.pending.count > 1 && this.pending.at(1).startTs <= headTs && this.pending.head() != this.rqReq) {
            emitHttp1(this.pending.head(), -1, 0, 0, true);
            this.pending.pop();
          }
        }
        let req: Req | null = this.pending.count > 0 ? this.pending.head() : null;
        // a response older than the oldest waiting request answers a request we never saw
        if (req != null && req.startTs > headTs) req = null;
        if (req != null) {
          // the next request was sent before this response: the client pipelines
          if (this.pending.count > 1 && this.pending.at(1).startTs < headTs) this.pipelined = true;
          this.paired++;
        }
        this.rsReq = req;
        this.rsStatus = status;
        this.rsBytes = 0;
        if (status == 101) {
          if (req != null && req.upgradeH2c && this.h2cAware) {
            this.upgraded = true;
            this.upgradeReq = req;
            this.pending.pop();
            this.rsReq = null;
            this.rs = S_OPAQUE;
            this.rq = S_PAUSED;
            return OK; // the rest of both queues is HTTP/2
          }
          if (req != null && req.upgradeWs) {
            // WebSocket: recognised (the handshake is a `websocket` record), its frames not decoded
            this.finish(lastTs, false, "websocket");
            this.rs = S_OPAQUE;
            this.rq = S_OPAQUE;
            continue;
          }
          // any other protocol (h2c without the HTTP/2 layer, ...): the host detects what follows
          this.finish(lastTs, false);
          this.rs = S_OPAQUE;
          this.rq = S_OPAQUE;
          return SWITCHED;
        }
        if (req != null && this.rq == S_PAUSED && (req.upgradeAny || req.isConnect)) {
          this.rq = S_START; // upgrade refused
          this.rqAwaitSwitch = false;
        }
        if (req != null && req.isConnect && status >= 200 && status < 300) {
          // a tunnel: whatever it carries (HTTP/2, gRPC, TLS, ...) is detected afresh by the host
          this.finish(lastTs, false);
          this.rs = S_OPAQUE;
          this.rq = S_OPAQUE;
          return SWITCHED;
        }
        const noBody = status == 204 || status == 304 || (req != null && req.isHead);
        if (noBody) this.finish(lastTs, false);
        else if (this.hChunked) this.rs = S_CHUNK_SIZE;
        else if (this.hTE) this.rs = S_UNTIL_CLOSE;
        else if (this.hCL == CL_BAD) return this.badResponse(q);
        else if (this.hCL > 0) {
          this.rs = S_BODY;
          this.rsLeft = this.hCL;
        } else if (this.hCL == 0) this.finish(lastTs, false);
        else this.rs = S_UNTIL_CLOSE;
        continue;
      }
      if (st == S_BODY || st == S_CHUNK_DATA) {
        const a = q.avail();
        if (a == 0) return OK;
        const n = <i64>a < this.rsLeft ? a : <i32>this.rsLeft;
        const ts = q.tsAt(n - 1);
        q.consume(n);
        this.rsLeft -= n;
        this.rsBytes += n;
        if (this.rsLeft == 0) {
          if (st == S_BODY) this.finish(ts, false);
          else this.rs = S_CHUNK_CRLF;
        }
        continue;
      }
      if (st == S_CHUNK_SIZE) {
        const r = chunkSize(q);
        if (r == -1) return OK;
        if (r < -1) {
          this.desyncResponses(q);
          return OK;
        }
        if (r == 0) this.rs = S_TRAILERS;
        else {
          this.rs = S_CHUNK_DATA;
          this.rsLeft = r;
        }
        continue;
      }
      if (st == S_CHUNK_CRLF) {
        const r = chunkCrlf(q);
        if (r == 0) return OK;
        if (r < 0) {
          this.desyncResponses(q);
          return OK;
        }
        this.rs = S_CHUNK_SIZE;
        continue;
      }
      if (st == S_TRAILERS) {
        const ts = q.headTs();
        const r = trailerLine(q);
        if (r == 0) return OK;
        if (r < 0) {
          this.desyncResponses(q);
          return OK;
        }
        if (r == 2) this.finish(ts, false);
        continue;
      }
      if (st == S_UNTIL_CLOSE || st == S_OPAQUE) {
        const a = q.avail();
        if (st == S_UNTIL_CLOSE) this.rsBytes += a;
        q.consume(a);
        return OK;
      }
      // S_RESYNC
      const a = q.avail();
      const at = resyncAt(q.ptr(), a, true, this.rsHeld);
      if (at != 0) {
        this.droppedBytes += at < 0 ? a : at;
        q.consume(at < 0 ? a : at);
      }
      if (at >= 0 && responseStart(q.ptr(), q.avail()) == 2) {
        this.rs = S_START;
        this.rsHeld = 0;
        continue;
      }
      this.rsHeld = q.avail();
      return OK;
    }
  }

  /** The response to rsReq is complete (or cut short: incomplete). */
  /** Writes the pair; `proto` names an upgrade's protocol (the WebSocket handshake). */
  private finish(endTs: i64, incomplete: bool, proto: string = "http1"): void {
    const r = this.rsReq;
    if (r != null) {
      emitHttp1(r, this.rsStatus, this.rsBytes, endTs, incomplete, proto);
      this.pending.pop();
      if (this.rqReq == r) this.rqReq = null;
    } else {
      this.orphans++;
    }
    this.rsReq = null;
    this.rs = S_START;
  }

  private badResponse(q: ByteQueue): i32 {
    if (this.decoded == 0 && this.pending.count == 0) return NOT_MINE;
    this.desyncResponses(q);
    return OK;
  }

  /** Lost track of responses: every waiting request may have lost its answer. */
  private desyncResponses(q: ByteQueue): void {
    this.desyncs++;
    this.droppedBytes += q.avail();
    q.consume(q.avail());
    if (this.rsReq != null) this.finish(this.rsLastTs, true);
    this.flushPending();
    this.rs = S_RESYNC;
    this.rsScan = 0;
    this.rsHeld = 0;
  }

  /** Writes every waiting request sent before `before` as incomplete. */
  private flushPending(before: i64 = i64.MAX_VALUE): void {
    while (this.pending.count > 0) {
      const r = this.pending.head();
      if (this.rqReq == r) break; // still being received: its response may come
      if (r.startTs >= before) break;
      emitHttp1(r, -1, 0, 0, true);
      this.pending.pop();
    }
  }

  // ---------------------------------------------------------------- gaps and close

  onGap(dir: i32, len: i32, ts: i64): i32 {
    const n = <i64>(len < 0 ? 0 : len);
    if (dir == 0) {
      const st = this.rq;
      if ((st == S_BODY || st == S_CHUNK_DATA) && n > 0 && n <= this.rqLeft) {
        this.rqLeft -= n;
        if (this.rqReq != null) changetype<Req>(this.rqReq).bodyBytes += n;
        if (this.rqLeft == 0) {
          if (st == S_BODY) this.requestDone();
          else this.rq = S_CHUNK_CRLF;
        }
        return OK;
      }
      if (st == S_OPAQUE || st == S_PAUSED) return OK;
      this.desyncs++;
      this.rq = S_RESYNC;
      this.rqReq = null;
      this.rqScan = 0;
      this.rqHeld = 0;
      return OK;
    }
    const st = this.rs;
    if ((st == S_BODY || st == S_CHUNK_DATA) && n > 0 && n <= this.rsLeft) {
      this.rsLeft -= n;
      this.rsBytes += n;
      this.rsLastTs = ts;
      if (this.rsLeft == 0) {
        if (st == S_BODY) this.finish(ts, false);
        else this.rs = S_CHUNK_CRLF;
      }
      return OK;
    }
    if (st == S_UNTIL_CLOSE) {
      this.rsBytes += n;
      this.rsLastTs = ts;
      return OK;
    }
    if (st == S_OPAQUE) return OK;
    this.desyncs++;
    if (this.rq == S_PAUSED && this.rqAwaitSwitch) {
      // the answer to a CONNECT or Upgrade may have been lost: whether the connection switched
      // is unknown, so the client's side resumes by searching for a request line (bytes of
      // another protocol do not look like one)
      this.rqAwaitSwitch = false;
      this.rq = S_RESYNC;
      this.rqScan = 0;
      this.rqHeld = 0;
    }
    if (this.rsReq != null) this.finish(this.rsLastTs, true);
    if (this.paired >= 2 && !this.pipelined) {
      // requests are answered one at a time: the next response tells which were lost
      this.rsAfterGap = true;
      this.rs = S_RESYNC;
      this.rsScan = 0;
      this.rsHeld = 0;
      return OK;
    }
    // The lost bytes were sent before `ts` (the chunk after the hole, or the cut chunk): a
    // request sent at `ts` or later cannot have been answered in them and keeps waiting.
    this.flushPending(ts);
    this.rs = S_RESYNC;
    this.rsScan = 0;
    this.rsHeld = 0;
    return OK;
  }

  onClose(ts: i64): i32 {
    if (this.rs == S_UNTIL_CLOSE) this.finish(this.rsLastTs, false);
    else if (this.rsReq != null) this.finish(this.rsLastTs, true);
    while (this.pending.count > 0) {
      emitHttp1(this.pending.head(), -1, 0, 0, true);
      this.pending.pop();
    }
    this.rqReq = null;
    return OK;
  }
}

// ---------------------------------------------------------------- helpers

const LFS: u64 = 0x0a0a0a0a0a0a0a0a;
const COLONS: u64 = 0x3a3a3a3a3a3a3a3a;

/** Offset of the first '\n' in p[from..n), or -1. */
@inline function nextLF(p: usize, from: i32, n: i32): i32 {
  return nextByte(p, from, n, LFS);
}

/**
 * Offset of the first byte equal to `splat`'s byte (repeated 8 times) in p[from..n), or -1.
 * Sixteen bytes per step (SIMD), then eight (SWAR: the first match is exact, borrows only run
 * past it), then one.
 */
function nextByte(p: usize, from: i32, n: i32, splat: u64): i32 {
  let i = from;
  const ones: u64 = 0x0101010101010101;
  const highs: u64 = 0x8080808080808080;
  if (i + 16 <= n) {
    const want = i64x2.splat(<i64>splat);
    do {
      const m = i8x16.bitmask(i8x16.eq(v128.load(p + <usize>i), want));
      if (m != 0) return i + <i32>ctz<u32>(m);
      i += 16;
    } while (i + 16 <= n);
  }
  while (i + 8 <= n) {
    const v = load<u64>(p + <usize>i) ^ splat;
    const m = (v - ones) & ~v & highs;
    if (m != 0) return i + <i32>(ctz<u64>(m) >> 3);
    i += 8;
  }
  const c = <u8>splat;
  while (i < n) {
    if (load<u8>(p + <usize>i) == c) return i;
    i++;
  }
  return -1;
}

/**
 * End of a header section in p[0..n): the offset just past the empty line, or -1 (then *resume
 * is where the next search may start: the beginning of the last incomplete line). Accepts CRLF
 * and bare LF line ends.
 */
function headerEnd(p: usize, n: i32, from: i32): i32 {
  let lineStart = from;
  let k = 0;
  linesP = 0;
  while (true) {
    const lf = nextLF(p, lineStart, n);
    if (lf < 0) {
      resumeAt = lineStart;
      return -1;
    }
    if (k < MAX_LINES) unchecked((lineEnds[k] = lf));
    k++;
    const len = lf - lineStart;
    if (lineStart > 0 && (len == 0 || (len == 1 && load<u8>(p + <usize>lineStart) == 0x0d))) {
      // every line end of the section is known: scanHeaders() walks them instead of searching again
      if (from == 0 && k <= MAX_LINES) {
        linesP = p;
        lineCount = k;
      }
      return lf + 1;
    }
    lineStart = lf + 1;
  }
}
let resumeAt: i32 = 0;

/** Line ends ('\n' offsets) of the header section headerEnd() last found at linesP (0 = none). */
const MAX_LINES: i32 = 64;
const lineEnds = new StaticArray<i32>(MAX_LINES);
let lineCount: i32 = 0;
let linesP: usize = 0;

/**
 * Where to resume after lost bytes: the first offset in p[0..n) that is 0 or follows a '\n' and
 * where a request line (`response` false) or a status line begins or may begin (its prefix is
 * all there is). -1 when there is none: every byte can be dropped. Runs only while
 * resynchronising, one pass over the bytes (the SIMD LF search).
 */
function resyncAt(p: usize, n: i32, response: bool, boundary: i32): i32 {
  let i = 0;
  while (i < n) {
    const s = response ? responseStart(p + <usize>i, n - i) : requestLine(p + <usize>i, n - i);
    if (s != 0) return i;
    let next = nextLF(p, i, n);
    next = next < 0 ? n : next + 1;
    // the start of the newest chunk, when it falls inside this line, is a candidate too
    if (boundary > i && boundary < next) next = boundary;
    i = next;
  }
  return -1;
}

/** Drops blank lines before a start line (RFC 9112 2.2 lets a recipient ignore them). */
function skipEmptyLines(q: ByteQueue): void {
  while (q.avail() >= 1) {
    const c = q.u8(0);
    if (c == 0x0a) q.consume(1);
    else if (c == 0x0d && q.avail() >= 2 && q.u8(1) == 0x0a) q.consume(2);
    else return;
  }
}

/** Chunk-size line: the size (>= 0), -1 when more bytes are needed, -2 when malformed. */
function chunkSize(q: ByteQueue): i64 {
  const e = q.findCRLF(0);
  if (e < 0) return q.avail() > 4096 ? -2 : -1;
  const v = parseHexPrefix(q.ptr(), e);
  if (v < 0) return -2;
  q.consume(e + 2);
  return v;
}

/** The CRLF after chunk data: 1 consumed, 0 need more, -1 malformed. */
function chunkCrlf(q: ByteQueue): i32 {
  if (q.avail() < 2) return 0;
  if (q.u8(0) != 0x0d || q.u8(1) != 0x0a) return -1;
  q.consume(2);
  return 1;
}

/** One trailer line: 2 = the empty line ending the message, 1 = a field, 0 = need more, -1 = too long. */
function trailerLine(q: ByteQueue): i32 {
  const e = q.findCRLF(0);
  if (e < 0) return q.avail() > MAX_HEADER ? -1 : 0;
  q.consume(e + 2);
  return e == 0 ? 2 : 1;
}

/** True when the comma-separated list v contains token t (case-insensitive). */
function hasToken(v: usize, n: i32, t: string): bool {
  let i = 0;
  while (i < n) {
    while (i < n && (load<u8>(v + <usize>i) == 0x20 || load<u8>(v + <usize>i) == 0x2c || load<u8>(v + <usize>i) == 0x09)) i++;
    let j = i;
    while (j < n && load<u8>(v + <usize>j) != 0x2c) j++;
    let k = j;
    while (k > i && (load<u8>(v + <usize>k - 1) == 0x20 || load<u8>(v + <usize>k - 1) == 0x09)) k--;
    if (k > i && eqIgnoreCase(v + <usize>i, k - i, t)) return true;
    i = j + 1;
  }
  return false;
}

/** True when the last transfer coding in v is "chunked". */
function lastTokenChunked(v: usize, n: i32): bool {
  let e = n;
  while (e > 0 && (load<u8>(v + <usize>e - 1) == 0x20 || load<u8>(v + <usize>e - 1) == 0x09)) e--;
  if (e < 7) return false;
  if (!eqIgnoreCase(v + <usize>(e - 7), 7, "chunked")) return false;
  if (e == 7) return true;
  const c = lower(<u32>load<u8>(v + <usize>(e - 8)));
  return c == 0x2c || c == 0x20 || c == 0x09;
}
