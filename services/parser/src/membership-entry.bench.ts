// What a parser's membership entry costs its watchers as the fleet grows, with the raw progress
// in the entry (as until 2026-12-04) and in the progress bucket nobody watches (now).
// The membership entry is put after every output flush whose progress changed (at most every
// --flush-ms, 20 ms: 50 a second under steady traffic) and every parser replica and every
// aggregator watches the bucket, so each put is received and JSON-parsed by all of them. The
// progress (two keys per probe/partition the replica owns: batch_seq and the probe's running
// count of requests served) now goes to `wirescope-parser-progress` at the same rate, read only
// by a successor at a takeover. Progress comes from the real Pipeline fed one RawBatch per
// probe and owned partition; node and probe names are the lengths Kubernetes gives (pod names).
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

console.log(`one parser replica's entries, ${PARTITIONS} partitions, put at most every ${DEFAULT_PARSER_OPTIONS.flushMs} ms (${putsPerSecond}/s under steady traffic); a watcher receives every replica's\n`);
console.log("| nodes (probes) | parser replicas | progress keys | progress KiB (put per replica) | watched entry KiB, progress in it | now | received MiB/s per watcher, progress in the entry | now | parse CPU per watcher, progress in the entry | now |");
console.log("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
const parseMs = (text: string) => {
  const rounds = 200;
  const t0 = performance.now();
  for (let i = 0; i < rounds; i++) JSON.parse(text);
  return (performance.now() - t0) / rounds;
};
for (const [nodes, replicas] of [[1, 1], [10, 2], [100, 3], [100, 8], [300, 8]] as const) {
  const p = new Pipeline(host, { ...DEFAULT_CONN_TABLE_OPTIONS, node: "n", parserId: "me", partitions: PARTITIONS, redaction: redactionPolicy(), maxBatchBytes: 1 << 20, maxQueuedBatches: 16 }, new Counters());
  const owned = Array.from({ length: Math.ceil(PARTITIONS / replicas) }, (_, i) => i);
  p.setOwned(new Set(owned), () => undefined);
  for (let n = 0; n < nodes; n++) {
    const probeId = `wirescope-probe-${(n * 7919 + 10007).toString(36).slice(-5)}`;
    for (const partition of owned) p.onRawBytes(toBinary(RawBatchSchema, create(RawBatchSchema, { node: `ip-10-0-${n >> 8}-${n & 255}.ec2.internal`, probeId, partition, batchSeq: 123_456n + BigInt(n), servedBefore: 9_876_543n, served: 17 })), 0);
  }
  const member = { id: "wirescope-parser-7d9f8c6b5-abcde", node: "ip-10-0-1-23.ec2.internal", grpc: "10.0.1.23:7702", publishedThroughMs: Date.now() };
  const progress = JSON.stringify(p.snapshot());
  const before = JSON.stringify({ ...member, progress: p.snapshot() });
  const now = JSON.stringify(member);
  const keys = Object.keys(p.snapshot()).length;
  const rx = (text: string) => ((text.length * putsPerSecond * replicas) / 1048576).toFixed(2);
  const cpu = (text: string) => `${((parseMs(text) * putsPerSecond * replicas) / 10).toFixed(2)} %`;
  const kib = (text: string) => (text.length / 1024).toFixed(1);
  console.log(`| ${nodes} | ${replicas} | ${keys} | ${kib(progress)} | ${kib(before)} | ${kib(now)} | ${rx(before)} | ${rx(now)} | ${cpu(before)} | ${cpu(now)} |`);
}
