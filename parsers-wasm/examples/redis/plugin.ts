// Redis RESP decoder: the worked example of docs/plugin-abi.md.
//
// Requests are RESP arrays of bulk strings (or inline commands); replies are any RESP2/RESP3
// value. Redis answers in order, so pairing is a FIFO (pipelining is just several requests in
// flight). Each element is handled as soon as its header line (and, for small bulk strings, its
// body) is complete, so messages of any size stream through chunk by chunk; large bulk bodies are
// skipped with q.skip() without being buffered.
//
//   request  *3\r\n $3\r\nSET\r\n $3\r\nkey\r\n $5\r\nvalue\r\n
//   replies  +OK\r\n   -ERR unknown command\r\n   :42\r\n   $5\r\nhello\r\n   *2\r\n...   _\r\n
//
// Record: protocol "redis", operation = command name (upper case), resource = first key (the
// second word) unless redacting, status 0 / 1 (error reply), db.system = "redis",
// db.operation.name, db.query.text (command and arguments, arguments masked when redacting),
// db.response.status_code = the error prefix (ERR, WRONGTYPE, ...), redis.reply_type.

export * from "../../common/abi";
import { register, Connection, ByteQueue, Rec, OK, BROKEN, LIMIT, redacting, parseSignedDec, lower, eqIgnoreCase } from "../../common/index";

/** Longest header line (type byte, length, simple string, error) we wait for. */
const MAX_LINE: i32 = 64 * 1024;
/** Bulk strings up to this size are read (for the command text); longer ones are skipped. */
const MAX_ARG: i32 = 512;
/** Bytes of command text kept per request. */
const MAX_TEXT: i32 = 256;
/** Requests waiting for a reply before the oldest is written as incomplete. */
const MAX_PENDING: i32 = 1024;
/** Nesting depth of aggregate replies. */
const MAX_DEPTH: i32 = 32;

function detect(dir: i32, p: usize, n: i32): i32 {
  const b0 = <u32>load<u8>(p);
  // An array of bulk strings is a request, and just as well a reply (LRANGE, HGETALL): the same
  // score in both directions, so that it never decides which end is the client.
  if (dir == 1 && b0 == 0x2a) return requestArray(p, n);
  if (dir == 0) {
    if (b0 != 0x2a) return inlineCommand(p, n);
    return requestArray(p, n);
  }
  // Replies alone are a weak signal: simple string / error / integer line.
  if ((b0 == 0x2b || b0 == 0x2d || b0 == 0x3a) && n >= 3) {
    for (let i = 1; i < n; i++) {
      const c = <u32>load<u8>(p + <usize>i);
      if (c == 0x0d) return i + 1 < n && load<u8>(p + <usize>i + 1) == 0x0a ? 45 : 20;
      if (c < 0x20 || c > 0x7e) return 0;
    }
    return 20;
  }
  return 0;
}

/**
 * How much of "*<digits>\r\n$" (the shape of a request, and of an array reply) is at p: -1 not
 * that shape, 1 "*" only, 2 digits up to the end, 3 up to the CR, 4 up to the LF, 5 all of it.
 */
function arrayShape(p: usize, n: i32): i32 {
  if (load<u8>(p) != 0x2a) return -1;
  let i = 1;
  while (i < n && i < 12 && <u32>load<u8>(p + <usize>i) - 0x30 < 10) i++;
  if (i == 1) return i < n ? -1 : 1;
  if (i >= n) return 2;
  if (load<u8>(p + <usize>i) != 0x0d) return -1;
  if (i + 1 >= n) return 3;
  if (load<u8>(p + <usize>i + 1) != 0x0a) return -1;
  if (i + 2 >= n) return 4;
  return load<u8>(p + <usize>i + 2) == 0x24 ? 5 : -1;
}

/** An array header at p while resynchronising: 2 yes, 1 a prefix of one (more bytes needed), 0 no. */
function arrayHeader(p: usize, n: i32): i32 {
  const s = arrayShape(p, n);
  return s == 5 ? 2 : s > 0 ? 1 : 0;
}

/** A few bytes of the request shape is already a strong hint. */
function requestArray(p: usize, n: i32): i32 {
  switch (arrayShape(p, n)) {
    case 1: return 30;
    case 2: return 40;
    case 3: return 50;
    case 4: return 60;
    case 5: return 95;
  }
  return 0;
}

/** PING / QUIT / INFO ... typed by hand: a short upper- or lower-case word ending the line. */
function inlineCommand(p: usize, n: i32): i32 {
  let i = 0;
  while (i < n && i < 16 && lower(<u32>load<u8>(p + <usize>i)) - 0x61 < 26) i++;
  if (i >= n) return i < 16 ? 10 : 0; // letters so far: could be a command, ask again
  if (i < 4) return 0;
  const c = <u32>load<u8>(p + <usize>i);
  if (c != 0x0d && c != 0x20) return 0;
  // only a few well-known words, so that text protocols are not claimed
  const w = (lower(<u32>load<u8>(p)) << 24) | (lower(<u32>load<u8>(p + 1)) << 16) | (lower(<u32>load<u8>(p + 2)) << 8) | lower(<u32>load<u8>(p + 3));
  if (w == 0x70696e67 /* ping */ || w == 0x61757468 /* auth */ || w == 0x68656c6c /* hello */ || w == 0x696e666f /* info */) return 55;
  return 0;
}

/** A request waiting for its reply. */
class Pending {
  startNs: i64 = 0;
  bytes: i64 = 0;
  /** Command text (UTF-8, at most MAX_TEXT bytes) and the length of its first word. */
  text: ArrayBuffer = new ArrayBuffer(0);
  cmdLen: i32 = 0;
  keyOff: i32 = -1;
  keyLen: i32 = 0;
}

/** Incremental RESP reader for one direction. */
class Reader {
  /** Remaining elements at each open aggregate level; depth 0 = between messages. */
  remain: StaticArray<i64> = new StaticArray<i64>(MAX_DEPTH);
  depth: i32 = 0;
  inMessage: bool = false;
  /** The request is an inline command (a line of words, not a RESP array). */
  inline: bool = false;
  /** The message's last element is a skipped body still arriving. */
  awaitSkip: bool = false;
  startNs: i64 = 0;
  startOff: i64 = 0;
  /** First element type of a reply ('+', '-', ':', '$', '*', ...). */
  kind: u32 = 0;
  errOff: i32 = 0;
  /** For requests: the text being collected. */
  text: StaticArray<u8> = new StaticArray<u8>(MAX_TEXT);
  textLen: i32 = 0;
  words: i32 = 0;
  /** An AUTH word was seen: the following arguments are credentials. */
  maskRest: bool = false;
  cmdLen: i32 = 0;
  keyOff: i32 = -1;
  keyLen: i32 = 0;
  /** For error replies: the error code word and message start. */
  err: StaticArray<u8> = new StaticArray<u8>(64);
  errLen: i32 = 0;

  reset(): void {
    this.depth = 0;
    this.inMessage = false;
    this.awaitSkip = false;
    this.inline = false;
    this.textLen = 0;
    this.words = 0;
    this.maskRest = false;
    this.cmdLen = 0;
    this.keyOff = -1;
    this.keyLen = 0;
    this.errLen = 0;
    this.kind = 0;
  }

  /** Adds one word (argument) to the request text. */
  addWord(p: usize, n: i32, bulkLen: i64): void {
    const w = this.words++;
    let t = this.textLen;
    if (w > 0 && t < MAX_TEXT) unchecked((this.text[t++] = 0x20));
    const start = t;
    // Credentials are never written, redaction or not: everything after an AUTH word
    // (AUTH user pass, HELLO 3 AUTH user pass, MIGRATE ... AUTH pass).
    const isAuth = p != 0 && n == 4 && eqIgnoreCase(p, 4, "AUTH");
    if ((w >= 1 && redacting()) || this.maskRest) {
      if (t < MAX_TEXT) unchecked((this.text[t++] = 0x3f));
    } else if (p == 0) {
      // skipped large argument
      if (t < MAX_TEXT) unchecked((this.text[t++] = 0x3f));
    } else {
      for (let i = 0; i < n && t < MAX_TEXT; i++) {
        let b = load<u8>(p + <usize>i);
        if (w == 0 && b >= 0x61 && b <= 0x7a) b -= 0x20; // command name upper case
        if (b < 0x20 || b == 0x7f) b = 0x2e;
        unchecked((this.text[t++] = b));
      }
    }
    if (isAuth) this.maskRest = true;
    if (w == 0) this.cmdLen = t - start;
    if (w == 1 && !redacting() && !this.maskRest && p != 0) {
      this.keyOff = start;
      this.keyLen = t - start;
    }
    this.textLen = t;
  }
}

// Resynchronising after lost bytes (a gap, or bytes that are not RESP):
//
//   requests  drop bytes up to a line start (offset 0, after CRLF, or where a chunk began)
//             that begins "*<digits>\r\n$": array headers only start requests.
//   replies   RESP replies nest (an array's elements are lines starting with type bytes too),
//             so a reply cannot be recognised from the middle. Requests sent before the loss
//             are written as incomplete; reply bytes are dropped until exactly one request sent
//             after the loss is waiting (no pipelining in flight), and its reply is taken from
//             the first chunk stamped after that request was sent.
//   Either side's loss resynchronises the replies: a lost request's reply must not be paired
//   with the next one.

class RedisConn extends Connection {
  req: Reader = new Reader();
  rep: Reader = new Reader();
  pending: Array<Pending> = new Array<Pending>();
  head: i32 = 0;
  /** Requests: searching for the next array header; bytes held from earlier chunks. */
  reqLost: bool = false;
  reqHeld: i32 = 0;
  /** Replies: dropped until a request sent after `repLostTs` can be answered. */
  repLost: bool = false;
  repLostTs: i64 = 0;
  // Bytes dropped while resynchronising (droppedBytes) and replies without a request (drops):
  // the Connection's counters, reported to the host.

  onData(dir: i32, q: ByteQueue, ts: i64): i32 {
    return dir == 0 ? this.requests(q) : this.replies(q, ts);
  }

  onGap(dir: i32, len: i32, ts: i64): i32 {
    if (dir == 0) this.loseRequests(ts);
    else this.loseReplies(ts);
    return OK;
  }

  loseRequests(ts: i64): void {
    this.req.reset();
    this.reqLost = true;
    this.reqHeld = 0;
    // the lost requests' replies are still coming: they must not answer later requests
    this.loseReplies(ts);
  }

  loseReplies(ts: i64): void {
    this.rep.reset();
    if (!this.repLost || ts > this.repLostTs) this.repLostTs = ts;
    this.repLost = true;
    this.flushBefore(this.repLostTs, ts);
  }

  /** Requests sent before `before`: their replies may be in lost bytes (cannot tell how many). */
  flushBefore(before: i64, ts: i64): void {
    while (this.head < this.pending.length && unchecked(this.pending[this.head]).startNs < before) {
      this.write(unchecked(this.pending[this.head]), null, ts);
      this.head++;
    }
    if (this.head == this.pending.length) {
      this.pending.length = 0;
      this.head = 0;
    }
  }

  /** Requests: drops bytes before the next array header; true when one is at the head. */
  findRequest(q: ByteQueue): bool {
    const p = q.ptr();
    const n = q.avail();
    let i = 0;
    while (i < n) {
      const s = arrayHeader(p + <usize>i, n - i);
      if (s != 0) {
        this.droppedBytes += i;
        q.consume(i);
        if (s == 2) {
          this.reqLost = false;
          this.reqHeld = 0;
          return true;
        }
        this.reqHeld = q.avail(); // a prefix at the end: the next chunk begins after it
        return false;
      }
      let next = q.findCRLF(i);
      next = next < 0 ? n : next + 2;
      if (this.reqHeld > i && this.reqHeld < next) next = this.reqHeld;
      i = next;
    }
    this.droppedBytes += n;
    q.consume(n);
    this.reqHeld = 0;
    return false;
  }

  /** Replies: true when the reply stream can be taken up again at the head of q. */
  findReply(q: ByteQueue): bool {
    this.flushBefore(this.repLostTs, q.lastTs);
    const waiting = this.pending.length - this.head;
    if (waiting == 1) {
      const pd = unchecked(this.pending[this.head]);
      const off = q.chunkAtOrAfter(pd.startNs);
      if (off >= 0) {
        this.droppedBytes += off;
        q.consume(off);
        this.repLost = false;
        return true;
      }
    }
    this.droppedBytes += q.avail();
    q.consume(q.avail());
    return false;
  }

  onClose(ts: i64): i32 {
    this.flushIncomplete(ts);
    return OK;
  }

  flushIncomplete(ts: i64): void {
    for (let i = this.head; i < this.pending.length; i++) this.write(unchecked(this.pending[i]), null, ts);
    this.pending.length = 0;
    this.head = 0;
  }

  /** Parses as many request elements as are complete. */
  requests(q: ByteQueue): i32 {
    const r = this.req;
    if (this.reqLost && !this.findRequest(q)) return OK;
    if (r.awaitSkip) {
      if (q.skipping() > 0) return OK;
      r.awaitSkip = false;
      if (!this.pushRequest(q)) return LIMIT;
    }
    while (q.avail() > 0) {
      if (!r.inMessage) {
        r.reset();
        r.inMessage = true;
        r.startNs = q.headTs();
        r.startOff = q.consumed;
        r.inline = q.u8(0) != 0x2a;
      }
      if (r.inline) {
        // inline command: one line of words
        const e = q.findCRLF(0);
        if (e < 0) {
          if (q.avail() > MAX_LINE) this.loseRequests(q.lastTs);
          return OK;
        }
        this.inline(q.ptr(), e);
        q.consume(e + 2);
        if (!this.pushRequest(q)) return LIMIT;
        continue;
      }
      const st = this.element(q, r, true);
      if (st < 0) {
        // not RESP where an element should start: search for the next request
        this.loseRequests(q.lastTs);
        if (!this.findRequest(q)) return OK;
        continue;
      }
      if (st != 1) return st;
      if (r.depth == 0) {
        // a large argument is still streaming past: the request ends when it has
        if (q.skipping() > 0) {
          r.awaitSkip = true;
          return OK;
        }
        if (!this.pushRequest(q)) return LIMIT;
      }
    }
    return OK;
  }

  inline(p: usize, n: i32): void {
    let i = 0;
    while (i < n) {
      while (i < n && load<u8>(p + <usize>i) == 0x20) i++;
      let j = i;
      while (j < n && load<u8>(p + <usize>j) != 0x20) j++;
      if (j > i) this.req.addWord(p + <usize>i, j - i, j - i);
      i = j;
    }
  }

  pushRequest(q: ByteQueue): bool {
    const r = this.req;
    r.inMessage = false;
    if (r.words == 0) return true; // empty line / empty array: nothing to pair
    const pd = new Pending();
    pd.startNs = r.startNs;
    pd.bytes = q.consumed - r.startOff;
    const t = new ArrayBuffer(r.textLen);
    memory.copy(changetype<usize>(t), changetype<usize>(r.text), <usize>r.textLen);
    pd.text = t;
    pd.cmdLen = r.cmdLen;
    pd.keyOff = r.keyOff;
    pd.keyLen = r.keyLen;
    if (this.pending.length - this.head >= MAX_PENDING) {
      // no replies for too long: the oldest request will never be answered as far as we know
      this.write(unchecked(this.pending[this.head]), null, r.startNs);
      this.head++;
    }
    if (this.head > 64 && this.head * 2 > this.pending.length) {
      this.pending = this.pending.slice(this.head);
      this.head = 0;
    }
    this.pending.push(pd);
    return true;
  }

  replies(q: ByteQueue, ts: i64): i32 {
    const r = this.rep;
    if (this.repLost && !this.findReply(q)) return OK;
    if (r.awaitSkip) {
      if (q.skipping() > 0) return OK;
      r.awaitSkip = false;
      this.replyDone(q, ts);
    }
    while (q.avail() > 0) {
      if (!r.inMessage) {
        r.reset();
        r.inMessage = true;
        r.startNs = q.headTs();
        r.startOff = q.consumed;
        r.kind = q.u8(0);
      }
      const st = this.element(q, r, false);
      if (st < 0) {
        this.loseReplies(q.lastTs);
        if (!this.findReply(q)) return OK;
        continue;
      }
      if (st != 1) return st;
      if (r.depth == 0) {
        if (q.skipping() > 0) {
          r.awaitSkip = true;
          return OK;
        }
        this.replyDone(q, ts);
      }
    }
    return OK;
  }

  /** A whole reply has passed: pair it with the oldest request. */
  replyDone(q: ByteQueue, ts: i64): void {
    const r = this.rep;
    r.inMessage = false;
    // RESP3 push messages ('>') are not replies to a request.
    if (r.kind == 0x3e) return;
    // a reply with no request (picked up mid-way, pub/sub) is dropped
    if (this.head >= this.pending.length) {
      this.drops++;
      return;
    }
    const pd = unchecked(this.pending[this.head]);
    // a reply that began before the oldest waiting request was sent answers a request we never saw
    if (r.startNs < pd.startNs) {
      this.drops++;
      return;
    }
    this.head++;
    this.write(pd, r, ts, q.consumed - r.startOff);
    if (this.head == this.pending.length) {
      this.pending.length = 0;
      this.head = 0;
    }
  }

  /**
   * Handles one element at the head of `q`. Returns 1 when one was consumed, OK (0) when more
   * bytes are needed, or a negative status.
   */
  element(q: ByteQueue, r: Reader, isReq: bool): i32 {
    const e = q.findCRLF(0);
    if (e < 0) return q.avail() > MAX_LINE ? BROKEN : OK;
    const t = q.u8(0);
    // A request is one flat array of bulk strings (servers refuse anything else): any other
    // element means these are not requests (a reply stream, or a fragment): resynchronise.
    if (isReq && !(t == 0x24 || (t == 0x2a && r.depth == 0))) return BROKEN;
    const p = q.ptr();
    let n: i64 = 0;
    switch (t) {
      case 0x2a: // * array
      case 0x25: // % map (two elements per entry)
      case 0x7e: // ~ set
      case 0x3e: // > push
      case 0x7c: { // | attribute (like a map, followed by the real value)
        n = parseSignedDec(p + 1, e - 1);
        if (n == i64.MIN_VALUE) return BROKEN;
        if (t == 0x25 || t == 0x7c) n *= 2;
        q.consume(e + 2);
        if (t == 0x7c) n += 1; // the attributed value follows
        if (n > 0) {
          if (r.depth >= MAX_DEPTH) return BROKEN;
          unchecked((r.remain[r.depth++] = n));
          return 1;
        }
        break; // empty or null aggregate is a complete element
      }
      case 0x24: // $ bulk string
      case 0x3d: // = verbatim string
      case 0x21: { // ! bulk error
        n = parseSignedDec(p + 1, e - 1);
        if (n == i64.MIN_VALUE) return BROKEN;
        if (n < 0) {
          q.consume(e + 2); // null bulk string
          if (isReq) r.addWord(0, 0, 0);
          break;
        }
        const whole = <i64>(e + 2) + n + 2;
        if (isReq && n <= MAX_ARG) {
          if (<i64>q.avail() < whole) return OK;
          r.addWord(p + <usize>(e + 2), <i32>n, n);
          q.consume(<i32>whole);
        } else if (t == 0x21 && !isReq && n <= 256) {
          if (<i64>q.avail() < whole) return OK;
          this.noteError(r, p + <usize>(e + 2), <i32>n);
          q.consume(<i32>whole);
        } else {
          if (isReq) r.addWord(0, 0, n);
          q.consume(e + 2);
          q.skip(n + 2);
        }
        break;
      }
      case 0x2d: // - simple error
        if (!isReq) this.noteError(r, p + 1, e - 1);
        q.consume(e + 2);
        break;
      case 0x2b: // + simple string
      case 0x3a: // : integer
      case 0x5f: // _ null
      case 0x2c: // , double
      case 0x23: // # boolean
      case 0x28: // ( big number
        if (isReq) r.addWord(p + 1, e - 1, e - 1);
        q.consume(e + 2);
        break;
      default:
        return BROKEN;
    }
    // one element done: pop finished aggregates
    while (r.depth > 0) {
      const d = r.depth - 1;
      const left = unchecked(r.remain[d]) - 1;
      unchecked((r.remain[d] = left));
      if (left > 0) break;
      r.depth--;
    }
    return 1;
  }

  noteError(r: Reader, p: usize, n: i32): void {
    if (r.errLen > 0) return; // first error of an aggregate reply wins
    // error code: the first word when it is upper case (ERR, WRONGTYPE, NOAUTH, ...)
    let k = 0;
    while (k < n && k < 63 && load<u8>(p + <usize>k) != 0x20) {
      unchecked((r.err[k] = load<u8>(p + <usize>k)));
      k++;
    }
    r.errLen = k > 0 ? k : 1;
    if (k == 0) unchecked((r.err[0] = 0x3f));
  }

  write(pd: Pending, r: Reader | null, ts: i64, respBytes: i64 = 0): void {
    const tp = changetype<usize>(pd.text);
    Rec.begin("redis");
    Rec.startNs(pd.startNs);
    Rec.operationRaw(tp, pd.cmdLen);
    if (pd.keyOff >= 0) Rec.resourceRaw(tp + <usize>pd.keyOff, pd.keyLen);
    else Rec.resourceRaw(tp, pd.cmdLen);
    Rec.requestBytes(pd.bytes);
    Rec.attrStr("db.system", "redis");
    Rec.attrRaw("db.operation.name", tp, pd.cmdLen);
    Rec.attrRaw("db.query.text", tp, pd.text.byteLength);
    if (r == null) {
      Rec.incomplete();
    } else {
      Rec.durationNs(ts - pd.startNs);
      Rec.responseBytes(respBytes);
      const isErr = r.errLen > 0 && (r.kind == 0x2d || r.kind == 0x21);
      Rec.status(isErr ? 1 : 0);
      Rec.error(isErr);
      if (r.errLen > 0) Rec.attrRaw("db.response.status_code", changetype<usize>(r.err), r.errLen);
      Rec.attrStr("redis.reply_type", replyType(r.kind));
    }
    Rec.end();
  }
}

function replyType(k: u32): string {
  switch (k) {
    case 0x2b: return "simple";
    case 0x2d: return "error";
    case 0x3a: return "integer";
    case 0x24: return "bulk";
    case 0x2a: return "array";
    case 0x5f: return "null";
    case 0x2c: return "double";
    case 0x23: return "boolean";
    case 0x21: return "bulk_error";
    case 0x3d: return "verbatim";
    case 0x28: return "big_number";
    case 0x25: return "map";
    case 0x7e: return "set";
    case 0x7c: return "attribute";
  }
  return "unknown";
}

register(detect, (): Connection => new RedisConn());
