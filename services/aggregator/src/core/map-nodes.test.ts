import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Aggregator } from "./aggregator.js";
import { makeRecord } from "../test-support/records.js";
import { windowLines, SpanClock } from "./lines.js";

const W0 = 1_700_000_000_000;

describe("mapNodes", () => {
  it("makes every end of every edge a node of the map: services with their red counts, untraced ends external", () => {
    const agg = new Aggregator({ spans: false });
    const web = { address: "10.0.0.1", port: 40000, pid: 20, name: "web", node: "n1" };
    const api = { service: "api:80", address: "10.0.0.2", port: 80, pid: 10, name: "api", node: "n2" };
    const recs = [];
    for (let i = 0; i < 10; i++) {
      // web (n1) calls api (n2): both ends traced, each seen by its own node
      recs.push(makeRecord({ startMs: W0 + 100 + i, durationMs: 4, role: "server", client: web, server: api, node: "n2", connKey: 1n }));
      recs.push(makeRecord({ startMs: W0 + 99 + i, durationMs: 5, role: "client", client: web, server: api, node: "n1", connKey: 2n }));
      // web calls a database outside (named by its address), and an untraced client calls api over IPv6
      recs.push(makeRecord({ startMs: W0 + 200 + i, durationMs: 2, role: "client", client: { ...web, port: 40001 }, server: { address: "203.0.113.9", port: 5432 }, protocol: "postgresql", node: "n1", connKey: 3n }));
      recs.push(makeRecord({ startMs: W0 + 300 + i, durationMs: 1, role: "server", client: { address: "fd00::7", port: 5000 }, server: api, node: "n2", connKey: 4n }));
    }
    agg.ingest(recs, W0 + 1000);
    const lines = windowLines(agg.closeDue(W0 + 60_000)[0]!, new SpanClock());
    const nodes = lines.filter((l) => l.startsWith("map_nodes,")).sort();
    assert.deepEqual(nodes, [
      // api on n2: its server series (20 requests); web as a client on n2, where its calls to api were counted
      `map_nodes,namespace=-,node=n2,service=fd00::7 kind="external" ${W0}000000`,
      `map_nodes,namespace=-,node=n2,service=api:80 kind="service",requests=20i,p99_ms=4 ${W0}000000`,
      `map_nodes,namespace=-,node=n2,service=web kind="service" ${W0}000000`,
      // web on n1: its client series (10 + 10); the database it calls, external
      `map_nodes,namespace=-,node=n1,service=203.0.113.9:5432 kind="external" ${W0}000000`,
      `map_nodes,namespace=-,node=n1,service=web kind="service",requests=20i,p99_ms=5 ${W0}000000`,
    ].sort());
    // the counts are those of the red points written for the service
    const red = (svc: string, node: string) => lines.filter((l) => l.startsWith("red,") && l.includes(`,node=${node},`) && l.includes(`,service=${svc},`));
    assert.equal(red("api:80", "n2").reduce((a, l) => a + Number(/requests=(\d+)i/.exec(l)![1]), 0), 20);
    assert.equal(Math.max(...red("web", "n1").map((l) => Number(/p99_ms=([\d.]+)/.exec(l)![1]))), 5);
    // every edge's two ends are nodes where the edge is placed
    const tags = (l: string) => Object.fromEntries(l.split(" ")[0]!.split(",").slice(1).map((kv) => kv.split("=") as [string, string]));
    const have = new Set(nodes.map((l) => `${tags(l).service}@${tags(l).node}`));
    const edges = lines.filter((l) => l.startsWith("edges,")).map(tags);
    assert.equal(edges.length, 3);
    for (const e of edges) for (const end of [e.client, e.server]) assert.ok(have.has(`${end}@${e.node}`), `${end} on ${e.node}`);
  });
});
