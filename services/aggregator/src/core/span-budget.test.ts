import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Aggregator, type ClosedWindow } from "./aggregator.js";
import { windowLines } from "./lines.js";
import { unitFromHex, hex16 } from "./hash.js";
import { spanFraction } from "./spans.js";
import { makeRecord, CHAIN_ENDS, type EndpointSpec } from "../test-support/records.js";
import type { Record as WRecord } from "@wirescope/wire";

const W0 = 1_700_000_000_000;
const WIN = 1000;

/** Deterministic 32-hex trace ids. */
function traceIds(seed: number): () => string {
  const rnd = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0);
  return () => hex16(rnd(), rnd()) + hex16(rnd(), rnd());
}

/** `perWindow` server requests of one series in each of `windows` windows, each a trace of its
 *  own (W3C header), every 10th an error. */
function load(windows: number, perWindow: number, seed = 1): WRecord[] {
  const next = traceIds(seed);
  const out: WRecord[] = [];
  for (let w = 0; w < windows; w++)
    for (let i = 0; i < perWindow; i++)
      out.push(
        makeRecord({
          startMs: W0 + w * WIN + (i * (WIN - 10)) / perWindow,
          durationMs: 1 + (i % 7) / 10,
          status: i % 10 === 3 ? 500 : 200,
          server: { service: "api", address: "127.0.0.1", port: 8080, pid: 2 },
          client: { address: "10.0.0.9", port: 40000 + (i % 1000) },
          connKey: BigInt(w * perWindow + i),
          traceId: next(),
          parentSpanId: "00f067aa0ba902b7",
        }),
      );
  return out;
}

function closeAll(agg: Aggregator, records: WRecord[]): ClosedWindow[] {
  agg.ingest(records, W0);
  return agg.closeDue(W0 + 3_600_000, true);
}

describe("span budget", () => {
  it("keeps at most the budget of ordinary spans per window, by a power-of-two fraction of trace ids; metrics unchanged", () => {
    const budget = 150; // per second: 150 per 1 s window
    const records = load(4, 4000);
    const agg = new Aggregator({ windowMs: WIN, graceMs: 0, spanSampleRate: 0.5, slowestPerSeries: 1, spanBudget: budget });
    const free = new Aggregator({ windowMs: WIN, graceMs: 0, spanSampleRate: 0.5, slowestPerSeries: 1, spanBudget: 0 });
    const got = closeAll(agg, records);
    const ref = closeAll(free, records);
    assert.equal(got.length, 4);
    for (let i = 0; i < got.length; i++) {
      const w = got[i]!;
      const errors = w.spans.filter((s) => s.error);
      assert.equal(errors.length, 400, "every error kept");
      const slowest = Math.max(...w.spans.filter((s) => !s.error).map((s) => s.durationMs));
      assert.ok(w.spans.some((s) => !s.error && s.durationMs === slowest), "the slowest ordinary span kept");
      // The fraction halves from the rate until the window's ordinary spans fit (here 3,600 of
      // which ~1,800 fall under 0.5: 2^-4 keeps ~225, 2^-5 ~112).
      assert.ok(w.spanFraction < 0.5 && Number.isInteger(Math.log2(w.spanFraction)), `a power of two below the rate: ${w.spanFraction}`);
      const ordinary = w.spans.filter((s) => !s.error && unitFromHex(s.traceId) < w.spanFraction);
      const other = w.spans.filter((s) => !s.error && unitFromHex(s.traceId) >= w.spanFraction);
      assert.ok(ordinary.length <= budget, `${ordinary.length} ordinary spans kept, budget ${budget}`);
      assert.ok(ordinary.length > budget / 2, `the largest fraction that fits: ${ordinary.length} kept`);
      assert.ok(other.length <= 1, "besides the sampled ones only the slowest");
      // Consistent: the kept ordinary traces are exactly those under the fraction, a subset of
      // those kept without a budget.
      const refTraces = new Set(ref[i]!.spans.map((s) => s.traceId));
      for (const s of ordinary) assert.ok(refTraces.has(s.traceId));
      assert.equal(ref[i]!.spans.filter((s) => !s.error && unitFromHex(s.traceId) < w.spanFraction).length, ordinary.length);
      // RED, histograms, edges and map nodes: the same lines.
      const metrics = (x: ClosedWindow) => windowLines({ ...x, spans: [] });
      assert.deepEqual(metrics(w), metrics(ref[i]!));
    }
    const c = agg.counters;
    assert.equal(c.spansKept + c.spansDropped, records.length);
    assert.equal(c.spansDropped - free.counters.spansDropped, c.spansOverBudget, "every span the budget left out is counted");
    assert.ok(c.spansOverBudget > 4 * 1000);
    assert.equal(agg.spanFraction, got[3]!.spanFraction);
  });

  it("changes nothing while the rate keeps fewer spans than the budget", () => {
    const records = load(3, 1000, 7);
    const a = closeAll(new Aggregator({ windowMs: WIN, graceMs: 0, spanSampleRate: 0.1, spanBudget: 101 }), records);
    const b = closeAll(new Aggregator({ windowMs: WIN, graceMs: 0, spanSampleRate: 0.1, spanBudget: 0 }), records);
    assert.deepEqual(a.map((w) => windowLines(w)), b.map((w) => windowLines(w)));
    for (const w of a) assert.equal(w.spanFraction, 0.1);
  });

  it("keeps traces whole across two instances at different fractions (the lower one's traces are kept by both)", () => {
    // One request: curl → front (server span, then a call to back relaying the W3C header) → back
    // (server span, then a MySQL call on its thread) → db. Instance A owns curl and front, B owns
    // back and db. A also serves a busy series of its own, so its budget binds at a lower fraction.
    const { user, front, frontOut, back, backOut, db } = CHAIN_ENDS;
    const next = traceIds(11);
    const toA: WRecord[] = [];
    const toB: WRecord[] = [];
    const traces: string[] = [];
    for (let i = 0; i < 2000; i++) {
      const t = W0 + (i * (2 * WIN - 20)) / 2000;
      const h = { traceId: next(), parentSpanId: "00f067aa0ba902b7" };
      traces.push(h.traceId);
      const port = (e: EndpointSpec) => ({ ...e, port: (e.port ?? 0) + ((e.port ?? 0) > 10000 ? i : 0) });
      toA.push(
        makeRecord({ startMs: t, durationMs: 10, role: "client", client: port(user), server: front, tid: 1, ...h }),
        makeRecord({ startMs: t + 0.1, durationMs: 9.8, role: "server", client: port(user), server: front, tid: 10_000 + i, ...h }),
        makeRecord({ startMs: t + 1, durationMs: 7, role: "client", protocol: "grpc", resource: "/p.S/M", client: port(frontOut), server: back, tid: 10_000 + i, ...h }),
      );
      toB.push(
        makeRecord({ startMs: t + 1.1, durationMs: 6.8, role: "server", protocol: "grpc", resource: "/p.S/M", client: port(frontOut), server: back, tid: 20_000 + i, ...h }),
        makeRecord({ startMs: t + 2, durationMs: 3, role: "client", protocol: "mysql", operation: "SELECT", resource: "select 1", client: port(backOut), server: db, tid: 20_000 + i }),
        makeRecord({ startMs: t + 2.1, durationMs: 2.8, role: "server", protocol: "mysql", operation: "SELECT", resource: "select 1", client: port(backOut), server: db, tid: 30_000 + i }),
      );
    }
    toA.push(...load(2, 6000, 5));
    const opts = { windowMs: WIN, graceMs: 0, spanSampleRate: 0.5, slowestPerSeries: 0, spanBudget: 400 };
    const a = closeAll(new Aggregator(opts), toA);
    const b = closeAll(new Aggregator(opts), toB);
    const byTrace = new Map<string, string[]>();
    for (const w of [...a, ...b]) for (const s of w.spans) if (!s.error) byTrace.set(s.traceId, [...(byTrace.get(s.traceId) ?? []), `${s.service}/${s.kind}`]);
    for (let i = 0; i < 2; i++) assert.ok(a[i]!.spanFraction < b[i]!.spanFraction, `window ${i}: A at ${a[i]!.spanFraction}, B at ${b[i]!.spanFraction}`);
    const keptByA = traces.filter((t) => a.some((w) => w.spans.some((s) => s.traceId === t)));
    assert.ok(keptByA.length > 20, `${keptByA.length} request traces kept by A`);
    for (const t of keptByA) assert.deepEqual(byTrace.get(t)!.sort(), ["back/client", "back/server", "curl/client", "db/server", "front/client", "front/server"], `trace ${t} whole`);
    // And B's kept traces beyond A's are whole on B's side.
    const keptByB = traces.filter((t) => b.some((w) => w.spans.some((s) => s.traceId === t)));
    assert.ok(keptByB.length > keptByA.length);
    for (const t of keptByB) assert.equal(byTrace.get(t)!.filter((x) => x.startsWith("back/") || x.startsWith("db/")).length, 3);
  });
});

describe("spanFraction", () => {
  it("is the rate when it fits, else the largest power of two below the rate that fits", () => {
    const words = Float64Array.from({ length: 1024 }, (_, i) => i * 2 ** 22); // uniform over [0, 2^32)
    const none = new Uint8Array(words.length);
    assert.equal(spanFraction(words, none, 0.1, 103), 0.1); // 103 below 0.1 · 2^32
    assert.equal(spanFraction(words, none, 0.1, 102), 1 / 16); // 64 below 2^-4
    assert.equal(spanFraction(words, none, 0.1, 64), 1 / 16);
    assert.equal(spanFraction(words, none, 0.1, 63), 1 / 32);
    assert.equal(spanFraction(words, none, 1, 600), 0.5);
    assert.equal(spanFraction(words, none, 0.5, 511), 0.25);
    assert.equal(spanFraction(words, none, 0.5, 1), 2 ** -10); // only the word 0 falls below 2^-10
    assert.equal(spanFraction(words, none, 0.5, 0), 0, "the word 0 is below every power of two: none kept");
    const taken = new Uint8Array(words.length).fill(1);
    assert.equal(spanFraction(words, taken, 0.1, 0), 0.1, "spans kept anyway do not count");
    assert.equal(spanFraction(Float64Array.of(0, 0), new Uint8Array(2), 0.1, 1), 0, "nothing fits: no ordinary span kept");
  });
});
