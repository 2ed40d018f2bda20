import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Aggregator } from "./aggregator.js";
import { makeRecord, CHAIN_ENDS } from "../test-support/records.js";
import type { SpanRec } from "./spans.js";

const W0 = 1_700_000_000_000;
const { user, front, frontOut, back, backOut, db } = CHAIN_ENDS;

/** One request through curl → front → back → db, every end traced; times in ms from t. */
function chain(t: number, opts: { tid?: number; traceId?: string; parentSpanId?: string; relay?: boolean } = {}) {
  const tid = opts.tid ?? 2;
  const h = opts.traceId ? { traceId: opts.traceId, parentSpanId: opts.parentSpanId } : {};
  const relay = opts.relay ? h : {};
  return [
    makeRecord({ startMs: t, durationMs: 10, role: "client", client: user, server: front, tid: 1, ...h }),
    makeRecord({ startMs: t + 0.1, durationMs: 9.8, role: "server", client: user, server: front, tid, ...h }),
    makeRecord({ startMs: t + 1, durationMs: 7, role: "client", protocol: "grpc", resource: "/p.S/M", client: frontOut, server: back, tid, ...relay }),
    makeRecord({ startMs: t + 1.1, durationMs: 6.8, role: "server", protocol: "grpc", resource: "/p.S/M", client: frontOut, server: back, tid: 3, ...relay }),
    makeRecord({ startMs: t + 2, durationMs: 3, role: "client", protocol: "mysql", operation: "SELECT", resource: "select 1", client: backOut, server: db, tid: 3 }),
    makeRecord({ startMs: t + 2.1, durationMs: 2.8, role: "server", protocol: "mysql", operation: "SELECT", resource: "select 1", client: backOut, server: db, tid: 4 }),
  ];
}

function spansOf(agg: Aggregator): SpanRec[] {
  return agg.closeDue(W0 + 3_600_000).flatMap((w) => w.spans);
}

function assertChain(spans: SpanRec[]) {
  const find = (service: string, kind: string) => spans.find((s) => s.service === service && s.kind === kind)!;
  const order: [string, string][] = [["curl", "client"], ["front", "server"], ["front", "client"], ["back", "server"], ["back", "client"], ["db", "server"]];
  const list = order.map(([s, k]) => find(s, k));
  assert.equal(list[0]!.parentId, "", "root has no parent");
  for (let i = 1; i < list.length; i++) assert.equal(list[i]!.parentId, list[i - 1]!.id, `${order[i]} parent`);
  assert.equal(new Set(list.map((s) => s.traceId)).size, 1, "one trace");
}

describe("span linking", () => {
  it("links a sequential chain by connection and by thread", () => {
    const agg = new Aggregator({ spanSampleRate: 1 });
    agg.ingest(chain(W0 + 100), W0);
    const spans = spansOf(agg);
    assert.equal(spans.length, 6);
    assertChain(spans);
    assert.deepEqual(spans.map((s) => s.linkedBy).sort(), ["", "tcp", "tcp", "tcp", "thread", "thread"]);
  });

  it("refuses a thread link when two server requests overlap on the thread", () => {
    const agg = new Aggregator({ spanSampleRate: 1 });
    const a = chain(W0 + 100);
    const b = chain(W0 + 100.5).map((r) => {
      // a second, overlapping request on other connections of the same processes
      if (r.client) r.client.port += 1000;
      return r;
    });
    agg.ingest([...a, ...b], W0);
    const spans = spansOf(agg);
    const frontClients = spans.filter((s) => s.service === "front" && s.kind === "client");
    assert.equal(frontClients.length, 2);
    for (const c of frontClients) assert.equal(c.parentId, "", "ambiguous: no in-process link");
    assert.ok(agg.counters.ambiguousThread > 0);
  });

  it("links concurrent requests by traceparent, also when the header is relayed unchanged", () => {
    const agg = new Aggregator({ spanSampleRate: 1 });
    const t1 = "0af7651916cd43dd8448eb211c80319c";
    const t2 = "1bf7651916cd43dd8448eb211c80319d";
    const a = chain(W0 + 100, { traceId: t1, parentSpanId: "b7ad6b7169203331", relay: true });
    const b = chain(W0 + 100.5, { traceId: t2, parentSpanId: "c7ad6b7169203332", relay: true }).map((r) => {
      if (r.client) r.client.port += 1000;
      return r;
    });
    agg.ingest([...a.slice(0, 4), ...b.slice(0, 4)], W0); // the db tier carries no header: not linkable under concurrency
    const spans = spansOf(agg);
    for (const t of [t1, t2]) {
      const tr = spans.filter((s) => s.traceId === t);
      assert.equal(tr.length, 4, `trace ${t}`);
      const curl = tr.find((s) => s.service === "curl")!;
      assert.equal(curl.parentId, "");
      const fs = tr.find((s) => s.service === "front" && s.kind === "server")!;
      assert.equal(fs.parentId, curl.id);
      const fc = tr.find((s) => s.service === "front" && s.kind === "client")!;
      assert.equal(fc.parentId, fs.id);
      assert.notEqual(fc.id, curl.id, "a relayed header does not make the relay the caller");
      const bs = tr.find((s) => s.service === "back")!;
      assert.equal(bs.parentId, fc.id);
    }
  });

  it("tells multiplexed streams of one connection apart by the trace id both ends saw", () => {
    const agg = new Aggregator({ spanSampleRate: 1 });
    const t1 = "0af7651916cd43dd8448eb211c80319c";
    const t2 = "1bf7651916cd43dd8448eb211c80319d";
    const a = chain(W0 + 100, { traceId: t1, parentSpanId: "b7ad6b7169203331", relay: true });
    const b = chain(W0 + 100.5, { traceId: t2, parentSpanId: "c7ad6b7169203332", relay: true }).map((r, i) => {
      if (r.client && i < 2) r.client.port += 1000; // separate HTTP/1 connections, one shared gRPC (HTTP/2) connection
      return r;
    });
    agg.ingest([...a.slice(0, 4), ...b.slice(0, 4)], W0);
    const spans = spansOf(agg);
    for (const t of [t1, t2]) {
      const tr = spans.filter((s) => s.traceId === t);
      const fc = tr.find((s) => s.service === "front" && s.kind === "client")!;
      const bs = tr.find((s) => s.service === "back")!;
      assert.equal(bs.parentId, fc.id, `trace ${t}: back's parent is its own gRPC call`);
      assert.equal(bs.linkedBy, "tcp");
    }
  });

  it("links a server span whose clock runs ahead into the window after its call's (the call's window already written)", () => {
    // web on node n1 calls api on n2, whose clock is 20 ms ahead; api then queries db. Calls end
    // at 13 offsets around a window's end: those within 20 ms before it have their server end,
    // and api's query, in the next window.
    const SKEW = 20;
    const WIN = 10_000;
    const webOut = { service: "web", address: "10.0.0.1", port: 41000, pid: 20, node: "n1" };
    const api = { service: "api", address: "10.0.0.2", port: 80, pid: 10, node: "n2" };
    const apiOut = { service: "api", address: "10.0.0.2", port: 42000, pid: 10, node: "n2" };
    const dbEnd = { service: "db", address: "10.0.0.3", port: 3306, pid: 30, node: "n3" };
    const offsets = [-40, -30, -25, -21, -19, -15, -12, -8, -4, -1, 1, 5, 30];
    const agg = new Aggregator({ spanSampleRate: 1, windowMs: WIN });
    offsets.forEach((off, i) => {
      const end = W0 + WIN + off; // the call's end on n1's clock
      const start = end - 10;
      const c = { ...webOut, port: webOut.port + i };
      const a = { ...apiOut, port: apiOut.port + i };
      agg.ingest([
        makeRecord({ startMs: start, durationMs: 10, role: "client", client: c, server: api, tid: 1, node: "n1", connKey: BigInt(i + 1) }),
        makeRecord({ startMs: start + 1 + SKEW, durationMs: 8, role: "server", client: c, server: api, tid: 100 + i, node: "n2", connKey: BigInt(100 + i) }),
        makeRecord({ startMs: start + 2 + SKEW, durationMs: 2, role: "client", protocol: "mysql", operation: "SELECT", resource: "select 1", client: a, server: dbEnd, tid: 100 + i, node: "n2", connKey: BigInt(200 + i) }),
      ], W0);
    });
    const spans = agg.closeDue(W0 + 3_600_000).flatMap((w) => w.spans);
    const windowOf = (s: SpanRec) => Math.floor(s.endMs / WIN);
    let straddling = 0;
    offsets.forEach((off, i) => {
      const call = spans.find((s) => s.kind === "client" && s.service === "web" && s.clientPort === webOut.port + i)!;
      const served = spans.find((s) => s.kind === "server" && s.clientPort === webOut.port + i)!;
      const query = spans.find((s) => s.kind === "client" && s.service === "api" && s.clientPort === apiOut.port + i)!;
      if (windowOf(call) !== windowOf(served)) straddling++;
      assert.equal(served.parentId, call.id, `offset ${off} ms: api's request is web's call`);
      assert.equal(served.linkedBy, "tcp");
      assert.equal(served.traceId, call.traceId, `offset ${off} ms: one trace`);
      assert.equal(query.parentId, served.id, `offset ${off} ms: api's query made for the request`);
      assert.equal(query.traceId, call.traceId);
    });
    assert.equal(straddling, 6, "-19 to -1 ms: the server span (ending 19 ms after the call on n1's clock) in the next window");
  });

  it("keeps every error and the slowest span per series, samples the rest by trace", () => {
    const agg = new Aggregator({ spanSampleRate: 0 });
    const recs = Array.from({ length: 100 }, (_, i) => makeRecord({ startMs: W0 + 10 + i, durationMs: i === 42 ? 500 : 1, status: i % 10 === 0 ? 500 : 200, server: front, client: user, connKey: BigInt(i) }));
    agg.ingest(recs, W0);
    const spans = spansOf(agg);
    assert.equal(spans.filter((s) => s.error).length, 10);
    assert.ok(spans.some((s) => s.durationMs === 500));
    assert.equal(spans.length, 10 + 1); // errors + the slowest 2xx (the slowest 5xx is an error already)
    assert.equal(agg.counters.spansDropped, 100 - spans.length);
  });
});

describe("span storage while the window is open", () => {
  it("gives back every field of the record as it came (ns start, µs times, status, tuple, bytes)", () => {
    const agg = new Aggregator({ spanSampleRate: 1 });
    const rec = makeRecord({ startMs: W0 + 1234.567, durationMs: 3.25, role: "client", status: 0, client: frontOut, server: back, tid: 7, connKey: 99n });
    rec.startNs += 321n; // sub-µs part kept for ordering and the written timestamp
    rec.requestBytes = 12345n;
    rec.responseBytes = 3_000_000_000n;
    rec.incomplete = true;
    // A long span: starts 20 minutes before the window that holds its end.
    const long = makeRecord({ startMs: W0 - 1_200_000, durationMs: 1_200_010, server: front, client: user });
    agg.ingest([rec, long], W0 + 60_000);
    const [s, l] = [...spansOf(agg)].sort((a, b) => a.startMs - b.startMs).reverse();
    assert.ok(s && l);
    assert.equal(s.startNs, rec.startNs);
    assert.equal(s.startMs, Number(rec.startNs / 1000n) / 1000);
    assert.equal(s.durationMs, 3.25);
    assert.equal(s.endMs, s.startMs + 3.25);
    assert.equal(s.status, 0);
    assert.equal(s.kind, "client");
    assert.equal(s.tid, 7);
    assert.equal(s.pid, frontOut.pid);
    assert.equal(s.tuple, "127.0.0.1:50001>127.0.0.1:9090");
    assert.equal(s.requestBytes, 12345);
    assert.equal(s.responseBytes, 3_000_000_000);
    assert.equal(s.incomplete, true);
    assert.match(s.id, /^[0-9a-f]{16}$/);
    assert.equal(l.startNs, long.startNs);
    assert.equal(l.durationMs, 1_200_010);
    assert.equal(l.status, undefined);
    assert.equal(l.incomplete, false);
  });
});
