// The parser hands a RawBatch's chunks to the plugins in one ABI v2 feed_batch call per plugin
// instance (ConnTable.beginSteps, docs/parser.md "Per connection"). Two proofs on real traffic:
//  - in process, every shared capture (../shared/captures) replayed as the probe would publish
//    it, many connections interleaved in each RawBatch: the records (bytes, per connection, in
//    order) and every counter are those of one call per chunk, with far fewer calls;
//  - a real `wirescope parser` on a real nats-server, fed the RawBatches of 32 keep-alive
//    HTTP/1.1 connections of a real node:http server: one feed_batch call per RawBatch (its
//    status shows `host.feed_batch_calls` and `host.feed_batch_steps`), and the same records as
//    the in-process pipeline that makes one call per chunk.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import { ConnEventSchema, ConnKind, DataEventSchema, Direction, RawBatchSchema, RecordSchema, Role } from "@wirescope/wire";
import { Counters } from "@wirescope/runtime";
import { sharedCaptures } from "@wirescope/capture/test-support/pcap";
import { Pipeline } from "@wirescope/parser/pipeline";
import { DEFAULT_MAX_DETECT_BYTES, LoadedPlugin, PluginSet } from "@wirescope/parser/wasm-plugins";
import { redactionPolicy } from "@wirescope/parser/redact";
import { DEFAULT_CONN_TABLE_OPTIONS } from "@wirescope/parser/conn-table";
import { recordsByConn } from "@wirescope/parser/test-support/records";
import { captureThroughRelay, conversationsFromCapture, parserStatus, settleRecords, startParser, useParserBed, type Conversation } from "./parser-support.js";
import { PLUGINS_DIR, waitFor } from "./support/index.js";

const P = 64;

/** A Pipeline of the built-in plugins, as the service builds it; `batch` false: one call per chunk. */
function pipeline(batch: boolean) {
  const plugins = new PluginSet(DEFAULT_MAX_DETECT_BYTES, { batch });
  for (const f of fs.readdirSync(PLUGINS_DIR).filter((f) => f.endsWith(".json")).sort()) {
    const m = JSON.parse(fs.readFileSync(path.join(PLUGINS_DIR, f), "utf8")) as { name: string; wasm?: string };
    plugins.put(LoadedPlugin.load(m, fs.readFileSync(path.join(PLUGINS_DIR, m.wasm ?? `${m.name}.wasm`)), "builtin", () => true));
  }
  const counters = new Counters();
  const p = new Pipeline(plugins, { ...DEFAULT_CONN_TABLE_OPTIONS, node: "test-node", parserId: "p", partitions: P, redaction: redactionPolicy(), maxBatchBytes: 512 * 1024, maxQueuedBatches: 1 << 20 }, counters);
  p.setOwned(new Set(Array.from({ length: P }, (_, i) => i)), () => undefined);
  return { p, counters, plugins };
}

/**
 * The conversations as the probe publishes them from the server's socket (ingress = the
 * client's bytes), connection i under key `keys[i]` on partition key % P. Per partition, the
 * connections' chunks are interleaved (one chunk of each in turn) and cut into RawBatches of
 * `perBatch` events; each connection's open goes in the batch of its first chunk, its close in
 * the batch of its last. `head` chunks of every connection go first, in a batch of their own per
 * partition (detection), when given.
 */
function rawBatches(convs: Conversation[], keys: bigint[], perBatch: number, head = 0): Uint8Array[] {
  type Ev = ReturnType<typeof create<typeof DataEventSchema>>;
  const byPart = new Map<number, { key: bigint; conv: Conversation; events: Ev[] }[]>();
  convs.forEach((conv, i) => {
    const key = keys[i]!;
    const off = [0, 0];
    const events = conv.chunks.map((ch) => {
      const len = ch.gap ?? ch.bytes.length;
      const ev = create(DataEventSchema, { connKey: key, direction: ch.dir === 0 ? Direction.INGRESS : Direction.EGRESS, seq: BigInt(off[ch.dir]!), timestampNs: ch.tsNs, tid: 1000 + ch.dir, payload: ch.bytes, originalLength: len });
      off[ch.dir]! += len;
      return ev;
    });
    const part = Number(key % BigInt(P));
    const list = byPart.get(part) ?? [];
    list.push({ key, conv, events });
    byPart.set(part, list);
  });
  const out: Uint8Array[] = [];
  for (const [partition, conns] of [...byPart].sort((a, b) => a[0] - b[0])) {
    let seq = 0;
    const connEv = (c: (typeof conns)[number], kind: ConnKind) =>
      create(ConnEventSchema, {
        connKey: c.key,
        kind,
        role: Role.SERVER,
        localAddress: c.conv.server.address,
        localPort: c.conv.server.port,
        remoteAddress: c.conv.client.address,
        remotePort: c.conv.client.port,
        process: { pid: 4242, name: c.conv.serverProcess },
        timestampNs: kind === ConnKind.OPEN ? c.conv.startNs : c.conv.endNs || c.conv.chunks.at(-1)!.tsNs,
      });
    const emit = (conns2: ReturnType<typeof connEv>[], data: Ev[]) =>
      out.push(toBinary(RawBatchSchema, create(RawBatchSchema, { node: "test-node", probeId: "feed-batch", partition, batchSeq: BigInt(++seq), conns: conns2, data })));
    const opened = new Set<bigint>();
    let pendingOpens: ReturnType<typeof connEv>[] = [];
    let closes: ReturnType<typeof connEv>[] = [];
    let data: Ev[] = [];
    const take = (c: (typeof conns)[number], ev: Ev) => {
      if (!opened.has(c.key)) {
        opened.add(c.key);
        pendingOpens.push(connEv(c, ConnKind.OPEN));
      }
      data.push(ev);
    };
    const cut = () => {
      emit([...pendingOpens, ...closes], data);
      pendingOpens = [];
      closes = [];
      data = [];
    };
    if (head > 0) {
      for (const c of conns) for (const ev of c.events.slice(0, head)) take(c, ev);
      cut();
    }
    const next = conns.map(() => head);
    for (let left = true; left; ) {
      left = false;
      conns.forEach((c, j) => {
        if (next[j]! >= c.events.length) return;
        take(c, c.events[next[j]!++]!);
        left = true;
        if (next[j] === c.events.length) closes.push(connEv(c, ConnKind.CLOSE));
        if (data.length >= perBatch) cut();
      });
    }
    if (data.length || pendingOpens.length || closes.length) cut();
  }
  return out;
}

describe("parser: a RawBatch's chunks in one feed_batch call per plugin instance", () => {
  it("every shared capture, many connections per RawBatch: the records and counters of one call per chunk", () => {
    const files = sharedCaptures();
    assert.ok(files.length >= 12, `shared captures: ${files.length}`);
    // each capture's connections four times over, under keys of their own
    const convs = files.flatMap((f) => conversationsFromCapture(f)).flatMap((c) => [c, c, c, c]);
    for (const perBatch of [64, 7]) {
      const batches = rawBatches(
        convs,
        convs.map((_, i) => (1n << 40n) + BigInt(i)),
        perBatch,
      );
      const one = pipeline(false);
      const many = pipeline(true);
      for (const b of batches) {
        assert.ok(one.p.onRawBytes(b, 0));
        assert.ok(many.p.onRawBytes(b, 0));
      }
      one.p.closeAll();
      many.p.closeAll();
      const want = recordsByConn(one.p);
      const got = recordsByConn(many.p);
      assert.ok(want.size > 40, `connections with records: ${want.size}`);
      assert.deepEqual(got, want);
      assert.deepEqual(many.counters.snapshot(), one.counters.snapshot());
      assert.deepEqual(many.plugins.engineCounters.snapshot(), one.plugins.engineCounters.snapshot());
      const { calls, entries } = many.plugins.engine.batched;
      assert.equal(one.plugins.engine.batched.calls, 0);
      // at most one call per plugin instance and RawBatch, carrying several steps on average
      assert.ok(calls > 0 && calls <= batches.length * 4, `${calls} calls for ${batches.length} batches`);
      assert.ok(entries >= 2 * calls, `${entries} steps in ${calls} calls`);
    }
  });

  describe("a real `wirescope parser`", () => {
    const bed = useParserBed();

    it("makes one feed_batch call per RawBatch for 32 keep-alive HTTP/1.1 connections, with the records of one call per chunk", async () => {
      // real traffic: 32 keep-alive connections of node:http, 8 requests each
      const srv = http.createServer((req, res) => res.end(`item ${req.url}`));
      await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
      const port = (srv.address() as { port: number }).port;
      let convs: Conversation[];
      try {
        convs = await captureThroughRelay(port, "node-http", async (relay) => {
          const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
          const get = (p: string) =>
            new Promise<void>((resolve, reject) => {
              http.get({ host: "127.0.0.1", port: relay, path: p, agent }, (res) => res.resume().on("end", resolve)).on("error", reject);
            });
          for (let round = 0; round < 8; round++) await Promise.all(Array.from({ length: 32 }, (_, i) => get(`/c${i}/r${round}`)));
          agent.destroy();
        });
      } finally {
        srv.close();
      }
      assert.equal(convs.length, 32);
      // every connection on partition 5, so each RawBatch carries chunks of all 32; the first
      // (the opens and each connection's first exchange: detection) goes call by call
      const batches = rawBatches(
        convs,
        convs.map((_, i) => 5n + BigInt(P) * BigInt(i + 1)),
        64,
        2,
      );
      const one = pipeline(false);
      const many = pipeline(true);
      for (const b of batches) {
        assert.ok(one.p.onRawBytes(b, 0));
        assert.ok(many.p.onRawBytes(b, 0));
      }
      const want = [...recordsByConn(one.p).values()].flat().sort();
      assert.equal(want.length, 32 * 8);
      const middle = batches.length - 1;
      assert.ok(middle >= 3, `${batches.length} batches`);
      assert.equal(many.plugins.engine.batched.calls, middle);

      const parser = await startParser(bed.nats.url);
      bed.procs.push(parser);
      for (const b of batches) bed.nc.publish("wirescope.raw.5", b);
      await bed.nc.flush();
      const seen = await settleRecords(bed.nc);
      const got = seen.map((s) => Buffer.from(toBinary(RecordSchema, s.record)).toString("hex")).sort();
      assert.deepEqual(got, want);
      // status copies the host's figures once a second
      let counters: Record<string, number> = {};
      await waitFor(async () => ((counters = (await parserStatus(parser)).counters)["host.feed_batch_steps"] ?? 0) > 0, { timeoutMs: 5000, what: "feed_batch counters in status" });
      assert.equal(counters["host.feed_batch_calls"], middle, JSON.stringify(counters));
      assert.equal(counters["host.feed_batch_steps"], many.plugins.engine.batched.entries);
      assert.ok(many.plugins.engine.batched.entries > 10 * middle, `${many.plugins.engine.batched.entries} steps`);
    });
  });
});
