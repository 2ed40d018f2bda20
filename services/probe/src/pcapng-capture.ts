// Probe events → a synthesized pcapng (`wirescope capture`). Pure: it drives a PcapngWriter and
// never touches the addon, so it is tested with plain events.
//
// On one host both ends of a loopback connection are traced: two sockets, one TCP connection.
// They are merged into ONE stream (keyed by the unordered address/port pair) whose bytes come from
// one socket, its source (its egress and ingress cover both directions); the other end only lends
// its process name to the comments of the packets it sent. Missing bytes (a per-call limit, a
// kernel drop) leave the TCP sequence numbers jumping over them: gaps stay gaps, as Wireshark
// shows them.
//
// Plaintext mode (`--plaintext`): a TLS connection is written as the cleartext TCP connection it
// would have been, so tshark decodes HTTP, HTTP/2 or gRPC inside it with no key log. The probe
// announces a socket's plaintext with a second open of its conn_key (tls = true, seq from 0; see
// docs/probe.md), usually after some handshake ciphertext was already seen. So a stream whose
// first bytes are a TLS record is held back (not yet written, not even its SYN) until it is known
// what it is:
//
//   open ─▶ PENDING ─ first bytes not a TLS record ─────────────▶ written as they are (CLEAR)
//             │  ├── TLS open of either end ─────────────────────▶ SYN, then that end's plaintext (TLS);
//             │  │                                                the held ciphertext is left out
//             │  └── close / held over holdBytes or holdMs ──────▶ written as ciphertext (counted)
//   CLEAR ─ TLS open ─▶ plaintext continues the same TCP stream (an in-band upgrade: MySQL's
//                       SSLRequest), unless ciphertext was written: then that stream ends (FIN)
//                       and the plaintext starts a new one on the same 4-tuple (tshark: port reuse)
import type { EndpointSpec, PcapngWriter, SynthConnection } from "@wirescope/capture";
import type { ConnRecord, DataRecord, EventBatch } from "./events.js";
import type { ProcessCache } from "./process-info.js";

/** A held event: its payload copied out of the batch buffer. */
type Held = Omit<DataRecord, "payload"> & { payload: Buffer };

interface Stream {
  /** The synthesized TCP connection; undefined while the stream is held back. */
  conn: SynthConnection | undefined;
  /** How to open it when it is written (kept while held back). */
  spec: { client: EndpointSpec; server: EndpointSpec; tsNs: bigint; handshake: boolean; comment: string };
  /** Events held back (plaintext mode, first bytes a TLS record) and their payload bytes. */
  held: Held[];
  heldBytes: number;
  /** conn_key of the socket whose bytes are written (the source). */
  owner: bigint;
  /** The other end's socket on this host, when traced. */
  peer: bigint | undefined;
  /** Is the owner the client end (dir 0 = its egress)? */
  ownerIsClient: boolean;
  /** Next stream offset per dir (0 = client → server). */
  next: [bigint, bigint];
  /** Comment naming the process that sent each direction. */
  who: [string, string];
  /** The TLS library whose plaintext is written, "" for socket bytes. */
  tls: string;
  /** Bytes written that plaintext cannot follow in the same TCP stream: a TLS record, or bytes of a
   *  connection that existed before the capture (caught mid-way, they may be ciphertext). */
  cipherWritten: boolean;
  closed: boolean;
}

export interface CaptureOptions {
  /** Write TLS plaintext in place of the connection's ciphertext (see the top). */
  plaintext: boolean;
  /** Bytes one stream may hold back before it is written as ciphertext. */
  holdBytes: number;
  /** Bytes all streams together may hold back. */
  holdTotalBytes: number;
  /** How long (event time) a stream may stay held back, ms. */
  holdMs: number;
}

const CAPTURE_DEFAULTS: CaptureOptions = { plaintext: false, holdBytes: 64 << 10, holdTotalBytes: 32 << 20, holdMs: 5_000 };

export interface CaptureStats {
  connections: number;
  dataEvents: number;
  bytes: number;
  gapBytes: number;
  /** Events that arrived behind bytes already written (out of order across batches). */
  lateEvents: number;
  /** Plaintext mode: connections written as TLS plaintext. */
  tlsStreams: number;
  /** Ciphertext (handshakes) left out because the connection's plaintext replaced it. */
  cipherBytesOmitted: number;
  /** Connections whose first bytes were TLS records but whose plaintext never came (a library
   *  the probe does not read, a connection it could not link): written as ciphertext. */
  tlsUndecrypted: number;
  /** Plaintext that came after ciphertext was written: the stream ended, a new one started. */
  tlsRestarted: number;
}

const endpoint = (a: string, p: number) => `${a}|${p}`;

/**
 * The first bytes are a TLS record header: content type change_cipher_spec (20), alert (21),
 * handshake (22) or application_data (23), then version 3.0..3.4.
 */
export function looksLikeTlsRecord(b: Uint8Array): boolean {
  return b.length >= 3 && b[0]! >= 20 && b[0]! <= 23 && b[1] === 3 && b[2]! <= 4;
}

const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n");
const startsWith = (b: Uint8Array, p: Buffer) => b.length >= p.length && p.equals(b.subarray(0, p.length));

export class PcapngCapture {
  private readonly streams = new Map<string, Stream>();
  private readonly bySocket = new Map<bigint, string>();
  /** Held-back streams in the order they started holding (checked against holdMs). */
  private holding: { st: Stream; sinceNs: bigint }[] = [];
  private heldTotal = 0;
  private latestNs = 0n;
  private readonly opts: CaptureOptions;
  /**
   * Server ports of connections written as HTTP/2 plaintext (the client's first bytes are the
   * connection preface). Wireshark finds HTTP/2 inside TLS by ALPN, but without TLS it recognizes
   * it only on ports it dissects as HTTP: elsewhere it needs "Decode As" HTTP for these ports.
   */
  readonly http2Ports = new Set<number>();
  readonly stats: CaptureStats = { connections: 0, dataEvents: 0, bytes: 0, gapBytes: 0, lateEvents: 0, tlsStreams: 0, cipherBytesOmitted: 0, tlsUndecrypted: 0, tlsRestarted: 0 };

  constructor(
    private readonly writer: PcapngWriter,
    private readonly processes: ProcessCache,
    private readonly toWall: (mono: bigint) => bigint,
    opts: Partial<CaptureOptions> = {},
  ) {
    this.opts = { ...CAPTURE_DEFAULTS, ...opts };
  }

  private describe(c: ConnRecord): string {
    const p = this.processes.get(c.tgid, c.comm, c.tsMono);
    return `process=${p.name || c.comm} pid=${c.tgid}${p.containerId ? ` container=${p.containerId.slice(0, 12)}` : ""}${p.pod ? ` pod=${p.namespace}/${p.pod}` : ""}`;
  }

  private open(c: ConnRecord): void {
    const mine = this.bySocket.get(c.connKey);
    if (mine !== undefined) {
      // a second open of a socket already followed: its bytes start again from seq 0
      const st = this.streams.get(mine);
      if (st && !st.closed) this.reopen(st, c);
      return;
    }
    const l = endpoint(c.localAddress, c.localPort);
    const r = endpoint(c.remoteAddress, c.remotePort);
    const key = l < r ? `${l}~${r}` : `${r}~${l}`;
    const existing = this.streams.get(key);
    if (existing && !existing.closed) {
      // the other end of a connection already being written: lend it our process name
      this.bySocket.set(c.connKey, key);
      existing.peer = c.connKey;
      existing.who[existing.ownerIsClient ? 1 : 0] = this.describe(c);
      if (c.tls) this.reopen(existing, c);
      return;
    }
    // role unknown: guess the client is the end with the higher (ephemeral) port
    const isClient = c.role === 1 || (c.role === 0 && c.localPort >= c.remotePort);
    const local = { address: c.localAddress, port: c.localPort };
    const remote = { address: c.remoteAddress, port: c.remotePort };
    const me = this.describe(c);
    const st: Stream = {
      conn: undefined,
      spec: {
        client: isClient ? local : remote,
        server: isClient ? remote : local,
        tsNs: this.toWall(c.tsMono),
        handshake: !c.inferred,
        comment: `${me} role=${c.role === 1 ? "client" : c.role === 2 ? "server" : "unknown"}${c.inferred ? " (existed before the capture)" : ""}`,
      },
      held: [],
      heldBytes: 0,
      owner: c.connKey,
      peer: undefined,
      ownerIsClient: isClient,
      next: [0n, 0n],
      who: isClient ? [me, ""] : ["", me],
      tls: "",
      cipherWritten: false,
      closed: false,
    };
    this.streams.set(key, st);
    this.bySocket.set(c.connKey, key);
    this.stats.connections++;
    if (c.tls && this.opts.plaintext) this.toTls(st, c);
    else if (!this.opts.plaintext) this.commit(st);
  }

  /** Writes the SYN of a held-back stream and what it held. */
  private commit(st: Stream): void {
    if (st.conn) return;
    const s = st.spec;
    st.conn = this.writer.openConnection(s.client, s.server, s.tsNs, { handshake: s.handshake, comment: s.comment });
    const held = st.held;
    this.release(st);
    for (const d of held) this.write(st, d);
  }

  private release(st: Stream): void {
    this.heldTotal -= st.heldBytes;
    st.held = [];
    st.heldBytes = 0;
  }

  /** A second open of a socket of this stream (TLS plaintext from now on, or a new byte stream). */
  private reopen(st: Stream, c: ConnRecord): void {
    if (!this.opts.plaintext || !c.tls) {
      // not ours to replace: the source's offsets start again, the TCP stream goes on
      if (c.connKey === st.owner) st.next = [0n, 0n];
      return;
    }
    if (st.tls) return; // the other end's plaintext is written already
    this.toTls(st, c);
  }

  /** From now on the stream is the plaintext of socket `c` (owner or peer). */
  private toTls(st: Stream, c: ConnRecord): void {
    if (c.connKey !== st.owner) {
      // the peer's plaintext: it becomes the source (the owner's bytes so far were ciphertext)
      st.peer = st.owner;
      st.owner = c.connKey;
      st.ownerIsClient = !st.ownerIsClient;
    }
    if (!st.conn) {
      this.stats.cipherBytesOmitted += st.heldBytes;
      this.release(st);
      st.spec.comment += ` tls=${c.tlsLibrary} (plaintext)`;
      this.commit(st);
    } else if (st.cipherWritten) {
      // ciphertext is in this TCP stream already: end it, the plaintext is a new one
      this.writer.close(st.conn, this.toWall(c.tsMono), { dir: st.ownerIsClient ? 0 : 1 });
      st.conn = this.writer.openConnection(st.spec.client, st.spec.server, this.toWall(c.tsMono), { comment: `${st.spec.comment} tls=${c.tlsLibrary} (plaintext after ciphertext)` });
      this.stats.tlsRestarted++;
    }
    st.tls = c.tlsLibrary || "unknown";
    st.next = [0n, 0n];
    this.stats.tlsStreams++;
  }

  private data(d: DataRecord): void {
    const key = this.bySocket.get(d.connKey);
    if (key === undefined) return;
    const st = this.streams.get(key);
    if (!st || st.closed || st.owner !== d.connKey) return;
    if (d.tsMono > this.latestNs) this.latestNs = d.tsMono;
    if (!st.conn) {
      const first = st.held.length === 0;
      if (first && !looksLikeTlsRecord(d.payload)) {
        this.commit(st);
      } else {
        const h: Held = { ...d, payload: Buffer.from(d.payload) };
        st.held.push(h);
        st.heldBytes += h.payload.length;
        this.heldTotal += h.payload.length;
        if (first) this.holding.push({ st, sinceNs: d.tsMono });
        if (st.heldBytes > this.opts.holdBytes || this.heldTotal > this.opts.holdTotalBytes) this.giveUp(st);
        return;
      }
    }
    this.write(st, d);
  }

  /** A held-back stream whose plaintext did not come: written as the ciphertext it is. */
  private giveUp(st: Stream): void {
    if (st.conn) return;
    this.stats.tlsUndecrypted++;
    this.commit(st);
  }

  private write(st: Stream, d: DataRecord | Held): void {
    const conn = st.conn!;
    const egress = d.direction === 1;
    const dir: 0 | 1 = egress === st.ownerIsClient ? 0 : 1;
    if (d.seq < st.next[dir]) {
      this.stats.lateEvents++;
      return;
    }
    if (d.seq > st.next[dir]) {
      const gap = Number(d.seq - st.next[dir]);
      this.writer.gap(conn, dir, gap);
      this.stats.gapBytes += gap;
    }
    const ts = this.toWall(d.tsMono);
    if (d.payload.length) this.writer.data(conn, dir, d.payload, ts, st.who[dir] || undefined);
    if (d.payload.length < d.originalLength) {
      this.writer.gap(conn, dir, d.originalLength - d.payload.length);
      this.stats.gapBytes += d.originalLength - d.payload.length;
    }
    if (!st.tls && (!st.spec.handshake || looksLikeTlsRecord(d.payload))) st.cipherWritten = true;
    if (st.tls && dir === 0 && d.seq === 0n && startsWith(d.payload, H2_PREFACE)) this.http2Ports.add(st.spec.server.port);
    st.next[dir] = d.seq + BigInt(d.originalLength);
    this.stats.dataEvents++;
    this.stats.bytes += d.payload.length;
  }

  private close(c: ConnRecord): void {
    const key = this.bySocket.get(c.connKey);
    if (key === undefined) return;
    this.bySocket.delete(c.connKey);
    const st = this.streams.get(key);
    if (!st || st.closed) return;
    if (c.connKey !== st.owner) {
      if (st.peer === c.connKey) st.peer = undefined;
      return;
    }
    if (!st.conn) {
      if (st.held.length) this.giveUp(st);
      else this.commit(st);
    }
    st.closed = true;
    this.streams.delete(key);
    if (st.peer !== undefined) this.bySocket.delete(st.peer);
    this.writer.close(st.conn!, this.toWall(c.tsMono), { dir: st.ownerIsClient ? 0 : 1 });
  }

  /** Streams held back longer than holdMs (event time) are written as ciphertext. */
  private expire(): void {
    const limit = this.latestNs - BigInt(this.opts.holdMs) * 1_000_000n;
    let i = 0;
    for (; i < this.holding.length; i++) {
      const h = this.holding[i]!;
      if (h.st.conn || h.st.closed) continue;
      if (h.sinceNs > limit) break;
      this.giveUp(h.st);
    }
    if (i) this.holding = this.holding.slice(i);
  }

  /** Writes one batch: opens, then data in time order (seq order within a direction), then closes. */
  add(b: EventBatch): void {
    for (const c of b.conns) if (c.kind === "open") this.open(c);
    for (const d of timeOrder(b.data)) this.data(d);
    for (const c of b.conns) if (c.kind === "close") this.close(c);
    if (this.holding.length) this.expire();
  }

  /** Writes what is still held back, then forgets every stream (the capture stopped; connections
   *  still open get no FIN, as with tcpdump). */
  finish(): void {
    for (const st of this.streams.values()) {
      if (st.conn || st.closed) continue;
      if (st.held.length) this.giveUp(st);
      else this.commit(st);
    }
    this.streams.clear();
    this.bySocket.clear();
    this.holding = [];
  }
}

/**
 * Orders events by timestamp, except that events of one direction of one socket always keep seq
 * order (two threads writing one socket may reach the ring buffer in the other order).
 */
export function timeOrder(data: DataRecord[]): DataRecord[] {
  const byTime = [...data].sort((x, y) => (x.tsMono < y.tsMono ? -1 : x.tsMono > y.tsMono ? 1 : 0));
  const slots = new Map<string, number[]>();
  byTime.forEach((d, i) => {
    const k = `${d.connKey}/${d.direction}`;
    let l = slots.get(k);
    if (!l) slots.set(k, (l = []));
    l.push(i);
  });
  const out = [...byTime];
  for (const idx of slots.values()) {
    const evs = idx.map((i) => byTime[i]).sort((x, y) => (x.seq < y.seq ? -1 : x.seq > y.seq ? 1 : 0));
    idx.forEach((pos, j) => (out[pos] = evs[j]));
  }
  return out;
}
