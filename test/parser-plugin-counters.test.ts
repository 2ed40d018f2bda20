// The Kafka, MySQL, PostgreSQL, HTTP/1.1 and HTTP/2 decoders' own counters (plugin ABI v2
// conn_stats: framing errors, drops, bytes dropped) travel end to end in a real `wirescope parser`
// on a real nats-server: connections captured in ../shared/captures (Kafka, MySQL) and recorded
// through a relay to a real PostgreSQL (node-postgres) and a real node:http / node:http2 server
// are replayed as the probe publishes them, some unchanged and some with garbage and lost bytes
// spliced in where a message must start, or (HTTP) with the malformed bytes a raw socket sent
// the real server, which answered them. The counters show
// as plugin_errors.*, plugin_drops.*, plugin_bytes_dropped.* in Status (gRPC and `wirescope
// status --json`) and in /metrics (scraped, parsed with a Prometheus text-format parser), grow
// only for the protocol that got garbage, and stay at 0 for the clean protocols decoded alongside.
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import { createRequire } from "node:module";
import path from "node:path";
import { SHARED_CAPTURES } from "@wirescope/capture/test-support/pcap";
import { conversationsFromCapture, parserStatus, readRecords, startParser, toRawBatches, useParserBed, type Chunk, type Conversation, type ParserBed, type ParserProc } from "./parser-support.js";
import pg from "pg";
import { captureThroughRelay, parserPlugins } from "./parser-support.js";
import { startPostgres, type Postgres } from "./support/postgres.js";
import { freePort, POSTGRESQL_PLUGIN_DIR, waitFor, WIRESCOPE_BIN } from "./support/index.js";

interface PromFamily {
  name: string;
  metrics: { value?: string; labels?: Record<string, string> }[];
}
const parsePrometheus = createRequire(import.meta.url)("parse-prometheus-text-format") as (text: string) => PromFamily[];

const P = 64;
const PROTOS = ["kafka", "mysql", "postgresql", "http1", "http2"] as const;
type Proto = (typeof PROTOS)[number];
interface Counts {
  errors: number;
  drops: number;
  bytes_dropped: number;
}

const capture = (name: string) => conversationsFromCapture(path.join(SHARED_CAPTURES, name));
const hex = (s: string) => Buffer.from(s, "hex");

/** `conv` with `extra` spliced in after its first `after` chunks (stamped with the last one's time). */
function splice(conv: Conversation, after: number, extra: [0 | 1, Uint8Array | number][]): Conversation {
  const at = conv.chunks[after - 1]!.tsNs;
  const added: Chunk[] = extra.map(([dir, b]) => (typeof b === "number" ? { dir, bytes: new Uint8Array(0), gap: b, tsNs: at } : { dir, bytes: b, tsNs: at }));
  return { ...conv, chunks: [...conv.chunks.slice(0, after), ...added, ...conv.chunks.slice(after)] };
}

/** A node-postgres session through a recording relay: login (trust), two simple queries. */
async function pgSession(srv: Postgres): Promise<Conversation> {
  const [conv] = await captureThroughRelay(srv.port, "postgres", async (port) => {
    const c = new pg.Client({ host: "127.0.0.1", port, user: "trustuser", database: "postgres" });
    await c.connect();
    await c.query("SELECT 1");
    await c.query("SELECT 2");
    await c.end();
  });
  return conv!;
}
let pgConv: Conversation;

/** Runs `drive` against a node:http (or node:http2, `h2`) server whose answers are "ok" (or "a" "b" chunked on /chunked) once the request's body has ended. */
async function withServer(h2: boolean, drive: (port: number) => Promise<Conversation[]>): Promise<Conversation[]> {
  const handler = (q: http.IncomingMessage | http2.Http2ServerRequest, r: { write(b: string): void; end(b: string): void }) => {
    q.resume();
    q.on("end", () => (q.url === "/chunked" ? (r.write("a"), r.end("b")) : r.end("ok")));
  };
  const srv = h2 ? http2.createServer(handler) : http.createServer(handler);
  const sockets = new Set<net.Socket>();
  srv.on("connection", (s: net.Socket) => sockets.add(s));
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  try {
    return await drive((srv.address() as net.AddressInfo).port);
  } finally {
    srv.close();
    for (const s of sockets) s.destroy(); // what the clients left open (node:http2 keeps a session after its GOAWAY)
  }
}

/** A node:http keep-alive connection: a GET, a chunked POST, a GET answered chunked. */
const h1Session = () =>
  withServer(false, (port) =>
    captureThroughRelay(port, "node", async (relay) => {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      const call = (method: string, path: string, body?: string[]) =>
        new Promise<void>((done, fail) => {
          const q = http.request({ host: "127.0.0.1", port: relay, method, path, agent }, (r) => (r.resume(), r.on("end", done)));
          q.on("error", fail);
          for (const b of body ?? []) q.write(b);
          q.end();
        });
      await call("GET", "/a");
      await call("POST", "/up", ["hello", " world"]);
      await call("GET", "/chunked");
      agent.destroy();
    }),
  );

/** A node:http2 session: two GETs, then the client closes. */
const h2Session = () =>
  withServer(true, (port) =>
    captureThroughRelay(port, "node", async (relay) => {
      const c = http2.connect(`http://127.0.0.1:${relay}`);
      for (const path of ["/a", "/chunked"])
        await new Promise<void>((done, fail) => {
          const st = c.request({ ":path": path });
          st.on("error", fail);
          st.resume();
          st.on("end", done);
          st.end();
        });
      await new Promise<void>((r) => c.close(() => r()));
    }),
  );

/**
 * A raw socket through the relay to a real server: `first` (answered with a body ending in "ok"),
 * then `bad` in one write; the server answers it (400, or GOAWAY) and the socket closes. The recording must
 * hold `bad` as one chunk: what the decoder drops is counted from there to the chunk's end.
 */
async function rawSession(h2: boolean, first: Buffer, bad: Buffer): Promise<Conversation> {
  const [conv] = await withServer(h2, (port) =>
    captureThroughRelay(port, "raw", (relay) =>
      new Promise<void>((done, fail) => {
        const s = net.connect(relay, "127.0.0.1", () => s.write(first));
        let got = Buffer.alloc(0);
        let sent = false;
        s.on("data", (b) => {
          got = Buffer.concat([got, b]);
          if (sent) s.end(); // the answer to `bad` (node:http2 then waits for the client to close)
          else if (got.includes("ok")) (sent = true), s.write(bad);
        });
        s.on("error", fail);
        s.on("close", () => (sent ? done() : fail(new Error(`no answer to the first request: ${got.toString("latin1")}`))));
      }),
    ),
  );
  assert.ok(conv!.chunks.some((ch) => ch.dir === 0 && Buffer.from(ch.bytes).equals(bad)), "the malformed bytes recorded as one chunk");
  return conv!;
}

const H1_GET = Buffer.from("GET /ok HTTP/1.1\r\nHost: h\r\n\r\n");
/** A chunked POST whose chunk size is no hex number: node:http answers 400, the decoder drops the 16 bytes from the size on. */
const H1_BAD_CHUNK = [Buffer.from("POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"), Buffer.from("zz\r\nhello\r\n0\r\n\r\n")];
/** A request line that is none (no method): node:http answers 400 to no request the decoder knows. */
const H1_BAD_LINE = Buffer.from("\x01\x02 bad request line\r\n\r\n", "latin1");
/** HTTP/2: the client preface, an empty SETTINGS, GET / (HPACK: :method GET, :scheme http, :path /, :authority h) ending its stream. */
const H2_GET = Buffer.concat([Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), hex("000000040000000000"), hex("000006010500000001828684410168")]);
/** A PING of 7 bytes (a PING is 8): the decoder loses framing (its 9 + 7 bytes dropped); node:http2 answers GOAWAY. */
const H2_BAD_PING = hex("00000706000000000001020304050607");
let h1Convs: Conversation[];
let h2Convs: Conversation[];
let h1Bad: Conversation[];
let h2Bad: Conversation[];

/** Clean connections: every Kafka capture (one exchange each), a MySQL session of 18 commands, a PostgreSQL session. */
function clean(proto: Proto): Conversation[] {
  if (proto === "kafka") return ["kafka/deepflow__00-produce-v2.pcap", "kafka/deepflow__01-fetch-v12-ok.pcap", "kafka/deepflow__18-api-versions-v3.pcap"].flatMap(capture);
  if (proto === "postgresql") return [pgConv];
  if (proto === "http1") return h1Convs;
  if (proto === "http2") return h2Convs;
  return capture("mysql/zeek__mysql.pcap");
}

/**
 * The same kind of connection with garbage and lost bytes where a message must start, and what
 * its decoder must count for it (as the vectors of the same garbage state: docs/protocols.md).
 */
const GARBAGE_COUNTS: Record<Proto, Counts> = {
  // the unanswerable response dropped, the bad size a framing error (its 12 bytes cleared), the
  // 7 bytes after the gap passed over
  kafka: { errors: 1, drops: 1, bytes_dropped: 12 + 7 },
  // the 0xee packet a framing error, the OK dropped (its 11 bytes passed over, as a response
  // picked up mid-way is), the 8 bytes after the gap passed over
  mysql: { errors: 1, drops: 1, bytes_dropped: 11 + 8 },
  // the ReadyForQuery dropped, the Query header of length 2 a framing error, its 13 bytes hunted over
  postgresql: { errors: 1, drops: 1, bytes_dropped: 13 },
  // the bad chunk size and the bad request line framing errors (the 16 and 23 bytes from each
  // passed over), node:http's 400 to the bad line dropped (no request waits for it); the 400 to
  // the bad chunk answers its POST
  http1: { errors: 2, drops: 1, bytes_dropped: H1_BAD_CHUNK[1]!.length + H1_BAD_LINE.length },
  // the 7-byte PING a framing error, its 16 bytes dropped; node:http2's GOAWAY decodes
  http2: { errors: 1, drops: 0, bytes_dropped: H2_BAD_PING.length },
};
function garbage(proto: Proto): Conversation[] {
  if (proto === "http1") return h1Bad;
  if (proto === "http2") return h2Bad;
  if (proto === "kafka") {
    const [c] = capture("kafka/deepflow__18-api-versions-v3.pcap");
    // after ApiVersions and its answer: a response with correlation id 999 (nothing asked for
    // it), a request of size -1, 5 bytes lost, 7 bytes that start no request, ApiVersions again
    return [splice(c!, 2, [[1, hex("00000008000003e700000000")], [0, hex("ffffffff0001020304050607")], [0, 5], [0, Buffer.from("hello!!")], ...c!.chunks.map((ch): [0 | 1, Uint8Array] => [ch.dir, ch.bytes])])];
  }
  if (proto === "postgresql") {
    // before the second query (after the first one's answer): a ReadyForQuery that answers
    // nothing, then a Query whose length (2) breaks its rule where a message must start
    const second = pgConv.chunks.findIndex((ch, i) => ch.dir === 0 && i > pgConv.chunks.findIndex((x) => x.dir === 0 && x.bytes[0] === 0x51));
    return [splice(pgConv, second, [[1, hex("5a0000000549")], [0, Buffer.from("Q\0\0\0\x02garbage!", "latin1")]])];
  }
  const [c] = capture("mysql/zeek__mysql.pcap");
  // after login and the first query: a packet where a command must start whose first byte
  // (0xee) is no command, an OK that answers nothing, 16 bytes lost, 8 bytes that start no
  // command, then the session goes on
  return [splice(c!, 5, [[0, hex("05000000ee01020304")], [1, hex("0700000100000002000000")], [0, 16], [0, Buffer.from("garbage!")]])];
}

function statusCounts(s: Record<string, number>, proto: Proto): Counts {
  return { errors: s[`plugin_errors.${proto}`] ?? 0, drops: s[`plugin_drops.${proto}`] ?? 0, bytes_dropped: s[`plugin_bytes_dropped.${proto}`] ?? 0 };
}

/** The same counters as /metrics exports them (docs/plugin-abi.md, "Counters"); absent is 0. */
function metricsCounts(families: PromFamily[], proto: Proto): Counts {
  const value = (family: string, labels: Record<string, string>) => {
    const m = families.find((f) => f.name === family)?.metrics.find((s) => Object.entries(labels).every(([k, v]) => s.labels?.[k] === v));
    return m ? Number(m.value) : 0;
  };
  return {
    errors: value("wirescope_plugin_errors_total", { key: proto }),
    drops: value("wirescope_drops_total", { what: "plugin", reason: proto }),
    bytes_dropped: value("wirescope_dropped_bytes_total", { what: "plugin", reason: proto }),
  };
}

async function scrape(address: string): Promise<PromFamily[]> {
  const res = await fetch(`http://${address}/metrics`);
  assert.equal(res.status, 200);
  return parsePrometheus(await res.text());
}

let nextKey = 70_000n;
/** Publishes the connections as the probe would (open, data, close) and waits for a record from each. */
async function replay(bed: ParserBed, convs: Conversation[]): Promise<void> {
  const plan = toRawBatches(convs, { partitions: P, firstKey: nextKey, seqStart: seqs });
  nextKey += BigInt(convs.length);
  for (const b of plan.batches) bed.nc.publish(`wirescope.raw.${b.partition}`, b.bytes);
  await bed.nc.flush();
  const keys = new Set(plan.batches.map((b) => b.connKey));
  await waitFor(async () => new Set((await readRecords(bed.nc)).map((r) => r.record.connKey).filter((k) => keys.has(k))).size === keys.size, {
    timeoutMs: 15_000,
    what: "a record from every replayed connection",
  });
}
const seqs = new Map<number, number>();

/** Status and /metrics once the counters have settled (two Status snapshots a tick apart agree, /metrics scraped between). */
async function settled(p: ParserProc, metrics: string): Promise<{ status: Record<string, number>; families: PromFamily[] }> {
  const plugin = (s: Record<string, number>) => JSON.stringify(Object.entries(s).filter(([k]) => k.startsWith("plugin_") || k.startsWith("records.")).sort());
  let status: Record<string, number> = {};
  let families: PromFamily[] = [];
  await waitFor(
    async () => {
      const before = (await parserStatus(p)).counters;
      await new Promise((r) => setTimeout(r, 1100));
      families = await scrape(metrics);
      status = (await parserStatus(p)).counters;
      return plugin(before) === plugin(status);
    },
    { timeoutMs: 15_000, what: "the parser's counters settled" },
  );
  return { status, families };
}

const ZERO: Counts = { errors: 0, drops: 0, bytes_dropped: 0 };
const diff = (a: Counts, b: Counts): Counts => ({ errors: a.errors - b.errors, drops: a.drops - b.drops, bytes_dropped: a.bytes_dropped - b.bytes_dropped });

// 14 s at load 2 on the 2-core VM (PostgreSQL started, a parser, three rounds): the cap leaves room
// for a loaded CI machine; the inner waits have their own 15 s bounds.
describe("plugin counters (conn_stats) of Kafka, MySQL, PostgreSQL, HTTP/1.1 and HTTP/2 in a running parser", { timeout: 240_000 }, () => {
  const bed = useParserBed();
  let srv: Postgres | undefined;
  after(() => srv?.stop());

  it("garbage on one protocol's connections shows in Status and /metrics for that protocol only; clean connections count nothing", async () => {
    const port = await freePort();
    const metrics = `127.0.0.1:${port}`;
    // the parser starts while the PostgreSQL session is recorded
    const [p] = await Promise.all([
      startParser(bed.nats.url, ["--metrics-port", String(port), "--plugin-dir", POSTGRESQL_PLUGIN_DIR], "parser-plugin-counters").then((x) => (bed.procs.push(x), x)),
      (async () => {
        h1Convs = await h1Session();
        h2Convs = await h2Session();
        h1Bad = [await rawSession(false, H1_GET, Buffer.concat(H1_BAD_CHUNK)), await rawSession(false, H1_GET, H1_BAD_LINE)];
        h2Bad = [await rawSession(true, H2_GET, H2_BAD_PING)];
        srv = await startPostgres();
        await srv.sql("CREATE ROLE trustuser LOGIN");
        pgConv = await pgSession(srv);
      })(),
    ]);
    await waitFor(async () => (await parserPlugins(p)).includes("postgresql@1.0.0"), { timeoutMs: 15_000, what: "the PostgreSQL example plugin loaded" });

    let last = Object.fromEntries(PROTOS.map((x) => [x, ZERO])) as Record<Proto, Counts>;
    for (const bad of PROTOS) {
      const good = PROTOS.filter((x) => x !== bad);
      // the clean connections first, then the garbage ones: the garbage's counters showing means
      // the clean connections (published before, decoded and closed) were reported too
      await replay(bed, good.flatMap(clean));
      await replay(bed, garbage(bad));
      const { status, families } = await settled(p, metrics);
      const now = Object.fromEntries(PROTOS.map((x) => [x, statusCounts(status, x)])) as Record<Proto, Counts>;
      const summary = JSON.stringify(Object.fromEntries(Object.entries(status).filter(([k]) => k.startsWith("plugin_") || k.startsWith("records"))));
      for (const proto of PROTOS) assert.deepEqual(metricsCounts(families, proto), now[proto], `${proto}: /metrics says what Status says`);
      assert.deepEqual(diff(now[bad], last[bad]), GARBAGE_COUNTS[bad], `${bad} garbage counted: ${summary}`);
      for (const g of good) assert.deepEqual(diff(now[g], last[g]), ZERO, `${g} clean connections count nothing: ${summary}`);
      last = now;
    }

    // `wirescope status --json` shows the same counters
    const cli = spawnSync(process.execPath, [WIRESCOPE_BIN, "status", "--json", "--address", p.grpc, "--nats-url", bed.nats.url], { timeout: 20_000 });
    const rows = JSON.parse(cli.stdout.toString()) as { component?: string; instance?: string; counters?: Record<string, number> }[];
    const row = rows.find((r) => r.instance === p.instance && r.counters);
    assert.ok(row, `parser row in ${cli.stdout.toString().slice(0, 2000)} ${cli.stderr.toString()}`);
    for (const proto of PROTOS) assert.deepEqual(statusCounts(row.counters!, proto), last[proto], `wirescope status: ${proto}`);
  });
});
