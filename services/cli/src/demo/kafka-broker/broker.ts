// A protocol-correct Kafka test broker: THIS IS A TEST BROKER, not a Kafka implementation for
// any other use. One node, messages in memory, one member per consumer group at a time. It
// speaks the real wire protocol for the APIs and versions client libraries (kafkajs, librdkafka) need, so
// tests can produce and consume with a real client and decode the real bytes.
//
// Versions advertised by ApiVersions are the ones kafkajs and librdkafka 2.0 speak and, for
// ApiVersions, Metadata, Produce and Fetch, the current flexible ones too (compact encodings and
// tagged fields, KIP-482): Metadata v12 carries topic ids, Fetch v13+ names topics by id
// (KIP-516); a client picks the highest version both sides know. A request in another version
// closes the connection, except ApiVersions, which is answered in the v0 layout with
// UNSUPPORTED_VERSION as real brokers do.
import { randomUUID } from "node:crypto";
import net from "node:net";
import { EventEmitter } from "node:events";
import { listenOn } from "@wirescope/runtime/process";
import { WireReader, WireWriter, WireError } from "./wire.js";

export interface BrokerOptions {
  host: string;
  /** 0 = any free port */
  port: number;
  /** Partitions of auto-created topics. */
  defaultPartitions: number;
  /** Create unknown topics on Metadata requests that allow it. */
  autoCreateTopics: boolean;
  /** Longest a Fetch waits for data (caps the client's max_wait_ms). */
  maxFetchWaitMs: number;
}

const DEFAULTS: BrokerOptions = { host: "127.0.0.1", port: 0, defaultPartitions: 1, autoCreateTopics: true, maxFetchWaitMs: 500 };

// Error codes (https://kafka.apache.org/protocol.html#protocol_error_codes).
export const ERR = {
  NONE: 0,
  UNKNOWN_TOPIC_OR_PARTITION: 3,
  ILLEGAL_GENERATION: 22,
  UNKNOWN_MEMBER_ID: 25,
  UNSUPPORTED_VERSION: 35,
  UNSUPPORTED_FOR_MESSAGE_FORMAT: 43,
  TOPIC_ALREADY_EXISTS: 36,
  INVALID_PARTITIONS: 37,
  UNKNOWN_TOPIC_ID: 100,
} as const;

/** api key → [min, max] version served. */
const VERSIONS: ReadonlyMap<number, readonly [number, number]> = new Map([
  // Produce: record batches (magic 2) from v3. v0-v2 are advertised because real brokers before
  // Kafka 4.0 do, and librdkafka before 2.11.1 sends gzip, snappy and lz4 batches uncompressed
  // to a broker whose Produce range does not start at v0; they are answered
  // UNSUPPORTED_FOR_MESSAGE_FORMAT (this broker stores no legacy message sets).
  [0, [0, 11]],
  [1, [4, 17]], // Fetch
  [2, [1, 3]], // ListOffsets
  [3, [0, 12]], // Metadata
  [8, [2, 7]], // OffsetCommit
  [9, [1, 7]], // OffsetFetch
  [10, [0, 2]], // FindCoordinator
  [11, [0, 5]], // JoinGroup
  [12, [0, 3]], // Heartbeat
  [13, [0, 3]], // LeaveGroup
  [14, [0, 3]], // SyncGroup
  [18, [0, 3]], // ApiVersions
  [19, [0, 3]], // CreateTopics
  [22, [0, 4]], // InitProducerId
]);

/** First flexible version of the api keys served in flexible versions (others: none served). */
const FIRST_FLEXIBLE: ReadonlyMap<number, number> = new Map([[0, 9], [1, 12], [3, 9], [9, 6], [18, 3], [22, 2]]);
const flexible = (key: number, v: number) => v >= (FIRST_FLEXIBLE.get(key) ?? Infinity);

interface Batch {
  baseOffset: bigint;
  lastOffset: bigint;
  bytes: Buffer;
}
interface Partition {
  batches: Batch[];
  next: bigint;
}
interface Topic {
  name: string;
  /** 16-byte topic id (a random v4 UUID, as Kafka assigns) */
  id: Buffer;
  parts: Partition[];
}
interface Member {
  id: string;
  protocols: { name: string; metadata: Buffer }[];
  assignment: Buffer;
}
interface Group {
  generation: number;
  protocol: string;
  protocolType: string;
  leader: string;
  members: Map<string, Member>;
  offsets: Map<string, { offset: bigint; metadata: string | null }>;
}

interface Header {
  key: number;
  version: number;
  correlationId: number;
  clientId: string | null;
}

export class KafkaTestBroker {
  readonly opts: BrokerOptions;
  private server: net.Server | null = null;
  private readonly sockets = new Set<net.Socket>();
  private readonly produced = new EventEmitter();
  readonly topics = new Map<string, Partition[]>();
  /** topic id (hex) → topic, for the versions that name topics by id */
  private readonly byId = new Map<string, Topic>();
  private readonly ids = new Map<string, Buffer>();
  private readonly groups = new Map<string, Group>();
  private memberSeq = 0;
  private producerSeq = 0n;
  /** Requests served per api key (tests assert the client really used them). */
  readonly served = new Map<number, number>();
  port = 0;

  constructor(opts: Partial<BrokerOptions> = {}) {
    this.opts = { ...DEFAULTS, ...opts };
    this.produced.setMaxListeners(0);
  }

  async start(): Promise<void> {
    const srv = net.createServer((s) => this.accept(s));
    this.server = srv;
    this.port = (await listenOn(srv, this.opts.port, this.opts.host)).port;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    this.produced.emit("stop");
    const srv = this.server;
    this.server = null;
    if (srv) await new Promise<void>((resolve) => srv.close(() => resolve()));
  }

  /** Creates a topic (what CreateTopics and auto-creation do). */
  createTopic(name: string, partitions: number): boolean {
    if (this.topics.has(name)) return false;
    const parts = Array.from({ length: partitions }, () => ({ batches: [], next: 0n }));
    const id = Buffer.from(randomUUID().replace(/-/g, ""), "hex");
    this.topics.set(name, parts);
    this.ids.set(name, id);
    this.byId.set(id.toString("hex"), { name, id, parts });
    return true;
  }

  /** The topic id of a topic (hex), for tests. */
  topicId(name: string): string | undefined {
    return this.ids.get(name)?.toString("hex");
  }

  // ---- connection handling ----

  private accept(s: net.Socket): void {
    this.sockets.add(s);
    let buf: Buffer = Buffer.alloc(0);
    // Kafka answers requests on one connection in order: handle them one at a time.
    let chain = Promise.resolve();
    s.on("data", (d) => {
      buf = buf.length ? Buffer.concat([buf, d]) : d;
      while (buf.length >= 4) {
        const size = buf.readInt32BE(0);
        if (size < 8 || size > 64 << 20) {
          s.destroy();
          return;
        }
        if (buf.length < 4 + size) break;
        const msg = buf.subarray(4, 4 + size);
        buf = buf.subarray(4 + size);
        chain = chain.then(() => this.handle(s, msg)).catch(() => {
          s.destroy();
        });
      }
    });
    s.on("error", () => s.destroy());
    s.on("close", () => this.sockets.delete(s));
  }

  private async handle(s: net.Socket, msg: Buffer): Promise<void> {
    if (s.destroyed) return;
    const r = new WireReader(msg);
    const h: Header = { key: r.int16(), version: r.int16(), correlationId: r.int32(), clientId: null };
    h.clientId = r.nullableString();
    r.flex = flexible(h.key, h.version);
    r.tags(); // request header v2 (flexible versions)
    const range = VERSIONS.get(h.key);
    if (!range) throw new WireError(`unsupported api key ${h.key}`);
    if (h.version < range[0] || h.version > range[1]) {
      if (h.key !== 18) throw new WireError(`unsupported version ${h.version} of api key ${h.key}`);
      this.reply(s, { ...h, version: 0 }, this.apiVersions(0, ERR.UNSUPPORTED_VERSION));
      return;
    }
    this.served.set(h.key, (this.served.get(h.key) ?? 0) + 1);
    const v = h.version;
    let body: WireWriter | null;
    switch (h.key) {
      case 0: body = this.produce(r, v); break;
      case 1: body = await this.fetch(r, v); break;
      case 2: body = this.listOffsets(r, v); break;
      case 3: body = this.metadata(r, v); break;
      case 8: body = this.offsetCommit(r, v); break;
      case 9: body = this.offsetFetch(r, v); break;
      case 10: body = this.findCoordinator(r, v); break;
      case 11: body = this.joinGroup(r, v); break;
      case 12: body = this.heartbeat(r, v); break;
      case 13: body = this.leaveGroup(r, v); break;
      case 14: body = this.syncGroup(r, v); break;
      case 18: body = this.apiVersions(v, ERR.NONE); break;
      case 19: body = this.createTopics(r, v); break;
      case 22: body = this.initProducerId(r, v); break;
      default: throw new WireError(`unsupported api key ${h.key}`);
    }
    if (body) this.reply(s, h, body.tags());
  }

  /**
   * Response header v0 (correlation id) or, for flexible versions, v1 (plus tagged fields);
   * ApiVersions always answers with header v0 so that any client can read it.
   */
  private reply(s: net.Socket, h: Header, body: WireWriter): void {
    if (s.destroyed) return;
    const b = body.toBuffer();
    const headerTags = h.key !== 18 && flexible(h.key, h.version);
    const head = Buffer.alloc(headerTags ? 9 : 8);
    head.writeInt32BE(head.length - 4 + b.length, 0);
    head.writeInt32BE(h.correlationId, 4);
    s.write(Buffer.concat([head, b]));
  }

  // ---- APIs ----

  private apiVersions(v: number, error: number): WireWriter {
    const w = new WireWriter(v >= 3).int16(error);
    w.array([...VERSIONS], (w, [key, [min, max]]) => w.int16(key).int16(min).int16(max).tags());
    if (v >= 1) w.int32(0);
    return w;
  }

  /**
   * Metadata v0-v12. v10+ requests may name a topic by id (name null); v10+ responses carry
   * every topic's id, v12 a null name for an id the broker does not know.
   */
  private metadata(r: WireReader, v: number): WireWriter {
    const NO_ID = Buffer.alloc(16);
    type Wanted = { name: string | null; id: Buffer | null };
    let wanted = r.array((r): Wanted => {
      const id = v >= 10 ? r.uuid() : null;
      const name = r.nullableString();
      r.tags();
      return { name, id: id && !id.equals(NO_ID) ? id : null };
    });
    const allowCreate = v >= 4 ? r.bool() : true;
    if (v >= 8 && v <= 10) r.bool(); // include_cluster_authorized_operations
    if (v >= 8) r.bool(); // include_topic_authorized_operations
    if (v === 0 && wanted !== null && wanted.length === 0) wanted = null; // v0: empty = all topics
    const list = wanted ?? [...this.topics.keys()].map((name): Wanted => ({ name, id: null }));
    if (allowCreate && this.opts.autoCreateTopics) for (const t of list) if (t.name !== null && !t.id) this.createTopic(t.name, this.opts.defaultPartitions);
    const w = new WireWriter(r.flex);
    if (v >= 3) w.int32(0);
    w.array([0], (w) => {
      w.int32(0).string(this.opts.host).int32(this.port);
      if (v >= 1) w.nullableString(null);
      w.tags();
    });
    if (v >= 2) w.nullableString("wirescope-test");
    if (v >= 1) w.int32(0);
    w.array(list, (w, t) => {
      const topic = t.id ? this.byId.get(t.id.toString("hex")) : undefined;
      const name = topic?.name ?? t.name;
      const parts = name !== null ? this.topics.get(name) : undefined;
      const error = parts ? ERR.NONE : t.id ? ERR.UNKNOWN_TOPIC_ID : ERR.UNKNOWN_TOPIC_OR_PARTITION;
      w.int16(error).nullableString(parts || v < 12 ? (name ?? "") : name);
      if (v >= 10) w.uuid((name !== null && this.ids.get(name)) || t.id || NO_ID);
      if (v >= 1) w.bool(false);
      w.array(parts ?? [], (w, _p) => {
        const idx = parts!.indexOf(_p);
        w.int16(ERR.NONE).int32(idx).int32(0);
        if (v >= 7) w.int32(0); // leader_epoch
        w.array([0], (w, n) => w.int32(n));
        w.array([0], (w, n) => w.int32(n));
        if (v >= 5) w.array([], () => {});
        w.tags();
      });
      if (v >= 8) w.int32(-2147483648); // topic_authorized_operations: not requested
      w.tags();
    });
    if (v >= 8 && v <= 10) w.int32(-2147483648); // cluster_authorized_operations
    return w;
  }

  private produce(r: WireReader, v: number): WireWriter | null {
    if (v >= 3) r.nullableString(); // transactional_id
    const acks = r.int16();
    r.int32(); // timeout_ms
    const topics = r.array((r) => {
      const t = { name: r.string(), parts: r.array((r) => {
        const p = { index: r.int32(), records: r.nullableBytes() };
        r.tags();
        return p;
      }) ?? [] };
      r.tags();
      return t;
    }) ?? [];
    const results = topics.map((t) => ({
      name: t.name,
      parts: t.parts.map((p) => {
        const part = this.topics.get(t.name)?.[p.index];
        if (!part) return { index: p.index, error: ERR.UNKNOWN_TOPIC_OR_PARTITION, base: -1n };
        if (v < 3) return { index: p.index, error: ERR.UNSUPPORTED_FOR_MESSAGE_FORMAT, base: -1n };
        return { index: p.index, error: ERR.NONE, base: this.append(part, p.records) };
      }),
    }));
    this.produced.emit("data");
    if (acks === 0) return null; // no response at all
    const w = new WireWriter(r.flex);
    w.array(results, (w, t) => {
      w.string(t.name);
      w.array(t.parts, (w, p) => {
        w.int32(p.index).int16(p.error).int64(p.base);
        if (v >= 2) w.int64(-1n); // log_append_time_ms
        if (v >= 5) w.int64(0n); // log_start_offset
        if (v >= 8) w.array([], () => {}).nullableString(null); // record_errors, error_message
        w.tags();
      });
      w.tags();
    });
    if (v >= 1) w.int32(0); // throttle_time_ms
    return w;
  }

  /**
   * Appends the record batches of one partition. Offsets are assigned here: base_offset is
   * outside the batch CRC (which covers attributes onward), so it is rewritten in place.
   *   batch  base_offset:int64 batch_length:int32 leader_epoch:int32 magic:int8 crc:int32
   *          attributes:int16 last_offset_delta:int32 ...
   */
  private append(part: Partition, records: Buffer | null): bigint {
    const base = part.next;
    if (!records) return base;
    let o = 0;
    while (o + 61 <= records.length) {
      const len = records.readInt32BE(o + 8);
      const end = o + 12 + len;
      if (len < 49 || end > records.length) throw new WireError("record batch truncated");
      if (records.readInt8(o + 16) !== 2) throw new WireError("only record batch magic 2 is served");
      const bytes = Buffer.from(records.subarray(o, end));
      const delta = bytes.readInt32BE(23);
      bytes.writeBigInt64BE(part.next, 0);
      part.batches.push({ baseOffset: part.next, lastOffset: part.next + BigInt(delta), bytes });
      part.next += BigInt(delta) + 1n;
      o = end;
    }
    return base;
  }

  private async fetch(r: WireReader, v: number): Promise<WireWriter> {
    if (v <= 14) r.int32(); // replica_id (v15+: the replica_state tagged field)
    const maxWait = r.int32();
    const minBytes = r.int32();
    r.int32(); // max_bytes (v3+)
    r.int8(); // isolation_level (v4+)
    if (v >= 7) {
      r.int32(); // session_id
      r.int32(); // session_epoch
    }
    // v13+: topics by id; an id the broker does not know is answered UNKNOWN_TOPIC_ID
    const topics = r.array((r) => {
      const id = v >= 13 ? r.uuid() : null;
      const name = id ? (this.byId.get(id.toString("hex"))?.name ?? null) : r.string();
      const parts = r.array((r) => {
        const index = r.int32();
        if (v >= 9) r.int32(); // current_leader_epoch
        const offset = r.int64();
        if (v >= 12) r.int32(); // last_fetched_epoch
        if (v >= 5) r.int64(); // log_start_offset
        const p = { index, offset, maxBytes: r.int32() };
        r.tags();
        return p;
      }) ?? [];
      r.tags();
      return { name, id, parts };
    }) ?? [];
    const collect = () =>
      topics.map((t) => ({
        name: t.name,
        id: t.id,
        parts: t.parts.map((p) => {
          const part = t.name !== null ? this.topics.get(t.name)?.[p.index] : undefined;
          if (!part) return { index: p.index, error: t.name === null ? ERR.UNKNOWN_TOPIC_ID : ERR.UNKNOWN_TOPIC_OR_PARTITION, hw: -1n, records: null as Buffer | null };
          const picked: Buffer[] = [];
          let size = 0;
          for (const b of part.batches) {
            if (b.lastOffset < p.offset) continue;
            if (picked.length && size + b.bytes.length > p.maxBytes) break;
            picked.push(b.bytes);
            size += b.bytes.length;
          }
          return { index: p.index, error: ERR.NONE, hw: part.next, records: Buffer.concat(picked) };
        }),
      }));
    let result = collect();
    const total = () => result.reduce((n, t) => n + t.parts.reduce((m, p) => m + (p.records?.length ?? 0), 0), 0);
    if (total() < Math.max(1, minBytes) && maxWait > 0) {
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          this.produced.off("data", done);
          this.produced.off("stop", done);
          resolve();
        };
        const timer = setTimeout(done, Math.min(maxWait, this.opts.maxFetchWaitMs));
        this.produced.on("data", done);
        this.produced.on("stop", done);
      });
      result = collect();
    }
    const w = new WireWriter(r.flex).int32(0);
    if (v >= 7) w.int16(ERR.NONE).int32(0);
    w.array(result, (w, t) => {
      if (t.id) w.uuid(t.id);
      else w.string(t.name ?? "");
      w.array(t.parts, (w, p) => {
        w.int32(p.index).int16(p.error).int64(p.hw).int64(p.hw); // high watermark, last stable offset
        if (v >= 5) w.int64(0n); // log_start_offset
        w.array([], () => {}); // aborted_transactions
        if (v >= 11) w.int32(-1); // preferred_read_replica
        w.nullableBytes(p.records);
        w.tags();
      });
      w.tags();
    });
    return w;
  }

  private listOffsets(r: WireReader, v: number): WireWriter {
    r.int32(); // replica_id
    if (v >= 2) r.int8(); // isolation_level
    const topics = r.array((r) => ({ name: r.string(), parts: r.array((r) => ({ index: r.int32(), ts: r.int64() })) ?? [] })) ?? [];
    const w = new WireWriter();
    if (v >= 2) w.int32(0);
    w.array(topics, (w, t) => {
      w.string(t.name);
      w.array(t.parts, (w, p) => {
        const part = this.topics.get(t.name)?.[p.index];
        w.int32(p.index).int16(part ? ERR.NONE : ERR.UNKNOWN_TOPIC_OR_PARTITION).int64(-1n);
        w.int64(!part ? -1n : p.ts === -2n ? 0n : part.next); // earliest (-2) or latest
      });
    });
    return w;
  }

  private findCoordinator(r: WireReader, v: number): WireWriter {
    r.string(); // key
    if (v >= 1) r.int8(); // key_type
    const w = new WireWriter();
    if (v >= 1) w.int32(0);
    w.int16(ERR.NONE);
    if (v >= 1) w.nullableString(null);
    return w.int32(0).string(this.opts.host).int32(this.port);
  }

  private group(id: string): Group {
    let g = this.groups.get(id);
    if (!g) {
      g = { generation: 0, protocol: "", protocolType: "", leader: "", members: new Map(), offsets: new Map() };
      this.groups.set(id, g);
    }
    return g;
  }

  private joinGroup(r: WireReader, v: number): WireWriter {
    const groupId = r.string();
    r.int32(); // session_timeout_ms
    if (v >= 1) r.int32(); // rebalance_timeout_ms
    let memberId = r.string();
    if (v >= 5) r.nullableString(); // group_instance_id
    const protocolType = r.string();
    const protocols = r.array((r) => ({ name: r.string(), metadata: r.nullableBytes() ?? Buffer.alloc(0) })) ?? [];
    const g = this.group(groupId);
    if (!memberId) memberId = `member-${++this.memberSeq}`;
    // One member at a time: a join completes at once, as the only (leading) member.
    g.members = new Map([[memberId, { id: memberId, protocols, assignment: Buffer.alloc(0) }]]);
    g.generation++;
    g.protocolType = protocolType;
    g.protocol = protocols[0]?.name ?? "";
    g.leader = memberId;
    const w = new WireWriter();
    if (v >= 2) w.int32(0);
    w.int16(ERR.NONE).int32(g.generation).string(g.protocol).string(g.leader).string(memberId);
    w.array([...g.members.values()], (w, m) => {
      w.string(m.id);
      if (v >= 5) w.nullableString(null);
      w.nullableBytes(m.protocols.find((p) => p.name === g.protocol)?.metadata ?? Buffer.alloc(0));
    });
    return w;
  }

  /** Error for a member/generation pair of a group request. */
  private memberError(groupId: string, generation: number, memberId: string): number {
    const g = this.groups.get(groupId);
    if (!g || !g.members.has(memberId)) return ERR.UNKNOWN_MEMBER_ID;
    if (generation !== g.generation) return ERR.ILLEGAL_GENERATION;
    return ERR.NONE;
  }

  private syncGroup(r: WireReader, v: number): WireWriter {
    const groupId = r.string();
    const generation = r.int32();
    const memberId = r.string();
    if (v >= 3) r.nullableString(); // group_instance_id
    const assignments = r.array((r) => ({ member: r.string(), assignment: r.nullableBytes() ?? Buffer.alloc(0) })) ?? [];
    const error = this.memberError(groupId, generation, memberId);
    let mine: Buffer = Buffer.alloc(0);
    if (error === ERR.NONE) {
      const g = this.group(groupId);
      for (const a of assignments) {
        const m = g.members.get(a.member);
        if (m) m.assignment = a.assignment;
      }
      mine = g.members.get(memberId)!.assignment;
    }
    const w = new WireWriter();
    if (v >= 1) w.int32(0);
    return w.int16(error).nullableBytes(mine);
  }

  private heartbeat(r: WireReader, v: number): WireWriter {
    const groupId = r.string();
    const generation = r.int32();
    const memberId = r.string();
    if (v >= 3) r.nullableString();
    const w = new WireWriter();
    if (v >= 1) w.int32(0);
    return w.int16(this.memberError(groupId, generation, memberId));
  }

  private leaveGroup(r: WireReader, v: number): WireWriter {
    const groupId = r.string();
    const members = v >= 3 ? (r.array((r) => ({ id: r.string(), instance: r.nullableString() })) ?? []) : [{ id: r.string(), instance: null }];
    const g = this.groups.get(groupId);
    const results = members.map((m) => {
      const known = g?.members.delete(m.id) ?? false;
      return { ...m, error: known ? ERR.NONE : ERR.UNKNOWN_MEMBER_ID };
    });
    const w = new WireWriter();
    if (v >= 1) w.int32(0);
    if (v < 3) return w.int16(results[0].error);
    w.int16(ERR.NONE);
    return w.array(results, (w, m) => w.string(m.id).nullableString(m.instance).int16(m.error));
  }

  private offsetCommit(r: WireReader, v: number): WireWriter {
    const groupId = r.string();
    const generation = r.int32();
    const memberId = r.string();
    if (v >= 7) r.nullableString(); // group_instance_id
    if (v <= 4) r.int64(); // retention_time_ms (v2-4)
    const topics = r.array((r) => ({
      name: r.string(),
      parts: r.array((r) => {
        const index = r.int32();
        const offset = r.int64();
        if (v >= 6) r.int32(); // committed_leader_epoch
        return { index, offset, metadata: r.nullableString() };
      }) ?? [],
    })) ?? [];
    // generation -1 with an empty member id is a commit from outside the group (admin tools)
    const error = generation === -1 && memberId === "" ? ERR.NONE : this.memberError(groupId, generation, memberId);
    const g = this.group(groupId);
    const w = new WireWriter();
    if (v >= 3) w.int32(0);
    return w.array(topics, (w, t) => {
      w.string(t.name);
      w.array(t.parts, (w, p) => {
        const e = error !== ERR.NONE ? error : this.topics.get(t.name)?.[p.index] ? ERR.NONE : ERR.UNKNOWN_TOPIC_OR_PARTITION;
        if (e === ERR.NONE) g.offsets.set(`${t.name}/${p.index}`, { offset: p.offset, metadata: p.metadata });
        w.int32(p.index).int16(e);
      });
    });
  }

  /** OffsetFetch v1-v7 (flexible from v6). */
  private offsetFetch(r: WireReader, v: number): WireWriter {
    const groupId = r.string();
    const asked = r.array((r) => {
      const t = { name: r.string(), parts: r.array((r) => r.int32()) ?? [] };
      r.tags();
      return t;
    });
    if (v >= 7) r.bool(); // require_stable
    const g = this.group(groupId);
    const topics =
      asked ??
      [...new Set([...g.offsets.keys()].map((k) => k.slice(0, k.lastIndexOf("/"))))].map((name) => ({
        name,
        parts: [...g.offsets.keys()].filter((k) => k.startsWith(`${name}/`)).map((k) => Number(k.slice(name.length + 1))),
      }));
    const w = new WireWriter(r.flex);
    if (v >= 3) w.int32(0);
    w.array(topics, (w, t) => {
      w.string(t.name);
      w.array(t.parts, (w, idx) => {
        const c = g.offsets.get(`${t.name}/${idx}`);
        w.int32(idx).int64(c?.offset ?? -1n);
        if (v >= 5) w.int32(-1); // committed_leader_epoch
        w.nullableString(c?.metadata ?? "").int16(ERR.NONE).tags();
      });
      w.tags();
    });
    if (v >= 2) w.int16(ERR.NONE);
    return w;
  }

  private createTopics(r: WireReader, v: number): WireWriter {
    const topics = r.array((r) => {
      const name = r.string();
      const partitions = r.int32();
      r.int16(); // replication_factor
      r.array((r) => [r.int32(), r.array((r) => r.int32())]); // assignments
      r.array((r) => [r.string(), r.nullableString()]); // configs
      return { name, partitions };
    }) ?? [];
    r.int32(); // timeout_ms
    const validateOnly = v >= 1 ? r.bool() : false;
    const w = new WireWriter();
    if (v >= 2) w.int32(0);
    return w.array(topics, (w, t) => {
      const n = t.partitions === -1 ? this.opts.defaultPartitions : t.partitions;
      let e: number = ERR.NONE;
      if (n <= 0) e = ERR.INVALID_PARTITIONS;
      else if (this.topics.has(t.name)) e = ERR.TOPIC_ALREADY_EXISTS;
      else if (!validateOnly) this.createTopic(t.name, n);
      w.string(t.name).int16(e);
      if (v >= 1) w.nullableString(e === ERR.NONE ? null : e === ERR.TOPIC_ALREADY_EXISTS ? `Topic '${t.name}' already exists.` : "Invalid partition count");
    });
  }

  /** InitProducerId v0-v4 (flexible from v2). */
  private initProducerId(r: WireReader, v: number): WireWriter {
    r.nullableString(); // transactional_id
    r.int32(); // transaction_timeout_ms
    if (v >= 3) {
      r.int64(); // producer_id (-1: a new one)
      r.int16(); // producer_epoch
    }
    return new WireWriter(r.flex).int32(0).int16(ERR.NONE).int64(++this.producerSeq).int16(0);
  }
}

/** Starts a test broker on 127.0.0.1 (free port unless given). Stop it with `await broker.stop()`. */
export async function startKafkaTestBroker(opts: Partial<BrokerOptions> = {}): Promise<KafkaTestBroker> {
  const b = new KafkaTestBroker(opts);
  await b.start();
  return b;
}
