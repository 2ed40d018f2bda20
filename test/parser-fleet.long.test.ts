// Replays real traffic (redis-cli against a real redis-server through a loopback relay, and the
// shared pcap captures) through 1 and then 3 real parser processes: the record sets must be
// identical and every connection decoded by exactly one replica.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { redisTraffic, replayWithProbe, conversationsFromCapture, recordKey, settleRecords, startFleet, toRawBatches, parserStatus, useParserBed, type Conversation } from "./parser-support.js";
import { SHARED_CAPTURES } from "@wirescope/capture/test-support/pcap";
import { PLUGINS_DIR, REDIS_PLUGIN_DIR } from "./support/index.js";
import { jetstreamManager } from "@nats-io/jetstream";

const P = 64;
const CAPTURES = SHARED_CAPTURES;
const SHARED = [
  "grpc/gRPC-Go-for-Professionals__Server_Streaming.pcapng",
  "grpc/gRPC-Go-for-Professionals__Unary.pcapng",
  "http1/zeek__pipelined-requests.pcap",
  "http2/pcap_file_ex__http2_sample.pcapng",
  "http2/suricata-verify__http2-continuation__input.pcap",
  "http2/suricata-verify__http2-keywords2__input.pcap",
  "kafka/deepflow__00-produce-v2.pcap",
  "kafka/deepflow__01-fetch-v12-ok.pcap",
  "kafka/deepflow__18-api-versions-v3.pcap",
  "mysql/deepflow__mysql-statement.pcap",
  "mysql/zeek__auth.pcap",
  "mysql/zeek__mysql.pcap",
];
const PLUGIN_ARGS = ["--builtin-dir", PLUGINS_DIR, "--plugin-dir", REDIS_PLUGIN_DIR];

function captureConversations(): Conversation[] {
  const files = ["http1/zeek__pipelined-requests.pcap", "mysql/zeek__mysql.pcap", "mysql/zeek__auth.pcap", "mysql/deepflow__mysql-statement.pcap", "kafka/deepflow__00-produce-v2.pcap", "kafka/deepflow__18-api-versions-v3.pcap"];
  return files.flatMap((f) => conversationsFromCapture(path.join(CAPTURES, f)));
}

describe("parser fleet: 1 vs 3 replicas on real traffic", { timeout: 180_000 }, () => {
  const bed = useParserBed({ redis: true });

  async function replay(n: number, convs: Conversation[] | "probe"): Promise<{ keys: string[]; byConn: Map<string, Set<string>>; counters: Record<string, number>[] }> {
    const jsm = await jetstreamManager(bed.nc);
    await jsm.streams.purge("WIRESCOPE_RECORDS").catch(() => undefined);
    const fleet = await startFleet(bed, n, PLUGIN_ARGS, `parser-${n}`, P);
    if (convs === "probe") {
      // The real probe replays every shared capture (its own partitioning and batching).
      let i = 0;
      for (const f of SHARED) await replayWithProbe(bed.nats.url, path.join(CAPTURES, f), `cap-${i++}`);
    } else {
      const plan = toRawBatches(convs, { partitions: P, firstKey: 1000n });
      for (const b of plan.batches) bed.nc.publish(`wirescope.raw.${b.partition}`, b.bytes);
      await bed.nc.flush();
    }
    const seen = await settleRecords(bed.nc, 2000, 60_000);
    const counters = await Promise.all(fleet.map(async (p) => (await parserStatus(p)).counters));
    for (const p of fleet) await p.proc.stop();
    const byConn = new Map<string, Set<string>>();
    for (const s of seen) {
      const k = `${s.record.node}/${s.record.connKey}`;
      if (!byConn.has(k)) byConn.set(k, new Set());
      byConn.get(k)!.add(s.parserId);
    }
    // The probe numbers connections afresh on every run: compare its replays without conn_key.
    const key = (r: (typeof seen)[number]["record"]) => (convs === "probe" ? recordKey({ ...r, connKey: 0n }) : recordKey(r));
    return { keys: seen.map((s) => key(s.record)).sort(), byConn, counters };
  }

  it("gives the same records from 1 and from 3 replicas, each connection on one replica", async () => {
    const convs = [...(await redisTraffic(bed.redis!.port, 48)), ...captureConversations()];
    assert.ok(convs.length >= 50, `conversations: ${convs.length}`);
    const one = await replay(1, convs);
    const three = await replay(3, convs);

    const protocols = new Set(one.keys.map((k) => k.split("|")[0]));
    for (const p of ["redis", "http1", "mysql", "kafka"]) assert.ok(protocols.has(p), `no ${p} records in ${[...protocols]}`);
    assert.ok(one.keys.length >= 48 * 6, `records from one replica: ${one.keys.length}`);
    assert.deepEqual(three.keys, one.keys);
    for (const [conn, parsers] of three.byConn) assert.equal(parsers.size, 1, `connection ${conn} decoded by ${[...parsers]}`);
    const active = three.counters.filter((c) => (c["records_published"] ?? 0) > 0).length;
    assert.equal(active, 3, "every replica decoded part of the traffic");
  });

  it("gives the same records from 1 and 3 replicas when the probe replays every shared capture", async () => {
    const one = await replay(1, "probe");
    const three = await replay(3, "probe");
    const protocols = new Set(one.keys.map((k) => k.split("|")[0]));
    for (const p of ["http2", "http1", "mysql", "kafka"]) assert.ok(protocols.has(p), `no ${p} records in ${[...protocols]}`);
    assert.ok(one.keys.length >= 50, `records: ${one.keys.length}`);
    assert.deepEqual(three.keys, one.keys);
    for (const [conn, parsers] of three.byConn) assert.equal(parsers.size, 1, `connection ${conn} decoded by ${[...parsers]}`);
  });
});
