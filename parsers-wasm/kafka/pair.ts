// KafkaConnection: framing and request/response pairing for one connection.
//
//   message   size:int32 (big-endian) then `size` bytes
//   request   header v1: api_key:int16 api_version:int16 correlation_id:int32 client_id:string
//             header v2: v1 + tagged fields (flexible versions; client_id stays a non-compact
//             nullable string); header v0 (ControlledShutdown v0): no client_id
//   response  header v0: correlation_id:int32    header v1: + tagged fields
//
// Responses do not name their api key: the request with the same correlation id does. The
// broker answers in order on one connection, so requests older than the one answered that are
// still waiting never get a response (written as incomplete). Produce with acks=0 gets no
// response at all and is written as soon as it is sent.
//
// Only the first MAX_BODY_PREFIX bytes of a message are buffered (record batches are skipped
// as they stream by); a response whose tail is still being skipped is written when the tail
// has passed, so its duration runs to its last byte. Produce requests and Fetch responses are
// also walked from their body's first byte to their last as the bytes arrive (api/records.ts),
// counting every batch's records however large the message; such a Fetch response (and a
// Produce with acks=0) is written when its walk is over.
import { Connection, ByteQueue, OK, NOT_MINE } from "../common/index";
import { Reader } from "./reader";
import { KafkaTxn, MAX_BODY_PREFIX, MAX_PENDING, MAX_KNOWN_API_KEY, isFlexible, requestHeaderVersion, responseHeaderVersion } from "./types";
import { decodeRequest, decodeResponse, bodyKnown } from "./api/index";
import { writeRecord } from "./emit";
import { detect } from "./sniff";
import { topicNames } from "./topic-ids";
import { RecordsWalk } from "./api/records";

/** Sizes beyond these are framing errors, not messages. */
const MAX_REQUEST_SIZE: i32 = 256 << 20;
const MAX_RESPONSE_SIZE: i32 = 1 << 30;
/** Queue cap per direction: the host's largest chunk plus a buffered message prefix. */
const QUEUE_LIMIT: i32 = (1 << 20) + MAX_BODY_PREFIX + 64;
/** Desyncs tolerated before any request decoded, before giving the connection up as not Kafka. */
const MAX_EARLY_DESYNC: i32 = 4;

export class KafkaConnection extends Connection {
  /** requests waiting for their response, in the order sent */
  private readonly waiting: KafkaTxn[] = [];
  /** a response fully decoded whose unbuffered tail is still being skipped */
  private deferred: KafkaTxn | null = null;
  private requests: i32 = 0;
  private readonly rd: Reader = new Reader(0, 0);
  /** Per direction: the walk of a Produce request's / Fetch response's records (api/records.ts). */
  private readonly walk0: RecordsWalk = new RecordsWalk();
  private readonly walk1: RecordsWalk = new RecordsWalk();
  /**
   * The connection's counters (ABI v2 conn_stats, copied in syncCounters): framing errors (a size
   * or request header that cannot be a message, where one must start), messages dropped (a
   * response to no request seen, a message cut by a gap before it was decoded) and bytes dropped (garbage cleared after
   * a framing error, chunks passed over while looking for a message start after a gap, the rest
   * of a message cut by a gap).
   */
  desyncs: i64 = 0;
  unmatched: i64 = 0;
  cut: i64 = 0;
  bytesDropped: i64 = 0;
  /** chunks passed over while lost (with desyncs, they give up a connection that never decoded a request) */
  private passed: i32 = 0;
  /**
   * Per direction: lost sync (a gap, or picked up mid-way). Messages start writes, so each
   * chunk's head is checked until one is a plausible message start: a request header detect()
   * claims, or a response whose correlation id a waiting request has. Sizes read elsewhere
   * are not trusted (skipping a garbage size could cost the connection).
   */
  private lost0: bool = false;
  private lost1: bool = false;
  /** Per direction: stream offset just past a message whose buffered prefix is still arriving (-1: none). */
  private partial0: i64 = -1;
  private partial1: i64 = -1;
  /** Per direction, while lost: bytes held waiting to be judged (the next chunk begins after them). */
  private held0: i32 = 0;
  private held1: i32 = 0;

  constructor() {
    super();
    // A partial message (up to MAX_BODY_PREFIX) may be queued when the host hands over its
    // largest chunk (1 MiB): leave room for both, or the queue would refuse a valid stream.
    this.q0.limit = QUEUE_LIMIT;
    this.q1.limit = QUEUE_LIMIT;
  }

  onData(dir: i32, q: ByteQueue, tsNs: i64): i32 {
    if (dir == 0 ? this.lost0 : this.lost1) {
      let s = dir == 0 ? this.requestHead(q) : this.responseHead(q);
      const held = dir == 0 ? this.held0 : this.held1;
      if (s == 0 && held > 0 && held < q.avail()) {
        // the bytes held were not a message start after all: the newest chunk's start may be
        this.bytesDropped += <i64>held;
        q.consume(held);
        s = dir == 0 ? this.requestHead(q) : this.responseHead(q);
      }
      const h = s == 1 ? q.avail() : 0; // need more bytes to judge: held, and where the next chunk begins
      if (dir == 0) this.held0 = h;
      else this.held1 = h;
      if (s == 0) {
        // not a message start: passed over while looking for one (the gap's doing, not an error)
        this.passed++;
        this.bytesDropped += <i64>q.avail();
        q.clear(0);
        return OK;
      }
      if (s == 1) return OK;
      if (dir == 0) this.lost0 = false;
      else this.lost1 = false;
    }
    for (;;) {
      const w = dir == 0 ? this.walk0 : this.walk1;
      if (w.active) {
        if (!w.run(q)) break;
        this.walked(dir, w.txn!, tsNs);
      }
      if (dir == 1 && this.deferred !== null) {
        if (q.skipping() > 0) break;
        const d = this.deferred!;
        d.endNs = tsNs;
        this.deferred = null;
        this.write(d, false);
      }
      if (q.avail() < 4) break;
      const size = <i32>q.u32be(0);
      const bad = dir == 0 ? size < 8 || size > MAX_REQUEST_SIZE : size < 4 || size > MAX_RESPONSE_SIZE;
      if (bad) {
        if (this.desync(q)) return NOT_MINE;
        break;
      }
      const take = size < MAX_BODY_PREFIX ? size : MAX_BODY_PREFIX;
      if (q.avail() < 4 + take) {
        if (dir == 0) this.partial0 = q.consumed + 4 + <i64>size;
        else this.partial1 = q.consumed + 4 + <i64>size;
        break;
      }
      if (dir == 0) this.partial0 = -1;
      else this.partial1 = -1;
      const startNs = q.headTs();
      const endNs = q.tsAt(3 + take);
      let ok = false;
      if (dir == 0) {
        ok = this.request(q, q.ptr() + 4, take, size, startNs, endNs);
      } else {
        ok = this.response(q, q.ptr() + 4, take, size, endNs);
      }
      if (!ok) {
        if (this.desync(q)) return NOT_MINE;
        break;
      }
    }
    return OK;
  }

  syncCounters(): void {
    this.errors = this.desyncs;
    this.drops = this.unmatched + this.cut;
    this.droppedBytes = this.bytesDropped;
  }

  onGap(dir: i32, len: i32, tsNs: i64): i32 {
    const w = dir == 0 ? this.walk0 : this.walk1;
    // a message being walked was decoded and keeps its record (its counts marked inexact): no drop
    const walked = w.active;
    if (walked) {
      // lost inside a message being walked: its count cannot be exact; resume past its end
      w.abort();
      if (dir == 0) this.partial0 = w.end;
      else this.partial1 = w.end;
      this.walked(dir, w.txn!, tsNs);
    }
    if (dir == 1 && this.deferred !== null) {
      // the gap fell in the skipped tail of a response we already read
      const d = this.deferred!;
      d.endNs = tsNs;
      this.deferred = null;
      this.write(d, false);
    }
    // Lost inside a message whose size we know and ended before its end: skip the rest of it
    // and stay in sync (a lost request's response matches nothing; a lost response leaves its
    // request to be written as incomplete). Otherwise look for the next message start.
    const q = this.q(dir);
    const end = dir == 0 ? this.partial0 : this.partial1;
    const lost = dir == 0 ? this.lost0 : this.lost1;
    if (dir == 0) this.partial0 = -1;
    else this.partial1 = -1;
    if (len > 0 && end >= 0 && !lost && q.consumed <= end) {
      // the message cut by the gap is dropped (a request never decoded, or a response whose
      // prefix was still arriving); the rest of a walked one is passed over, not counted
      if (!walked) this.cut++;
      this.bytesDropped += end - q.consumed;
      q.skip(end - q.consumed);
      return OK;
    }
    if (dir == 0) {
      this.lost0 = true;
      this.held0 = 0;
    } else {
      this.lost1 = true;
      this.held1 = 0;
    }
    return OK;
  }

  /** A request header at the head of q: 2 yes, 1 need more bytes, 0 no. */
  private requestHead(q: ByteQueue): i32 {
    const n = q.avail();
    const s = detect(0, q.ptr(), n < 4096 ? n : 4096);
    if (s >= 50) return 2;
    return s > 0 && n < 14 ? 1 : 0;
  }

  /** A response answering a waiting request at the head of q: 2 yes, 1 need more bytes, 0 no. */
  private responseHead(q: ByteQueue): i32 {
    if (q.avail() < 8) return 1;
    const size = <i32>q.u32be(0);
    if (size < 4 || size > MAX_RESPONSE_SIZE) return 0;
    const corr = <i32>q.u32be(4);
    const w = this.waiting;
    for (let i = 0; i < w.length; i++) if (w[i].correlationId == corr) return 2;
    return 0;
  }

  onClose(tsNs: i64): i32 {
    for (let dir = 0; dir < 2; dir++) {
      const w = dir == 0 ? this.walk0 : this.walk1;
      if (!w.active) continue;
      w.abort(); // ended inside the message
      this.walked(dir, w.txn!, tsNs);
    }
    if (this.deferred !== null) {
      const d = this.deferred!;
      d.endNs = tsNs;
      this.deferred = null;
      this.write(d, false);
    }
    while (this.waiting.length > 0) this.write(this.waiting.shift(), true);
    return OK;
  }

  /** Drops the queued bytes after a framing error; true when this is evidently not Kafka. */
  private desync(q: ByteQueue): bool {
    this.desyncs++;
    this.bytesDropped += <i64>q.avail();
    q.clear(0);
    return this.requests == 0 && this.desyncs + <i64>this.passed > <i64>MAX_EARLY_DESYNC;
  }

  /**
   * A walk is over (or given up): a Produce with acks=0 is written now, with its last byte's
   * time; a Fetch response is the deferred one, written by the caller.
   */
  private walked(dir: i32, t: KafkaTxn, tsNs: i64): void {
    if (dir == 0 && t.noResponse) {
      t.endNs = tsNs;
      this.write(t, false);
    }
  }

  private request(q: ByteQueue, p: usize, take: i32, size: i32, startNs: i64, endNs: i64): bool {
    const r = this.rd.reset(p, take);
    const key = r.i16();
    const version = r.i16();
    const corr = r.i32();
    if (key < 0 || key > MAX_KNOWN_API_KEY || version < 0 || version > 30) return false;
    const t = new KafkaTxn();
    t.apiKey = key;
    t.apiVersion = version;
    t.correlationId = corr;
    t.startNs = startNs;
    t.endNs = endNs;
    t.reqBytes = 4 + <i64>size;
    const hv = requestHeaderVersion(key, version);
    if (hv >= 1) t.clientId = r.nullableStr(false);
    if (hv >= 2) r.tags(true);
    if (!r.ok) return false;
    const header = <i32>(r.pos - p);
    t.requestCut = take < size;
    t.requestDecoded = decodeRequest(key, version, isFlexible(key, version), r, t);
    this.requests++;
    // a Produce request's records are counted by a walk of the whole message; others are skipped
    const walked = this.walk0.start(q, t, false, size, header);
    const walking = walked && !this.walk0.run(q);
    if (!walked) q.skip(4 + <i64>size);
    if (t.noResponse) {
      if (!walking) this.write(t, false);
    } else {
      if (this.waiting.length >= MAX_PENDING) this.write(this.waiting.shift(), true);
      this.waiting.push(t);
    }
    return true;
  }

  private response(q: ByteQueue, p: usize, take: i32, size: i32, endNs: i64): bool {
    const r = this.rd.reset(p, take);
    const corr = r.i32();
    let i = 0;
    const w = this.waiting;
    while (i < w.length && w[i].correlationId != corr) i++;
    if (i == w.length) {
      // not a response to anything we saw: a connection picked up mid-way, or a chunk that
      // starts inside a message. Skip it when its size is believable, resync otherwise.
      if (w.length > 0) return false; // the framing is off: a desync
      this.unmatched++;
      q.skip(4 + <i64>size);
      return true;
    }
    // requests sent before this one will not be answered any more
    for (let k = 0; k < i; k++) this.write(w.shift(), true);
    const t = w.shift();
    t.endNs = endNs;
    t.respBytes = 4 + <i64>size;
    const key = t.apiKey;
    const v = t.apiVersion;
    if (responseHeaderVersion(key, v) >= 1) r.tags(true);
    const header = <i32>(r.pos - p);
    t.requestNamed = t.topics.length > 0 || t.topicIds.length > 0;
    t.responseDecoded = decodeResponse(key, v, isFlexible(key, v), r, t, topicNames) || (bodyKnown(key, v) && take < size);
    if (this.walk1.start(q, t, true, size, header)) {
      // a Fetch response's records are counted by a walk of the whole message: written when it is over
      if (this.walk1.run(q)) this.write(t, false);
      else {
        if (this.deferred !== null) this.write(this.deferred!, false);
        this.deferred = t;
      }
      return true;
    }
    q.skip(4 + <i64>size);
    if (q.skipping() > 0) {
      if (this.deferred !== null) this.write(this.deferred!, false);
      this.deferred = t;
    } else {
      this.write(t, false);
    }
    return true;
  }

  private write(t: KafkaTxn, incomplete: bool): void {
    if (t.walking) {
      // the request's walk is not over (its bytes still arriving): the count is not final
      t.walking = false;
      t.recordsUncounted = true;
    }
    writeRecord(t, incomplete, topicNames);
  }
}
