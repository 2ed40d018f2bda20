import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import path from "node:path";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { ConnEventSchema, DataEventSchema, ProcessInfoSchema, RawBatchSchema, type RawBatch } from "./gen/wirescope/v1/raw_pb.js";
import { RawBatchReader, resolvedData } from "./raw-batch-reader.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");

/** A deterministic PRNG (mulberry32) so a failure names its case. */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomBatch(r: () => number): RawBatch {
  const int = (n: number) => Math.floor(r() * n);
  const u64 = () => (r() < 0.3 ? BigInt(int(1000)) : (BigInt(int(2 ** 32)) << 32n) | BigInt(int(2 ** 32)));
  // counters read as numbers: exact below 2^53, which a sequence number or a drop count never reaches
  const count = () => BigInt(Math.floor(r() * 2 ** 53));
  const str = () => ["", "node-1", "probé-✓", "x".repeat(int(300)), "10.0.0.1"][int(5)]!;
  const conns = Array.from({ length: int(4) }, () =>
    create(ConnEventSchema, {
      connKey: u64(),
      kind: int(3),
      role: int(3),
      localAddress: str(),
      localPort: int(65536),
      remoteAddress: str(),
      remotePort: int(65536),
      tid: int(2 ** 32),
      timestampNs: u64(),
      process: r() < 0.5 ? create(ProcessInfoSchema, { pid: int(1e6), name: str(), exe: str(), cmdline: str(), containerId: str(), pod: str(), namespace: str(), container: str(), workload: str() }) : undefined,
      inferred: r() < 0.5,
      tls: r() < 0.5,
      tlsLibrary: str(),
      observedFraction: r() < 0.5 ? 0 : Math.fround(r()),
      shed: r() < 0.8 ? "" : str(),
    }),
  );
  const data = Array.from({ length: int(80) }, () => {
    const payload = new Uint8Array(int(r() < 0.1 ? 5000 : 200)).map(() => int(256));
    // original_length: absent (the payload's length), stated, or below the payload's (read as its length)
    const orig = r() < 0.3 ? 0 : r() < 0.1 ? int(payload.length + 1) : payload.length + (r() < 0.2 ? int(1e5) : 0);
    return create(DataEventSchema, { connKey: u64(), direction: int(3), seq: BigInt(int(2 ** 40)), timestampNs: u64(), tid: int(2 ** 32), payload, originalLength: orig });
  });
  const drops: Record<string, bigint> = {};
  for (let k = int(3); k > 0; k--) drops[["ringbuf_full", "js_behind", "é"][int(3)]!] = count();
  // bases as the probe writes them (time and key high bits) or any u64 (sums wrap modulo 2^64)
  const base = () => (r() < 0.4 ? 0n : r() < 0.5 ? BigInt(int(2 ** 24)) << 40n : u64());
  return create(RawBatchSchema, { node: str(), probeId: str(), partition: int(64), conns, data, drops, batchSeq: count(), dataTimeBaseNs: base(), dataKeyBase: base(), servedBefore: r() < 0.5 ? 0n : count(), served: r() < 0.5 ? 0 : int(2 ** 32) });
}

/** What the reader holds, in protobuf-es's shape (for deepEqual with fromBinary). */
function view(rd: RawBatchReader): unknown {
  const drops: Record<string, bigint> = {};
  rd.dropReasons.forEach((k, i) => (drops[k] = BigInt(rd.dropCounts[i]!)));
  const data = [];
  for (let i = 0; i < rd.dataCount; i++) {
    data.push({
      connKey: rd.connKey(i),
      direction: rd.direction[i],
      seq: BigInt(rd.seq[i]!),
      timestampNs: rd.timestampNs(i),
      tid: rd.tid[i],
      payload: Buffer.from(rd.payload(i)).toString("hex"),
      originalLength: rd.originalLength[i],
    });
  }
  return { node: rd.node, probeId: rd.probeId, partition: rd.partition, batchSeq: BigInt(rd.batchSeq), servedBefore: BigInt(rd.servedBefore), served: rd.served, drops, conns: rd.conns.map((c) => ({ ...c })), data };
}

/** protobuf-es's decode of the same bytes, in the reader's terms (direction as a byte). */
function reference(b: RawBatch): unknown {
  return {
    node: b.node,
    probeId: b.probeId,
    partition: b.partition,
    batchSeq: b.batchSeq,
    servedBefore: b.servedBefore,
    served: b.served,
    drops: { ...b.drops },
    conns: b.conns.map((c) => ({ ...c, $unknown: undefined, process: c.process ? { ...c.process, $unknown: undefined } : undefined })).map(stripUnknown),
    data: resolvedData(b).map((d) => ({
      connKey: d.connKey,
      direction: d.direction < 0 || d.direction > 255 ? 255 : d.direction,
      seq: d.seq,
      timestampNs: d.timestampNs,
      tid: d.tid,
      payload: Buffer.from(d.payload).toString("hex"),
      originalLength: d.originalLength,
    })),
  };
}

function stripUnknown<T extends object>(o: T): T {
  const x = { ...o } as Record<string, unknown>;
  delete x.$unknown;
  if (x.process && typeof x.process === "object") {
    const p = { ...(x.process as object) } as Record<string, unknown>;
    delete p.$unknown;
    x.process = p;
  }
  return x as T;
}

function tryReference(bytes: Uint8Array): RawBatch | undefined {
  try {
    return fromBinary(RawBatchSchema, bytes);
  } catch {
    return undefined;
  }
}

// Unknown fields of every wire type (numbers 90-94 are unused in raw.proto).
const UNKNOWN = Uint8Array.from([
  0xd0, 0x05, 0x96, 0x01, // 90 varint 150
  0xd9, 0x05, 1, 2, 3, 4, 5, 6, 7, 8, // 91 i64
  0xe2, 0x05, 0x03, 0x61, 0x62, 0x63, // 92 len "abc"
  0xed, 0x05, 1, 2, 3, 4, // 93 i32
]);

function concat(...parts: Uint8Array[]): Uint8Array {
  return Uint8Array.from(parts.flatMap((p) => [...p]));
}

function lenField(tag: number, body: Uint8Array): Uint8Array {
  const out = [tag];
  let n = body.length;
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return concat(Uint8Array.from(out), body);
}

describe("RawBatchReader", () => {
  it("reads random batches exactly as protobuf-es does", () => {
    const r = rng(1);
    const rd = new RawBatchReader();
    for (let k = 0; k < 300; k++) {
      const b = randomBatch(r);
      const bytes = toBinary(RawBatchSchema, b);
      assert.ok(rd.read(bytes), `case ${k}: ${rd.error}`);
      assert.deepEqual(view(rd), reference(fromBinary(RawBatchSchema, bytes)), `case ${k}`);
    }
  });

  it("gives payloads as views of the input, not copies", () => {
    const payload = Uint8Array.from([1, 2, 3, 4]);
    const bytes = toBinary(RawBatchSchema, create(RawBatchSchema, { data: [create(DataEventSchema, { connKey: 5n, payload, originalLength: 4 })] }));
    const rd = new RawBatchReader();
    assert.ok(rd.read(bytes));
    const p = rd.payload(0);
    assert.equal(p.buffer, bytes.buffer);
    assert.deepEqual([...p], [1, 2, 3, 4]);
  });

  it("skips unknown fields at every level and merges concatenated encodings", () => {
    const r = rng(2);
    const rd = new RawBatchReader();
    for (let k = 0; k < 50; k++) {
      const a = randomBatch(r);
      const b = randomBatch(r);
      // unknown fields inside each event and its process, then at the top level between batches
      const withUnknown = (m: RawBatch) => {
        const parts: Uint8Array[] = [];
        for (const c of m.conns) {
          const proc = c.process ? lenField(0x7a, concat(toBinary(ProcessInfoSchema, c.process), UNKNOWN)) : new Uint8Array(0);
          parts.push(lenField(0x22, concat(UNKNOWN, toBinary(ConnEventSchema, { ...c, process: undefined }), proc)));
        }
        for (const d of m.data) parts.push(lenField(0x2a, concat(toBinary(DataEventSchema, d), UNKNOWN)));
        parts.push(toBinary(RawBatchSchema, { ...m, conns: [], data: [] }), UNKNOWN);
        return concat(...parts);
      };
      const bytes = concat(withUnknown(a), UNKNOWN, withUnknown(b));
      assert.ok(rd.read(bytes), `case ${k}: ${rd.error}`);
      assert.deepEqual(view(rd), reference(fromBinary(RawBatchSchema, bytes)), `case ${k}`);
      assert.equal(rd.dataCount, a.data.length + b.data.length);
      assert.equal(rd.conns.length, a.conns.length + b.conns.length);
    }
  });

  it("fails on every truncation inside a field, and reads a cut at a field boundary as protobuf-es does", () => {
    const r = rng(3);
    const rd = new RawBatchReader();
    let failed = 0;
    for (let k = 0; k < 12; k++) {
      const bytes = toBinary(RawBatchSchema, randomBatch(r));
      for (let n = 0; n < bytes.length; n += 1 + Math.floor(r() * 60)) {
        const cut = bytes.subarray(0, n);
        const ref = tryReference(cut);
        const ok = rd.read(cut);
        assert.equal(ok, ref !== undefined, `case ${k} cut at ${n}/${bytes.length}: reader ${ok ? "accepted" : rd.error}`);
        if (ok) assert.deepEqual(view(rd), reference(ref!));
        else {
          assert.ok(rd.error, "a failure names its reason");
          failed++;
        }
      }
    }
    assert.ok(failed > 50, `truncations were exercised (${failed})`);
  });

  it("never throws on corrupted bytes, and what it accepts protobuf-es reads the same", () => {
    const r = rng(4);
    const rd = new RawBatchReader();
    let accepted = 0;
    let rejected = 0;
    for (let k = 0; k < 400; k++) {
      const bytes = toBinary(RawBatchSchema, randomBatch(r)).slice();
      for (let f = 1 + Math.floor(r() * 4); f > 0 && bytes.length; f--) bytes[Math.floor(r() * bytes.length)] = Math.floor(r() * 256);
      if (rd.read(bytes)) {
        const ref = tryReference(bytes);
        assert.ok(ref, `case ${k}: accepted what protobuf-es rejects`);
        assert.deepEqual(view(rd), reference(ref), `case ${k}`);
        accepted++;
      } else rejected++;
    }
    assert.ok(accepted > 0 && rejected > 0, `both outcomes exercised (${accepted} accepted, ${rejected} rejected)`);
  });

  it("reuses its columns across batches (work per event is constant)", () => {
    const r = rng(5);
    const rd = new RawBatchReader();
    const big = create(RawBatchSchema, { data: Array.from({ length: 1000 }, (_, i) => create(DataEventSchema, { connKey: BigInt(i), payload: new Uint8Array(3) })) });
    assert.ok(rd.read(toBinary(RawBatchSchema, big)));
    const cols = rd.connKeyLo;
    for (let k = 0; k < 20; k++) assert.ok(rd.read(toBinary(RawBatchSchema, randomBatch(r))));
    assert.equal(rd.connKeyLo, cols, "no new columns for smaller batches");
    assert.ok(rd.read(new Uint8Array(0)) && rd.dataCount === 0 && rd.conns.length === 0, "an empty message is an empty batch");
  });
});

describe("gen-proto wire table", () => {
  it("matches proto/ (regenerated table is identical)", () => {
    execFileSync(process.execPath, [path.join(ROOT, "scripts/gen-proto.mjs"), "--check"], { cwd: ROOT, stdio: "pipe" });
  });
});
