// MysqlConnection: the per-connection state machine. Client packets with sequence id 0 are
// commands; the server's packets that follow (sequence ids counting up from the command's) are
// its response. MySQL answers in order, so pairing is a FIFO of commands.
//
//   phases:  Unknown ──greeting──▶ AwaitLogin ──handshake response──▶ Auth ──OK──▶ Command
//            Unknown ──command (seq 0)──────────────────────────────────────────▶ Command
//                               ──SSL request──▶ AwaitTls ──login, seq 2 (the TLS plaintext)──▶ Auth
//                                                          ──TLS records (ciphertext)──▶ (LOGIN record, mysql.tls) stop
//            Unknown ──handshake response, seq 2 (TLS plaintext after the SSL request)──▶ Auth
//            Unknown ──TLS records (a connection seen after its SSL request: tlsStream)──▶ AwaitTls
//            Command ──login OK with CLIENT_COMPRESS / ZSTD──▶ Command over compress.ts
//            Unknown ──a compressed packet holding a command (login not seen)──▶ Command over compress.ts
//
// Picked up after the handshake (Unknown), capabilities are inferred from what follows: an EOF
// packet (length 5) after column definitions means the connection does not deprecate EOF; a row
// or a 0xfe OK (length >= 7) there means it does.
import { Connection, ByteQueue, OK, BROKEN } from "../common/index";
import { Framer, Packet } from "./frame";
import { Payload } from "./payload";
import { PKT_ERR, PKT_EOF, PKT_INFILE, PKT_OK, isTerminator, readErr, readOk, terminatorStatus } from "./response";
import { readGreeting, readLogin, readChangeUser, readAuthSwitch, readAuthMoreData } from "./handshake";
import {
  MysqlTxn, Expect, Rs, expectFor, isCommand, commandName,
  Prepared, CLIENT_PROTOCOL_41, CLIENT_DEPRECATE_EOF, CLIENT_COMPRESS, CLIENT_ZSTD_COMPRESSION_ALGORITHM, CLIENT_QUERY_ATTRIBUTES, SERVER_MORE_RESULTS_EXISTS, SERVER_STATUS_CURSOR_EXISTS,
  COM_QUERY, COM_INIT_DB, COM_FIELD_LIST, COM_STMT_PREPARE, COM_STMT_EXECUTE, COM_STMT_CLOSE,
  COM_STMT_RESET, COM_STMT_FETCH, COM_STMT_SEND_LONG_DATA, COM_CHANGE_USER, COM_RESET_CONNECTION,
  COM_STMT_BULK_EXECUTE, MAX_PENDING, MAX_STATEMENTS, MAX_QUERY_TEXT, QUEUE_LIMIT,
} from "./types";
import { writeRecord } from "./emit";
import { Compressed } from "./compress";
import { readParams, queryTextOffset, looksLikeAttributes, PARAMETER_COUNT_AVAILABLE } from "./params";
import { detect, RESYNC_SCORE, compressedCommand, COMP_MAYBE, COMP_NONE, COMP_ZLIB, COMP_ZSTD } from "./sniff";



enum Phase {
  Unknown,
  AwaitLogin,
  Command,
  Stopped, // TLS or compression: the bytes that follow are not decodable
  /**
   * After an SSL request: the host goes on with the same connection when it reads the plaintext
   * from the TLS library (the probe's uprobes), which starts with the login (sequence 2);
   * otherwise TLS records follow.
   */
  AwaitTls,
}

/** Ciphertext tolerated after an SSL request before giving up on plaintext (the TLS handshake is a few KiB). */
const MAX_TLS_WAIT: i32 = 64 * 1024;
/** Longest TLS record body: 2^14 bytes of plaintext plus what TLS 1.2 lets ciphertext add (RFC 5246 6.2.3). */
const MAX_TLS_RECORD: u32 = (1 << 14) + 2048;

/**
 * Whether the `have` bytes (1..5) at offset `off` of q can start a TLS record header:
 *
 *   content_type:u8 (20 change_cipher_spec, 21 alert, 22 handshake, 23 application_data)
 *   version:u16be (0x0301..0x0304)  length:u16be (1 .. 2^14 + 2048)
 *
 * Each byte present is tested (a header cut by q's end: what it has must fit); the length only
 * once it is whole. Read as a MySQL packet header it is a 66..263 KiB packet (bytes 1-2 = 03 01..04).
 */
function tlsHeader(q: ByteQueue, off: i32, have: i32 = 5): bool {
  const t = q.u8(off);
  if (t < 20 || t > 23) return false;
  if (have >= 2 && q.u8(off + 1) != 3) return false;
  if (have >= 3 && (q.u8(off + 2) < 1 || q.u8(off + 2) > 4)) return false;
  if (have < 5) return true;
  const len = q.u16be(off + 3);
  return len >= 1 && len <= MAX_TLS_RECORD;
}

/** tlsStream(): the bytes are TLS records / are not / cannot tell yet. */
const TLS_YES: i32 = 1;
const TLS_NO: i32 = 0;
const TLS_MAYBE: i32 = -1;

/**
 * Whether the head of q, on a connection seen mid-way, is TLS records (a connection first seen
 * after its SSL request: a capture that started late, a probe that attached late). Records are
 * chained: every header in q must be one, and q must end at a record's end, inside a second
 * record, or inside the header after one. A single record cut by q's end cannot tell (MAYBE:
 * the bytes wait for more, at most one record). A MySQL packet that starts like a TLS header is
 * at least 66 KiB long, so the chain (or an end exactly at the record's length) tells them apart.
 */
function tlsStream(q: ByteQueue): i32 {
  const n = q.avail();
  let off = 0;
  let records = 0;
  for (;;) {
    const left = n - off;
    if (left == 0) return records > 0 ? TLS_YES : TLS_MAYBE;
    if (!tlsHeader(q, off, left < 5 ? left : 5)) return TLS_NO;
    if (left < 5) return records > 0 ? TLS_YES : TLS_MAYBE; // a header cut by q's end
    records++;
    const end = off + 5 + <i32>q.u16be(off + 3);
    if (end > n) return records > 1 ? TLS_YES : TLS_MAYBE;
    off = end;
  }
  return TLS_NO; // not reached: the loop returns
}

/** Copies up to `max` bytes at p into a new buffer (statement text outlives the input chunk). */
function copyBytes(p: usize, n: i32, max: i32): StaticArray<u8> {
  if (n > max) n = max;
  if (n < 0) n = 0;
  const b = new StaticArray<u8>(n);
  memory.copy(changetype<usize>(b), p, <usize>n);
  return b;
}

export class MysqlConnection extends Connection {
  phase: Phase = Phase.Unknown;
  private readonly f0: Framer = new Framer();
  private readonly f1: Framer = new Framer();
  /** capabilities: server's from the greeting, client's from the handshake response */
  serverCaps: u32 = 0xffffffff;
  clientCaps: u32 = 0;
  /** 1 = EOF packets, 0 = CLIENT_DEPRECATE_EOF, -1 = not known yet (connection picked up late) */
  eofMode: i32 = -1;
  serverVersion: string | null = null;
  private readonly pending: MysqlTxn[] = [];
  /** prepared statements by id */
  private readonly stmts: Map<u32, Prepared> = new Map<u32, Prepared>();
  /**
   * CLIENT_QUERY_ATTRIBUTES: 1 negotiated, 0 not, -1 not known (the handshake was not seen: each
   * COM_QUERY then says by its shape, see looksLikeAttributes)
   */
  queryAttrs: i32 = -1;
  /** the server's greeting was seen (serverCaps are its capabilities, not a guess) */
  private greeted: bool = false;
  /** the server direction lost sync: drop its bytes until a command is sent */
  private serverLost: bool = false;
  /** the client direction lost sync: drop chunks until one starts with a plausible command */
  private clientLost: bool = false;
  private stopAfterOutput: bool = false;
  /** The SSL request's LOGIN, waiting for the login inside TLS (Phase.AwaitTls). */
  private sslTxn: MysqlTxn | null = null;
  /** Ciphertext bytes seen while waiting for it. */
  private tlsBytes: i32 = 0;
  /** the compressed protocol, once the login negotiated it */
  z: Compressed | null = null;
  /** the reader for server packets, reused */
  private readonly rd: Payload = new Payload(0, 0);
  /**
   * The connection's counters (ABI v2 conn_stats, copied in syncCounters). Messages dropped:
   * packets that could not be placed (a response with no command waiting, a client packet that
   * is neither a command nor part of one, a packet cut by a gap, a statement over the table's
   * limit). Framing errors: a packet where a command must start whose first byte is no command,
   * a response packet out of sequence, a query attribute block that does not parse. Bytes
   * dropped: what was passed over while looking for the next command after lost bytes.
   */
  dropped: i64 = 0;
  framingErrors: i64 = 0;
  bytesDropped: i64 = 0;
  /** TLS records passed over (ciphertext: after an SSL request, or on a connection seen mid-way); counted as drops */
  tlsRecords: i64 = 0;

  constructor() {
    super();
    // A partial packet (up to PAYLOAD_PREFIX) may be queued when the host hands over its
    // largest chunk (1 MiB): leave room for both, or the queue would refuse a valid stream.
    this.q0.limit = QUEUE_LIMIT;
    this.q1.limit = QUEUE_LIMIT;
  }

  onData(dir: i32, q: ByteQueue, tsNs: i64): i32 {
    if (this.stopAfterOutput) return BROKEN;
    if (this.phase == Phase.Stopped) {
      q.clear(0);
      return OK;
    }
    if (this.phase == Phase.Unknown && this.pending.length == 0) {
      // a connection seen mid-way may be TLS already: ciphertext is never read as packets
      const tls = tlsStream(q);
      if (tls == TLS_MAYBE) return OK;
      if (tls == TLS_YES) this.phase = Phase.AwaitTls;
    }
    if (this.phase == Phase.AwaitTls && !this.awaitTls(dir, q)) return OK;
    if (dir == 0 && this.z === null && !this.greeted && this.clientCaps == 0 && this.f0.partialEnd < 0 && !this.compressedOrNot(q, tsNs)) return OK;
    if (this.z !== null) {
      this.z!.data(dir, q, tsNs);
      return OK;
    }
    this.framed(dir, q);
    // the login's OK switched the connection to the compressed protocol: the bytes after it
    // are compressed packets
    if (this.z !== null && q.avail() > 0) this.z!.data(dir, q, tsNs);
    return OK;
  }

  /**
   * The login was not seen, so the connection may be under the compressed protocol: the head of
   * the client's bytes is looked at (sniff.ts compressedCommand). A compressed command switches
   * the connection to it, the server's framing restarting at its next response; requests read
   * so far as plain packets (a capture that began inside a packet sent as is: its payload looks
   * like a plain command) are written incomplete. False while the head cannot tell yet and is no
   * plain command either (the bytes wait: mysql2 writes a compressed packet's header and its
   * payload apart).
   */
  private compressedOrNot(q: ByteQueue, tsNs: i64): bool {
    const c = compressedCommand(q.ptr(), q.avail());
    if (c == COMP_MAYBE) {
      if (this.phase == Phase.Unknown || q.avail() < 5) return false;
      const b = <u32>q.u8(4);
      return b != 0 && isCommand(b);
    }
    if (c == COMP_NONE) return true;
    while (this.pending.length > 0) this.finish(this.pending[0], true, tsNs);
    if (this.phase == Phase.Command) this.serverLost = true;
    if (this.serverLost) {
      // what the server's framing holds is a packet cut by the loss, or one read as plain
      this.q1.clear(0);
      this.f1.reset();
    }
    const z = new Compressed(this, c == COMP_ZLIB ? "zlib" : c == COMP_ZSTD ? "zstd" : "");
    z.pickUp(this.serverLost);
    this.z = z;
    this.clientLost = false;
    return true;
  }

  /**
   * The MySQL packets queued in q (the connection's own queue, or under the compressed protocol
   * the inflated stream's).
   */
  framed(dir: i32, q: ByteQueue): void {
    const f = dir == 0 ? this.f0 : this.f1;
    if (dir == 0 && this.clientLost) {
      // Commands start writes: after lost bytes, the head of a chunk is the place to look.
      // A chunk whose head is not a plausible command (sequence 0, a command byte, and for
      // text commands printable text) is dropped whole.
      const s = detect(0, q.ptr(), q.avail());
      if (s >= RESYNC_SCORE) this.clientLost = false;
      else {
        if (s == 0 || q.avail() > 4) {
          this.bytesDropped += <i64>q.avail();
          q.clear(0);
        }
        return;
      }
    }
    const z = this.z;
    for (;;) {
      const k = f.next(q);
      if (k === null) break;
      if (dir == 0) this.clientPacket(k);
      else this.serverPacket(k);
      if (this.phase == Phase.Stopped) {
        q.clear(0);
        return;
      }
      if (dir == 1 && this.serverLost) {
        this.bytesDropped += <i64>q.avail();
        q.clear(0);
        f.reset();
        break;
      }
      f.done(q);
      if (this.z !== z) return; // compression starts after this packet
    }
  }

  syncCounters(): void {
    const z = this.z;
    this.errors = this.framingErrors;
    // compressed payloads that could not be decoded (zstd, corrupt, too large) are messages dropped
    this.drops = this.dropped + this.tlsRecords + (z !== null ? z.lost : 0);
    this.droppedBytes = this.bytesDropped;
  }

  onGap(dir: i32, len: i32, tsNs: i64): i32 {
    if (this.phase == Phase.AwaitTls) {
      // the login inside TLS may be what was lost: the SSL request is all there is to say
      this.stopTls();
      return OK;
    }
    if (this.z !== null) this.z!.gap(dir, tsNs);
    else this.gapIn(dir, len, tsNs, dir == 0 ? this.q0 : this.q1);
    return OK;
  }

  /**
   * `len` bytes (0: an unknown number) of the packet stream in q were lost; q has already moved
   * past them. Returns true when the bytes that follow start where the lost ones ended (the
   * framing holds), false when the direction resynchronises at the next command.
   */
  gapIn(dir: i32, len: i32, tsNs: i64, q: ByteQueue): bool {
    if (dir == 0) {
      // Lost inside a packet whose length we know, and ended before its end: skip the rest of
      // it and stay in sync (the command it carried is lost; its response finds nothing
      // waiting and is dropped until the next command). Otherwise search for the next command.
      const end = this.f0.partialEnd;
      this.f0.reset();
      if (len > 0 && end >= 0 && !this.clientLost && q.consumed <= end) {
        this.bytesDropped += end - q.consumed;
        q.skip(end - q.consumed);
        this.dropped++;
        return true;
      }
      this.clientLost = true;
      return false;
    }
    this.f1.reset();
    // A command sent at or after the gap's stamp cannot have been answered in the lost bytes:
    // its response starts with the next server bytes (a capture that began between a command
    // and its response).
    if (this.pending.length > 0 && this.pending[0].startNs >= tsNs) return true;
    // The response in progress lost bytes: write it as incomplete, resync on the next command.
    if (this.pending.length > 0) this.finish(this.pending[0], true, tsNs);
    this.serverLost = true;
    return false;
  }

  /** Decoding stopped for good (TLS, a replication stream). */
  stopped(): bool {
    return this.phase == Phase.Stopped;
  }

  onClose(tsNs: i64): i32 {
    if (this.phase == Phase.AwaitTls) this.stopTls();
    while (this.pending.length > 0) {
      const t = this.pending[0];
      // a result set cut at its end (no terminator) still counts its rows, but stays incomplete
      this.finish(t, true, tsNs);
    }
    return OK;
  }

  // ---- client ----

  private clientPacket(k: Packet): void {
    if (k.cont) {
      // more of a multi-packet request: the command sent last
      const n = this.pending.length;
      if (n > 0) {
        const t = this.pending[n - 1];
        t.reqBytes += 4 + <i64>k.len;
        t.nextSeq = (k.seq + 1) & 0xff;
      }
      return;
    }
    const front = this.pending.length > 0 ? this.pending[0] : null;
    if (k.seq != 0) {
      // Not a command: the handshake response, auth data, or a LOCAL INFILE upload.
      if (front !== null && (front.expect == Expect.Auth || front.state == Rs.Infile)) {
        front.reqBytes += 4 + <i64>k.len;
        front.nextSeq = (k.seq + 1) & 0xff;
        return;
      }
      // seq 2 in a new session: the login after an SSL request, the first plaintext of the TLS
      // connection the probe reads from the library (the cleartext part was its own session)
      if ((k.seq == 1 && (this.phase == Phase.AwaitLogin || this.phase == Phase.Unknown) || k.seq == 2 && (this.phase == Phase.Unknown || this.sslTxn !== null)) && k.len >= 4) {
        this.login(k);
        return;
      }
      this.dropped++;
      return;
    }
    if (k.avail < 1) return;
    const cmd = <u32>load<u8>(k.ptr);
    if (!isCommand(cmd)) {
      this.framingErrors++;
      return;
    }
    // A new command means the previous response is over: settle one waiting on an optional EOF.
    if (front !== null && this.eofMode < 0 && (front.state == Rs.ParamsEof || front.state == Rs.PrepColumnsEof)) {
      this.eofMode = 0;
      this.finish(front, false, front.endNs);
    }
    this.phase = Phase.Command;
    const sq = this.z !== null ? this.z!.iq1 : this.q1;
    if (this.pending.length == 0 && (this.serverLost || sq.avail() > 0)) {
      // The server says nothing unasked: bytes still queued from it belong to a response we
      // could not place (picked up mid-way, or after a gap). Start clean for this command.
      sq.clear(0);
      this.f1.reset();
      if (this.z !== null) this.z!.serverRestart();
    }
    this.serverLost = false;
    this.command(cmd, k);
  }

  private login(k: Packet): void {
    const l = readLogin(k.ptr, k.avail);
    const t = new MysqlTxn();
    t.command = "LOGIN";
    t.cmd = -1;
    t.expect = Expect.Auth;
    t.user = l.user;
    t.schema = l.schema;
    t.authPlugin = l.plugin;
    t.serverVersion = this.serverVersion;
    t.startNs = k.startNs;
    t.endNs = k.endNs;
    t.reqBytes = 4 + <i64>k.len;
    t.nextSeq = (k.seq + 1) & 0xff;
    this.clientCaps = l.caps;
    // Clients may claim query attributes whatever the server offers (mysql2 does, to MariaDB):
    // without the greeting the claim alone decides nothing, each COM_QUERY says by its shape.
    if (!this.greeted) this.queryAttrs = -1;
    else this.queryAttrs = (l.caps & this.serverCaps & CLIENT_QUERY_ATTRIBUTES) != 0 ? 1 : 0;
    this.eofMode = (l.caps & this.serverCaps & CLIENT_DEPRECATE_EOF) != 0 ? 0 : 1;
    this.phase = Phase.Command;
    if (l.ssl) {
      // written once it is known whether the login inside TLS comes (awaitTls); no user yet
      t.tls = true;
      t.user = null;
      t.schema = null;
      t.response = "SSL";
      this.sslTxn = t;
      this.phase = Phase.AwaitTls;
      return;
    }
    const ssl = this.sslTxn;
    if (ssl !== null) {
      // the login inside TLS, on the connection that asked for it: one LOGIN from the SSL request
      // to the login's answer
      this.sslTxn = null;
      t.tls = true;
      t.startNs = ssl.startNs;
      t.reqBytes += ssl.reqBytes;
    }
    this.push(t);
  }

  /**
   * Phase.AwaitTls: true when the bytes in q are the plaintext that follows the SSL request (the
   * login, sequence 2, and what the server sends after it), to be framed as usual; false when
   * they were dealt with here. TLS records from the client that carry application data
   * (content type 23) mean nobody reads the plaintext for us: the SSL request's LOGIN is written
   * and decoding stops. Handshake records are passed over (with memory BIOs, e.g. node's, the
   * probe sees the ClientHello before it knows the connection is TLS).
   *
   *   TLS record   type:u8 (20..23)  0x03 minor:u8  length:u16be
   *   login        length:u24le (>= 32, < 64 KiB: byte 2 is 0)  seq=2  caps:u32 (CLIENT_PROTOCOL_41)
   */
  private awaitTls(dir: i32, q: ByteQueue): bool {
    for (;;) {
      const n = q.avail();
      if (n < 6) return false; // wait for a TLS record header or the login's capabilities
      const b0 = <u32>q.u8(0);
      if (dir == 0 && q.u8(3) == 2 && q.u8(2) == 0 && q.u24le(0) >= 32 && ((q.u8(4) | (q.u8(5) << 8)) & CLIENT_PROTOCOL_41) != 0) {
        this.phase = Phase.Unknown;
        this.framed(0, q);
        // the server's answer may have arrived first: it waited in its queue
        if (this.q1.avail() > 0) this.framed(1, this.q1);
        return false;
      }
      if (!tlsHeader(q, 0)) break;
      // a whole record, skipped as it arrives (counted: ciphertext is dropped, never decoded)
      const len = 5 + <i32>q.u16be(3);
      this.tlsRecords++;
      this.bytesDropped += <i64>len;
      this.tlsBytes += len;
      q.skip(len);
      if ((dir == 0 && b0 == 23) || this.tlsBytes > MAX_TLS_WAIT) {
        // the client's application data is encrypted: nobody reads the plaintext for us (the
        // rest of the chunk is ciphertext too)
        this.bytesDropped += <i64>q.avail();
        q.clear(0);
        this.stopTls();
        return false;
      }
    }
    // the server says nothing before the login: its bytes wait for it (the queue's limit bounds them)
    if (dir == 1) return false;
    this.stopTls(); // neither TLS nor a login
    return false;
  }

  /** No login inside TLS will be seen: the SSL request's LOGIN is written and decoding stops. */
  private stopTls(): void {
    const t = this.sslTxn;
    this.sslTxn = null;
    this.phase = Phase.Stopped;
    this.stopAfterOutput = true;
    if (t !== null) this.write(t, false);
  }

  private command(cmd: u32, k: Packet): void {
    const t = new MysqlTxn();
    t.cmd = <i32>cmd;
    t.command = commandName(cmd);
    t.expect = expectFor(cmd);
    t.startNs = k.startNs;
    t.endNs = k.endNs;
    t.reqBytes = 4 + <i64>k.len;
    t.nextSeq = (k.seq + 1) & 0xff;
    const body = k.ptr + 1;
    const n = k.avail - 1;
    if (cmd == COM_QUERY) {
      this.queryText(t, body, n);
    } else if (cmd == COM_STMT_PREPARE) {
      t.query = copyBytes(body, n, MAX_QUERY_TEXT);
    } else if (cmd == COM_INIT_DB) {
      const p = new Payload(body, n < 0 ? 0 : n);
      t.schema = p.rest(256);
    } else if (cmd == COM_FIELD_LIST) {
      const p = new Payload(body, n);
      t.table = p.cstr();
    } else if (cmd == COM_CHANGE_USER) {
      readChangeUser(k.ptr, k.avail, this.clientCaps, t);
    } else if (
      cmd == COM_STMT_EXECUTE || cmd == COM_STMT_CLOSE || cmd == COM_STMT_RESET ||
      cmd == COM_STMT_FETCH || cmd == COM_STMT_SEND_LONG_DATA || cmd == COM_STMT_BULK_EXECUTE
    ) {
      if (n >= 4) {
        const id = load<u32>(body);
        t.stmtId = <i64>id;
        let params = -1;
        if (this.stmts.has(id)) {
          const s = this.stmts.get(id);
          t.query = s.text;
          params = s.params;
        }
        if (cmd == COM_STMT_CLOSE) this.stmts.delete(id);
        if (cmd == COM_STMT_EXECUTE && this.queryAttrs != 0) this.executeAttrs(t, body, n, params);
      }
      t.binary = true;
    } else if (cmd == COM_RESET_CONNECTION) {
      this.stmts.clear();
    }
    if (t.expect == Expect.None) {
      // nothing comes back: the command is complete as sent
      this.write(t, false);
      return;
    }
    if (t.expect == Expect.Stream) {
      t.response = "STREAM";
      this.write(t, false);
      this.phase = Phase.Stopped;
      return;
    }
    this.push(t);
  }

  /**
   * COM_QUERY's statement: the body, or under CLIENT_QUERY_ATTRIBUTES what follows the attribute
   * block. When the block does not parse the statement stays unknown (counted), since the bytes
   * at hand are not SQL.
   */
  private queryText(t: MysqlTxn, body: usize, n: i32): void {
    let qa = this.queryAttrs;
    if (qa < 0) qa = looksLikeAttributes(body, n) ? 1 : 0;
    if (qa == 0) {
      t.query = copyBytes(body, n, MAX_QUERY_TEXT);
      return;
    }
    const off = queryTextOffset(body, n, t);
    if (off < 0) {
      if (this.queryAttrs < 0) {
        // guessed wrong on a connection seen mid-way: it is text after all
        t.attrNames = null;
        t.trace = null;
        t.query = copyBytes(body, n, MAX_QUERY_TEXT);
        return;
      }
      this.framingErrors++;
      return;
    }
    if (this.queryAttrs < 0) this.queryAttrs = 1;
    t.query = copyBytes(body + <usize>off, n - off, MAX_QUERY_TEXT);
  }

  /**
   * COM_STMT_EXECUTE under CLIENT_QUERY_ATTRIBUTES (or not known to be off): the attribute names
   * and trace context from its parameter block. `params` is num_params from the PREPARE, -1 when
   * the PREPARE was not seen.
   */
  private executeAttrs(t: MysqlTxn, body: usize, n: i32, params: i32): void {
    // body: stmt_id:u32 flags:u8 iteration_count:u32, then the parameter block
    if (n <= 9) return;
    const flags = <u32>load<u8>(body, 4);
    const p = new Payload(body + 9, n - 9);
    if (this.queryAttrs < 0) {
      // not known whether parameter_count is sent: only when the flag says so
      if ((flags & PARAMETER_COUNT_AVAILABLE) == 0) return;
    } else if (params == 0 && (flags & PARAMETER_COUNT_AVAILABLE) == 0) {
      return;
    }
    const count = p.lenenc();
    if (!p.ok) return;
    readParams(p, count, true, t);
  }

  private push(t: MysqlTxn): void {
    if (this.pending.length >= MAX_PENDING) this.finish(this.pending[0], true, t.startNs);
    this.pending.push(t);
  }

  // ---- server ----

  private serverPacket(k: Packet): void {
    if (k.cont) {
      // more of a multi-packet response (a row of 16 MiB or more)
      if (this.pending.length > 0) {
        const t = this.pending[0];
        t.respBytes += 4 + <i64>k.len;
        t.nextSeq = (k.seq + 1) & 0xff;
        t.endNs = k.endNs;
      }
      return;
    }
    if (k.avail < 1 && k.len > 0) return;
    const b = k.len > 0 ? <u32>load<u8>(k.ptr) : 0x100;
    if (this.pending.length == 0) {
      if (k.seq == 0 && b == 10 && (this.phase == Phase.Unknown || this.phase == Phase.AwaitLogin)) {
        const g = readGreeting(k.ptr, k.avail);
        if (g !== null) {
          this.serverCaps = g.caps;
          this.greeted = true;
          this.serverVersion = g.version;
          this.phase = Phase.AwaitLogin;
          return;
        }
      }
      if (k.seq == 0 && b == PKT_ERR && this.phase != Phase.Command) {
        // refused before the greeting (host not allowed, too many connections)
        const t = new MysqlTxn();
        t.command = "LOGIN";
        t.startNs = k.startNs;
        t.endNs = k.endNs;
        t.respBytes = 4 + <i64>k.len;
        readErr(new Payload(k.ptr, k.avail), t);
        this.write(t, false);
        return;
      }
      // nothing asked: a response we cannot place (picked up mid-response)
      this.dropped++;
      this.serverLost = true;
      return;
    }
    const t = this.pending[0];
    if (k.seq != t.nextSeq) {
      // framing or pairing is off: give up on this response, resync on the next command
      this.framingErrors++;
      this.finish(t, true, k.startNs);
      this.serverLost = true;
      return;
    }
    t.nextSeq = (k.seq + 1) & 0xff;
    t.respBytes += 4 + <i64>k.len;
    t.endNs = k.endNs;
    this.step(t, k, b);
  }

  /** Advances t's response state machine by one server packet whose first byte is b. */
  private step(t: MysqlTxn, k: Packet, b: u32): void {
    const p = this.rd.reset(k.ptr, k.avail);
    switch (t.state) {
      case Rs.First: {
        if (t.expect == Expect.Auth) {
          this.auth(t, k, b, p);
          return;
        }
        if (b == PKT_ERR) {
          readErr(p, t);
          this.finish(t, false, k.endNs);
          return;
        }
        if (t.expect == Expect.FieldList) {
          t.response = "FIELD_LIST";
          if (isTerminator(b, k.len)) this.finish(t, false, k.endNs);
          else t.state = Rs.Fields;
          return;
        }
        if (t.expect == Expect.Prepare && b == PKT_OK && k.len >= 12) {
          this.prepareOk(t, k, p);
          return;
        }
        if (b == PKT_OK && t.expect != Expect.Rows && t.expect != Expect.Text) {
          if (t.response.length == 0) t.response = "OK";
          const status = readOk(p, t);
          if ((status & SERVER_MORE_RESULTS_EXISTS) == 0 || t.expect != Expect.ResultSet) this.finish(t, false, k.endNs);
          return;
        }
        if (b == PKT_EOF && k.len < 9) {
          if (t.response.length == 0) t.response = t.expect == Expect.Rows ? "RESULT_SET" : "EOF";
          this.finish(t, false, k.endNs);
          return;
        }
        if (t.expect == Expect.ResultSet) {
          if (b == PKT_INFILE) {
            t.response = "LOCAL_INFILE";
            t.state = Rs.Infile;
            return;
          }
          const cols = p.lenenc();
          if (!p.ok || cols <= 0) {
            t.response = "OTHER";
            this.finish(t, false, k.endNs);
            return;
          }
          t.response = "RESULT_SET";
          if (t.columns < 0) t.columns = <i32>cols;
          t.colsLeft = cols;
          t.state = Rs.Columns;
          // CLIENT_OPTIONAL_RESULTSET_METADATA (or MariaDB's cached metadata): a metadata_follows
          // byte after the count; 0 = RESULTSET_METADATA_NONE, no column definitions follow. The
          // packet's length says whether the byte is there, so no capability needs to be seen.
          if (p.left() == 1 && p.u8() == 0) {
            t.colsLeft = 0;
            t.state = this.eofMode == 0 ? Rs.Rows : Rs.ColumnsEof;
          }
          return;
        }
        if (t.expect == Expect.Rows) {
          t.response = "RESULT_SET";
          t.rows++;
          t.state = Rs.Rows;
          return;
        }
        t.response = t.expect == Expect.Text ? "STATISTICS" : "OTHER";
        this.finish(t, false, k.endNs);
        return;
      }
      case Rs.Columns: {
        if (b == PKT_ERR) {
          readErr(p, t);
          this.finish(t, false, k.endNs);
          return;
        }
        t.colsLeft--;
        if (t.colsLeft <= 0) t.state = this.eofMode == 0 ? Rs.Rows : Rs.ColumnsEof;
        return;
      }
      case Rs.ColumnsEof: {
        if (b == PKT_EOF && k.len == 5) {
          if (this.eofMode < 0) this.eofMode = 1;
          const status = terminatorStatus(p, k.len, t);
          t.state = Rs.Rows;
          if (t.binary && (status & SERVER_STATUS_CURSOR_EXISTS) != 0) this.finish(t, false, k.endNs);
          return;
        }
        // no EOF where a connection without CLIENT_DEPRECATE_EOF would have one
        if (this.eofMode < 0) this.eofMode = 0;
        t.state = Rs.Rows;
        this.step(t, k, b);
        return;
      }
      case Rs.Rows: {
        if (b == PKT_ERR) {
          readErr(p, t);
          this.finish(t, false, k.endNs);
          return;
        }
        if (isTerminator(b, k.len)) {
          const status = terminatorStatus(p, k.len, t);
          if ((status & SERVER_MORE_RESULTS_EXISTS) != 0 && t.expect == Expect.ResultSet) {
            t.state = Rs.First;
            return;
          }
          this.finish(t, false, k.endNs);
          return;
        }
        t.rows++;
        return;
      }
      case Rs.Params: {
        t.paramsLeft--;
        if (t.paramsLeft <= 0) {
          if (this.eofMode != 0) t.state = Rs.ParamsEof;
          else this.afterParams(t, k);
        }
        return;
      }
      case Rs.ParamsEof: {
        if (b == PKT_EOF && k.len == 5) {
          if (this.eofMode < 0) this.eofMode = 1;
          this.afterParams(t, k);
          return;
        }
        if (this.eofMode < 0) this.eofMode = 0;
        this.afterParams(t, k);
        if (t.state == Rs.PrepColumns) this.step(t, k, b);
        return;
      }
      case Rs.PrepColumns: {
        t.colsLeft--;
        if (t.colsLeft <= 0) {
          if (this.eofMode != 0) t.state = Rs.PrepColumnsEof;
          else this.finish(t, false, k.endNs);
        }
        return;
      }
      case Rs.PrepColumnsEof: {
        if (this.eofMode < 0) this.eofMode = b == PKT_EOF && k.len == 5 ? 1 : 0;
        this.finish(t, false, k.endNs);
        return;
      }
      case Rs.Fields: {
        if (b == PKT_ERR) {
          readErr(p, t);
          this.finish(t, false, k.endNs);
          return;
        }
        if (isTerminator(b, k.len)) this.finish(t, false, k.endNs);
        return;
      }
      case Rs.Infile: {
        // the server's answer to the uploaded file
        if (b == PKT_ERR) {
          readErr(p, t);
        } else if (b == PKT_OK) {
          t.response = "OK";
          readOk(p, t);
        }
        this.finish(t, false, k.endNs);
        return;
      }
      default:
        return;
    }
  }

  private prepareOk(t: MysqlTxn, k: Packet, p: Payload): void {
    p.u8();
    const id = p.u32();
    const cols = <i32>p.u16();
    const params = <i32>p.u16();
    t.response = "STMT_PREPARE_OK";
    t.stmtId = <i64>id;
    t.columns = cols;
    t.params = params;
    const text = t.query;
    if (text !== null) {
      if (this.stmts.size < MAX_STATEMENTS || this.stmts.has(id)) this.stmts.set(id, new Prepared(text, params));
      else this.dropped++;
    }
    t.colsLeft = cols;
    t.paramsLeft = params;
    // CLIENT_OPTIONAL_RESULTSET_METADATA: metadata_follows after reserved:u8 warnings:u16; with
    // RESULTSET_METADATA_NONE neither definitions follow, only their EOF packets (when not
    // deprecated)
    if (k.len >= 13) {
      p.skip(3);
      t.noMeta = p.u8() == 0;
    }
    if (params == 0) this.afterParams(t, k);
    else if (!t.noMeta) t.state = Rs.Params;
    else if (this.eofMode != 0) t.state = Rs.ParamsEof;
    else this.afterParams(t, k);
  }

  private afterParams(t: MysqlTxn, k: Packet): void {
    if (t.colsLeft <= 0) this.finish(t, false, k.endNs);
    else if (!t.noMeta) t.state = Rs.PrepColumns;
    else if (this.eofMode != 0) t.state = Rs.PrepColumnsEof;
    else this.finish(t, false, k.endNs);
  }

  private auth(t: MysqlTxn, k: Packet, b: u32, p: Payload): void {
    if (b == PKT_OK) {
      t.response = "OK";
      readOk(p, t);
      t.affectedRows = -1;
      if (t.cmd == COM_CHANGE_USER) this.stmts.clear();
      const caps = this.clientCaps & this.serverCaps;
      if (t.cmd < 0 && (caps & (CLIENT_COMPRESS | CLIENT_ZSTD_COMPRESSION_ALGORITHM)) != 0) {
        // every later packet, both ways, is wrapped in the compressed protocol
        this.z = new Compressed(this, (caps & CLIENT_COMPRESS) != 0 ? "zlib" : "zstd");
      }
      this.finish(t, false, k.endNs);
      return;
    }
    if (b == PKT_ERR) {
      readErr(p, t);
      this.finish(t, false, k.endNs);
      return;
    }
    if (b == PKT_EOF) {
      readAuthSwitch(k.ptr, k.avail, t);
      return;
    }
    if (b == 0x01) readAuthMoreData(k.ptr, k.avail, t);
    // other packets: plugin-specific exchange, wait for OK/ERR
  }

  /** Removes t from the queue and writes its record. */
  private finish(t: MysqlTxn, incomplete: bool, endNs: i64): void {
    const q = this.pending;
    if (q.length > 0 && q[0] === t) q.shift();
    else {
      const i = q.indexOf(t);
      if (i >= 0) q.splice(i, 1);
    }
    t.state = Rs.Done;
    if (endNs > t.endNs) t.endNs = endNs;
    this.write(t, incomplete);
  }

  /** Writes t's record, with the connection's compression facts. */
  private write(t: MysqlTxn, incomplete: bool): void {
    const z = this.z;
    if (z !== null) {
      t.compression = z.algo;
      t.compressedLost = z.lost;
    }
    writeRecord(t, incomplete);
  }
}
