// The size of a parser's membership entry as the fleet grows, and what it costs to carry.
// Each entry (service.ts: id, node, grpc, progress, publishedThroughMs, losses) holds the raw
// progress of every probe/partition the replica owns: two keys per pair (batch_seq and the
// probe's running count of requests served). It is put after every output flush whose progress
// changed (at most every --flush-ms, 20 ms: 50 a second under steady traffic), and every parser
// replica and every aggregator watches the bucket, so each put is received and JSON-parsed by
// all of them. Progress here comes from the real Pipeline fed one RawBatch per probe and owned
// partition; node and probe names are the lengths Kubernetes gives (pod names).
//
// Run: node scripts/bench.mjs membership-entry
import { create, toBinary } from "@bufbuild/protobuf";
import { RawBatchSchema } from "@wirescope/wire";
import { Counters } from "@wirescope/runtime";
import { Pipeline } from "./pipeline.js";
import { DEFAULT_CONN_TABLE_OPTIONS } from "./conn-table.js";
import { redactionPolicy } from "./redact.js";
import type { DecoderHost } from "./decoder.js";
import { DEFAULT_PARSER_OPTIONS } from "./options.js";

const host: DecoderHost = {
  open: () => ({ data: () => ({ records: [], state: "detecting" }), gap: () => ({ records: [], state: "detecting" }), close: () => ({ records: [], state: "closed" }), free: () => {} }),
};
const PARTITIONS = 64;
const putsPerSecond = 1000 / DEFAULT_PARSER_OPTIONS.flushMs;

console.log(`membership entry of one parser replica, ${PARTITIONS} partitions, puts at most every ${DEFAULT_PARSER_OPTIONS.flushMs} ms (${putsPerSecond}/s under steady traffic)\n`);
console.log("| nodes (probes) | parser replicas | partitions owned | progress keys | entry KiB | JSON.parse ms | put MiB/s per replica | received MiB/s per watcher (all replicas) | parse CPU per watcher |");
console.log("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
for (const [nodes, replicas] of [[1, 1], [10, 2], [100, 3], [100, 8], [300, 8]] as const) {
  const p = new Pipeline(host, { ...DEFAULT_CONN_TABLE_OPTIONS, node: "n", parserId: "me", partitions: PARTITIONS, redaction: redactionPolicy(), maxBatchBytes: 1 << 20, maxQueuedBatches: 16 }, new Counters());
  const owned = Array.from({ length: Math.ceil(PARTITIONS / replicas) }, (_, i) => i);
  p.setOwned(new Set(owned), () => undefined);
  for (let n = 0; n < nodes; n++) {
    const probeId = `wirescope-probe-${(n * 7919 + 10007).toString(36).slice(-5)}`;
    for (const partition of owned) p.onRawBytes(toBinary(RawBatchSchema, create(RawBatchSchema, { node: `ip-10-0-${n >> 8}-${n & 255}.ec2.internal`, probeId, partition, batchSeq: 123_456n + BigInt(n), servedBefore: 9_876_543n, served: 17 })), 0);
  }
  const entry = JSON.stringify({ id: "wirescope-parser-7d9f8c6b5-abcde", node: "ip-10-0-1-23.ec2.internal", grpc: "10.0.1.23:7702", progress: p.progress(), publishedThroughMs: Date.now() });
  const keys = Object.keys(p.progress()).length;
  const rounds = 200;
  const t0 = performance.now();
  for (let i = 0; i < rounds; i++) JSON.parse(entry);
  const parseMs = (performance.now() - t0) / rounds;
  const mib = (entry.length * putsPerSecond) / 1048576;
  console.log(`| ${nodes} | ${replicas} | ${owned.length} | ${keys} | ${(entry.length / 1024).toFixed(1)} | ${parseMs.toFixed(2)} | ${mib.toFixed(1)} | ${(mib * replicas).toFixed(1)} | ${((parseMs * putsPerSecond * replicas) / 10).toFixed(1)} % of a core |`);
}
