// The Kafka, MySQL and PostgreSQL decoders' own counters (plugin ABI v2 conn_stats: framing
// errors, drops, bytes dropped) travel end to end in a real `wirescope parser` on a real
// nats-server: connections captured in ../shared/captures (Kafka, MySQL) and recorded through a
// relay to a real PostgreSQL (node-postgres) are replayed as the probe publishes them, some
// unchanged and some with garbage and lost bytes spliced in where a message must start. The counters show
// as plugin_errors.*, plugin_drops.*, plugin_bytes_dropped.* in Status (gRPC and `wirescope
// status --json`) and in /metrics (scraped, parsed with a Prometheus text-format parser), grow
// only for the protocol that got garbage, and stay at 0 for the clean protocols decoded alongside.
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
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
const PROTOS = ["kafka", "mysql", "postgresql"] as const;
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

/** Clean connections: every Kafka capture (one exchange each), a MySQL session of 18 commands, a PostgreSQL session. */
function clean(proto: Proto): Conversation[] {
  if (proto === "kafka") return ["kafka/deepflow__00-produce-v2.pcap", "kafka/deepflow__01-fetch-v12-ok.pcap", "kafka/deepflow__18-api-versions-v3.pcap"].flatMap(capture);
  if (proto === "postgresql") return [pgConv];
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
};
function garbage(proto: Proto): Conversation[] {
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
describe("plugin counters (conn_stats) of Kafka, MySQL and PostgreSQL in a running parser", { timeout: 240_000 }, () => {
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
