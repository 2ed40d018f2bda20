// HTTP/2 framing (RFC 9113 4-6) as a resumable state machine per direction, and the stream
// bookkeeping it drives. Header blocks (HEADERS/PUSH_PROMISE + CONTINUATION) are buffered and
// decoded whole, always, even for streams we ignore: the HPACK table must see every block.
// DATA payloads are counted (and, for gRPC, their 5-byte message prefixes read), never copied.

import { ByteQueue, OK, LIMIT } from "../common/index";
import { Hpack, HeaderSink, HPACK_ERR } from "./hpack";
import {
  H_METHOD, H_PATH, H_AUTHORITY, H_STATUS, H_CONTENT_TYPE, H_GRPC_STATUS, H_GRPC_MESSAGE, H_TRACEPARENT, H_B3,
  H_B3_TRACEID, H_B3_SPANID, H_B3_SAMPLED, H_HOST,
} from "./hpack-names";
import {
  Stream, T_DATA, T_HEADERS, T_RST_STREAM, T_SETTINGS, T_PUSH_PROMISE, T_GOAWAY, T_CONTINUATION, F_END_STREAM,
  F_END_HEADERS, F_PADDED, F_PRIORITY, F_ACK, MAX_BUFFERED_FRAME, MAX_BLOCK, MAX_STREAMS, V_METHOD, V_PATH,
  V_AUTHORITY, V_GRPC_MESSAGE, StreamTable,
} from "./types";
import { emitStream } from "./pair";
import { prefaceMatch, frameHeaderOk, frameHeaderSane, resyncOffset } from "./sniff";
import { startsWithIgnoreCase } from "../common/index";

// per-direction framer states
const D_PREFACE: i32 = 0; // client: expecting the connection preface (or frames, if picked up mid-way)
const D_HDR: i32 = 1; // expecting a 9-byte frame header
const D_PADLEN: i32 = 2; // DATA: expecting the pad length byte
const D_DATA: i32 = 3; // DATA: `left` payload bytes to go
const D_SKIP: i32 = 4; // skipping `left` bytes (unneeded payload, padding)
const D_PAYLOAD: i32 = 5; // waiting for the whole payload of a buffered frame
const D_RESYNC: i32 = 6; // lost frame sync: wait for a chunk that starts with a frame header

// which part of a stream a header block describes
const P_REQUEST: i32 = 0;
const P_REQ_TRAILERS: i32 = 1;
const P_RESPONSE: i32 = 2;
const P_RESP_TRAILERS: i32 = 3;
const P_IGNORE: i32 = 4;

/** Routes decoded header fields into a stream. */
class BlockSink extends HeaderSink {
  s: Stream | null = null;
  part: i32 = P_IGNORE;
  status: i32 = -1;
  /** Fields of this block that could not be decoded. */
  unknown: i32 = 0;

  start(s: Stream | null, part: i32): void {
    this.s = s;
    this.part = part;
    this.status = -1;
    this.unknown = 0;
  }

  field(id: i32, p: usize, n: i32): void {
    const s = this.s;
    if (s == null) return;
    const part = this.part;
    if (part == P_REQUEST) {
      switch (id) {
        case H_METHOD: s.set(V_METHOD, p, n); break;
        case H_PATH: s.set(V_PATH, p, n); break;
        case H_AUTHORITY: s.set(V_AUTHORITY, p, n); break;
        case H_HOST: s.set(V_AUTHORITY, p, n); break;
        case H_CONTENT_TYPE: if (startsWithIgnoreCase(p, n, "application/grpc")) s.isGrpc = true; break;
        case H_TRACEPARENT: s.trace.w3c(p, n); break;
        case H_B3: s.trace.b3Single(p, n); break;
        case H_B3_TRACEID: s.trace.b3TraceId(p, n); break;
        case H_B3_SPANID: s.trace.b3SpanId(p, n); break;
        case H_B3_SAMPLED: s.trace.b3Sampled(p, n); break;
      }
      return;
    }
    if (part == P_RESPONSE || part == P_RESP_TRAILERS) {
      switch (id) {
        case H_STATUS:
          if (n == 3) {
            const a = <i32>load<u8>(p) - 0x30, b = <i32>load<u8>(p + 1) - 0x30, c = <i32>load<u8>(p + 2) - 0x30;
            if (<u32>a < 10 && <u32>b < 10 && <u32>c < 10) this.status = a * 100 + b * 10 + c;
          }
          break;
        case H_GRPC_STATUS: {
          let v = 0;
          let ok = n > 0 && n <= 9;
          for (let i = 0; i < n && ok; i++) {
            const d = <i32>load<u8>(p + <usize>i) - 0x30;
            if (<u32>d >= 10) ok = false;
            else v = v * 10 + d;
          }
          if (ok) s.grpcStatus = v;
          break;
        }
        case H_GRPC_MESSAGE: s.set(V_GRPC_MESSAGE, p, n); break;
        case H_CONTENT_TYPE: if (startsWithIgnoreCase(p, n, "application/grpc")) s.isGrpc = true; break;
      }
    }
  }

  unknownField(): void {
    this.unknown++;
  }
}

/** One direction's framing state. */
class Dir {
  st: i32 = D_HDR;
  type: u32 = 0;
  flags: u32 = 0;
  sid: u32 = 0;
  len: i32 = 0;
  left: i64 = 0;
  pad: i32 = 0;
  frameTs: i64 = 0;
  /** After the current skip, the DATA frame (with END_STREAM?) ends. */
  dataEnds: bool = false;
  dataStream: Stream | null = null;
  hpack: Hpack;
  // header block being assembled
  block: usize = 0;
  blockCap: i32 = 0;
  blockLen: i32 = 0;
  inBlock: bool = false;
  blockLost: bool = false;
  blockType: u32 = 0;
  blockSid: u32 = 0;
  blockFlags: u32 = 0;
  blockPromised: u32 = 0;
  blockTs: i64 = 0;

  constructor(midStream: bool) {
    this.hpack = new Hpack(midStream);
  }

  append(p: usize, n: i32): bool {
    if (this.blockLen + n > MAX_BLOCK) return false;
    if (this.blockLen + n > this.blockCap) {
      let c = this.blockCap < 1024 ? 1024 : this.blockCap;
      while (c < this.blockLen + n) c <<= 1;
      const nb = heap.alloc(<usize>c);
      if (this.block != 0) {
        memory.copy(nb, this.block, <usize>this.blockLen);
        heap.free(this.block);
      }
      this.block = nb;
      this.blockCap = c;
    }
    memory.copy(this.block + <usize>this.blockLen, p, <usize>n);
    this.blockLen += n;
    return true;
  }

  /** The block was decoded or lost: empty it, giving a large buffer back (a huge block is rare). */
  endBlock(): void {
    this.blockLen = 0;
    if (this.blockCap > BLOCK_KEEP) {
      heap.free(this.block);
      this.block = 0;
      this.blockCap = 0;
    }
  }

  free(): void {
    if (this.block != 0) heap.free(this.block);
    this.block = 0;
    this.hpack.free();
  }
}

/** Header block storage up to this size is kept between blocks; beyond it, it is given back. */
const BLOCK_KEEP: i32 = 64 << 10;

@inline function be32(p: usize): u32 {
  return bswap<u32>(load<u32>(p));
}

export class H2Engine {
  d0: Dir;
  d1: Dir;
  streams: StreamTable = new StreamTable();
  private pool: Stream[] = [];
  private sink: BlockSink = new BlockSink();
  /** Picked up mid-way: streams we never saw open may answer. */
  midStream: bool;
  lastClientSid: u32 = 0;
  firstClientSid: u32 = 0;
  lastPushSid: u32 = 0;
  // counters
  framesBad: i32 = 0;
  droppedBytes: i64 = 0;
  blocksLost: i32 = 0;
  streamsDropped: i32 = 0;
  goaway: bool = false;

  constructor(midStream: bool, clientPreface: bool) {
    this.midStream = midStream;
    this.d0 = new Dir(midStream);
    this.d1 = new Dir(midStream);
    this.d0.st = clientPreface ? D_PREFACE : D_HDR;
  }

  /** HPACK blocks that decoded with errors, both directions (a counter for the host). */
  hpackErrors(): i64 {
    return <i64>this.d0.hpack.errors + <i64>this.d1.hpack.errors;
  }

  @inline private dir(d: i32): Dir {
    return d == 0 ? this.d0 : this.d1;
  }

  /** Creates stream `id` (request seen, or a response to a request from before pickup). */
  openStream(id: u32): Stream | null {
    if (this.streams.size >= MAX_STREAMS) {
      this.streamsDropped++;
      return null;
    }
    const s = this.pool.length > 0 ? this.pool.pop() : new Stream();
    s.reset(id);
    this.streams.add(s);
    return s;
  }

  private closeStream(s: Stream, incomplete: bool): void {
    emitStream(s, incomplete);
    this.streams.remove(s.id);
    if (this.pool.length < 1024) this.pool.push(s);
    else s.free();
  }

  @inline private stream(id: u32): Stream | null {
    return this.streams.find(id);
  }

  onData(d: i32, q: ByteQueue): i32 {
    const D = this.dir(d);
    while (true) {
      const st = D.st;
      if (st == D_HDR) {
        if (q.avail() < 9) return OK;
        if (!frameHeaderSane(q.ptr())) {
          this.lostSync(d, D, q);
          return OK;
        }
        D.len = <i32>q.u24be(0);
        D.type = q.u8(3);
        D.flags = q.u8(4);
        D.sid = q.u32be(5) & 0x7fffffff;
        D.frameTs = q.headTs();
        const hdrEndTs = q.tsAt(8);
        q.consume(9);
        const t = D.type;
        if (t == T_DATA) {
          D.dataStream = this.stream(D.sid);
          D.pad = 0;
          if (D.flags & F_PADDED) {
            D.st = D_PADLEN;
          } else {
            D.left = D.len;
            D.st = D_DATA;
            if (D.len == 0) {
              this.dataDone(d, D, hdrEndTs);
              D.st = D_HDR;
            }
          }
          continue;
        }
        if (D.inBlock && t != T_CONTINUATION) {
          // a header block was interrupted (RFC 9113 6.10 forbids it): its fields are lost
          this.loseBlock(D);
        }
        if (t == T_HEADERS || t == T_PUSH_PROMISE || t == T_CONTINUATION || t == T_RST_STREAM || t == T_GOAWAY || t == T_SETTINGS) {
          if (D.len > MAX_BUFFERED_FRAME) {
            if (t != T_GOAWAY && t != T_SETTINGS) this.loseBlock(D);
            D.left = D.len;
            D.dataEnds = false;
            D.st = D_SKIP;
          } else if (D.len == 0) {
            this.frame(d, D, 0, 0, hdrEndTs);
          } else D.st = D_PAYLOAD;
          continue;
        }
        // PRIORITY, PING, WINDOW_UPDATE, unknown types: nothing we need
        D.left = D.len;
        D.dataEnds = false;
        D.st = D.len > 0 ? D_SKIP : D_HDR;
        continue;
      }
      if (st == D_DATA) {
        const a = q.avail();
        if (a == 0) return OK;
        const n = <i64>a < D.left ? a : <i32>D.left;
        const ts = q.tsAt(n - 1);
        const s = D.dataStream;
        if (s != null) {
          if (d == 0) {
            s.reqBytes += n;
            s.reqMsgs.feed(q.ptr(), n);
          } else {
            s.respBytes += n;
            s.respMsgs.feed(q.ptr(), n);
          }
        }
        q.consume(n);
        D.left -= n;
        if (D.left > 0) return OK;
        if (D.pad > 0) {
          D.left = D.pad;
          D.dataEnds = true;
          D.st = D_SKIP;
        } else {
          this.dataDone(d, D, ts);
          D.st = D_HDR;
        }
        continue;
      }
      if (st == D_PAYLOAD) {
        if (q.avail() < D.len) {
          if (q.avail() > 0 && q.avail() >= q.limit - 16) return LIMIT;
          return OK;
        }
        const ts = q.tsAt(D.len - 1);
        this.frame(d, D, q.ptr(), D.len, ts);
        q.consume(D.len);
        if (D.st == D_PAYLOAD) D.st = D_HDR;
        continue;
      }
      if (st == D_SKIP) {
        const a = q.avail();
        if (a == 0) return OK;
        const n = <i64>a < D.left ? a : <i32>D.left;
        const ts = q.tsAt(n - 1);
        q.consume(n);
        D.left -= n;
        if (D.left > 0) return OK;
        D.st = D_HDR;
        if (D.dataEnds) {
          D.dataEnds = false;
          this.dataDone(d, D, ts);
        }
        continue;
      }
      if (st == D_PADLEN) {
        if (q.avail() < 1) return OK;
        const padLen = <i32>q.u8(0);
        q.consume(1);
        let left = D.len - 1 - padLen;
        if (left < 0) {
          left = 0;
          D.pad = D.len - 1; // malformed padding: skip the frame, count nothing
        } else D.pad = padLen;
        D.left = left;
        D.st = D_DATA;
        if (left == 0) {
          if (D.pad > 0) {
            D.left = D.pad;
            D.dataEnds = true;
            D.st = D_SKIP;
          } else {
            this.dataDone(d, D, q.tsAt(0));
            D.st = D_HDR;
          }
        }
        continue;
      }
      if (st == D_PREFACE) {
        const a = q.avail();
        if (a == 0) return OK;
        const m = a < 24 ? a : 24;
        if (prefaceMatch(q.ptr(), m)) {
          if (a < 24) return OK;
          q.consume(24);
        }
        D.st = D_HDR;
        continue;
      }
      // D_RESYNC: framing resumes where a run of whole, plausible frames starts: at the start
      // of a chunk, or inside it when frames from there end exactly at its end
      const a = q.avail();
      if (a >= 9 && frameHeaderOk(q.ptr())) {
        D.st = D_HDR;
        continue;
      }
      if (a > 0 && a < 9) return OK;
      const at = resyncOffset(q.ptr(), a);
      if (at > 0) {
        this.droppedBytes += at;
        q.consume(at);
        D.st = D_HDR;
        continue;
      }
      this.droppedBytes += a;
      q.consume(a);
      return OK;
    }
  }

  private lostSync(d: i32, D: Dir, q: ByteQueue): void {
    this.framesBad++;
    this.droppedBytes += q.avail();
    q.consume(q.avail());
    this.loseBlock(D);
    D.hpack.forget();
    D.st = D_RESYNC;
  }

  /** The header block in progress is lost: the table may have missed insertions. */
  private loseBlock(D: Dir): void {
    if (D.inBlock || D.st == D_PAYLOAD) {
      this.blocksLost++;
      D.hpack.forget();
      // the stream it belonged to will miss its headers
      const s = this.stream(D.inBlock ? D.blockSid : D.sid);
      if (s != null) {
        if (D === this.d0) s.reqUnknown = true;
        else s.respUnknown = true;
      }
    }
    D.inBlock = false;
    D.endBlock();
  }

  /** END of a DATA frame: stream ends when END_STREAM was set. */
  private dataDone(d: i32, D: Dir, ts: i64): void {
    if ((D.flags & F_END_STREAM) == 0) {
      // a stream still open at close (or reset) lasted at least until its last response frame
      const o = D.dataStream;
      if (d == 1 && o != null && o.respHeaders) o.endTs = ts;
      return;
    }
    const s = D.dataStream;
    D.dataStream = null;
    if (s == null) return;
    this.endStream(d, s, ts);
  }

  private endStream(d: i32, s: Stream, ts: i64): void {
    if (d == 0) {
      s.reqEnd = true;
      return;
    }
    s.respEnd = true;
    s.endTs = ts;
    this.closeStream(s, !s.respHeaders);
  }

  /** A whole buffered frame (HEADERS, PUSH_PROMISE, CONTINUATION, RST_STREAM, SETTINGS, GOAWAY). */
  private frame(d: i32, D: Dir, p: usize, n: i32, lastTs: i64): void {
    const t = D.type;
    if (t == T_HEADERS || t == T_PUSH_PROMISE) {
      let off = 0;
      let end = n;
      if (D.flags & F_PADDED) {
        if (n < 1) return this.badFrame(D);
        end -= <i32>load<u8>(p);
        off = 1;
      }
      if (t == T_HEADERS && (D.flags & F_PRIORITY)) off += 5;
      let promised: u32 = 0;
      if (t == T_PUSH_PROMISE) {
        if (off + 4 > n) return this.badFrame(D);
        promised = be32(p + <usize>off) & 0x7fffffff;
        off += 4;
      }
      if (end < off) return this.badFrame(D);
      D.inBlock = true;
      D.blockLost = false;
      D.blockLen = 0;
      D.blockType = t;
      D.blockSid = D.sid;
      D.blockFlags = D.flags;
      D.blockPromised = promised;
      D.blockTs = D.frameTs;
      if (!D.append(p + <usize>off, end - off)) D.blockLost = true;
      if (D.flags & F_END_HEADERS) this.blockDone(d, D, lastTs);
      return;
    }
    if (t == T_CONTINUATION) {
      if (!D.inBlock || D.sid != D.blockSid) {
        // continuation of a block we did not see begin: its table insertions are lost
        this.blocksLost++;
        D.hpack.forget();
        return;
      }
      if (!D.blockLost && !D.append(p, n)) D.blockLost = true;
      if (D.flags & F_END_HEADERS) this.blockDone(d, D, lastTs);
      return;
    }
    if (t == T_RST_STREAM) {
      if (n < 4) return;
      const s = this.stream(D.sid);
      if (s == null) return;
      s.rstCode = <i64>be32(p);
      if (s.endTs < s.startTs || !s.respEnd) s.endTs = lastTs;
      this.closeStream(s, !(s.respEnd && s.respHeaders));
      return;
    }
    if (t == T_GOAWAY) {
      if (n < 8) return;
      this.goaway = true;
      const last = be32(p) & 0x7fffffff;
      // streams the sender will never process: initiated by the receiver, above last
      // collect first: closing streams reshuffles the table
      const doomed: Stream[] = [];
      for (let i = 0; i < this.streams.slots; i++) {
        const s = this.streams.slot(i);
        if (s == null || s.id <= last || s.respHeaders) continue;
        const clientInitiated = (s.id & 1) == 1;
        if ((d == 1 && clientInitiated) || (d == 0 && !clientInitiated)) doomed.push(s);
      }
      doomed.sort((a: Stream, b: Stream): i32 => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
      for (let i = 0; i < doomed.length; i++) this.closeStream(unchecked(doomed[i]), true);
      return;
    }
    if (t == T_SETTINGS) {
      if ((D.flags & F_ACK) != 0) return;
      // SETTINGS_HEADER_TABLE_SIZE bounds the peer's encoder; the encoder still signals the size
      // it uses with a table size update, which is what the decoder follows.
      return;
    }
  }

  private badFrame(D: Dir): void {
    this.framesBad++;
    this.loseBlock(D);
  }

  /** A complete header block: decode it (always) and apply it to its stream. */
  private blockDone(d: i32, D: Dir, lastTs: i64): void {
    D.inBlock = false;
    const sid = D.blockSid;
    let s: Stream | null = null;
    let part = P_IGNORE;
    if (D.blockType == T_PUSH_PROMISE) {
      // request headers of a pushed stream, encoded by the server's encoder
      if (d == 1 && D.blockPromised != 0 && !this.streams.has(D.blockPromised)) {
        s = this.openStream(D.blockPromised);
        if (s != null) {
          s.pushed = true;
          s.startTs = D.blockTs;
          s.reqEnd = true;
          if (D.blockPromised > this.lastPushSid) this.lastPushSid = D.blockPromised;
        }
        part = P_REQUEST;
      }
    } else if (d == 0) {
      s = this.stream(sid);
      if (s != null) part = s.reqHeaders ? P_REQ_TRAILERS : P_REQUEST;
      else if ((sid & 1) == 1 && (sid > this.lastClientSid || this.lastClientSid == 0)) {
        s = this.openStream(sid);
        if (s != null) {
          s.startTs = D.blockTs;
          part = P_REQUEST;
        }
        this.lastClientSid = sid;
        if (this.firstClientSid == 0) this.firstClientSid = sid;
      }
    } else {
      s = this.stream(sid);
      if (s == null && this.midStream && sid != 0 && (this.firstClientSid == 0 || sid < this.firstClientSid || (sid & 1) == 0)) {
        // a stream opened before we started watching: the request is unknown
        s = this.openStream(sid);
        if (s != null) {
          s.startTs = D.blockTs;
          s.reqUnknown = true;
        }
      }
      if (s != null) part = s.respHeaders ? P_RESP_TRAILERS : P_RESPONSE;
    }
    if (D.blockLost) {
      this.blocksLost++;
      D.hpack.forget();
      if (s != null) {
        if (part <= P_REQ_TRAILERS) s.reqUnknown = true;
        else s.respUnknown = true;
      }
    } else {
      this.sink.start(s, part);
      const r = D.hpack.decode(D.block, D.blockLen, this.sink);
      if (s != null && (r == HPACK_ERR || this.sink.unknown > 0)) {
        s.unknownFields += this.sink.unknown;
        if (part <= P_REQ_TRAILERS) s.reqUnknown = true;
        else s.respUnknown = true;
      }
    }
    D.endBlock();
    if (s == null) return;
    if (part == P_REQUEST) s.reqHeaders = true;
    if (part == P_RESPONSE) {
      const status = this.sink.status;
      if (status >= 100 && status < 200 && !D.blockLost) return; // interim response (e.g. 103)
      s.status = status;
      s.respHeaders = true;
      s.endTs = lastTs;
    }
    if (part == P_RESP_TRAILERS) s.endTs = lastTs;
    if ((D.blockFlags & F_END_STREAM) != 0 && D.blockType == T_HEADERS) {
      if (d == 1) s.respEndHeaders = true;
      this.endStream(d, s, lastTs);
    }
  }

  /** The capture missed `len` bytes of direction d. */
  onGap(d: i32, len: i32, ts: i64): i32 {
    const D = this.dir(d);
    const n = <i64>(len < 0 ? 0 : len);
    if (n > 0 && (D.st == D_DATA || D.st == D_SKIP) && n <= D.left) {
      // the frame boundary is still known: only payload bytes were lost
      if (D.st == D_DATA && D.dataStream != null) {
        const s = changetype<Stream>(D.dataStream);
        if (d == 0) {
          s.reqBytes += n;
          s.reqMsgs.lose(<i32>n);
        } else {
          s.respBytes += n;
          s.respMsgs.lose(<i32>n);
        }
      }
      D.left -= n;
      if (D.left == 0) {
        if (D.st == D_DATA && D.pad > 0) {
          D.left = D.pad;
          D.dataEnds = true;
          D.st = D_SKIP;
        } else {
          D.st = D_HDR;
          if (D.dataEnds || D.type == T_DATA) {
            D.dataEnds = false;
            this.dataDone(d, D, ts);
          }
        }
      }
      return OK;
    }
    this.framesBad++;
    this.loseBlock(D);
    D.hpack.forget();
    if (D.dataStream != null) {
      const s = changetype<Stream>(D.dataStream);
      if (d == 0) s.reqMsgs.lose(-1);
      else s.respMsgs.lose(-1);
    }
    D.dataStream = null;
    D.st = D_RESYNC;
    return OK;
  }

  onClose(): i32 {
    // oldest first: streams were opened in increasing id order
    const open: Stream[] = [];
    for (let i = 0; i < this.streams.slots; i++) {
      const s = this.streams.slot(i);
      if (s != null) open.push(s);
    }
    open.sort((a: Stream, b: Stream): i32 => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    for (let i = 0; i < open.length; i++) {
      const s = unchecked(open[i]);
      emitStream(s, true);
      s.free();
    }
    this.streams.clear();
    return OK;
  }

  free(): void {
    for (let i = 0; i < this.streams.slots; i++) {
      const s = this.streams.slot(i);
      if (s != null) s.free();
    }
    this.streams.clear();
    for (let i = 0; i < this.pool.length; i++) unchecked(this.pool[i]).free();
    this.pool.length = 0;
    this.d0.free();
    this.d1.free();
  }
}
