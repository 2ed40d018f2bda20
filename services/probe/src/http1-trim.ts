// HTTP/1.1 bodies are not published: the probe follows each HTTP/1.1 connection's message framing
// (RFC 9112 section 6) and states body bytes as gaps instead of shipping them. The HTTP/1.1 decoder
// counts bodies and never reads them (parsers-wasm/http1/frame.ts), and it consumes a stated gap
// inside a body of known length (Content-Length, or one chunk's data) without losing its place, so
// every request is still decoded, with its body size, from a few hundred bytes per message.
//
//   event bytes:  HTTP/1.1 200 OK\r\n...\r\n\r\n  1000\r\n  <4096 body bytes>  \r\n0\r\n\r\n
//   published:    ├────────── kept ─────────────────────┤ ├──── gap ───────┤ ├── kept ───┤
//                 DataEvent(payload = head, original_length = head + 4096), DataEvent(tail)
//
// A body that goes on past the event its head came in is declared to the kernel (`onPolicy`: the
// stream offset where it ends, copy-policy.ts): later calls' bytes before that offset are then
// stated as a gap by the kernel instead of copied, and reach `trim` as events without payload. A
// cut never crosses framing the trimmer has not parsed: a call that holds several chunks, or a head
// and its body, is copied whole.
//
// Only exact knowledge trims. A connection is followed only when its first bytes are an HTTP/1.x
// request line; anything unexpected (another protocol, a response before its request, a body
// delimited by close, an Upgrade or CONNECT, a header section over MAX_HEAD, a kernel gap outside a
// body) turns trimming off for that connection for good, and its bytes pass through as captured.
// Timestamps do not move: every piece keeps the moment of the call it came from.

import type { CopyPolicy } from "./copy-policy.js";

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;

/** Longest header section (or chunk-size line) followed; longer ones turn trimming off. */
export const MAX_HEAD = 64 * 1024;

// per-direction state
const S_HEAD = 0; // in a start line + header section (kept)
const S_BODY = 1; // Content-Length body: `left` bytes (trimmed)
const S_CHUNK_SIZE = 2; // chunk-size line (kept)
const S_CHUNK_DATA = 3; // chunk data: `left` bytes (trimmed)
const S_CHUNK_CRLF = 4; // CRLF after chunk data (kept): `left` bytes
const S_TRAILERS = 5; // trailer section after the last chunk (kept)

const DIR_EGRESS = 1;

class DirState {
  st = S_HEAD;
  left = 0;
  /** Bytes of an unfinished header section / chunk-size line / trailer section. */
  acc: Uint8Array | undefined;
  accLen = 0;
  /** Trailer section: bytes of the current line so far. */
  lineLen = 0;
}

/** Bodies declared to the kernel are at least this long past the event their head is in. */
export const DECLARE_MIN = 16 * 1024;

class ConnState {
  off = false;
  /**
   * The connection's policy once followed (its body ends raised as bodies are declared); set
   * exactly while `onPolicy(key, policy)` holds, i.e. while the kernel holds a policy for it.
   */
  policy: CopyPolicy | undefined;
  /** Direction that carries requests (1 egress = client side, 2 ingress = server side); 0 before the first bytes. */
  reqDir = 0;
  readonly d = [new DirState(), new DirState()];
  /** Requests whose responses are still to come: true for HEAD (a response without body). */
  readonly heads: boolean[] = [];
}

export interface TrimStats {
  /** Connections followed as HTTP/1.1. */
  http1_conns: number;
  /** Connections where trimming stopped (or never started) and bytes pass through. */
  passthrough_conns: number;
  /** Body bytes stated as gaps instead of published. */
  trimmed_bytes: number;
  /** Connections not followed because the table was full. */
  table_full: number;
}

/**
 * Cuts HTTP/1.1 body bytes out of data events. `trim` returns the pieces of one event as triples
 * in `pieces`: (offset in the event, bytes kept, bytes stated as a gap after them); each triple
 * becomes one DataEvent. It returns 0 when the event passes through unchanged.
 */
export class Http1Trimmer {
  private readonly conns = new Map<number, ConnState>();
  // The last connection looked up: a native batch holds runs of events of one connection (a
  // request head, then its body; a response in several writes), so most events skip the map.
  private lastKey = -1;
  private last: ConnState | undefined;
  /** Triples (offset, keep, gap) of the last `trim` call, in its first 3 × (returned count)
   *  entries; entries past them are stale (the array is reused, never shortened). */
  readonly pieces: number[] = [];
  readonly stats: TrimStats = { http1_conns: 0, passthrough_conns: 0, trimmed_bytes: 0, table_full: 0 };

  /**
   * @param onPolicy told when a connection's framing is known (a policy: the kernel may state as
   *   gaps the bodies declared in it, the trimmer states them anyway), when a body is declared
   *   (the same policy, an end raised), and when that stops (undefined: trimming gave up, or the
   *   connection is forgotten)
   */
  constructor(private readonly maxConns = 65536, private readonly onPolicy?: (key: number, policy: CopyPolicy | undefined, closedAtMono?: bigint) => void) {}

  get size(): number {
    return this.conns.size;
  }

  /**
   * Forgets a connection (closed, or starting a new byte stream); `closedAtMono`: the kernel's
   * time of its close, when the kernel closed it (passed on to `onFollow`).
   */
  forget(key: number, closedAtMono?: bigint): void {
    const c = this.conns.get(key);
    if (c?.policy) this.onPolicy?.(key, undefined, closedAtMono);
    this.conns.delete(key);
    if (key === this.lastKey) ((this.lastKey = -1), (this.last = undefined));
  }

  /**
   * @param key connection key (unique per probe instance, exact as a number)
   * @param dir 1 egress, 2 ingress
   * @param buf, start, len the event's payload
   * @param orig bytes the event stands for (len < orig: the kernel did not copy the tail)
   * @param seq stream offset of the event's first byte; stream: the kernel's byte stream of the
   *   connection (both as the kernel sent them: they place declared bodies)
   * @returns number of pieces in `this.pieces`, 0 = pass the event through unchanged
   */
  trim(key: number, dir: number, buf: Uint8Array, start: number, len: number, orig: number, seq = 0, stream = 0): number {
    let c = key === this.lastKey ? this.last : this.conns.get(key);
    if (!c) {
      if (this.conns.size >= this.maxConns) {
        this.stats.table_full++;
        return 0;
      }
      c = new ConnState();
      this.conns.set(key, c);
      this.lastKey = key;
      this.last = c;
      // only a connection whose first bytes start a request is followed
      if (!looksLikeRequest(buf, start, len)) {
        c.off = true;
        this.stats.passthrough_conns++;
        return 0;
      }
      c.reqDir = dir;
      this.stats.http1_conns++;
    }
    this.lastKey = key;
    this.last = c;
    if (c.off) return 0;
    this.key = key;
    this.stream = stream;
    const p = this.pieces;
    let np = 0; // entries of `p` written by this call
    const ds = c.d[dir === DIR_EGRESS ? 0 : 1];
    const isReq = dir === c.reqDir;
    let pos = 0; // offset in the event
    let keepFrom = 0;
    let trimmed = 0;
    while (pos < len) {
      const st = ds.st;
      if (st === S_BODY || st === S_CHUNK_DATA) {
        const n = Math.min(ds.left, len - pos);
        // kept bytes before, then a gap of n
        ((p[np] = keepFrom), (p[np + 1] = pos - keepFrom), (p[np + 2] = n), (np += 3));
        trimmed += n;
        pos += n;
        keepFrom = pos;
        ds.left -= n;
        if (ds.left === 0) ds.st = st === S_BODY ? S_HEAD : S_CHUNK_CRLF;
        if (st === S_CHUNK_DATA && ds.left === 0) ds.left = 2;
        continue;
      }
      let used: number;
      if (st === S_HEAD) used = this.head(c, ds, isReq, buf, start + pos, len - pos);
      else if (st === S_CHUNK_SIZE) used = chunkSize(ds, buf, start + pos, len - pos);
      else if (st === S_CHUNK_CRLF) {
        used = Math.min(ds.left, len - pos);
        for (let i = 0; i < used; i++) if (buf[start + pos + i] !== (ds.left - i === 2 ? CR : LF)) used = -1;
        if (used > 0 && (ds.left -= used) === 0) ds.st = S_CHUNK_SIZE;
      } else used = trailers(ds, buf, start + pos, len - pos);
      if (used < 0) return this.giveUp(c);
      pos += used;
    }
    if (orig > len) {
      // a kernel gap: fine inside a body of known length, anything else loses the framing
      const g = orig - len;
      if ((ds.st !== S_BODY && ds.st !== S_CHUNK_DATA) || g > ds.left) return this.giveUp(c);
      ds.left -= g;
      if (ds.left === 0) {
        if (ds.st === S_BODY) ds.st = S_HEAD;
        else ((ds.st = S_CHUNK_CRLF), (ds.left = 2));
      }
      if (keepFrom === len && np) p[np - 1] += g;
      else ((p[np] = keepFrom), (p[np + 1] = len - keepFrom), (p[np + 2] = g), (np += 3));
      keepFrom = len;
    }
    if ((ds.st === S_BODY || ds.st === S_CHUNK_DATA) && ds.left >= DECLARE_MIN && c.policy) {
      // a body that goes on: the kernel may state its bytes in later calls as a gap
      const end = seq + orig + ds.left;
      const d = dir === DIR_EGRESS ? 0 : 1;
      if (end > c.policy.bodyEnd[d]) {
        c.policy.bodyEnd[d] = end;
        this.onPolicy?.(key, c.policy);
      }
    }
    if (trimmed === 0) return 0;
    if (keepFrom < len) ((p[np] = keepFrom), (p[np + 1] = len - keepFrom), (p[np + 2] = 0), (np += 3));
    this.stats.trimmed_bytes += trimmed;
    return np / 3;
  }

  /** The connection of the current `trim` call, and its byte stream. */
  private key = 0;
  private stream = 0;

  private giveUp(c: ConnState): number {
    if (c.policy) {
      c.policy = undefined;
      this.onPolicy?.(this.key, undefined);
    }
    c.off = true;
    c.d[0].acc = c.d[1].acc = undefined;
    this.stats.passthrough_conns++;
    return 0;
  }

  /** Consumes header-section bytes; at its end sets the body state. Returns bytes used, -1 = lost. */
  private head(c: ConnState, ds: DirState, isReq: boolean, buf: Uint8Array, at: number, n: number): number {
    let end: number; // offset just past the header section's empty line
    let used: number;
    if (ds.accLen === 0) {
      // the usual case, a whole header section in one call: one pass finds its end and its fields
      end = scanHead(buf, at, at + n, isReq);
      if (end < 0) {
        if (n > MAX_HEAD || !headPlausible(buf, at, at + n, isReq)) return -1;
        ds.acc ??= new Uint8Array(1024);
        ds.accLen = append(ds, buf, at, n);
        return n;
      }
      used = end - at;
    } else {
      const before = ds.accLen;
      const take = Math.min(n, MAX_HEAD + 4 - before);
      ds.accLen = append(ds, buf, at, take);
      const hb = ds.acc!;
      // only the new bytes (and the 3 before them) can hold the end: linear in the section's size
      end = headEnd(hb, Math.max(0, before - 3), ds.accLen, 0);
      if (end < 0) {
        if (ds.accLen > MAX_HEAD || !headPlausible(hb, 0, ds.accLen, isReq)) return -1;
        return take;
      }
      used = end - before;
      ds.accLen = 0;
      scanHead(hb, 0, end, isReq);
    }
    if (found.bad || !applyHead(c, ds, isReq)) return -1;
    if (!c.policy && isReq) {
      // a complete request head: this connection speaks HTTP/1.x
      c.policy = { bodyEnd: [0, 0], stream: this.stream };
      this.onPolicy?.(this.key, c.policy);
    }
    return used;
  }
}

/** METHOD SP: upper-case letters then a space (or the end of these bytes: more to come). */
function looksLikeRequest(b: Uint8Array, s: number, n: number): boolean {
  let i = 0;
  while (i < n && i < 20 && b[s + i] >= 0x41 && b[s + i] <= 0x5a) i++;
  return i > 0 && (i === n || b[s + i] === SP);
}

/** A complete start line [s, lineEnd) of a request / response: the status (0 for a request), -1 = not HTTP/1.x. */
function startLine(b: Uint8Array, s: number, lineEnd: number, isReq: boolean): number {
  if (isReq) return lineEnd - s >= 14 && b[s + lineEnd - s - 9] === SP && isVersion(b, lineEnd - 8) ? 0 : -1; // METHOD SP target SP HTTP/1.x
  // HTTP/1.x SP 3DIGIT
  if (lineEnd - s < 12 || !isVersion(b, s) || b[s + 8] !== SP) return -1;
  let status = 0;
  for (let i = 9; i < 12; i++) {
    const d = b[s + i] - 0x30;
    if (d < 0 || d > 9) return -1;
    status = status * 10 + d;
  }
  return status;
}

/** Whether the bytes [s, e) of an unfinished header section can still be one (start line checked once complete). */
function headPlausible(b: Uint8Array, s: number, e: number, isReq: boolean): boolean {
  let eol = s;
  while (eol < e && b[eol] !== LF) eol++;
  if (eol === e) return e - s <= 8192;
  return startLine(b, s, eol > s && b[eol - 1] === CR ? eol - 1 : eol, isReq) >= 0;
}

function append(ds: DirState, b: Uint8Array, at: number, n: number): number {
  let acc = ds.acc!;
  if (ds.accLen + n > acc.length) {
    const bigger = new Uint8Array(Math.max(acc.length * 2, ds.accLen + n));
    bigger.set(acc.subarray(0, ds.accLen));
    ds.acc = acc = bigger;
  }
  acc.set(b.subarray(at, at + n), ds.accLen);
  return ds.accLen + n;
}

/**
 * The first LF in [from, to), or -1. A loop, not `indexOf`: header lines are tens of bytes, where
 * Buffer's indexOf (argument checks, then a native call) cost more than the scan, and `b` may be a
 * whole native batch, which indexOf would search past the event's end.
 */
function lfAt(b: Uint8Array, from: number, to: number): number {
  for (let i = from; i < to; i++) if (b[i] === LF) return i;
  return -1;
}

/** Offset just past the first CRLF CRLF (or LF LF) at or after `from` in [lo, hi), or -1. */
function headEnd(b: Uint8Array, from: number, hi: number, lo: number): number {
  for (let i = lfAt(b, Math.max(from, lo), hi); i >= 0; i = lfAt(b, i + 1, hi)) {
    if (i + 1 < hi && b[i + 1] === LF) return i + 2;
    if (i + 2 < hi && b[i + 1] === CR && b[i + 2] === LF) return i + 3;
  }
  return -1;
}

const lower = (c: number) => (c >= 0x41 && c <= 0x5a ? c | 0x20 : c);

/** Case-insensitive: does the line at s start with `name` (lower-case ASCII) followed by ':'? */
function isField(b: Uint8Array, s: number, e: number, name: string): boolean {
  const n = name.length;
  if (e - s <= n || b[s + n] !== 0x3a) return false;
  for (let i = 0; i < n; i++) if (lower(b[s + i]) !== name.charCodeAt(i)) return false;
  return true;
}

/** Whether a field line [s, e) has a value whose last coding is "chunked" (case-insensitive). */
function endsChunked(b: Uint8Array, s: number, e: number): boolean {
  while (e > s && (b[e - 1] === SP || b[e - 1] === 0x09)) e--;
  const w = "chunked";
  if (e - s < w.length) return false;
  for (let i = 0; i < w.length; i++) if (lower(b[e - w.length + i]) !== w.charCodeAt(i)) return false;
  const before = b[e - w.length - 1];
  return before === SP || before === 0x09 || before === 0x2c || before === 0x3a;
}

/** What `scanHead` found in the header section it completed. */
const found = { status: 0, isHead: false, cl: -1, chunked: false, te: false, bad: false };

/**
 * One pass over a header section at `s` (its start line first) within [s, hi): the offset just
 * past its empty line, or -1 when it does not end there yet. The fields that decide the body are
 * left in `found`; `bad` when the section cannot be followed (not HTTP/1.x, CONNECT, Upgrade, a
 * Content-Length that is not one number), told only once the section is complete, as before.
 */
function scanHead(b: Uint8Array, s: number, hi: number, isReq: boolean): number {
  const eol = lfAt(b, s, hi);
  if (eol < 0) return -1;
  const f = found;
  const lineEnd = eol > s && b[eol - 1] === CR ? eol - 1 : eol;
  f.status = startLine(b, s, lineEnd, isReq);
  f.bad = f.status < 0;
  f.isHead = false;
  f.cl = -1;
  f.chunked = false;
  f.te = false;
  if (isReq && !f.bad) {
    f.isHead = b[s] === 0x48 && b[s + 1] === 0x45 && b[s + 2] === 0x41 && b[s + 3] === 0x44 && b[s + 4] === SP;
    if (b[s] === 0x43 && b[s + 1] === 0x4f && b[s + 2] === 0x4e && b[s + 3] === 0x4e) f.bad = true; // CONNECT: a tunnel follows
  }
  for (let ls = eol + 1; ; ) {
    const le = lfAt(b, ls, hi);
    if (le < 0) return -1;
    const e = le > ls && b[le - 1] === CR ? le - 1 : le;
    if (e === ls) return le + 1; // the empty line
    if (!f.bad) {
      const c0 = lower(b[ls]);
      if (c0 === 0x63 && isField(b, ls, e, "content-length")) {
        let v = 0;
        let digits = 0;
        for (let i = ls + 15; i < e; i++) {
          const ch = b[i];
          if (ch === SP || ch === 0x09) continue;
          const d = ch - 0x30;
          if (d < 0 || d > 9) {
            digits = 0;
            break;
          }
          v = v * 10 + d;
          digits++;
        }
        if (!digits || (f.cl >= 0 && f.cl !== v) || v > Number.MAX_SAFE_INTEGER / 10) f.bad = true;
        else f.cl = v;
      } else if (c0 === 0x74 && isField(b, ls, e, "transfer-encoding")) {
        f.te = true;
        f.chunked = endsChunked(b, ls, e);
      } else if (c0 === 0x75 && isField(b, ls, e, "upgrade")) f.bad = true; // another protocol may follow
    }
    ls = le + 1;
  }
}

/** Sets the direction's body state from the complete header section `scanHead` found. false = lost. */
function applyHead(c: ConnState, ds: DirState, isReq: boolean): boolean {
  const { status, isHead, cl, chunked, te } = found;
  if (isReq) {
    c.heads.push(isHead);
    if (c.heads.length > 1024) return false;
    if (te && !chunked) return false; // request body of unknown length
  } else {
    if (c.heads.length === 0) return false; // a response to a request not seen
    if (status >= 100 && status < 200) {
      if (status === 101) return false;
      ds.st = S_HEAD; // interim response: the final one follows for the same request
      return true;
    }
    const head = c.heads.shift()!;
    if (head || status === 204 || status === 304) {
      ds.st = S_HEAD;
      return true;
    }
    if (te && !chunked) return false; // delimited by close: not followed
    if (!te && cl < 0) return false;
  }
  if (chunked) ds.st = S_CHUNK_SIZE;
  else if (cl > 0) ((ds.st = S_BODY), (ds.left = cl));
  else ds.st = S_HEAD;
  return true;
}

function isVersion(b: Uint8Array, s: number): boolean {
  // "HTTP/1.0" or "HTTP/1.1"
  return b[s] === 0x48 && b[s + 1] === 0x54 && b[s + 2] === 0x54 && b[s + 3] === 0x50 && b[s + 4] === 0x2f &&
    b[s + 5] === 0x31 && b[s + 6] === 0x2e && (b[s + 7] === 0x30 || b[s + 7] === 0x31);
}

/** chunk-size [; ext] CRLF (kept). Returns bytes used, -1 = lost. Sets CHUNK_DATA or TRAILERS. */
function chunkSize(ds: DirState, b: Uint8Array, at: number, n: number): number {
  let i = 0;
  while (i < n && b[at + i] !== LF) i++;
  if (i === n) {
    if (ds.accLen + n > 1024) return -1;
    ds.acc ??= new Uint8Array(1024);
    ds.accLen = append(ds, b, at, n);
    return n;
  }
  let line = b;
  let s = at;
  let e = at + i;
  if (ds.accLen) {
    ds.accLen = append(ds, b, at, i);
    line = ds.acc!;
    s = 0;
    e = ds.accLen;
    ds.accLen = 0;
  }
  let v = 0;
  let digits = 0;
  for (let k = s; k < e; k++) {
    const ch = line[k];
    const d = ch >= 0x30 && ch <= 0x39 ? ch - 0x30 : (ch | 0x20) >= 0x61 && (ch | 0x20) <= 0x66 ? (ch | 0x20) - 0x57 : -1;
    if (d < 0) {
      if (ch === CR || ch === 0x3b || ch === SP || ch === 0x09) break;
      return -1;
    }
    v = v * 16 + d;
    if (++digits > 12) return -1;
  }
  if (!digits) return -1;
  if (v === 0) ((ds.st = S_TRAILERS), (ds.lineLen = 0));
  else ((ds.st = S_CHUNK_DATA), (ds.left = v));
  return i + 1;
}

/** Trailer section after the last chunk, up to its empty line (kept). */
function trailers(ds: DirState, b: Uint8Array, at: number, n: number): number {
  for (let i = 0; i < n; i++) {
    const ch = b[at + i];
    if (ch === LF) {
      if (ds.lineLen === 0) {
        ds.st = S_HEAD;
        return i + 1;
      }
      ds.lineLen = 0;
    } else if (ch !== CR) {
      if (++ds.lineLen > MAX_HEAD) return -1;
    }
  }
  return n;
}
