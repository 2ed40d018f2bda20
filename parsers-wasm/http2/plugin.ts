// HTTP/2 and gRPC plugin entry: the ABI exports and the connection state.
//
// A connection starts in one of three ways, decided by its first bytes:
//   - the client preface (prior knowledge): HTTP/2 frames from the start;
//   - an HTTP/1.1 request with "Upgrade: h2c": the HTTP/1.1 decoder runs until the server answers
//     101 Switching Protocols; the upgraded request becomes stream 1 (RFC 7540 3.2) and the rest
//     of both directions is HTTP/2. A refused upgrade stays HTTP/1.1 (records say `http1`);
//   - anything else that frames cleanly: a connection picked up mid-way (unknown HPACK tables).
export * from "../common/abi";
import { register, Connection, ByteQueue, OK } from "../common/index";
import { H1Parser } from "../http1/frame";
import { requestStart, requestLine, responseStart } from "../http1/sniff";
import { H2Engine } from "./frame";
import { detectHttp2, prefaceMatch } from "./sniff";
import { V_METHOD, V_PATH, V_AUTHORITY } from "./types";

const M_START: i32 = 0;
const M_H1: i32 = 1;
const M_H2: i32 = 2;

class Http2Connection extends Connection {
  mode: i32 = M_START;
  h1: H1Parser | null = null;
  h2: H2Engine | null = null;
  /** The host reported missed bytes before any data: we join a connection mid-way. */
  midway: bool = false;

  private start(dir: i32, q: ByteQueue): void {
    const p = q.ptr();
    const n = q.avail();
    if (dir == 0) {
      if (prefaceMatch(p, n < 24 ? n : 24) && !this.midway) this.h2 = new H2Engine(false, true);
      // picked up mid-way, a whole HTTP/1.1 request line is still HTTP/1.1 (an h2c upgrade
      // the capture started just before); a mere prefix is not enough then
      else if (this.midway ? requestLine(p, n) == 2 : requestStart(p, n) > 0) this.startH1();
      else this.h2 = new H2Engine(true, false);
    } else {
      if (this.midway ? responseStart(p, n) == 2 : responseStart(p, n) > 0) this.startH1();
      else {
        // a server SETTINGS frame first: the connection is starting (the client preface follows)
        const settingsFirst = n >= 9 && q.u8(3) == 4 && q.u8(4) == 0 && q.u32be(5) == 0;
        this.h2 = new H2Engine(this.midway || !settingsFirst, !this.midway);
      }
    }
    if (this.h2 != null) this.mode = M_H2;
  }

  private startH1(): void {
    const h = new H1Parser();
    h.h2cAware = true;
    this.h1 = h;
    this.mode = M_H1;
  }

  /** The server accepted h2c: stream 1 carries the HTTP/1.1 request. */
  private upgrade(h: H1Parser): void {
    const e = new H2Engine(false, true);
    const r = h.upgradeReq;
    if (r != null) {
      const s = e.openStream(1);
      if (s != null) {
        s.set(V_METHOD, r.method(), r.methodLen);
        s.set(V_PATH, r.target(), r.targetLen);
        if (r.hostLen > 0) s.set(V_AUTHORITY, r.host(), r.hostLen);
        s.trace.copyFrom(r.trace);
        s.startTs = r.startTs;
        s.reqBytes = r.bodyBytes;
        s.reqHeaders = true;
        s.reqEnd = true;
        s.upgraded = true;
      }
      e.lastClientSid = 1;
      e.firstClientSid = 1;
    }
    this.h2 = e;
    this.mode = M_H2;
  }

  onData(dir: i32, q: ByteQueue, tsNs: i64): i32 {
    if (this.mode == M_START) this.start(dir, q);
    if (this.mode == M_H1) {
      const h = changetype<H1Parser>(this.h1);
      const st = h.onData(dir, q);
      if (st != OK) return st;
      if (!h.upgraded) return OK;
      this.upgrade(h);
      // whatever followed the 101 (server) and the upgrade request (client) is HTTP/2
      const e = changetype<H2Engine>(this.h2);
      const st1 = e.onData(1, this.q1);
      if (st1 != OK) return st1;
      return e.onData(0, this.q0);
    }
    return changetype<H2Engine>(this.h2).onData(dir, q);
  }

  onGap(dir: i32, len: i32, tsNs: i64): i32 {
    if (this.mode == M_H1) return changetype<H1Parser>(this.h1).onGap(dir, len, tsNs);
    if (this.mode == M_H2) return changetype<H2Engine>(this.h2).onGap(dir, len, tsNs);
    this.midway = true;
    return OK;
  }

  onClose(tsNs: i64): i32 {
    if (this.h1 != null) changetype<H1Parser>(this.h1).onClose(tsNs);
    if (this.h2 != null) changetype<H2Engine>(this.h2).onClose();
    return OK;
  }

  syncCounters(): void {
    let errors: i64 = 0;
    let drops: i64 = 0;
    let bytes: i64 = 0;
    if (this.h1 != null) {
      const h = changetype<H1Parser>(this.h1);
      errors += h.desyncs;
      drops += h.orphans;
      bytes += h.droppedBytes;
    }
    if (this.h2 != null) {
      const e = changetype<H2Engine>(this.h2);
      errors += e.framesBad + e.hpackErrors();
      drops += e.streamsDropped + e.blocksLost;
      bytes += e.droppedBytes;
    }
    this.errors = errors;
    this.drops = drops;
    this.droppedBytes = bytes;
  }

  onFree(): void {
    if (this.h1 != null) changetype<H1Parser>(this.h1).free();
    if (this.h2 != null) changetype<H2Engine>(this.h2).free();
  }
}

register(detectHttp2, (): Connection => new Http2Connection());
