import { describe, it } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  ConnEventSchema,
  ConnKind,
  DataEventSchema,
  Direction,
  RecordSchema,
  Role,
  type Record as WsRecord,
} from "@wirescope/wire";
import {
  ConnectionEngine,
  Plugin,
  PluginRegistry,
  type Dir,
  type StepResult,
} from "@wirescope/plugin-host";
import {
  Counters,
} from "@wirescope/runtime";
import { ConnTable, DEFAULT_CONN_TABLE_OPTIONS, type OutRecord } from "./conn-table.js";
import type { DecoderHost, DecoderSession } from "./decoder.js";
import { redactionPolicy } from "./redact.js";
import { appendHostFields } from "./record-bytes.js";

const full = (o: OutRecord) => appendHostFields(o.bytes, o.suffix, o.tid);

// A small line protocol decoder standing in for a WASM plugin in these pure tests: the client
// sends "Q <word>\n", the server answers "A <n>\n". It claims a connection on a first byte "Q",
// rejects anything else after 4 bytes, and resynchronises at the next newline after a gap.
class LineSession implements DecoderSession {
  buf: [string, string] = ["", ""];
  skipping: [boolean, boolean] = [false, false];
  waiting: { q: string; ts: bigint }[] = [];
  claimed = false;
  data(dir: Dir, bytes: Uint8Array, ts: bigint): StepResult {
    const s = this.buf[dir] + Buffer.from(bytes).toString("latin1");
    if (!this.claimed) {
      if (dir === 0 && s.startsWith("Q")) this.claimed = true;
      else if (s.length >= 4) return { records: [], state: "rejected", reason: "undetected_test" };
      else {
        this.buf[dir] = s;
        return { records: [], state: "detecting" };
      }
    }
    const lines = s.split("\n");
    this.buf[dir] = lines.pop()!;
    const out: Uint8Array[] = [];
    for (const line of lines) {
      if (this.skipping[dir]) {
        this.skipping[dir] = false;
        continue;
      }
      if (dir === 0) this.waiting.push({ q: line.slice(2), ts });
      else {
        const w = this.waiting.shift();
        if (w) out.push(rec(w.q, ts - w.ts, w.ts, false, line.slice(2)));
      }
    }
    return { records: out, state: "decoding" };
  }
  gap(dir: Dir): StepResult {
    this.buf[dir] = "";
    this.skipping[dir] = true;
    if (dir === 1) this.waiting.shift();
    return { records: [], state: this.claimed ? "decoding" : "detecting" };
  }
  close(ts: bigint): StepResult {
    const out = this.waiting.map((w) => rec(w.q, ts - w.ts, w.ts, true, ""));
    this.waiting = [];
    return { records: out, state: "decoding" };
  }
  free(): void {}
}

function rec(q: string, dur: bigint, start: bigint, incomplete: boolean, status: string): Uint8Array {
  return toBinary(
    RecordSchema,
    create(RecordSchema, {
      protocol: "line",
      startNs: start,
      durationNs: dur,
      operation: "Q",
      resource: q,
      incomplete,
      status: status ? BigInt(status) : undefined,
      attributes: { "db.query.text": { value: { case: "stringValue", value: `select '${q}'` } } },
    }),
  );
}

const host: DecoderHost = { open: () => new LineSession() };

function setup(over: Partial<typeof DEFAULT_CONN_TABLE_OPTIONS> = {}) {
  const counters = new Counters();
  const out: OutRecord[] = [];
  const t = new ConnTable(host, { ...DEFAULT_CONN_TABLE_OPTIONS, node: "n1", redaction: redactionPolicy(), ...over }, counters, (r) =>
    out.push(r),
  );
  return { t, counters, out };
}

const open = (key: bigint, role = Role.SERVER) =>
  create(ConnEventSchema, {
    connKey: key,
    kind: ConnKind.OPEN,
    role,
    localAddress: "10.0.0.2",
    localPort: 7000,
    remoteAddress: "10.0.0.1",
    remotePort: 51000,
    process: { pid: 42, name: "lined" },
    timestampNs: 1n,
  });
const close = (key: bigint) => create(ConnEventSchema, { connKey: key, kind: ConnKind.CLOSE, timestampNs: 99n });
const data = (key: bigint, direction: Direction, seq: number, s: string, ts: bigint, tid = 7, orig?: number) =>
  create(DataEventSchema, {
    connKey: key,
    direction,
    seq: BigInt(seq),
    payload: Buffer.from(s),
    originalLength: orig ?? s.length,
    timestampNs: ts,
    tid,
  });
const IN = Direction.INGRESS;
const EG = Direction.EGRESS;

describe("ConnTable", () => {
  it("decodes a server-side connection with endpoints, tid and redaction", () => {
    const { t, out } = setup();
    t.onConn(open(1n), 3, 0);
    t.onData(data(1n, IN, 0, "Q a\nQ b\n", 10n, 71), 3, 0);
    t.onData(data(1n, EG, 0, "A 1\n", 20n, 72), 3, 0);
    t.onData(data(1n, EG, 4, "A 2\n", 30n, 72), 3, 0);
    assert.equal(out.length, 2);
    const r = fromBinary(RecordSchema, full(out[0]!));
    assert.equal(r.resource, "a");
    assert.equal(r.status, 1n);
    assert.equal(r.tid, 71);
    assert.equal(r.role, Role.SERVER);
    assert.equal(r.server?.service, "lined:7000");
    assert.equal(r.server?.process?.pid, 42);
    assert.equal(r.client?.address, "10.0.0.1");
    assert.equal(r.attributes["db.query.text"]?.value.value, "select ?");
    assert.equal(out[0]!.outputService, "lined:7000");
  });

  it("orders out-of-order events and reports truncation as a gap", () => {
    const { t, out, counters } = setup();
    t.onConn(open(2n), 0, 0);
    t.onData(data(2n, IN, 4, "Q y\n", 11n), 0, 0);
    t.onData(data(2n, IN, 0, "Q x\n", 10n), 0, 0);
    t.onData(data(2n, EG, 0, "A 1\nA", 20n, 7, 12), 0, 0); // 7 bytes lost: second answer cut
    t.onData(data(2n, EG, 12, "A 3\n", 30n), 0, 0);
    t.onConn(close(2n), 0, 0);
    assert.deepEqual(
      out.map((o) => fromBinary(RecordSchema, full(o)).resource),
      ["x"],
    );
    assert.equal(counters.get("gaps"), 1);
    assert.equal(counters.get("conn_closed.closed"), 1);
  });

  it("writes waiting requests as incomplete on close", () => {
    const { t, out } = setup();
    t.onConn(open(3n), 0, 0);
    t.onData(data(3n, IN, 0, "Q z\n", 10n), 0, 0);
    t.onConn(close(3n), 0, 0);
    assert.equal(out.length, 1);
    assert.equal(fromBinary(RecordSchema, full(out[0]!)).incomplete, true);
  });

  it("drops connections no decoder claims, counted by reason", () => {
    const { t, out, counters } = setup();
    t.onConn(open(4n), 0, 0);
    t.onData(data(4n, IN, 0, "HELLO", 10n), 0, 0);
    t.onData(data(4n, IN, 5, "MORE", 11n), 0, 0);
    assert.equal(out.length, 0);
    assert.equal(t.size, 0);
    assert.equal(counters.get("conn_dropped.undetected_test"), 1);
  });

  it("drops and counts the state of a moved partition only", () => {
    const { t, counters } = setup();
    t.onConn(open(6n), 1, 0);
    t.onConn(open(7n), 2, 0);
    assert.equal(t.dropPartition(1), 1);
    assert.equal(t.size, 1);
    assert.equal(counters.get("conn_dropped.moved"), 1);
  });

  it("tracks connections seen mid-stream and counts them", () => {
    const { t, out, counters } = setup();
    t.onData(data(8n, EG, 500, "Q m\n", 10n), 0, 0);
    t.onData(data(8n, IN, 900, "A 5\n", 20n), 0, 0);
    assert.equal(counters.get("conn_midstream"), 1);
    assert.equal(out.length, 1);
  });

  it("makes room in a full table by evicting a connection silent for 10 s, not by refusing a busy newcomer", () => {
    // 300 connections open and fall silent (half a request each), one busy one among them; the
    // table holds 300. A connection opening 20 s later is tracked and decoded; the busy one is kept.
    const { t, out, counters } = setup({ maxConns: 300 });
    t.onConn(open(1n), 0, 0);
    for (let k = 2n; k <= 300n; k++) {
      t.onConn(open(k), 0, 0);
      t.onData(data(k, IN, 0, "Q ha", 10n), 0, 0);
    }
    t.onData(data(1n, IN, 0, "Q a\n", 10n), 0, 19_000);
    t.onData(data(1n, EG, 0, "A 1\n", 11n), 0, 19_500);
    t.onConn(open(1000n), 0, 20_000);
    t.onData(data(1000n, IN, 0, "Q b\n", 20n), 0, 20_000);
    t.onData(data(1000n, EG, 0, "A 2\n", 21n), 0, 20_000);
    assert.equal(counters.get("conn_dropped.limit_conns"), 0);
    assert.equal(counters.get("conn_evicted.limit_conns"), 1);
    assert.equal(t.size, 300);
    t.onData(data(1n, IN, 4, "Q c\n", 30n), 0, 20_001);
    t.onData(data(1n, EG, 4, "A 3\n", 31n), 0, 20_001);
    assert.deepEqual(out.map((o) => fromBinary(RecordSchema, full(o)).resource), ["a", "b", "c"]);
    assert.equal(counters.get("conn_midstream"), 0, "the busy connection was never evicted");
  });

  it("refuses a new connection (counted) while every tracked one has spoken within 10 s", () => {
    const { t, counters } = setup({ maxConns: 2 });
    t.onConn(open(1n), 0, 0);
    t.onConn(open(2n), 0, 5_000);
    t.onConn(open(3n), 0, 9_999);
    assert.equal(counters.get("conn_dropped.limit_conns"), 1);
    t.onConn(open(4n), 0, 10_000); // 1n silent for 10 s now
    assert.equal(counters.get("conn_evicted.limit_conns"), 1);
    assert.equal(t.size, 2);
  });

  it("takes an evicted connection up again mid-stream as the same end of the same process", () => {
    const { t, out, counters } = setup({ maxConns: 1 });
    t.onConn(open(1n), 0, 0);
    t.onConn(open(2n), 0, 60_000); // evicts 1n
    t.onData(data(1n, IN, 500, "Q z\n", 70n), 0, 80_000); // evicts 2n in turn
    t.onData(data(1n, EG, 900, "A 9\n", 71n), 0, 80_000);
    assert.equal(counters.get("conn_evicted.limit_conns"), 2);
    assert.equal(counters.get("conn_resumed_after_eviction"), 1);
    const r = fromBinary(RecordSchema, full(out[0]!));
    assert.equal(r.resource, "z");
    assert.equal(r.role, Role.SERVER);
    assert.equal(r.server?.port, 7000);
    assert.equal(r.server?.process?.name, "lined");
  });

  it("looks at a bounded number of connections per eviction, the busy ones passed to the back", () => {
    // 2,000 busy connections ahead of 2,000 silent ones: each new connection looks at 256 at most,
    // so the first few are refused until the busy ones have moved behind the silent ones; then
    // every new one evicts a silent one at once (the busy ones are never looked at twice in a row)
    const { t, counters } = setup({ maxConns: 4000 });
    for (let k = 1n; k <= 2000n; k++) t.onConn(open(k), 0, 50_000);
    for (let k = 2001n; k <= 4000n; k++) t.onConn(open(k), 0, 0);
    for (let k = 10_001n; k <= 11_000n; k++) t.onConn(open(k), 0, 55_000);
    assert.ok(counters.get("conn_dropped.limit_conns") <= Math.ceil(2000 / 256), `refused ${counters.get("conn_dropped.limit_conns")}`);
    assert.equal(counters.get("conn_evicted.limit_conns") + counters.get("conn_dropped.limit_conns"), 1000);
  });

  it("evicts idle connections and bounds the number tracked", () => {
    const { t, counters } = setup({ maxConns: 1, idleMs: 1000 });
    t.onConn(open(9n), 0, 0);
    t.onConn(open(10n), 0, 0);
    assert.equal(counters.get("conn_dropped.limit_conns"), 1);
    t.sweep(500);
    assert.equal(t.size, 1);
    t.sweep(2000);
    assert.equal(t.size, 0);
    assert.equal(counters.get("conn_evicted.idle"), 1);
  });

  it("bounds bytes held waiting for a hole", () => {
    const { t, counters } = setup({ maxConnPendingBytes: 8 });
    t.onConn(open(11n), 0, 0);
    t.onData(data(11n, IN, 0, "Q a\n", 10n), 0, 0);
    t.onData(data(11n, IN, 100, "Q bbbbbbbbbbbbb\n", 11n), 0, 0);
    assert.equal(t.pendingBytes(), 0);
    assert.equal(counters.get("gaps_forced.conn_pending_limit"), 1);
  });

  it("keeps per-event work constant over 100,000 requests on one connection", () => {
    let calls = 0;
    const inner = new LineSession();
    const counting: DecoderHost = {
      open: () => ({
        data: (d, b, ts) => (calls++, inner.data(d, b, ts)),
        gap: (d) => inner.gap(d),
        close: (ts) => inner.close(ts),
        free: () => {},
      }),
    };
    const counters = new Counters();
    const out: OutRecord[] = [];
    const t = new ConnTable(counting, { ...DEFAULT_CONN_TABLE_OPTIONS, node: "n1", redaction: redactionPolicy() }, counters, (r) => out.push(r));
    t.onConn(open(40n), 0, 0);
    const N = 100_000;
    const ev = { connKey: 40n, direction: IN as number, seq: 0, timestampNs: 0n, tid: 0, payload: new Uint8Array(0), originalLength: 0 };
    const q = Buffer.from("Q r\n");
    const a = Buffer.from("A 1\n");
    for (let i = 0; i < N; i++) {
      Object.assign(ev, { direction: IN, seq: i * 4, timestampNs: BigInt(i) * 10n, tid: 100 + (i % 7), payload: q, originalLength: 4 });
      t.onData(ev, 0, i);
      Object.assign(ev, { direction: EG, seq: i * 4, timestampNs: BigInt(i) * 10n + 5n, tid: 9, payload: a, originalLength: 4 });
      t.onData(ev, 0, i);
    }
    assert.equal(calls, 2 * N, "one decoder call per in-order event");
    assert.equal(out.length, N);
    assert.ok(out.every((o, i) => o.tid === 100 + (i % 7)), "every record has its request's thread");
    assert.equal(t.pendingBytes(), 0);
  });
});

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");

/** A table over the real plugin host with the built plugins of these manifests (paths under the repository). */
function engineTable(manifests: string[]) {
  const registry = new PluginRegistry();
  for (const m of manifests) registry.add(Plugin.fromFile(path.join(root, m)));
  return () => {
    const counters = new Counters();
    const out: OutRecord[] = [];
    const t = new ConnTable(new ConnectionEngine(registry, { counters }), { ...DEFAULT_CONN_TABLE_OPTIONS, node: "n1", redaction: redactionPolicy() }, counters, (r) => out.push(r));
    return { t, counters, out };
  };
}

// The detection budget is the plugin host's (ConnectionEngine's detectLimit), not the table's:
// the table drops what the engine gives up, once.
describe("ConnTable with the engine's detection budget", () => {
  it("drops a connection the engine gives up as unclaimed, and ignores its later bytes", () => {
    const registry = new PluginRegistry();
    registry.add(Plugin.fromFile(path.join(root, "parsers-wasm/build/http1.json")));
    const engineCounters = new Counters();
    const counters = new Counters();
    const engine = new ConnectionEngine(registry, { detectLimit: 64, counters: engineCounters });
    const t = new ConnTable(engine, { ...DEFAULT_CONN_TABLE_OPTIONS, node: "n1", redaction: redactionPolicy() }, counters, () => assert.fail("no record"));
    t.onConn(open(5n), 0, 0);
    t.onData(data(5n, IN, 0, "x".repeat(40), 10n), 0, 0);
    assert.equal(t.size, 1, "40 bytes: still detecting");
    t.onData(data(5n, IN, 40, "y".repeat(40), 11n), 0, 0);
    assert.equal(t.size, 0);
    assert.equal(counters.get("conn_dropped.unclaimed"), 1);
    assert.equal(engineCounters.get("bytes_dropped.unclaimed"), 80);
    t.onData(data(5n, IN, 80, "z", 12n), 0, 0);
    assert.equal(counters.get("data_ignored"), 1);
    assert.equal(counters.get("conn_dropped.unclaimed"), 1);
  });
});

// The real plugin host and the built HTTP/1 plugin: connections that predate this replica.
describe("ConnTable with connections picked up mid-stream", () => {
  const midstream = engineTable(["parsers-wasm/build/http1.json", "parsers-wasm/examples/redis/build/redis.json"]);
  const req = (path: string) => `GET ${path} HTTP/1.1\r\nHost: h\r\n\r\n`;
  const resp = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

  for (const side of ["client", "server"] as const) {
    it(`takes the ${side} role from content, from the next whole request on`, () => {
      const { t, out, counters } = midstream();
      // the socket's own end sends egress: requests on a client socket, responses on a server's
      const [reqDir, respDir] = side === "client" ? [EG, IN] : [IN, EG];
      // the tail of a response body, then keep-alive exchanges, seq far from 0
      t.onData(data(5n, respDir, 9000, "ody-tail", 10n), 0, 0);
      t.onData(data(5n, reqDir, 4000, req("/a"), 20n), 0, 0);
      t.onData(data(5n, respDir, 9008, resp, 30n), 0, 0);
      t.onData(data(5n, reqDir, 4000 + req("/a").length, req("/b"), 40n), 0, 0);
      t.onData(data(5n, respDir, 9008 + resp.length, resp, 50n), 0, 0);
      const recs = out.map((o) => fromBinary(RecordSchema, full(o)));
      assert.deepEqual(recs.map((r) => [r.resource, r.status]), [["/a", 200n], ["/b", 200n]]);
      for (const r of recs) assert.equal(r.role, side === "client" ? Role.CLIENT : Role.SERVER);
      assert.equal(counters.get("conn_role_from_content"), 1);
      assert.equal(counters.get("conn_midstream"), 1);
    });
  }

  it("leaves the role unknown, counted, when content cannot tell", () => {
    const { t, out, counters } = midstream();
    // RESP: an array of bulk strings is a request as much as a reply; the other side never spoke
    t.onData(data(6n, EG, 300, "*1\r\n$4\r\nPING\r\n", 10n), 0, 0);
    t.closeAll();
    const recs = out.map((o) => fromBinary(RecordSchema, full(o)));
    assert.deepEqual(recs.map((r) => [r.operation, r.role, r.incomplete]), [["PING", Role.UNKNOWN, true]]);
    assert.equal(counters.get("conn_role_unknown"), 1);
    assert.equal(counters.get("conn_role_from_content"), 0);
  });

  it("keeps a keep-alive connection decoding after lost batches (no conn_dropped.limit)", () => {
    const { t, out, counters } = midstream();
    t.onConn(open(7n, Role.SERVER), 0, 0);
    let rq = 0;
    let rs = 0;
    let ts = 100n;
    const exchange = (i: number, dropResponse: boolean) => {
      const q = req(`/r${i}`);
      t.onData(data(7n, IN, rq, q, (ts += 10n)), 0, 0);
      rq += q.length;
      if (!dropResponse) t.onData(data(7n, EG, rs, resp, (ts += 10n)), 0, 0);
      rs += resp.length;
    };
    for (let i = 0; i < 10; i++) exchange(i, false);
    // responses lost for 1,500 exchanges (batches that never arrive): the hole in the response
    // stream is waited for, then declared a gap; requests keep arriving meanwhile
    for (let i = 10; i < 1510; i++) exchange(i, true);
    for (let i = 1510; i < 1520; i++) exchange(i, false);
    t.closeAll();
    const recs = out.map((o) => fromBinary(RecordSchema, full(o)));
    assert.equal(counters.get("conn_dropped.limit"), 0);
    const ok = recs.filter((r) => r.status === 200n).map((r) => r.resource);
    // every exchange after the loss is decoded and paired with its own request
    for (let i = 1510; i < 1520; i++) assert.ok(ok.includes(`/r${i}`), `/r${i} decoded`);
    for (const r of recs) if (r.status === 200n) assert.ok(/^\/r\d+$/.test(r.resource));
    // nothing answered wrongly: a lost response's request is incomplete, without a status
    assert.ok(recs.filter((r) => r.incomplete).every((r) => r.status === undefined));
  });
});

describe("ConnTable: lazy endpoint resolution", () => {
  const ev = (key: bigint, role: Role, local: [string, number], remote: [string, number], pid: number, name: string) =>
    create(ConnEventSchema, { connKey: key, kind: ConnKind.OPEN, role, localAddress: local[0], localPort: local[1], remoteAddress: remote[0], remotePort: remote[1], process: { pid, name }, timestampNs: 1n });
  const ends = (o: OutRecord) => {
    const r = fromBinary(RecordSchema, full(o));
    return `${r.client?.service} -> ${r.server?.service}`;
  };

  it("names the peer once its connection event arrives after the first record, and the client by its listening port", () => {
    const { t, out, counters } = setup();
    // web (pid 50) calls lined on loopback; lined's side of the connection is not seen yet
    t.onConn(ev(2n, Role.CLIENT, ["127.0.0.1", 51000], ["127.0.0.1", 7000], 50, "web"), 1, 0);
    t.onData(data(2n, EG, 0, "Q a\n", 10n), 1, 0);
    t.onData(data(2n, IN, 0, "A 1\n", 20n), 1, 0);
    assert.deepEqual(out.map(ends), ["web -> 127.0.0.1:7000"]);
    assert.equal(out[0]!.outputService, "web", "a client-side record goes to its own service's partition");
    assert.equal(counters.get("records_peer_unresolved"), 1);
    // lined's accept, on another partition, and web's own accept of a caller (web listens on 17080)
    t.onConn(ev(3n, Role.SERVER, ["127.0.0.1", 7000], ["127.0.0.1", 51000], 42, "lined"), 2, 0);
    t.onConn(ev(4n, Role.SERVER, ["127.0.0.1", 17080], ["127.0.0.1", 52000], 50, "web"), 3, 0);
    for (let i = 1; i <= 100; i++) {
      t.onData(data(2n, EG, 4 * i, "Q b\n", BigInt(10 + 20 * i)), 1, 0);
      t.onData(data(2n, IN, 4 * i, "A 2\n", BigInt(20 + 20 * i)), 1, 0);
    }
    assert.equal(out.length, 101);
    assert.equal(ends(out[1]!), "web:17080 -> lined:7000");
    assert.equal(ends(out[100]!), "web:17080 -> lined:7000");
    assert.equal(out[100]!.outputService, "web:17080");
    assert.equal(counters.get("records_peer_unresolved"), 1, "only the record published before the peer was known");
    // the host fields were re-encoded once (both ends learned by the same record), not per record
    assert.equal(counters.get("endpoints_resolved_late"), 1);
    // the server's own records name the client by its listening port too
    t.onData(data(3n, IN, 0, "Q c\n", 5000n), 2, 0);
    t.onData(data(3n, EG, 0, "A 3\n", 5010n), 2, 0);
    assert.equal(ends(out[101]!), "web:17080 -> lined:7000");
  });

  it("keeps a client that never listens named by its process, and an external server by its address", () => {
    const { t, out, counters } = setup();
    t.onConn(ev(5n, Role.CLIENT, ["10.0.0.5", 40000], ["203.0.113.9", 443], 60, "curl"), 1, 0);
    for (let i = 0; i < 50; i++) {
      t.onData(data(5n, EG, 4 * i, "Q x\n", BigInt(10 + 20 * i)), 1, 0);
      t.onData(data(5n, IN, 4 * i, "A 1\n", BigInt(20 + 20 * i)), 1, 0);
    }
    assert.equal(out.length, 50);
    assert.ok(out.every((o) => ends(o) === "curl -> 203.0.113.9:443"));
    assert.equal(counters.get("records_peer_unresolved"), 50);
    assert.equal(counters.get("endpoints_resolved_late"), 0);
  });
});

// The real plugin host and the built MySQL plugin: a connection upgraded to TLS in-band, whose
// plaintext the probe reads from the TLS library and announces with a second open (tls = true).
describe("ConnTable: an in-band TLS upgrade", () => {
  const table = engineTable(["parsers-wasm/build/mysql.json", "parsers-wasm/build/http1.json"]);
  const bytes = (key: bigint, direction: Direction, seq: number, payload: Buffer, ts: bigint) =>
    create(DataEventSchema, { connKey: key, direction, seq: BigInt(seq), payload, originalLength: payload.length, timestampNs: ts, tid: 7 });
  const tlsOpen = (key: bigint, role: Role) => ({ ...open(key, role), tls: true, tlsLibrary: "openssl", timestampNs: 25n });
  const attr = (r: WsRecord, k: string) => r.attributes[k]?.value.value;
  /** The vector builders of parsers-wasm/mysql/test/wire.ts, loaded from their compiled copy at run time. */
  type Wire = typeof import("../../../parsers-wasm/mysql/test/wire.js");

  it("MySQL's SSL request and the login inside TLS are one LOGIN record, the plaintext decoded by the same session", async () => {
    const W = (await import(pathToFileURL(path.join(root, "parsers-wasm/dist/mysql/test/wire.js")).href)) as Wire;
    const caps = W.BASE_CAPS | W.CAPS.SSL | W.CAPS.DEPRECATE_EOF;
    const { t, out, counters } = table();
    // a client socket: it sends egress
    t.onConn(open(10n, Role.CLIENT), 0, 0);
    t.onData(bytes(10n, IN, 0, W.pkt(0, W.greeting("8.0.36", caps, "mysql_native_password")), 10n), 0, 0);
    t.onData(bytes(10n, EG, 0, W.pkt(1, W.B(W.u32(caps), W.u32(16 << 20), [0x21], Buffer.alloc(23))), 20n), 0, 0);
    t.onConn(tlsOpen(10n, Role.CLIENT), 0, 0);
    const login = W.pkt(2, W.login(caps, "app", Buffer.alloc(20, 7), "shop", "mysql_native_password"));
    const ok = W.pkt(3, W.ok());
    t.onData(bytes(10n, EG, 0, login, 30n), 0, 0);
    t.onData(bytes(10n, IN, 0, ok, 40n), 0, 0);
    t.onData(bytes(10n, EG, login.length, W.pkt(0, W.B([3], "SELECT 1")), 50n), 0, 0);
    t.onData(bytes(10n, IN, ok.length, W.B(W.pkt(1, W.lenenc(1)), W.pkt(2, W.coldef("1")), W.pkt(3, W.textRow(1)), W.pkt(4, W.ok(0, 0, 2, 0xfe))), 60n), 0, 0);
    t.onConn(close(10n), 0, 0);
    const recs = out.map((o) => fromBinary(RecordSchema, full(o)));
    assert.deepEqual(recs.map((r) => [r.operation, r.status]), [["LOGIN", 0n], ["COM_QUERY", 0n]]);
    const [l] = recs;
    assert.equal(attr(l!, "db.user"), "app");
    assert.equal(attr(l!, "mysql.tls"), true);
    assert.equal(attr(l!, "tls"), true, "written after the TLS open: the TLS attributes");
    assert.equal(attr(l!, "mysql.server_version"), "8.0.36", "the greeting of the cleartext part carries over");
    assert.equal(l!.startNs, 20n, "from the SSL request");
    assert.equal(l!.durationNs, 20n, "to the login's OK");
    assert.equal(l!.role, Role.CLIENT);
    assert.equal(counters.get("conn_tls_continued"), 1);
  });

  it("a connection no plugin had claimed (a ClientHello) starts afresh on its TLS open", () => {
    const { t, out, counters } = table();
    t.onConn(open(11n, Role.CLIENT), 0, 0);
    t.onData(bytes(11n, EG, 0, Buffer.from([0x16, 3, 1, 0, 4, 1, 0, 0, 0]), 10n), 0, 0);
    t.onConn(tlsOpen(11n, Role.CLIENT), 0, 0);
    const req = Buffer.from("GET /x HTTP/1.1\r\nHost: h\r\n\r\n");
    t.onData(bytes(11n, EG, 0, req, 30n), 0, 0);
    t.onData(bytes(11n, IN, 0, Buffer.from("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), 40n), 0, 0);
    t.onConn(close(11n), 0, 0);
    const recs = out.map((o) => fromBinary(RecordSchema, full(o)));
    assert.deepEqual(recs.map((r) => [r.resource, r.status, attr(r, "tls")]), [["/x", 200n, true]]);
    assert.equal(counters.get("conn_tls_continued"), 0);
  });
});

// ABI v2: what a plugin counts on a connection that lives on reaches the host's counters while it lives.
describe("ConnTable.sweep reports the decoders' counters of live connections", () => {
  it("a reply without a request on a keep-alive Redis connection: plugin_drops.redis before the close", () => {
    const { t, counters: engineCounters, out } = engineTable(["parsers-wasm/examples/redis/build/redis.json"])();
    t.onConn(open(9n), 0, 0);
    const steps: [Direction, string][] = [[IN, "*1\r\n$4\r\nPING\r\n"], [EG, "+PONG\r\n"], [EG, "+OK\r\n"]];
    const seq = [0, 0];
    steps.forEach(([d, s], k) => {
      t.onData(data(9n, d, seq[d === IN ? 0 : 1]!, s, BigInt(10 + k)), 0, 100);
      seq[d === IN ? 0 : 1]! += s.length;
    });
    assert.equal(out.length, 1);
    assert.equal(engineCounters.get("plugin_drops.redis"), 0, "not asked yet");
    t.sweep(1000);
    assert.equal(engineCounters.get("plugin_drops.redis"), 1);
    t.sweep(2000);
    assert.equal(engineCounters.get("plugin_drops.redis"), 1, "asked at most every 10 s");
    t.sweep(20_000);
    t.onConn(close(9n), 0, 30_000);
    assert.equal(engineCounters.get("plugin_drops.redis"), 1, "reported once");
    assert.equal(t.size, 0);
  });
});
