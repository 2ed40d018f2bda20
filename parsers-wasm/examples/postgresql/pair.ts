// The connection state machine: both directions framed message by message (bodies that are not
// needed are skipped as they stream by, never buffered), frontend messages queued as Items in
// the order the server answers them, backend messages paired with the head of that queue.
//
//   client  [SSLRequest] StartupMessage  p...            Q        P B D E S   P B D E S
//   server  ['N']        R... S... K  Z                  T D* C Z 1 2 t T D* C   ... Z
//
// Pairing rules (the protocol's, §55.2 "Message Flow"):
// - a simple Query is answered by any number of results, then ReadyForQuery;
// - in the extended protocol every Parse/Bind/Describe/Close gets its own completion, Execute
//   ends with CommandComplete, EmptyQueryResponse, PortalSuspended or an error; Sync ends the
//   batch with ReadyForQuery. After an ErrorResponse the server skips every message up to the
//   Sync, so the error goes to the batch's first Execute (that statement failed, whichever of its
//   Parse/Bind/Execute reported it) and the rest of the batch is dropped;
// - NoticeResponse, ParameterStatus and NotificationResponse may come at any time.
// A backend message that cannot answer the head of the queue (its kind does not fit, or it was
// sent before that request) belongs to a request the capture missed: it and everything up to
// the next ReadyForQuery are dropped, never paired with the wrong request.
import { Connection, ByteQueue, OK, NOT_MINE, BROKEN } from "../../common/index";
import {
  SSL_REQUEST, GSSENC_REQUEST, CANCEL_REQUEST, PROTOCOL_3, MAX_STARTUP, frontLenOk, backLenOk,
  F_QUERY, F_PARSE, F_BIND, F_DESCRIBE, F_EXECUTE, F_SYNC, F_CLOSE, F_PASSWORD, F_FUNCTION_CALL, COPY_DATA, COPY_DONE, F_COPY_FAIL,
  B_AUTH, B_PARAMETER_STATUS, B_READY, B_ROW_DESCRIPTION, B_DATA_ROW, B_COMMAND_COMPLETE, B_ERROR, B_NOTICE, B_EMPTY_QUERY,
  B_PARSE_COMPLETE, B_BIND_COMPLETE, B_CLOSE_COMPLETE, B_NO_DATA, B_PARAMETER_DESCRIPTION, B_PORTAL_SUSPENDED,
  B_COPY_IN, B_COPY_OUT, B_COPY_BOTH, B_NOTIFICATION, B_FUNCTION_RESULT, B_KEY_DATA, B_NEGOTIATE_VERSION,
} from "./types";
import { boundaryAt } from "./sniff";
import { Item, K_LOGIN, K_CANCEL } from "./item";
import { writeItem } from "./emit";
import { tagContradicts } from "./sql";

/** Statement text kept per Query/Parse (longer texts are cut; the record says so by length). */
const MAX_TEXT: i32 = 16 << 10;
/** Bytes of Bind/Describe/Close/Execute read for their names (names are ≤ 63 bytes). */
const NAME_PREFIX: i32 = 512;
/** Bytes of CommandComplete/ErrorResponse/NoticeResponse/auth messages read. */
const FIELDS_PREFIX: i32 = 8 << 10;
/** Frontend messages waiting for their responses before the oldest is given up. */
const MAX_PENDING: i32 = 1024;
const MAX_STATEMENTS: i32 = 4096;
/** Statement text remembered per connection, all statements together. */
const MAX_STATEMENT_BYTES: i32 = 1 << 20;
const MAX_PORTALS: i32 = 256;
/** While hunting for a boundary, bytes held before the head byte is given up anyway. */
const HUNT_HOLD: i32 = (64 << 10) + 16;

const PHASE_START: i32 = 0;
const PHASE_TYPED: i32 = 1;

/** A prepared statement, or a portal (a statement bound to parameters). */
class Stmt {
  text: ArrayBuffer | null = null;
  name: string = "";
  unknown: bool = false;
}

function copyBytes(p: usize, n: i32): ArrayBuffer {
  const b = new ArrayBuffer(n < 0 ? 0 : n);
  if (n > 0) memory.copy(changetype<usize>(b), p, <usize>n);
  return b;
}

@inline function textLen(t: ArrayBuffer | null): i32 {
  return t === null ? 0 : t.byteLength;
}

function sameText(t: ArrayBuffer | null, p: usize, n: i32): bool {
  return t !== null && t.byteLength == n && memory.compare(changetype<usize>(t), p, <usize>n) == 0;
}

/** Length of the NUL-terminated string at p[0..n) (n when unterminated). */
function cstrLen(p: usize, n: i32): i32 {
  let i = 0;
  while (i < n && load<u8>(p + <usize>i) != 0) i++;
  return i;
}

function eqStr(p: usize, n: i32, s: string): bool {
  if (n != s.length) return false;
  for (let i = 0; i < n; i++) if (<u32>load<u8>(p + <usize>i) != <u32>s.charCodeAt(i)) return false;
  return true;
}

function name(p: usize, n: i32): string {
  return n <= 0 ? "" : String.UTF8.decodeUnsafe(p, <usize>n, false);
}

export class PgConn extends Connection {
  items: Array<Item> = new Array<Item>();
  head: i32 = 0;
  statements: Map<string, Stmt> = new Map<string, Stmt>();
  portals: Map<string, Stmt> = new Map<string, Stmt>();
  cPhase: i32 = PHASE_START;
  cHunt: bool = false;
  sHunt: bool = false;
  /** An SSLRequest / GSSENCRequest waits for its one-byte answer. */
  sslPending: u32 = 0;
  login: Item | null = null;
  /** Something was decoded or the start was missed: garbage now means a gap, not "not mine". */
  committed: bool = false;
  // request grouping: Parse/Bind/Describe count towards the Execute that follows them
  groupOpen: bool = false;
  groupTs: i64 = 0;
  groupOff: i64 = 0;
  batchExecute: bool = false;
  batchParses: Array<Item> = new Array<Item>();
  // responses
  respOpen: bool = false;
  respOff: i64 = 0;
  dropUntilReady: bool = false;
  copyItem: Item | null = null;
  serverSeen: bool = false;
  /** Bytes of statement text held in `statements`. */
  statementBytes: i32 = 0;
  /**
   * The connection's counters (ABI v2 conn_stats, copied in syncCounters): framing errors (a
   * header that breaks its type's length rule, or a startup packet that is none, where a message
   * must start), answers dropped (a response to a request the capture did not see, or whose
   * command tag contradicts the request it would pair with), bytes dropped while hunting for
   * the next message boundary after a gap or garbage.
   */
  framingErrors: i64 = 0;
  answersDropped: i64 = 0;
  bytesDropped: i64 = 0;

  syncCounters(): void {
    this.errors = this.framingErrors;
    this.drops = this.answersDropped;
    this.droppedBytes = this.bytesDropped;
  }

  onData(dir: i32, q: ByteQueue, ts: i64): i32 {
    return this.frames(dir, q);
  }

  onGap(dir: i32, len: i32, ts: i64): i32 {
    this.committed = true;
    if (dir == 0) {
      this.cHunt = true;
      // a Parse or Bind lost in the gap may have replaced the unnamed statement or portal
      if (this.statements.has("")) {
        this.statementBytes -= textLen(this.statements.get("").text);
        this.statements.delete("");
      }
      if (this.portals.has("")) this.portals.delete("");
      this.groupOpen = false;
      this.batchParses.length = 0;
      this.batchExecute = false;
    } else {
      this.sHunt = true;
      this.sslPending = 0;
      // Once answers have flowed, the answers to everything waiting may be in the gap: never
      // pair across it. Before any (a connection picked up mid-way), requests seen so far are
      // still to be answered.
      if (this.serverSeen) this.flushIncomplete();
      this.copyItem = null;
    }
    return OK;
  }

  onClose(ts: i64): i32 {
    this.flushIncomplete();
    return OK;
  }

  // ---- queue ----

  @inline pending(): i32 {
    return this.items.length - this.head;
  }

  @inline headItem(): Item | null {
    return this.head < this.items.length ? unchecked(this.items[this.head]) : null;
  }

  push(it: Item): void {
    if (this.pending() >= MAX_PENDING) {
      // no answers for too long: the oldest request will not be answered as far as we can tell
      const old = unchecked(this.items[this.head]);
      if (old.record) writeItem(old, -1, 0, true);
      this.head++;
    }
    if (this.head > 64 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    this.items.push(it);
  }

  pop(): void {
    this.head++;
    if (this.head >= this.items.length) {
      this.items.length = 0;
      this.head = 0;
    }
  }

  flushIncomplete(): void {
    for (let i = this.head; i < this.items.length; i++) {
      const it = unchecked(this.items[i]);
      if (it.record) writeItem(it, -1, 0, true);
    }
    this.items.length = 0;
    this.head = 0;
    this.login = null;
    this.respOpen = false;
    this.dropUntilReady = false;
  }

  /**
   * Frames direction `dir`: hunts for a boundary after a gap, reads the startup phase (client)
   * or the one-byte answer to an SSLRequest (server), then typed messages, each handled once the
   * prefix it needs has arrived; the rest of its body is skipped as it streams by.
   */
  frames(dir: i32, q: ByteQueue): i32 {
    if (dir == 1) this.serverSeen = true;
    while (q.avail() > 0) {
      if (dir == 1 && this.sslPending != 0 && !this.sHunt) {
        const st = this.sslAnswer(q);
        if (st < 0) return st;
        if (st > 0) continue;
      }
      if (dir == 0 ? this.cHunt : this.sHunt) {
        const v = boundaryAt(dir, q.ptr(), q.avail());
        if (v == 0 && q.avail() < HUNT_HOLD) return OK;
        if (v <= 0) {
          this.bytesDropped++;
          q.consume(1);
          continue;
        }
        if (dir == 0) {
          this.cHunt = false;
          this.cPhase = q.u8(0) == 0 ? PHASE_START : PHASE_TYPED;
        } else this.sHunt = false;
      }
      if (dir == 0 && this.cPhase == PHASE_START) {
        const st = this.untyped(q);
        if (st <= 0) return st;
        continue;
      }
      if (q.avail() < 5) return OK;
      const t = q.u8(0);
      const len = q.u32be(1);
      if (!(dir == 0 ? frontLenOk(t, len) : backLenOk(t, len))) {
        if (!this.committed) return NOT_MINE;
        this.framingErrors++;
        if (dir == 0) this.cHunt = true;
        else this.sHunt = true;
        continue;
      }
      const whole: i64 = <i64>len + 1;
      const need = dir == 0 ? this.needFront(t, <i32>len) : this.needBack(t, <i32>len);
      if (q.avail() < need) return OK;
      this.committed = true;
      if (dir == 0) this.front(q, t, <i32>len, need);
      else this.back(q, t, <i32>len, need);
      q.consume(need);
      q.skip(whole - <i64>need);
    }
    return OK;
  }

  needFront(t: u32, len: i32): i32 {
    const whole = len + 1;
    let need = 5;
    if (t == F_QUERY) need = 5 + MAX_TEXT + 1;
    else if (t == F_PARSE) need = 5 + MAX_TEXT + NAME_PREFIX;
    else if (t == F_BIND || t == F_DESCRIBE || t == F_CLOSE || t == F_EXECUTE) need = NAME_PREFIX;
    return whole < need ? whole : need;
  }

  /** Startup-phase messages (no type byte). Returns 1 when one was consumed, OK to wait, < 0 to stop. */
  untyped(q: ByteQueue): i32 {
    if (q.avail() < 8) return OK;
    const len = q.u32be(0);
    const code = q.u32be(4);
    const known = code == SSL_REQUEST || code == GSSENC_REQUEST || code == CANCEL_REQUEST || (code & 0xffff0000) == PROTOCOL_3;
    if (len < 8 || len > MAX_STARTUP || !known) {
      // not a startup packet: a typed message (pickup after the startup), or garbage
      if (frontLenOk(q.u8(0), q.u32be(1))) {
        this.cPhase = PHASE_TYPED;
        return 1;
      }
      if (!this.committed) return NOT_MINE;
      this.framingErrors++;
      this.cHunt = true;
      return 1;
    }
    if (q.avail() < <i32>len) return OK;
    this.committed = true;
    const ts = q.headTs();
    const p = q.ptr();
    if (code == SSL_REQUEST || code == GSSENC_REQUEST) {
      const li = this.ensureLogin(ts);
      li.reqBytes += <i64>len;
      this.sslPending = code;
    } else if (code == CANCEL_REQUEST) {
      // answered by nothing (the server closes): written at once; the secret key is not kept
      const it = new Item();
      it.kind = K_CANCEL;
      it.startNs = ts;
      it.reqBytes = <i64>len;
      if (len >= 12) it.backendPid = <i64>q.u32be(8);
      writeItem(it, ts, 0, false);
    } else {
      const li = this.ensureLogin(ts);
      li.reqBytes += <i64>len;
      // parameters: name\0 value\0 ... \0 (credentials never travel here)
      let i = 8;
      const n = <i32>len;
      while (i < n) {
        const kl = cstrLen(p + <usize>i, n - i);
        if (kl == 0) break;
        const v = i + kl + 1;
        if (v >= n) break;
        const vl = cstrLen(p + <usize>v, n - v);
        const kp = p + <usize>i;
        if (eqStr(kp, kl, "user")) li.user = copyBytes(p + <usize>v, vl);
        else if (eqStr(kp, kl, "database")) li.database = copyBytes(p + <usize>v, vl);
        else if (eqStr(kp, kl, "application_name")) li.application = copyBytes(p + <usize>v, vl);
        i = v + vl + 1;
      }
      if (li.database === null && li.user !== null) li.database = li.user; // the server's default
      this.cPhase = PHASE_TYPED;
    }
    q.consume(<i32>len);
    return 1;
  }

  ensureLogin(ts: i64): Item {
    let li = this.login;
    if (li === null) {
      li = new Item();
      li.kind = K_LOGIN;
      li.record = true;
      li.startNs = ts;
      this.login = li;
      this.push(li);
    }
    return li;
  }

  newItem(kind: u32, q: ByteQueue, whole: i32): Item {
    const it = new Item();
    it.kind = kind;
    it.startNs = q.headTs();
    it.reqBytes = <i64>whole;
    if (!this.groupOpen) {
      this.groupOpen = true;
      this.groupTs = it.startNs;
      this.groupOff = q.consumed;
    }
    return it;
  }

  /** The item ends a group of requests (Query, Execute, FunctionCall): it takes the group's start and bytes. */
  closeGroup(it: Item, q: ByteQueue, whole: i32): void {
    it.startNs = this.groupTs;
    it.reqBytes = q.consumed + <i64>whole - this.groupOff;
    it.record = true;
    this.groupOpen = false;
  }

  front(q: ByteQueue, t: u32, len: i32, need: i32): void {
    const p = q.ptr();
    const whole = len + 1;
    switch (t) {
      case F_QUERY: {
        const it = this.newItem(t, q, whole);
        it.text = copyBytes(p + 5, cstrLen(p + 5, need - 5));
        this.closeGroup(it, q, whole);
        this.push(it);
        break;
      }
      case F_PARSE: {
        const it = this.newItem(t, q, whole);
        const nl = cstrLen(p + 5, need - 5);
        const qa = 5 + nl + 1;
        const ql = qa < need ? cstrLen(p + <usize>qa, need - qa) : 0;
        const nm = name(p + 5, nl);
        // drivers re-send the same unnamed statement for every query: keep the copy we have
        let st: Stmt | null = this.statements.has(nm) ? this.statements.get(nm) : null;
        if (st === null || !sameText(st.text, p + <usize>qa, ql)) {
          const old = st;
          st = new Stmt();
          st.name = nm;
          st.text = copyBytes(p + <usize>qa, ql);
          // bounded in number and in bytes: an instance holds many connections
          const held = this.statementBytes - (old !== null ? textLen(old.text) : 0) + ql;
          if ((old !== null || this.statements.size < MAX_STATEMENTS) && held <= MAX_STATEMENT_BYTES) {
            this.statements.set(nm, st);
            this.statementBytes = held;
          } else if (old !== null) {
            this.statements.delete(nm);
            this.statementBytes -= textLen(old.text);
          }
        }
        it.text = st.text;
        it.stmtName = nm;
        this.batchParses.push(it);
        this.push(it);
        break;
      }
      case F_BIND: {
        const it = this.newItem(t, q, whole);
        const pl = cstrLen(p + 5, need - 5);
        const sa = 5 + pl + 1;
        const sl = sa < need ? cstrLen(p + <usize>sa, need - sa) : 0;
        const portal = name(p + 5, pl);
        const stmt = name(p + <usize>sa, sl);
        // a portal points at its statement (a placeholder naming it when it was never seen)
        let bound: Stmt;
        if (this.statements.has(stmt)) bound = this.statements.get(stmt);
        else {
          bound = new Stmt();
          bound.name = stmt;
          bound.unknown = true;
        }
        if (this.portals.has(portal) || this.portals.size < MAX_PORTALS) this.portals.set(portal, bound);
        it.portalName = portal;
        this.push(it);
        break;
      }
      case F_DESCRIBE: {
        const it = this.newItem(t, q, whole);
        it.describeStmt = q.u8(5) == 0x53;
        this.push(it);
        break;
      }
      case F_CLOSE: {
        const it = this.newItem(t, q, whole);
        const nm = name(p + 6, cstrLen(p + 6, need - 6));
        if (q.u8(5) == 0x53) {
          if (this.statements.has(nm)) {
            this.statementBytes -= textLen(this.statements.get(nm).text);
            this.statements.delete(nm);
          }
        } else if (this.portals.has(nm)) this.portals.delete(nm);
        this.push(it);
        break;
      }
      case F_EXECUTE: {
        const it = this.newItem(t, q, whole);
        const portal = name(p + 5, cstrLen(p + 5, need - 5));
        it.portalName = portal;
        if (this.portals.has(portal)) {
          const b = this.portals.get(portal);
          it.text = b.text;
          it.stmtName = b.name;
          it.unknownStmt = b.unknown;
        } else it.unknownStmt = true;
        this.closeGroup(it, q, whole);
        this.batchExecute = true;
        this.push(it);
        break;
      }
      case F_FUNCTION_CALL: {
        const it = this.newItem(t, q, whole);
        this.closeGroup(it, q, whole);
        this.push(it);
        break;
      }
      case F_SYNC: {
        const it = this.newItem(t, q, whole);
        // a batch that executes nothing prepares: its Parses are the requests worth recording
        if (!this.batchExecute) for (let i = 0; i < this.batchParses.length; i++) unchecked(this.batchParses[i]).record = true;
        this.batchParses.length = 0;
        this.batchExecute = false;
        this.groupOpen = false;
        this.push(it);
        break;
      }
      case F_PASSWORD: {
        // password / SASL / GSS messages: counted, never read
        const li = this.login;
        if (li !== null) li.reqBytes += <i64>whole;
        break;
      }
      case COPY_DATA:
      case COPY_DONE:
      case F_COPY_FAIL: {
        const c = this.copyItem;
        if (c !== null) c.reqBytes += <i64>whole;
        break;
      }
      default:
        break; // Flush, Terminate: nothing to answer
    }
  }

  // ---- server → client ----

  /** The one-byte answer to an SSLRequest / GSSENCRequest: 1 consumed, 0 not an answer, < 0 stop. */
  sslAnswer(q: ByteQueue): i32 {
    const b = q.u8(0);
    const li = this.login;
    if (b == 0x4e) {
      if (li !== null) {
        if (this.sslPending == SSL_REQUEST) li.sslRefused = true;
        else li.gssRefused = true;
      }
      this.sslPending = 0;
      q.consume(1);
      return 1;
    }
    if (b == 0x53 || b == 0x47) {
      // TLS or GSSAPI encryption follows: nothing more can be read on this connection
      if (li !== null) {
        li.tls = true;
        writeItem(li, q.headTs(), 1, false);
        this.login = null;
        this.items.length = 0;
        this.head = 0;
      }
      q.consume(1);
      return BROKEN;
    }
    this.sslPending = 0; // an old server answering with an ErrorResponse: read it as such
    return 0;
  }

  needBack(t: u32, len: i32): i32 {
    const whole = len + 1;
    let need = 5;
    if (t == B_COMMAND_COMPLETE || t == B_ERROR || t == B_NOTICE) need = 5 + FIELDS_PREFIX;
    else if (t == B_AUTH || t == B_PARAMETER_STATUS) need = NAME_PREFIX;
    else if (t == B_READY) need = 6;
    return whole < need ? whole : need;
  }

  /**
   * A ReadyForQuery (at `ts`) ended an answer we could not pair. When the batch at the head of
   * the queue was complete (its Sync / Query / FunctionCall sent) before it, that ReadyForQuery
   * may have been its end: a client that waits for ReadyForQuery sends nothing in between. Its
   * requests are written incomplete rather than left at the head, where they would make every
   * later answer look foreign.
   */
  abandonAnswered(ts: i64): void {
    let term = -1;
    for (let i = this.head; i < this.items.length; i++) {
      const k = unchecked(this.items[i]).kind;
      if (k == F_SYNC || k == F_QUERY || k == F_FUNCTION_CALL) {
        term = i;
        break;
      }
    }
    if (term < 0 || unchecked(this.items[term]).startNs > ts) return;
    for (let i = this.head; i <= term; i++) {
      const it = unchecked(this.items[i]);
      if (it.record) writeItem(it, -1, 0, true);
    }
    this.head = term + 1;
    if (this.head >= this.items.length) {
      this.items.length = 0;
      this.head = 0;
    }
    this.respOpen = false;
    this.copyItem = null;
  }

  /** Whether backend message `t` can be (part of) the answer to `h`. */
  fits(h: Item, t: u32): bool {
    switch (h.kind) {
      case K_LOGIN:
        return t == B_AUTH || t == B_KEY_DATA || t == B_READY || t == B_ERROR || t == B_NEGOTIATE_VERSION;
      case F_PARSE:
        return t == B_PARSE_COMPLETE || t == B_ERROR;
      case F_BIND:
        return t == B_BIND_COMPLETE || t == B_ERROR;
      case F_CLOSE:
        return t == B_CLOSE_COMPLETE || t == B_ERROR;
      case F_DESCRIBE:
        return t == B_ROW_DESCRIPTION || t == B_NO_DATA || t == B_ERROR || (h.describeStmt && t == B_PARAMETER_DESCRIPTION);
      case F_SYNC:
        return t == B_READY || t == B_ERROR;
      case F_EXECUTE:
        return t == B_DATA_ROW || t == B_COMMAND_COMPLETE || t == B_EMPTY_QUERY || t == B_PORTAL_SUSPENDED || t == B_ERROR ||
          t == B_COPY_IN || t == B_COPY_OUT || t == B_COPY_BOTH || t == COPY_DATA || t == COPY_DONE;
      case F_QUERY:
        return t == B_ROW_DESCRIPTION || t == B_DATA_ROW || t == B_COMMAND_COMPLETE || t == B_EMPTY_QUERY || t == B_ERROR || t == B_READY ||
          t == B_COPY_IN || t == B_COPY_OUT || t == B_COPY_BOTH || t == COPY_DATA || t == COPY_DONE;
      case F_FUNCTION_CALL:
        return t == B_FUNCTION_RESULT || t == B_READY || t == B_ERROR;
    }
    return false;
  }

  /** Writes `it` answered now (the response ends at stream offset `end`). */
  finish(it: Item, endNs: i64, end: i64): void {
    writeItem(it, endNs, this.respOpen ? end - this.respOff : 0, false);
    this.respOpen = false;
  }

  back(q: ByteQueue, t: u32, len: i32, need: i32): void {
    const p = q.ptr();
    const end = q.consumed + <i64>len + 1;
    // rows and copy data never end a request: no need to look their time up
    const endNs: i64 = t == B_DATA_ROW || t == COPY_DATA ? 0 : q.tsAt(need - 1);
    // asynchronous messages first
    if (t == B_PARAMETER_STATUS) {
      const li = this.login;
      if (li !== null) {
        const kl = cstrLen(p + 5, need - 5);
        const va = 5 + kl + 1;
        if (va < need && eqStr(p + 5, kl, "server_version")) li.serverVersion = copyBytes(p + <usize>va, cstrLen(p + <usize>va, need - va));
      }
      return;
    }
    if (t == B_NOTIFICATION) return;
    if (this.dropUntilReady) {
      if (t == B_READY) {
        this.dropUntilReady = false;
        this.abandonAnswered(q.headTs());
      }
      return;
    }
    const h = this.headItem();
    if (t == B_NOTICE) {
      if (h !== null) {
        h.notices++;
        if (h.noticeCode === null) h.noticeCode = this.field(p, need, 0x43);
      }
      return;
    }
    // (only the first answer to a request can be older than it: later ones follow that one)
    if (h === null || !this.fits(h, t) || (!this.respOpen && q.headTs() < h.startNs)) {
      // an answer to a request the capture did not see
      this.answersDropped++;
      if (t != B_READY) this.dropUntilReady = true;
      else this.abandonAnswered(q.headTs());
      return;
    }
    if (!this.respOpen) {
      this.respOpen = true;
      this.respOff = q.consumed;
    }
    switch (t) {
      case B_AUTH: {
        const code = q.u32be(5);
        if (code == 0) {
          h.authOk = true;
          if (h.authMethod.length == 0) h.authMethod = "trust";
        } else if (code == 3) h.authMethod = "password";
        else if (code == 5) h.authMethod = "md5";
        else if (code == 7) h.authMethod = "gss";
        else if (code == 9) h.authMethod = "sspi";
        else if (code == 2) h.authMethod = "kerberos";
        else if (code == 10) {
          // SASL: the mechanisms the server offers; SCRAM-SHA-256 is what PostgreSQL offers
          const ml = cstrLen(p + 9, need - 9);
          h.authMethod = ml > 0 ? name(p + 9, ml) : "sasl";
        }
        break;
      }
      case B_READY: {
        if (h.kind == K_LOGIN) {
          this.finish(h, endNs, end);
          this.login = null;
          this.pop();
          break;
        }
        // ReadyForQuery ends the batch: everything up to its Sync / Query / FunctionCall
        while (this.head < this.items.length) {
          const it = unchecked(this.items[this.head]);
          this.pop();
          if (it.kind == F_SYNC) break;
          if (it.kind == F_QUERY || it.kind == F_FUNCTION_CALL) {
            this.finish(it, endNs, end);
            break;
          }
          if (it.record) writeItem(it, -1, 0, true);
        }
        this.respOpen = false;
        this.copyItem = null;
        break;
      }
      case B_PARSE_COMPLETE:
        this.pop();
        if (h.record) this.finish(h, endNs, end);
        break;
      case B_BIND_COMPLETE:
      case B_CLOSE_COMPLETE:
      case B_NO_DATA:
        this.pop();
        break;
      case B_ROW_DESCRIPTION:
        if (h.kind == F_DESCRIBE) this.pop();
        break;
      case B_COMMAND_COMPLETE: {
        const text = h.text;
        if (h.statements == 0 && text !== null && tagContradicts(text, p + 5, cstrLen(p + 5, need - 5))) {
          // the answer to another request (one lost in a gap): not this one's
          this.answersDropped++;
          this.dropUntilReady = true;
          break;
        }
        this.tag(h, p, need);
        if (h.kind == F_EXECUTE) {
          this.pop();
          this.finish(h, endNs, end);
          this.copyItem = null;
        }
        break;
      }
      case B_EMPTY_QUERY:
        h.emptyQuery = true;
        if (h.kind == F_EXECUTE) {
          this.pop();
          this.finish(h, endNs, end);
        }
        break;
      case B_PORTAL_SUSPENDED:
        h.suspended = true;
        this.pop();
        this.finish(h, endNs, end);
        break;
      case B_COPY_IN:
      case B_COPY_OUT:
      case B_COPY_BOTH:
        h.copy = t == B_COPY_IN ? 0x69 : t == B_COPY_OUT ? 0x6f : 0x62;
        if (t != B_COPY_OUT) this.copyItem = h;
        break;
      case B_ERROR:
        this.error(h, p, need, endNs, end);
        break;
      default:
        break; // DataRow, CopyData, CopyDone, ParameterDescription, BackendKeyData, FunctionCallResponse
    }
  }

  /** CommandComplete: "INSERT 0 5", "SELECT 3", "CREATE TABLE" → tag without counts, rows. */
  tag(h: Item, p: usize, need: i32): void {
    const n = cstrLen(p + 5, need - 5);
    const s = p + 5;
    let e = n;
    let rows: i64 = -1;
    // strip trailing numeric words; the last one is the row count
    while (e > 0) {
      let k = e;
      while (k > 0 && <u32>load<u8>(s + <usize>k - 1) - 0x30 < 10) k--;
      if (k == e || k == 0 || load<u8>(s + <usize>k - 1) != 0x20) break;
      if (rows < 0) {
        rows = 0;
        for (let i = k; i < e && i < k + 18; i++) rows = rows * 10 + <i64>(load<u8>(s + <usize>i) - 0x30);
      }
      e = k - 1;
    }
    h.tag = copyBytes(s, e);
    h.statements++;
    if (rows >= 0) h.rows = (h.kind == F_QUERY && h.rows > 0 ? h.rows : 0) + rows;
  }

  /** The value of field `code` of an ErrorResponse/NoticeResponse body, or null. */
  field(p: usize, need: i32, code: u32): ArrayBuffer | null {
    let i = 5;
    while (i < need) {
      const f = <u32>load<u8>(p + <usize>i);
      if (f == 0) break;
      const l = cstrLen(p + <usize>i + 1, need - i - 1);
      if (f == code) return copyBytes(p + <usize>i + 1, l);
      i += l + 2;
    }
    return null;
  }

  error(h: Item, p: usize, need: i32, endNs: i64, end: i64): void {
    // the extended protocol's failing statement: the first Execute of the batch, else the
    // message that failed
    let target = h;
    let sync = this.items.length;
    if (h.kind != K_LOGIN && h.kind != F_QUERY && h.kind != F_FUNCTION_CALL) {
      let found = false;
      for (let i = this.head; i < this.items.length; i++) {
        const it = unchecked(this.items[i]);
        if (it.kind == F_SYNC) {
          sync = i;
          break;
        }
        if (!found && it.kind == F_EXECUTE) {
          target = it;
          found = true;
        }
      }
    }
    target.error = true;
    target.sqlstate = this.field(p, need, 0x43);
    let sev = this.field(p, need, 0x56); // V: never localised (9.6+)
    if (sev === null) sev = this.field(p, need, 0x53);
    target.severity = sev;
    target.message = this.field(p, need, 0x4d);
    if (h.kind == F_QUERY || h.kind == F_FUNCTION_CALL) {
      this.copyItem = null; // ReadyForQuery writes it
      return;
    }
    if (h.kind == K_LOGIN) this.login = null;
    // the server skips everything up to the Sync: those requests get no record
    this.head = sync;
    if (this.head >= this.items.length) {
      this.items.length = 0;
      this.head = 0;
    }
    this.finish(target, endNs, end);
    this.copyItem = null;
  }
}
