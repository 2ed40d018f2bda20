// Probe events → a synthesized pcapng (`wirescope capture`). Pure: it drives a PcapngWriter and
// never touches the addon, so it is tested with plain events.
//
// On one host both ends of a loopback connection are traced: two sockets, one TCP connection.
// They are merged into ONE stream (keyed by the unordered address/port pair) whose bytes come from
// the first socket seen (its egress and ingress cover both directions); the peer only lends its
// process name to the comments of the packets it sent. Missing bytes (a per-call limit, a kernel
// drop) leave the TCP sequence numbers jumping over them: gaps stay gaps, as Wireshark shows them.
import type { PcapngWriter, SynthConnection } from "@wirescope/common/pcap/index";
import type { ConnRecord, DataRecord, EventBatch } from "./events.js";
import type { ProcessCache } from "./process-info.js";

interface Stream {
  conn: SynthConnection;
  /** conn_key of the socket whose bytes are written. */
  owner: bigint;
  /** Is the owner the client end (dir 0 = its egress)? */
  ownerIsClient: boolean;
  /** Next stream offset per dir (0 = client → server). */
  next: [bigint, bigint];
  /** Comment naming the process that sent each direction. */
  who: [string, string];
  closed: boolean;
}

export interface CaptureStats {
  connections: number;
  dataEvents: number;
  bytes: number;
  gapBytes: number;
  /** Events that arrived behind bytes already written (out of order across batches). */
  lateEvents: number;
}

const endpoint = (a: string, p: number) => `${a}|${p}`;

export class PcapngCapture {
  private readonly streams = new Map<string, Stream>();
  private readonly bySocket = new Map<bigint, { key: string; peer: boolean }>();
  readonly stats: CaptureStats = { connections: 0, dataEvents: 0, bytes: 0, gapBytes: 0, lateEvents: 0 };

  constructor(
    private readonly writer: PcapngWriter,
    private readonly processes: ProcessCache,
    private readonly toWall: (mono: bigint) => bigint,
  ) {}

  private describe(c: ConnRecord): string {
    const p = this.processes.get(c.tgid, c.comm);
    return `process=${p.name || c.comm} pid=${c.tgid}${p.containerId ? ` container=${p.containerId.slice(0, 12)}` : ""}${p.pod ? ` pod=${p.namespace}/${p.pod}` : ""}`;
  }

  private open(c: ConnRecord): void {
    const l = endpoint(c.localAddress, c.localPort);
    const r = endpoint(c.remoteAddress, c.remotePort);
    const key = l < r ? `${l}~${r}` : `${r}~${l}`;
    const existing = this.streams.get(key);
    if (existing && !existing.closed) {
      // the other end of a connection already being written: lend it our process name
      this.bySocket.set(c.connKey, { key, peer: true });
      existing.who[existing.ownerIsClient ? 1 : 0] = this.describe(c);
      return;
    }
    // role unknown: guess the client is the end with the higher (ephemeral) port
    const isClient = c.role === 1 || (c.role === 0 && c.localPort >= c.remotePort);
    const local = { address: c.localAddress, port: c.localPort };
    const remote = { address: c.remoteAddress, port: c.remotePort };
    const me = this.describe(c);
    const conn = this.writer.openConnection(isClient ? local : remote, isClient ? remote : local, this.toWall(c.tsMono), {
      handshake: !c.inferred,
      comment: `${me} role=${c.role === 1 ? "client" : c.role === 2 ? "server" : "unknown"}${c.inferred ? " (existed before the capture)" : ""}`,
    });
    this.streams.set(key, { conn, owner: c.connKey, ownerIsClient: isClient, next: [0n, 0n], who: isClient ? [me, ""] : ["", me], closed: false });
    this.bySocket.set(c.connKey, { key, peer: false });
    this.stats.connections++;
  }

  private data(d: DataRecord): void {
    const s = this.bySocket.get(d.connKey);
    if (!s || s.peer) return;
    const st = this.streams.get(s.key);
    if (!st || st.closed) return;
    const egress = d.direction === 1;
    const dir: 0 | 1 = egress === st.ownerIsClient ? 0 : 1;
    if (d.seq < st.next[dir]) {
      this.stats.lateEvents++;
      return;
    }
    if (d.seq > st.next[dir]) {
      const gap = Number(d.seq - st.next[dir]);
      this.writer.gap(st.conn, dir, gap);
      this.stats.gapBytes += gap;
    }
    const ts = this.toWall(d.tsMono);
    if (d.payload.length) this.writer.data(st.conn, dir, d.payload, ts, st.who[dir] || undefined);
    if (d.payload.length < d.originalLength) {
      this.writer.gap(st.conn, dir, d.originalLength - d.payload.length);
      this.stats.gapBytes += d.originalLength - d.payload.length;
    }
    st.next[dir] = d.seq + BigInt(d.originalLength);
    this.stats.dataEvents++;
    this.stats.bytes += d.payload.length;
  }

  private close(c: ConnRecord): void {
    const s = this.bySocket.get(c.connKey);
    if (!s) return;
    this.bySocket.delete(c.connKey);
    if (s.peer) return;
    const st = this.streams.get(s.key);
    if (!st || st.closed) return;
    st.closed = true;
    this.streams.delete(s.key);
    this.writer.close(st.conn, this.toWall(c.tsMono), { dir: st.ownerIsClient ? 0 : 1 });
  }

  /** Writes one batch: opens, then data in time order (seq order within a direction), then closes. */
  add(b: EventBatch): void {
    for (const c of b.conns) if (c.kind === "open") this.open(c);
    for (const d of timeOrder(b.data)) this.data(d);
    for (const c of b.conns) if (c.kind === "close") this.close(c);
  }

  /** Forgets every stream (the capture stopped; connections still open get no FIN, as with tcpdump). */
  finish(): void {
    this.streams.clear();
    this.bySocket.clear();
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
