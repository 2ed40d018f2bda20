// Span linking by time-ordered indexes: linear work on long keep-alive connections and busy
// processes, and exactly the links and counters of the plain list filter it replaced.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Aggregator } from "./aggregator.js";
import { makeRecord } from "../test-support/records.js";
import { tupleHash } from "./hash.js";
import { LinkKeys, SlotList, SpanColumns, SpanLinks, reachableSpans, type SpanInput, type SpanRec } from "./spans.js";

const W0 = 1_700_000_000_000;

function rng(seed: number) {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

/**
 * The lookups as they were before the time indexes (a filter over every span of the connection
 * or process, quadratic on keep-alive connections): the oracle the indexes must match. Linking
 * itself (narrowing, counting, resolving) is the index's own.
 */
class ListIndex extends SpanLinks {
  private list: SpanRec[] = [];
  override load(closing: SpanColumns, open?: readonly SpanColumns[], take?: readonly Uint8Array[]): void {
    super.load(closing, open, take);
    this.list = Array.from({ length: this.n }, (_, k) => this.record(k));
  }
  private slots(ok: (x: SpanRec) => boolean): number[] {
    const out: number[] = [];
    this.list.forEach((x, k) => ok(x) && out.push(k));
    return out;
  }
  private slotList(ok: (x: SpanRec) => boolean): SlotList {
    const out = new SlotList();
    for (const k of this.slots(ok)) out.push(k);
    return out;
  }
  protected override pairCandidates(k: number, skew: number): SlotList {
    const s = this.list[k]!;
    if (!s.tuple) return new SlotList();
    return this.slotList(
      (c) =>
        c.kind === "client" &&
        c.tuple !== "" &&
        c.protocol === s.protocol &&
        c.clientPort === s.clientPort &&
        c.serverPort === s.serverPort &&
        c.clientAddress === s.clientAddress &&
        c.serverAddress === s.serverAddress &&
        c.startMs - skew <= s.startMs &&
        s.endMs <= c.endMs + skew,
    );
  }
  protected override containing(k: number): number[] {
    const c = this.list[k]!;
    return this.slots((sv) => sv.kind === "server" && sv.pid !== 0 && sv.node === c.node && sv.pid === c.pid && sv.startMs <= c.startMs && c.endMs <= sv.endMs);
  }
  protected override overlappingOnThread(k: number): SlotList {
    const c = this.list[k]!;
    return this.slotList((sv) => sv.kind === "server" && sv.pid !== 0 && sv.node === c.node && sv.pid === c.pid && sv.tid === c.tid && sv.startMs < c.endMs && sv.endMs > c.startMs);
  }
}

/** What linking decided for slot `k` (the trace id only once resolved). */
function linkOf(l: SpanLinks, k: number) {
  const st = l.stateOf(k);
  return { state: st, id: l.id(k), parentId: l.parentId(k), traceId: st === 2 ? l.traceId(k) : "", linkedBy: l.linkedBy(k), parent: l.parentOf(k) };
}

interface Proc {
  node: string;
  pid: number;
  service: string;
  address: string;
}

const hex = (r: () => number, n: number) => Array.from({ length: n }, () => Math.floor(r() * 16).toString(16)).join("");

/**
 * A mixed workload as span inputs: keep-alive HTTP/1 connections (sequential and, by chance,
 * overlapping), multiplexed gRPC connections with and without trace ids, in-process calls on
 * shared and private threads, relayed and rewritten headers, a second node with a skewed clock
 * (within and beyond the allowed skew), long and zero-length requests, missing pids and tuples.
 */
function mixedWorkload(seed: number, requests: number): SpanInput[] {
  const r = rng(seed);
  const curl: Proc = { node: "n1", pid: 40, service: "curl", address: "10.0.0.4" };
  const front: Proc = { node: "n1", pid: 10, service: "front", address: "10.0.0.1" };
  const back: Proc = { node: "n1", pid: 20, service: "back", address: "10.0.0.2" };
  const db: Proc = { node: "n2", pid: 30, service: "db", address: "10.0.0.3" };
  const series = [{}, {}, {}];
  const out: SpanInput[] = [];
  const span = (kind: "client" | "server", cl: Proc, cp: number, sv: Proc, sp: number, protocol: string, resource: string, startUs: number, durUs: number, tid: number, hTrace = "", hParent = "", skewUs = 0) => {
    const self = kind === "client" ? cl : sv;
    const noTuple = r() < 0.02;
    out.push({
      idA: Math.floor(r() * 2 ** 32),
      idB: Math.floor(r() * 2 ** 32),
      kind,
      service: self.service,
      peer: kind === "client" ? sv.service : cl.service,
      protocol,
      operation: r() < 0.8 ? "GET" : "POST",
      resource,
      relUs: Math.max(0, Math.round(startUs + skewUs)),
      subUs: Math.floor(r() * 1000),
      durUs: Math.max(0, Math.round(durUs)),
      status: 200,
      error: false,
      node: self.node,
      namespace: "",
      pid: r() < 0.02 ? 0 : self.pid,
      tid,
      peerPid: 0,
      peerNode: "",
      tupleKey: noTuple ? -1 : tupleHash(cl.address, cp, sv.address, sp),
      hTrace,
      hParent,
      series: series[out.length % 3]!,
      clientAddress: noTuple ? "" : cl.address,
      clientPort: cp,
      serverAddress: sv.address,
      serverPort: sp,
      requestBytes: 10,
      responseBytes: 20,
      incomplete: false,
      tls: false,
    });
  };
  for (let q = 0; q < requests; q++) {
    const t = Math.floor(r() * 2_000_000); // µs over 2 s
    const long = r() < 0.03 ? 100 : 1;
    const d = (r() < 0.05 ? 0 : 50 + r() * 5000) * long;
    const traced = r() < 0.4;
    // A few trace ids recur (clients that reuse one): lookups by trace id meet several requests.
    const trace = traced ? (r() < 0.2 ? `${"ab".repeat(15)}0${Math.floor(r() * 3)}` : hex(r, 32)) : "";
    const parent = traced ? hex(r, 16) : "";
    const relay = traced && r() < 0.5;
    const h1 = 50000 + Math.floor(r() * 6); // six keep-alive connections curl → front
    const ftid = 1 + Math.floor(r() * 3);
    span("client", curl, h1, front, 8080, "http", `/r${q % 7}`, t, d, 1, trace, parent);
    const inner = Math.max(0, d - 20);
    span("server", curl, h1, front, 8080, "http", `/r${q % 7}`, t + 10, inner, ftid, trace, parent);
    for (let k = 0, calls = Math.floor(r() * 3); k < calls; k++) {
      const cs = t + 15 + r() * inner * 0.3;
      const cd = r() * inner * 0.6;
      const h2 = 51000 + Math.floor(r() * 2); // two multiplexed gRPC connections front → back
      const own = traced && !relay ? hex(r, 16) : parent;
      span("client", front, h2, back, 9090, "grpc", "/p.S/M", cs, cd, ftid, relay || traced ? trace : "", traced ? own : "");
      const btid = 1 + Math.floor(r() * 2);
      span("server", front, h2, back, 9090, "grpc", "/p.S/M", cs + 2, Math.max(0, cd - 4), btid, relay || traced ? trace : "", traced ? own : "");
      if (r() < 0.3) {
        // A call back into front (a cycle between two processes), carrying the trace on.
        const bs = cs + 3 + r() * cd * 0.3;
        const bd = Math.max(0, r() * cd * 0.5);
        const h4 = 53000 + Math.floor(r() * 2);
        span("client", back, h4, front, 8080, "http", "/cb", bs, bd, btid, trace, traced ? hex(r, 16) : "");
        span("server", back, h4, front, 8080, "http", "/cb", bs + 1, Math.max(0, bd - 2), 1 + Math.floor(r() * 3), trace, "");
      }
      if (r() < 0.5) {
        const ds = cs + 3;
        const dd = Math.max(0, cd * 0.5);
        const h3 = 52000 + Math.floor(r() * 3); // keep-alive connections back → db on the other node
        const skew = r() < 0.8 ? (r() - 0.5) * 60_000 : (r() - 0.5) * 300_000; // µs: mostly within ±50 ms
        span("client", back, h3, db, 3306, "mysql", "select ?", ds, dd, btid);
        span("server", back, h3, db, 3306, "mysql", "select ?", ds + 1, Math.max(0, dd - 2), 1, "", "", skew);
      }
    }
  }
  return out;
}

function columnsOf(inputs: SpanInput[]): SpanColumns {
  const cols = new SpanColumns(W0);
  for (const x of inputs) cols.push(x);
  return cols;
}

describe("SpanLinks", () => {
  for (const seed of [1, 2, 3]) {
    it(`gives the links and counters of the list filter on a mixed workload (seed ${seed})`, () => {
      const cols = columnsOf(mixedWorkload(seed, 3000));
      const ia = new SpanLinks(50);
      const ib = new ListIndex(50);
      ia.load(cols);
      ib.load(cols);
      // As at a window close: the spans that ended in the first second are resolved, in start order;
      // the others are only reached as parents.
      const cut = W0 + 1000;
      const recs = Array.from({ length: ia.n }, (_, k) => ia.record(k));
      const mine = recs.map((_, k) => k).filter((k) => recs[k]!.endMs < cut);
      mine.sort((a, b) => recs[a]!.startMs - recs[b]!.startMs || (recs[a]!.baseId < recs[b]!.baseId ? -1 : 1));
      for (const k of mine) ia.resolve(k);
      for (const k of mine) ib.resolve(k);
      const links: Record<string, number> = {};
      for (let k = 0; k < ia.n; k++) {
        assert.deepEqual(linkOf(ia, k), linkOf(ib, k), `span ${k} (${recs[k]!.kind} ${recs[k]!.service})`);
        const by = ia.linkedBy(k) || "none";
        links[by] = (links[by] ?? 0) + 1;
      }
      assert.equal(ia.counters.ambiguousTcp, ib.counters.ambiguousTcp);
      assert.equal(ia.counters.ambiguousThread, ib.counters.ambiguousThread);
      // The workload exercises every kind of link and both kinds of ambiguity.
      for (const k of ["tcp", "header", "thread", "trace", "none"]) assert.ok((links[k] ?? 0) > 0, `some ${k} links: ${JSON.stringify(links)}`);
      assert.ok(ia.counters.ambiguousTcp > 0 && ia.counters.ambiguousThread > 0, `ambiguity counted: ${JSON.stringify(ia.counters)}`);
    });
  }
});

describe("SpanLinks lookups by trace id", () => {
  it("resolve the candidates in insertion order, as the list did (a cycle through equal times)", () => {
    // Two processes calling each other, every span [0, 10 ms] and of trace T: resolving one of
    // c's two candidate parents reaches the other through B, so their order decides which of B's
    // calls finds its parent first.
    const T = "ab".repeat(16);
    const A = { node: "n1", pid: 1, address: "10.0.0.1" };
    const B = { node: "n1", pid: 2, address: "10.0.0.2" };
    const conn = (cl: typeof A, cp: number, sv: typeof A, sp: number) => ({ cl, cp, sv, sp });
    const c1 = conn(B, 1001, A, 80);
    const c2 = conn(A, 1002, B, 80);
    const c3 = conn(B, 1003, A, 80);
    const ext = conn(A, 1004, { node: "n1", pid: 9, address: "10.0.0.9" }, 80);
    const cols = new SpanColumns(W0);
    const add = (kind: "client" | "server", k: ReturnType<typeof conn>, idA: number) => {
      const self = kind === "client" ? k.cl : k.sv;
      cols.push({
        idA, idB: 1, kind, service: `p${self.pid}`, peer: "", protocol: "http", operation: "GET", resource: "/", relUs: 0, subUs: 0, durUs: 10_000,
        status: 200, error: false, node: self.node, namespace: "", pid: self.pid, tid: 1, peerPid: 0, peerNode: "", tupleKey: tupleHash(k.cl.address, k.cp, k.sv.address, k.sp), hTrace: T, hParent: "",
        series: {}, clientAddress: k.cl.address, clientPort: k.cp, serverAddress: k.sv.address, serverPort: k.sp, requestBytes: 0, responseBytes: 0, incomplete: false, tls: false,
      });
    };
    add("client", ext, 1); // c
    add("server", c1, 2);
    add("server", c3, 3);
    add("client", c1, 4);
    add("client", c3, 5);
    add("server", c2, 6);
    add("client", c2, 7);
    const ia = new SpanLinks(50);
    const ib = new ListIndex(50);
    ia.load(cols);
    ib.load(cols);
    for (let k = 0; k < ia.n; k++) {
      ia.resolve(k);
      ib.resolve(k);
    }
    const parents = (l: SpanLinks) => Array.from({ length: l.n }, (_, k) => l.parentOf(k));
    assert.deepEqual(parents(ia), parents(ib));
    assert.deepEqual(parents(ia), [-1, 3, 4, 5, -1, 6, 2], "the second candidate, resolved inside the first, took the cycle's link");
    assert.deepEqual([ia.counters.ambiguousTcp, ia.counters.ambiguousThread], [ib.counters.ambiguousTcp, ib.counters.ambiguousThread]);
  });
});

describe("reachableSpans", () => {
  it("marks what the fixpoint over every open span marks", () => {
    const inputs = mixedWorkload(7, 2000);
    const closing = new SpanColumns(W0);
    const open = [new SpanColumns(W0 + 10_000), new SpanColumns(W0 + 20_000)];
    // Closing: only the database's server spans, so the rest is reached hop by hop (db ← back's
    // calls ← back's requests ← front's calls ← front's requests ← curl's calls).
    inputs.forEach((x, i) => (x.service === "db" && x.kind === "server" ? closing : open[i % 2]!).push(x));
    const take = reachableSpans(closing, open);
    // The fixpoint: rescan every open span until no new one is marked.
    const rows = (w: SpanColumns) => Array.from({ length: w.length }, (_, i) => ({ ...w.record(i), tupleKey: w.tupleKey(i) }));
    const all = open.map(rows);
    const mine = rows(closing);
    const need = new LinkKeys();
    const keyOf = (s: (typeof mine)[number]) => (s.kind === "client" ? s.pid && need.addProc(s.node, s.pid) : s.tupleKey >= 0 && need.addTuple(s.tupleKey));
    mine.forEach(keyOf);
    const want = all.map((l) => new Uint8Array(l.length));
    for (let added = 1; added > 0; ) {
      added = 0;
      all.forEach((l, w) =>
        l.forEach((s, i) => {
          if (want[w]![i]) return;
          const hit = s.kind === "client" ? need.tuples.has(s.tupleKey) : need.procs.get(s.node)?.has(s.pid) === true;
          if (!hit) return;
          want[w]![i] = 1;
          added++;
          keyOf(s);
        }),
      );
    }
    assert.deepEqual(take, want);
    const marked = want.reduce((n, t) => n + t.reduce((m, v) => m + v, 0), 0);
    assert.ok(marked > 0 && marked < all[0]!.length + all[1]!.length, `some but not all open spans reachable (${marked})`);
    assert.ok(
      all.some((l, w) => l.some((s, i) => want[w]![i] && s.service === "curl")),
      "reached through four hops",
    );
  });
});

describe("span linking on one long keep-alive connection", () => {
  it("links 100,000 requests (both ends and an in-process call each) with work linear in the spans", () => {
    const N = 100_000;
    const user = { service: "load", address: "127.0.0.1", port: 40000, pid: 1 };
    const watcher = { service: "load", address: "127.0.0.1", port: 40002, pid: 1 };
    const front = { service: "front", address: "127.0.0.1", port: 8080, pid: 2 };
    const frontOut = { service: "front", address: "127.0.0.1", port: 40001, pid: 2 };
    const back = { service: "back", address: "127.0.0.1", port: 9090, pid: 3 };
    // One window holds them all: every lookup searches the whole connection and process.
    const agg = new Aggregator({ windowMs: 60_000, spanSampleRate: 1, spanBudget: 0, maxBufferedSpans: 4 * N + 3 });
    const t0 = W0 + 1;
    const hex32 = (j: number) => j.toString(16).padStart(32, "0");
    // Long requests beside the short ones: a server-sent event stream into front on another
    // connection (another thread) and a gRPC watch stream multiplexed with the unary calls.
    agg.ingest(
      [
        makeRecord({ startMs: t0 - 1, durationMs: N * 0.1 + 2, role: "server", resource: "/events", client: watcher, server: front, tid: 9, traceId: hex32(N + 2) }),
        makeRecord({ startMs: t0 - 1, durationMs: N * 0.1 + 2, role: "client", protocol: "grpc", resource: "/p.S/Watch", client: frontOut, server: back, tid: 8 }),
        makeRecord({ startMs: t0 - 0.9, durationMs: N * 0.1 + 1.8, role: "server", protocol: "grpc", resource: "/p.S/Watch", client: frontOut, server: back, tid: 3 }),
      ],
      W0 + 60_000,
    );
    for (let i = 0; i < N; i += 1000) {
      const batch = [];
      for (let j = i; j < i + 1000; j++) {
        const t = t0 + j * 0.1; // a request every 100 µs, 80 µs long, on the same two connections
        const traceId = j % 2 ? undefined : hex32(j + 1); // every other request carries a trace id through
        batch.push(
          makeRecord({ startMs: t, durationMs: 0.08, role: "client", client: user, server: front, tid: 1, traceId }),
          makeRecord({ startMs: t + 0.005, durationMs: 0.07, role: "server", client: user, server: front, tid: 2, traceId }),
          makeRecord({ startMs: t + 0.01, durationMs: 0.05, role: "client", protocol: "grpc", resource: "/p.S/M", client: frontOut, server: back, tid: 2, traceId }),
          makeRecord({ startMs: t + 0.015, durationMs: 0.04, role: "server", protocol: "grpc", resource: "/p.S/M", client: frontOut, server: back, tid: 3, traceId }),
        );
      }
      agg.ingest(batch, W0 + 60_000);
    }
    const spans = agg.closeDue(W0 + 3_600_000).flatMap((w) => w.spans);
    assert.equal(spans.length, 4 * N + 3);
    const us = (x: number) => Math.round(x * 1000);
    const want = { "front server": ["load client", 5], "front client": ["front server", 5], "back server": ["front client", 5] } as const;
    const by: Record<string, number> = {};
    let roots = 0;
    for (const s of spans) {
      const key = `${s.service} ${s.kind}`;
      if (s.resource === "/events" || s.resource === "/p.S/Watch") {
        assert.equal(s.parent?.resource ?? "", key === "back server" ? "/p.S/Watch" : "", `long ${key}`);
        continue;
      }
      by[`${key} ${s.linkedBy}`] = (by[`${key} ${s.linkedBy}`] ?? 0) + 1;
      if (key === "load client") {
        assert.equal(s.parent, null);
        roots++;
        continue;
      }
      const [parent, offsetUs] = want[key as keyof typeof want];
      assert.ok(s.parent, `${key} at ${s.startMs} has a parent`);
      assert.equal(`${s.parent.service} ${s.parent.kind}`, parent);
      assert.equal(us(s.startMs) - us(s.parent.startMs), offsetUs, `${key} at ${s.startMs}: its own request's ${parent}`);
      assert.equal(s.traceId, s.parent.traceId);
    }
    assert.equal(roots, N);
    assert.deepEqual(by, { "load client ": N, "front server tcp": N, "front client trace": N / 2, "front client thread": N / 2, "back server tcp": N });
    assert.equal(agg.counters.ambiguousTcp + agg.counters.ambiguousThread, 0);
    // A list filter looks at every span of the connection for each lookup: ~N²/2 = 5·10⁹ here.
    // The long requests are in duration classes of their own: they do not widen the others' search.
    assert.ok(agg.counters.linkVisits <= 4 * spans.length, `linking visited ${agg.counters.linkVisits} spans for ${spans.length}`);
    assert.ok(agg.counters.linkIndexed <= 4 * spans.length, `indexing placed ${agg.counters.linkIndexed} spans for ${spans.length}`);
  });
});

describe("span linking work per request", () => {
  /**
   * `n` sequential requests from one traced client process to one traced server process, both
   * ends recorded, a new connection every `perConnection` requests; all in one window. Returns the
   * linking and indexing work per span, after checking every server span found its own client span.
   */
  function workPerSpan(n: number, perConnection: number): { visits: number; indexed: number } {
    const agg = new Aggregator({ windowMs: 60_000, spanSampleRate: 0, slowestPerSeries: 0, maxBufferedSpans: 2 * n });
    const server = { service: "front", address: "127.0.0.1", port: 8080, pid: 2 };
    for (let i = 0; i < n; i += 1000) {
      const batch = [];
      for (let j = i; j < i + 1000; j++) {
        const client = { service: "load", address: "127.0.0.1", port: 1024 + Math.floor(j / perConnection), pid: 1 };
        const t = W0 + 1 + j * 0.1;
        batch.push(
          makeRecord({ startMs: t, durationMs: 0.08, role: "client", client, server, tid: 1 }),
          makeRecord({ startMs: t + 0.005, durationMs: 0.07, role: "server", client, server, tid: 2 }),
        );
      }
      agg.ingest(batch, W0 + 60_000);
    }
    agg.closeDue(W0 + 3_600_000);
    const c = agg.counters;
    assert.equal(c.spansDropped, 2 * n);
    assert.equal(c.ambiguousTcp + c.ambiguousThread, 0);
    return { visits: c.linkVisits / (2 * n), indexed: c.linkIndexed / (2 * n) };
  }

  it("is the same for 100,000 requests on one keep-alive connection as for 10 per connection", () => {
    const N = 100_000;
    const one = workPerSpan(N, N);
    const ten = workPerSpan(N, 10);
    // Counted, not timed: index entries visited by lookups, and spans placed in time order (with
    // the passes of the sort). A filter over the connection's earlier requests would visit ~N/2 per
    // lookup on the one connection; a sort of the connection per lookup, ~N.
    const total = (w: { visits: number; indexed: number }) => w.visits + w.indexed;
    assert.ok(total(one) <= 1.2 * total(ten), `one connection ${JSON.stringify(one)}, 10 per connection ${JSON.stringify(ten)}`);
    assert.ok(total(one) <= 4 && total(ten) <= 4, `bounded work per span: ${JSON.stringify({ one, ten })}`);
  });
});
