import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { Role, AttributeValueSchema } from "@wirescope/wire";
import { Aggregator } from "./aggregator.js";
import { makeRecord, exactQuantile } from "../test-support/records.js";
import { windowLines, SpanClock } from "./lines.js";

const W0 = 1_700_000_000_000; // window-aligned (multiple of 10 s)
const server = { service: "api", address: "10.0.0.2", port: 80, pid: 10 };
const client = { service: "web", address: "10.0.0.1", port: 40000, pid: 20 };

function rng(seed: number) {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

describe("Aggregator", () => {
  it("scales counts of sampled connections by their observed fraction, marks the series sampled, keeps ratios and percentiles as observed", () => {
    const agg = new Aggregator({ spans: false });
    const recs = [];
    // /s: half the connections observed (fraction 0.5); /x: every one (no fraction written)
    for (let i = 0; i < 400; i++) {
      const r = makeRecord({ startMs: W0 + 100 + i, durationMs: 1 + (i % 50), resource: "/s", status: i % 10 === 0 ? 500 : 200, server, client });
      r.observedFraction = 0.5;
      recs.push(r);
      recs.push(makeRecord({ startMs: W0 + 100 + i, durationMs: 1 + (i % 50), resource: "/x", status: 200, server, client }));
    }
    agg.ingest(recs, W0 + 1000);
    const [w] = agg.closeDue(W0 + 60_000);
    const lines = windowLines(w!, new SpanClock());
    const red = (res: string, sc: string) => lines.find((l) => l.startsWith("red,") && l.includes(`resource=${res},`) && l.includes(`status_class=${sc}`))!;
    // when sampled, the requests really observed beside the estimate (sent = observed + shed)
    assert.match(red("/s", "2xx"), / requests=720i,errors=0i,.*observed_fraction=0.5,sampled=true,observed_requests=360i,/);
    assert.match(red("/s", "5xx"), / requests=80i,errors=80i,.*observed_fraction=0.5,sampled=true,observed_requests=40i,/);
    assert.match(red("/x", "2xx"), / requests=400i,errors=0i,.*observed_fraction=1,sampled=false,/);
    assert.doesNotMatch(red("/x", "2xx"), /observed_requests/, "an exact series needs no second count");
    // percentiles and max are those of what was observed: the same as without the fraction
    const plain = new Aggregator({ spans: false });
    plain.ingest(recs.filter((r) => r.resource === "/s").map((r) => ({ ...r, observedFraction: 0 })), W0 + 1000);
    const plainLines = windowLines(plain.closeDue(W0 + 60_000)[0]!, new SpanClock());
    const q = (l: string) => /(p50_ms=[^,]+,p90_ms=[^,]+,p99_ms=[^,]+,max_ms=[^ ]+)/.exec(l)![1];
    const plainRed = plainLines.find((l) => l.startsWith("red,") && l.includes("status_class=2xx"))!;
    assert.match(plainRed, / requests=360i,.*sampled=false/);
    assert.equal(q(red("/s", "2xx")), q(plainRed));
    const s = w!.red.find((x) => x.resource === "/s" && x.statusClass === "2xx")!;
    assert.equal(s.stats.requests, 360, "observed requests are kept as observed");
    assert.ok(Math.abs(s.stats.estimatedSumMs - 2 * s.stats.sumMs) < 1e-6, "duration sum scaled like the requests");
    // the latency histogram is scaled like the requests: its top bucket holds every request sent
    const hist = lines.filter((l) => l.startsWith("latency_hist,le=+Inf,") && l.includes("resource=/s,") && l.includes("status_class=2xx"));
    assert.equal(hist.length, 1);
    assert.match(hist[0]!, / count=720i,/);
    // the service map counts what was sent too
    const edge = lines.find((l) => l.startsWith("edges,"))!;
    assert.match(edge, /requests=1200i,errors=80i,.*sampled=true,observed_requests=800i,/);
  });

  it("counts requests a probe reported served while shed with the server's observed series: red, histogram and edges say observed + shed exactly", () => {
    const agg = new Aggregator({ spans: false });
    const recs = [];
    // 300 observed at fraction 0.25 (the weights would say 1,200): /a 200 of them, /b 100, a tenth errors
    for (let i = 0; i < 300; i++) {
      const r = makeRecord({ startMs: W0 + 100 + i, durationMs: 2, resource: i % 3 === 2 ? "/b" : "/a", status: i % 10 === 0 ? 500 : 200, server, client });
      r.observedFraction = 0.25;
      recs.push(r);
    }
    agg.ingest(recs, W0 + 1000);
    // the kernel counted 700 served on shed connections of that server process and port, the
    // last 100 in a tick that began before the window's end (a report goes whole to the window
    // its interval starts in); another server end this instance never saw is not counted here
    agg.addShedServed("n1", server.pid, server.port, 600, W0 + 1000, W0 + 9000);
    agg.addShedServed("n1", server.pid, server.port, 100, W0 + 9_900, W0 + 10_100);
    agg.addShedServed("n1", 999, 8080, 40, W0 + 1000, W0 + 2000);
    const [w] = agg.closeDue(W0 + 60_000);
    const lines = windowLines(w!, new SpanClock());
    const red = lines.filter((l) => l.startsWith("red,"));
    const sum = (re: RegExp) => red.reduce((a, l) => a + Number(re.exec(l)?.[1] ?? 0), 0);
    assert.equal(sum(/ requests=(\d+)i/), 300 + 700, "requests = observed + shed, not 1,200");
    assert.equal(sum(/observed_requests=(\d+)i/), 300, "what was observed, beside");
    assert.ok(red.every((l) => /,sampled=true,/.test(l)), "every point says it is estimated");
    const a = w!.red.filter((x) => x.resource === "/a").reduce((t, x) => t + x.stats.estimated, 0);
    const b = w!.red.filter((x) => x.resource === "/b").reduce((t, x) => t + x.stats.estimated, 0);
    assert.ok(Math.abs(a / b - 2) < 1e-9, `shed requests spread like the estimate: /a ${a}, /b ${b}`);
    const errors = sum(/,errors=(\d+)i/);
    assert.ok(Math.abs(errors - 100) <= 2, `error ratio kept (a tenth): ${errors} of 1,000`);
    const top = lines.filter((l) => l.startsWith("latency_hist,le=+Inf,")).reduce((t, l) => t + Number(/ count=(\d+)i/.exec(l)![1]), 0);
    assert.ok(Math.abs(top - 1000) <= 2, `the histogram's top buckets hold every request: ${top}`);
    const edge = lines.find((l) => l.startsWith("edges,"))!;
    assert.match(edge, /,requests=1000i,.*observed_requests=300i,/, "the service map counts the calls alike");
    assert.equal(agg.counters.shedRequests.counted, 700);
    assert.equal(agg.counters.shedRequests.unmapped, 0, "an end not named yet is carried once to the next window");
    // the next window: nothing of that server observed; what it served there goes on to the one after
    agg.ingest([makeRecord({ startMs: W0 + 10_100, durationMs: 1, resource: "/a", status: 200, server: { service: "other", address: "10.0.0.3", port: 81, pid: 11 }, client })], W0 + 10_200);
    agg.addShedServed("n1", server.pid, server.port, 50, W0 + 10_200, W0 + 10_400);
    agg.closeDue(W0 + 80_000);
    assert.equal(agg.counters.shedRequests.unmapped, 40, "still not named a window later: unmapped");
    assert.equal(agg.counters.shedRequests.unobserved, 0, "carried, not given up");
    // a report for windows already closed is late
    agg.addShedServed("n1", server.pid, server.port, 10, W0 + 500, W0 + 600);
    assert.equal(agg.counters.shedRequests.late, 10);
    // reports for windows that never open are held for 64 windows at most
    for (let i = 0; i < 100; i++) agg.addShedServed("n1", server.pid, server.port, 1, W0 + 100_000 + i * 10_000, W0 + 100_000 + i * 10_000);
    assert.equal(agg.counters.shedRequests.unobserved, 36, "the 36 oldest given up, counted");
    // and when a later window closes, those of earlier windows that never opened are counted too
    agg.ingest([makeRecord({ startMs: W0 + 2_000_000, durationMs: 1, resource: "/a", status: 200, server, client })], W0 + 2_000_100);
    agg.closeDue(W0 + 3_000_000);
    assert.equal(agg.counters.shedRequests.unobserved, 36 + 64 + 50, "every report is counted somewhere");
  });

  it("a sampled service of a node whose probe reports, with no report in a window, counts what it observed there: the report that began in the window before counted the rest; a node that never reported keeps 1 / fraction", () => {
    const agg = new Aggregator({ spans: false });
    const sampled = (startMs: number, n: number, node: string, role?: "client") =>
      Array.from({ length: n }, (_, i) => {
        const r = makeRecord({ startMs: startMs + i, durationMs: 2, resource: "/a", status: 200, server, client, node, ...(role ? { role } : {}) });
        r.observedFraction = 0.3;
        return r;
      });
    // window 1: 30 observed at both ends, 70 served while shed, the last tick's reported from a
    // tick that began before the window's end (so it went whole to window 1)
    agg.ingest([...sampled(W0 + 100, 30, "n1"), ...sampled(W0 + 100, 30, "n1", "client")], W0 + 1000);
    agg.addShedServed("n1", server.pid, server.port, 70, W0 + 9_900, W0 + 10_150);
    agg.addShedServed("n1", client.pid, 0, 70, W0 + 9_900, W0 + 10_150);
    // window 2: 7 observed at both ends in its first tick, no report: nothing more was served shed
    agg.ingest([...sampled(W0 + 10_010, 7, "n1"), ...sampled(W0 + 10_010, 7, "n1", "client")], W0 + 10_100);
    // another node whose probe never reported: its estimate stays
    agg.ingest(sampled(W0 + 10_020, 6, "n2"), W0 + 10_100);
    const ws = agg.closeDue(W0 + 60_000);
    assert.equal(ws.length, 2);
    const reqs = (w: (typeof ws)[number], role: string, node: string) =>
      windowLines(w, new SpanClock())
        .filter((l) => l.startsWith("red,") && l.includes(`role=${role},`) && l.includes(`node=${node},`))
        .reduce((t, l) => t + Number(/ requests=(\d+)i/.exec(l)![1]), 0);
    assert.equal(reqs(ws[0]!, "server", "n1"), 100);
    assert.equal(reqs(ws[0]!, "client", "n1"), 100);
    assert.equal(reqs(ws[1]!, "server", "n1"), 7, "observed + 0, not 7 / 0.3 = 23 (107 over both windows for 107 sent)");
    assert.equal(reqs(ws[1]!, "client", "n1"), 7);
    assert.equal(reqs(ws[1]!, "server", "n2"), 20, "a node that never reported: 1 / fraction");
    const edge = windowLines(ws[1]!, new SpanClock()).find((l) => l.startsWith("edges,") && l.includes("node=n1"));
    assert.match(edge ?? "", /[ ,]requests=7i,/, "the calls to that server alike");
    assert.equal(agg.counters.shedRequests.counted, 140);
  });

  it("counts requests a probe reported answered at a process's client ends while shed (port 0) with its client-side series", () => {
    const agg = new Aggregator({ spans: false });
    const recs = [];
    for (let i = 0; i < 100; i++) {
      const r = makeRecord({ startMs: W0 + 100 + i, durationMs: 2, resource: "/a", status: 200, server, client, role: "client" });
      r.observedFraction = 0.25;
      recs.push(r);
    }
    agg.ingest(recs, W0 + 1000);
    agg.addShedServed("n1", client.pid, 0, 250, W0 + 1000, W0 + 2000);
    // the same process's server end (if it had one) is another key: nothing of it here
    agg.addShedServed("n1", client.pid, client.port, 7, W0 + 1000, W0 + 2000);
    const [w] = agg.closeDue(W0 + 60_000);
    const red = windowLines(w!, new SpanClock()).filter((l) => l.startsWith("red,"));
    assert.equal(red.length, 1);
    assert.match(red[0]!, /role=client,service=web,.* requests=350i,.*sampled=true,observed_requests=100i,/, "observed + answered while shed, not 400");
    assert.equal(agg.counters.shedRequests.counted, 250);
    // an HTTP/2 server's turns are not its requests (streams multiplex): its estimate stays
    const h2 = new Aggregator({ spans: false });
    const h2recs = Array.from({ length: 40 }, (_, i) => {
      const r = makeRecord({ startMs: W0 + 100 + i, durationMs: 2, resource: "/h2", status: 200, server, client, protocol: "http2" });
      r.observedFraction = 0.5;
      return r;
    });
    h2.ingest(h2recs, W0 + 1000);
    h2.addShedServed("n1", server.pid, server.port, 5, W0 + 1000, W0 + 2000);
    const h2red = windowLines(h2.closeDue(W0 + 60_000)[0]!, new SpanClock()).find((l) => l.startsWith("red,"))!;
    assert.match(h2red, / requests=80i,/, "1 / fraction, not 40 + 5");
    assert.equal(h2.counters.shedRequests.protocol, 5);
    agg.ingest([makeRecord({ startMs: W0 + 10_100, durationMs: 1, resource: "/a", status: 200, server, client })], W0 + 10_200);
    agg.closeDue(W0 + 80_000);
    assert.equal(agg.counters.shedRequests.unmapped, 7, "carried once, then counted as unmapped");
  });

  it("tags edges and spans with the node and namespace of the end that observed them, as red", () => {
    const agg = new Aggregator({ spanSampleRate: 1 });
    // web (node n1, namespace shop) calls api (n2, pay) and an untraced payment provider.
    const web = { service: "web", address: "10.0.0.1", port: 40000, pid: 20, node: "n1", namespace: "shop" };
    const api = { service: "api", address: "10.0.0.2", port: 80, pid: 10, node: "n2", namespace: "pay" };
    const ext = { service: "203.0.113.9:443", address: "203.0.113.9", port: 443 };
    const recs = [];
    for (let i = 0; i < 10; i++) {
      // the same call seen at both ends, each by its own node's probe
      recs.push(makeRecord({ startMs: W0 + 100 + 10 * i, durationMs: 5, role: "server", client: web, server: api, node: "n2" }));
      recs.push(makeRecord({ startMs: W0 + 99 + 10 * i, durationMs: 7, role: "client", client: web, server: api, node: "n1" }));
      recs.push(makeRecord({ startMs: W0 + 200 + 10 * i, durationMs: 3, role: "client", client: { ...web, port: 40001 }, server: ext, node: "n1" }));
    }
    agg.ingest(recs, W0 + 1000);
    const lines = windowLines(agg.closeDue(W0 + 60_000)[0]!, new SpanClock());
    const tagsOf = (l: string) => Object.fromEntries(l.split(" ")[0]!.split(",").slice(1).map((kv) => kv.split("=")));
    const edges = lines.filter((l) => l.startsWith("edges,")).map((l) => ({ ...tagsOf(l), requests: /requests=(\d+)i/.exec(l)![1] }));
    assert.deepEqual(
      edges.sort((a, b) => a.server.localeCompare(b.server)),
      [
        // counted by the traced server's records, where it runs
        { client: "web", server: "203.0.113.9:443", protocol: "http", node: "n1", namespace: "shop", requests: "10" },
        { client: "web", server: "api", protocol: "http", node: "n2", namespace: "pay", requests: "10" },
      ].sort((a, b) => a.server.localeCompare(b.server)),
    );
    const spans = lines.filter((l) => l.startsWith("spans,")).map(tagsOf);
    assert.equal(spans.length, 30);
    for (const s of spans) assert.deepEqual([s.node, s.namespace], s.service === "api" ? ["n2", "pay"] : ["n1", "shop"], JSON.stringify(s));
    // the same placement as the red series of each service
    const red = lines.filter((l) => l.startsWith("red,")).map(tagsOf);
    for (const r of red) assert.deepEqual([r.node, r.namespace], r.service === "api" ? ["n2", "pay"] : ["n1", "shop"]);
  });

  it("marks the spans of TLS connections (the record's tls attribute): a tls field and tls.established in their tags", () => {
    const agg = new Aggregator({ spanSampleRate: 1 });
    const tlsRec = makeRecord({ startMs: W0 + 100, durationMs: 5, server, client, connKey: 1n });
    tlsRec.attributes["tls"] = create(AttributeValueSchema, { value: { case: "boolValue", value: true } });
    agg.ingest([tlsRec, makeRecord({ startMs: W0 + 200, durationMs: 5, server, client: { ...client, port: 40001 }, connKey: 2n })], W0 + 1000);
    const spans = windowLines(agg.closeDue(W0 + 60_000)[0]!, new SpanClock()).filter((l) => l.startsWith("spans,"));
    assert.equal(spans.length, 2);
    const [tls, plain] = [spans.find((l) => l.includes("client_port=40000i"))!, spans.find((l) => l.includes("client_port=40001i"))!];
    assert.match(tls, /,tls=true/);
    assert.match(tls, /\{\\"key\\":\\"tls.established\\",\\"value\\":true\}/);
    assert.doesNotMatch(plain, /tls/);
  });

  it("names a process by its listening port from its first record, made before its first accept (red, latency_hist, edges, spans and their peers)", () => {
    const agg = new Aggregator({ spanSampleRate: 1 });
    // orders (pid 7) asks kafka for metadata at start, as `orders`: it does not listen yet.
    const orders = { service: "orders", address: "127.0.0.1", port: 40100, pid: 7, name: "orders", node: "n1" };
    const kafka = { service: "kafka:9092", address: "127.0.0.1", port: 9092, pid: 9, name: "kafka", node: "n1" };
    // another process called orders that never listens, and one called batch
    const other = { ...orders, port: 40200, pid: 11 };
    const batch = { service: "batch", address: "127.0.0.1", port: 40300, pid: 12, name: "batch", node: "n1" };
    const redis = { service: "redis:6379", address: "127.0.0.1", port: 6379, pid: 13, name: "redis", node: "n1" };
    agg.ingest([
      makeRecord({ startMs: W0 + 100, durationMs: 2, role: "client", client: orders, server: kafka, protocol: "kafka", operation: "Metadata", resource: "orders", connKey: 1n }),
      makeRecord({ startMs: W0 + 100.5, durationMs: 1, role: "server", client: orders, server: kafka, protocol: "kafka", operation: "Metadata", resource: "orders", connKey: 2n }),
      makeRecord({ startMs: W0 + 200, durationMs: 1, role: "server", client: other, server: kafka, protocol: "kafka", operation: "Metadata", resource: "orders", connKey: 3n }),
      makeRecord({ startMs: W0 + 300, durationMs: 1, role: "server", client: batch, server: kafka, protocol: "kafka", operation: "Metadata", resource: "orders", connKey: 4n }),
      // and redis, whose records name it by address only (its replica had no event of that socket):
      // the map takes the client's name from orders' own record of the connection (by 4-tuple)
      makeRecord({ startMs: W0 + 400, durationMs: 1, role: "client", client: { ...orders, port: 40500 }, server: redis, protocol: "redis", operation: "GET", resource: "k", connKey: 6n }),
      makeRecord({ startMs: W0 + 400.2, durationMs: 0.5, role: "server", client: { address: "127.0.0.1", port: 40500 }, server: redis, protocol: "redis", operation: "GET", resource: "k", connKey: 7n }),
    ], W0 + 1000);
    // then it serves gRPC on 50051 (in the next window, before this one closes)
    const api = { service: "api", address: "127.0.0.1", port: 40400, pid: 5, name: "api", node: "n1" };
    agg.ingest([makeRecord({ startMs: W0 + 10_100, durationMs: 3, role: "server", client: api, server: { service: "orders:50051", address: "127.0.0.1", port: 50051, pid: 7, name: "orders", node: "n1" }, protocol: "grpc", resource: "/shop.Orders/GetItem", connKey: 5n })], W0 + 11_000);
    const [w] = agg.closeDue(W0 + 16_000);
    assert.equal(w!.start, W0);
    const lines = windowLines(w!, new SpanClock());
    const tag = (l: string, k: string) => new RegExp(`[,]${k}=([^, ]+)`).exec(l.split(" ")[0]!)?.[1];
    const red = lines.filter((l) => l.startsWith("red,")).map((l) => `${tag(l, "service")}/${tag(l, "role")}/${tag(l, "protocol")}`).sort();
    assert.deepEqual(red, ["kafka:9092/server/kafka", "orders:50051/client/kafka", "orders:50051/client/redis", "redis:6379/server/redis"], "the client records of pid 7 count as orders:50051");
    const hist = new Set(lines.filter((l) => l.startsWith("latency_hist,")).map((l) => tag(l, "service")));
    assert.deepEqual([...hist].sort(), ["kafka:9092", "orders:50051", "redis:6379"], "latency_hist carries the red series' names");
    const edges = lines.filter((l) => l.startsWith("edges,")).map((l) => `${tag(l, "client")}->${tag(l, "server")} ${/requests=(\d+)i/.exec(l)![1]}`).sort();
    assert.deepEqual(
      edges,
      ["batch->kafka:9092 1", "orders->kafka:9092 1", "orders:50051->kafka:9092 1", "orders:50051->redis:6379 1"],
      "pid 7 by its listening name (also when named through its own record of the connection), pid 11 (never listening) by its bare name",
    );
    // service and peer_service of every span: pid 7's bare name renamed on both sides of its calls
    const peer = (l: string) => /,peer_service="([^"]*)"/.exec(l)![1];
    const spans = lines.filter((l) => l.startsWith("spans,")).map((l) => `${tag(l, "service")}/${tag(l, "kind")}/${tag(l, "protocol")}<-${peer(l)}`).sort();
    assert.deepEqual(spans, [
      "kafka:9092/server/kafka<-batch",
      "kafka:9092/server/kafka<-orders",
      "kafka:9092/server/kafka<-orders:50051",
      "orders:50051/client/kafka<-kafka:9092",
      "orders:50051/client/redis<-redis:6379",
      "redis:6379/server/redis<-127.0.0.1",
    ]);
    // the OpenTelemetry attributes of the spans (Grafana's trace view, OTLP) say the same
    assert.equal(lines.filter((l) => l.startsWith("spans,") && l.includes('\\"peer.service\\",\\"value\\":\\"orders:50051\\"')).length, 1);
  });

  it("keeps the bare name when the listening name is another instance's (acceptListenNames)", () => {
    const agg = new Aggregator({ spanSampleRate: 1 });
    agg.acceptListenNames((name) => name !== "orders:50051");
    const orders = { service: "orders", address: "127.0.0.1", port: 40100, pid: 7, name: "orders", node: "n1" };
    const kafka = { service: "kafka:9092", address: "127.0.0.1", port: 9092, pid: 9, name: "kafka", node: "n1" };
    const ordersListening = { service: "orders:50051", address: "127.0.0.1", port: 50051, pid: 7, name: "orders", node: "n1" };
    agg.ingest([
      makeRecord({ startMs: W0 + 100, durationMs: 2, role: "client", client: orders, server: kafka, protocol: "kafka", operation: "Metadata", resource: "orders", connKey: 1n }),
      makeRecord({ startMs: W0 + 200, durationMs: 3, role: "server", client: { service: "api", address: "127.0.0.1", port: 40400, pid: 5, name: "api", node: "n1" }, server: ordersListening, protocol: "grpc", resource: "/shop.Orders/GetItem", connKey: 5n }),
    ], W0 + 1000);
    const [w] = agg.closeDue(W0 + 16_000);
    const tag = (l: string, k: string) => new RegExp(`[,]${k}=([^, ]+)`).exec(l.split(" ")[0]!)?.[1];
    const red = windowLines(w!, new SpanClock()).filter((l) => l.startsWith("red,")).map((l) => `${tag(l, "service")}/${tag(l, "role")}`).sort();
    assert.deepEqual(red, ["orders/client", "orders:50051/server"], "the client series stays with the instance that counted it");
  });

  it("counts requests, errors and duration sums exactly; percentiles within the sketch's accuracy", () => {
    const agg = new Aggregator({ spans: false });
    const r = rng(1);
    const durations: number[] = [];
    const recs = [];
    let errors = 0;
    for (let i = 0; i < 5000; i++) {
      const d = Math.round(Math.exp(r() * 8) * 1000) / 1000; // 1 ms .. ~3 s, log-uniform
      const err = r() < 0.1;
      if (err) errors++;
      durations.push(d);
      recs.push(makeRecord({ startMs: W0 + 100 + i, durationMs: d, resource: `/items/${i}`, status: err ? 500 : 200, server, client }));
    }
    agg.ingest(recs, W0 + 1000);
    const closed = agg.closeDue(W0 + 60_000);
    const red = closed.flatMap((w) => w.red);
    const total = red.reduce((a, s) => a + s.stats.requests, 0);
    assert.equal(total, 5000);
    assert.equal(red.reduce((a, s) => a + s.stats.errors, 0), errors);
    const sum = durations.reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(red.reduce((a, s) => a + s.stats.sumMs, 0) - sum) < 1e-6 * sum);
    // One window holds everything that ended in it; check the 2xx series of the window with most data.
    const w = closed[0]!;
    const s2xx = w.red.find((s) => s.statusClass === "2xx")!;
    assert.equal(s2xx.resource, "/items/{id}");
    const ended = recs.filter((x, i) => Math.floor((Number(x.startNs / 1000000n) + durations[i]!) / 10_000) * 10_000 === w.start);
    const mine = ended.map((x) => Number(x.durationNs) / 1e6).filter((_, i) => Number(ended[i]!.status) === 200).sort((a, b) => a - b);
    assert.equal(s2xx.stats.requests, mine.length);
    for (const q of [0.5, 0.9, 0.99]) {
      const exact = exactQuantile(mine, q);
      const got = s2xx.stats.quantile(q);
      assert.ok(Math.abs(got - exact) <= 0.01 * exact + 1e-9, `q${q}: ${got} vs ${exact}`);
    }
  });

  it("never guesses a role: a record whose role is unknown is counted, in no series and no edge", () => {
    const agg = new Aggregator({ spans: false });
    const known = makeRecord({ startMs: W0 + 100, durationMs: 2, server, client });
    const unknown = makeRecord({ startMs: W0 + 200, durationMs: 2, server, client });
    unknown.role = Role.UNKNOWN;
    agg.ingest([known, unknown], W0 + 1000);
    const closed = agg.closeDue(W0 + 60_000);
    assert.equal(closed.flatMap((w) => w.red).reduce((a, s) => a + s.stats.requests, 0), 1);
    assert.equal(closed.flatMap((w) => w.edges).reduce((a, e) => a + e.stats.requests, 0), 1);
    assert.equal(agg.counters.drops.role_unknown, 1);
  });

  it("bounds series: 10,000 distinct numeric paths become one templated series", () => {
    const agg = new Aggregator({ spans: false });
    const recs = Array.from({ length: 10_000 }, (_, i) => makeRecord({ startMs: W0 + 10, durationMs: 1, resource: `/users/${i * 7919}/profile`, status: 200, server }));
    agg.ingest(recs, W0);
    const [w] = agg.closeDue(W0 + 60_000);
    assert.equal(w!.red.length, 1);
    assert.equal(w!.red[0]!.resource, "/users/{id}/profile");
    assert.equal(w!.red[0]!.stats.requests, 10_000);
  });

  it("collapses high-cardinality words and guards every tag at maxValuesPerTag", () => {
    const agg = new Aggregator({ spans: false, segmentThreshold: 20, maxValuesPerTag: 5 });
    const recs = [];
    for (let i = 0; i < 300; i++) recs.push(makeRecord({ startMs: W0 + 10, durationMs: 1, resource: `/by-name/user${String.fromCharCode(97 + (i % 26))}${i}`, server }));
    for (let i = 0; i < 10; i++) recs.push(makeRecord({ startMs: W0 + 10, durationMs: 1, resource: `/route${i}`, server }));
    agg.ingest(recs, W0);
    const [w] = agg.closeDue(W0 + 60_000);
    const resources = new Set(w!.red.map((s) => s.resource));
    assert.deepEqual([...resources].sort(), ["*", "/by-name/*", "/route0", "/route1", "/route2"]);
    assert.ok(resources.has("/by-name/*"));
    assert.ok(resources.has("*"));
    assert.equal(w!.red.reduce((a, s) => a + s.stats.requests, 0), 310);
    assert.equal(w!.red.find((s) => s.resource === "*")!.stats.requests, 7);
    assert.ok(w!.folded > 0);
  });

  it("produces the same lines whatever the arrival order (redelivery-safe)", () => {
    const r = rng(7);
    const recs = Array.from({ length: 2000 }, (_, i) =>
      makeRecord({ startMs: W0 + Math.floor(r() * 9000), durationMs: r() * 50, resource: `/p${i % 150}/x`, status: r() < 0.05 ? 503 : 200, server, client, connKey: BigInt(i), tid: 1 }),
    );
    const run = (list: typeof recs) => {
      const agg = new Aggregator({ maxValuesPerTag: 40, segmentThreshold: 1000, spanSampleRate: 0.3 });
      for (let i = 0; i < list.length; i += 100) agg.ingest(list.slice(i, i + 100), W0);
      const clock = new SpanClock();
      return agg.closeDue(W0 + 60_000).flatMap((w) => windowLines(w, clock)).sort();
    };
    const shuffled = [...recs];
    for (let i = shuffled.length - 1; i > 0; i--) {
      const j = Math.floor(r() * (i + 1));
      [shuffled[i], shuffled[j]] = [shuffled[j]!, shuffled[i]!];
    }
    assert.deepEqual(run(shuffled), run(recs));
  });

  it("closes windows on event time or idle wall clock, in order, and drops late records", () => {
    const agg = new Aggregator({ spans: false, graceMs: 2000 });
    agg.ingest([makeRecord({ startMs: W0 + 1, durationMs: 1, server })], W0 + 5);
    assert.equal(agg.closeDue(W0 + 11_000).length, 0, "grace not over");
    assert.equal(agg.closeDue(W0 + 12_001).length, 1);
    const late = agg.ingest([makeRecord({ startMs: W0 + 2, durationMs: 1, server })], W0 + 12_002);
    assert.equal(late.accepted, 0);
    assert.equal(agg.counters.drops.late, 1);
    agg.ingest([makeRecord({ startMs: W0 + 3, durationMs: 1, server })], W0 + 12_003, true);
    assert.equal(agg.counters.drops.redelivered, 1);
    // Old replayed data: event time drives closing.
    const old = W0 - 3_600_000;
    const a2 = new Aggregator({ spans: false, graceMs: 1000 });
    a2.ingest([makeRecord({ startMs: old, durationMs: 1, server }), makeRecord({ startMs: old + 12_000, durationMs: 1, server })], W0);
    const c = a2.closeDue(W0);
    assert.equal(c.length, 1);
    assert.equal(c[0]!.start, old);
  });

  it("closes no window past the parsers' watermark, by event time or by the idle wall clock, for at most the hold after its close time", () => {
    // window [W0, W0+10 s), grace 2 s: close time W0 + 12 s
    const agg = new Aggregator({ spans: false, graceMs: 2000 });
    agg.ingest([makeRecord({ startMs: W0 + 1, durationMs: 1, server })], W0 + 5);
    // another parser's records move event time past the close time, while one parser still holds
    // records it made at W0 + 3 s: its watermark says W0 + 2 s
    agg.ingest([makeRecord({ startMs: W0 + 20_000, durationMs: 1, server })], W0 + 20_010);
    const held = { throughMs: W0 + 2_000, holdMs: 20_000 };
    assert.equal(agg.closeDue(W0 + 20_020, false, Infinity, held).length, 0, "event time alone does not close it");
    assert.equal(agg.closeDue(W0 + 20_020, false, W0 + 20_000, held).length, 0, "nor an idle report");
    // the held records arrive: not late
    agg.ingest([makeRecord({ startMs: W0 + 3_000, durationMs: 1, server })], W0 + 25_000);
    assert.equal(agg.counters.drops.late, 0);
    assert.equal(agg.closeDue(W0 + 25_010, false, Infinity, { throughMs: W0 + 11_999, holdMs: 20_000 }).length, 0, "a watermark just short of the close time");
    const [w] = agg.closeDue(W0 + 25_010, false, Infinity, { throughMs: W0 + 12_000, holdMs: 20_000 });
    assert.equal(w?.start, W0);
    assert.equal(w?.red.reduce((n, x) => n + x.stats.requests, 0), 2, "the window with the held record");
    // a parser whose watermark never moves (its clock behind, or stuck) holds a window only for
    // the hold past its close time: W0 + 52 s for the window [W0+20 s, W0+30 s)
    agg.ingest([makeRecord({ startMs: W0 + 40_000, durationMs: 1, server })], W0 + 40_010);
    const stuck = { throughMs: W0, holdMs: 20_000 };
    assert.equal(agg.closeDue(W0 + 51_999, false, Infinity, stuck).length, 0);
    assert.deepEqual(agg.closeDue(W0 + 52_000, false, Infinity, stuck).map((x) => x.start), [W0 + 20_000]);
  });

  it("closes a window on the idle wall clock only once its source said, after the window's grace and last record, that it had nothing more", () => {
    const agg = new Aggregator({ spans: false, graceMs: 2000 });
    agg.ingest([makeRecord({ startMs: W0 + 1, durationMs: 1, server })], W0 + 5);
    // Silent since (deliveries stalled): the window stays open, however long past its grace.
    assert.equal(agg.closeDue(W0 + 60_000, false, -Infinity).length, 0, "no idle report at all");
    assert.equal(agg.closeDue(W0 + 60_000, false, W0 + 4).length, 0, "the last idle report came before the window's last record");
    // Nothing waited then, but more of the window's records could still be published (live traffic).
    assert.equal(agg.closeDue(W0 + 60_000, false, W0 + 6).length, 0, "the last idle report came before the window's grace ended");
    // Its record, delayed by the silence, is not late.
    agg.ingest([makeRecord({ startMs: W0 + 2, durationMs: 1, server })], W0 + 60_001);
    assert.equal(agg.counters.drops.late, 0);
    assert.equal(agg.closeDue(W0 + 61_000, false, W0 + 60_500).length, 0, "idle report after the last record, but the grace since it is not over");
    const [w] = agg.closeDue(W0 + 62_002, false, W0 + 60_500);
    assert.equal(w?.red.reduce((n, s) => n + s.stats.requests, 0), 2, "both records in the window");
    // Event time needs no idle report.
    agg.ingest([makeRecord({ startMs: W0 + 100_000, durationMs: 1, server }), makeRecord({ startMs: W0 + 130_000, durationMs: 1, server })], W0 + 130_010);
    assert.equal(agg.closeDue(W0 + 130_020, false, -Infinity).length, 1);
  });

  it("rejects bad records with counted drops, never throws", () => {
    const agg = new Aggregator({ spans: false });
    const bad = makeRecord({ startMs: W0, durationMs: 1 });
    bad.startNs = 0n;
    const future = makeRecord({ startMs: W0 + 3_600_000, durationMs: 1 });
    assert.equal(agg.ingest([bad, future], W0).accepted, 0);
    assert.equal(agg.counters.drops.invalid, 1);
    assert.equal(agg.counters.drops.future, 1);
  });

  it("builds service-map edges from server-side records and from clients of untraced servers", () => {
    const agg = new Aggregator({ spans: false });
    agg.ingest(
      [
        makeRecord({ startMs: W0 + 1, durationMs: 2, role: "server", server, client }),
        makeRecord({ startMs: W0 + 1, durationMs: 3, role: "client", server, client }), // same request seen by the client
        makeRecord({ startMs: W0 + 1, durationMs: 4, role: "client", protocol: "mysql", resource: "select 1", server: { address: "10.0.0.9", port: 3306 }, client: { service: "api", pid: 10 } }),
      ],
      W0,
    );
    const [w] = agg.closeDue(W0 + 60_000);
    const edges = w!.edges.map((e) => `${e.client}->${e.server}/${e.protocol}=${e.stats.requests}`).sort();
    assert.deepEqual(edges, ["api->10.0.0.9:3306/mysql=1", "web->api/http=1"]);
    assert.deepEqual(w!.red.map((s) => `${s.service}/${s.role}`).sort(), ["api/client", "api/server", "web/client"]);
  });

  it("counts a call seen from both ends once when neither end could name the other (two replicas)", () => {
    // Replica A traced the server's sockets and named the client by address; replica B traced the
    // client's and named the server by address. 30 calls over 3 keep-alive connections, plus 5
    // calls to an external database that only the client saw.
    const agg = new Aggregator({ spans: false });
    const A = [];
    const B = [];
    for (let i = 0; i < 30; i++) {
      const cport = 41000 + (i % 3);
      const start = W0 + 100 + i * 10;
      A.push(makeRecord({ startMs: start, durationMs: 2, role: "server", server: { service: "gosrv:18181", address: "127.0.0.1", port: 18181, pid: 7, name: "gosrv" }, client: { service: "127.0.0.1", address: "127.0.0.1", port: cport }, status: i % 10 === 0 ? 500 : 200 }));
      B.push(makeRecord({ startMs: start - 1, durationMs: 4, role: "client", client: { service: "gocli", address: "127.0.0.1", port: cport, pid: 8, name: "gocli" }, server: { service: "127.0.0.1:18181", address: "127.0.0.1", port: 18181 } }));
    }
    // 20 calls over new connections, each on its own: replica B named the server (its event came
    // first), replica A published the server's record before the client's event reached it
    for (let i = 0; i < 20; i++) {
      const cport = 43000 + i;
      A.push(makeRecord({ startMs: W0 + 2000 + i * 10, durationMs: 1, role: "server", server: { service: "gosrv:18181", address: "127.0.0.1", port: 18181, pid: 7, name: "gosrv" }, client: { service: "127.0.0.1", address: "127.0.0.1", port: cport } }));
      B.push(makeRecord({ startMs: W0 + 2000 + i * 10, durationMs: 2, role: "client", client: { service: "gocli", address: "127.0.0.1", port: cport, pid: 8, name: "gocli" }, server: { service: "gosrv:18181", address: "127.0.0.1", port: 18181, pid: 7, name: "gosrv" } }));
    }
    for (let i = 0; i < 5; i++) {
      B.push(makeRecord({ startMs: W0 + 500 + i, durationMs: 1, role: "client", protocol: "mysql", resource: "select 1", client: { service: "gocli", address: "127.0.0.1", port: 42000, pid: 8, name: "gocli" }, server: { service: "10.0.0.9:3306", address: "10.0.0.9", port: 3306 } }));
    }
    // the client's records first for one half, the server's first for the other
    agg.ingest(B.slice(0, 20), W0 + 3000);
    agg.ingest(A, W0 + 3000);
    agg.ingest(B.slice(20), W0 + 3000);
    const [w] = agg.closeDue(W0 + 60_000);
    const edges = w!.edges.map((e) => `${e.client}->${e.server}/${e.protocol}=${e.stats.requests}/${e.stats.errors}`).sort();
    assert.deepEqual(edges, ["gocli->10.0.0.9:3306/mysql=5/0", "gocli->gosrv:18181/http=50/3"]);
    const srv = w!.red.filter((s) => s.service === "gosrv:18181").reduce((n, s) => n + s.stats.requests, 0);
    assert.equal(srv, 50, "the edge counts what the server counted");
    assert.equal(agg.counters.edgeCallsMatched, 30);
  });

  it("matches a call whose two records fall in adjacent windows, and keeps the tuple memory bounded", () => {
    const agg = new Aggregator({ spans: false, maxEdgeTuples: 4 });
    const srv = { service: "api:80", address: "10.0.0.2", port: 80, pid: 10, name: "api" };
    const cli = (port: number) => ({ service: "web", address: "10.0.0.1", port, pid: 20, name: "web" });
    const anon = (port: number) => ({ service: "10.0.0.1", address: "10.0.0.1", port });
    const srvAnon = { service: "10.0.0.2:80", address: "10.0.0.2", port: 80 };
    // the server's record ends just before the boundary, the client's just after
    agg.ingest([makeRecord({ startMs: W0 + 9_990, durationMs: 5, role: "server", server: srv, client: anon(40000) })], W0 + 10_000);
    agg.ingest([makeRecord({ startMs: W0 + 9_989, durationMs: 20, role: "client", server: srvAnon, client: cli(40000) })], W0 + 10_000);
    // 10 more connections in the next window: 4 entries are remembered (a connection's client
    // name and its waiting record take one each), the rest count unmatched
    for (let i = 1; i <= 10; i++) {
      agg.ingest([makeRecord({ startMs: W0 + 10_100 + i, durationMs: 1, role: "client", server: srvAnon, client: cli(40000 + i) })], W0 + 11_000);
    }
    const ws = agg.closeDue(W0 + 120_000);
    const edges = ws.flatMap((w) => w.edges.map((e) => `${w.start - W0}:${e.client}->${e.server}=${e.stats.requests}`)).sort();
    // the server-side record takes the client's name from the next window, the client-side one is
    // matched to the server's of the window before
    assert.deepEqual(edges, ["0:web->api:80=1", "10000:web->10.0.0.2:80=10"]);
    assert.equal(agg.counters.edgeCallsMatched, 1);
    assert.equal(agg.counters.edgeTuplesOverflow, 9);
  });
});
