import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { EXTERNAL_LEGEND, initialState, nextNode, onKey, render, type TopData, type TopState } from "./screen.js";
import { splitKeys } from "../commands/top.js";

const data: TopData = {
  services: [
    { service: "api", role: "server", requests: 600, errors: 6, rate: 10, errorPct: 1, p50: 3, p99: 12, estimated: false },
    { service: "orders", role: "server", requests: 1200, errors: 0, rate: 20, errorPct: 0, p50: 1, p99: 4, estimated: true },
    { service: "web", role: "client", requests: 600, errors: 0, rate: 10, errorPct: 0, p50: 4, p99: 15, estimated: false },
  ],
  edges: [
    { client: "web", server: "api", protocol: "http", requests: 600, errors: 6, rate: 10, errorPct: 1, p99: 12 },
    { client: "api", server: "orders", protocol: "grpc", requests: 1200, errors: 0, rate: 20, errorPct: 0, p99: 4 },
  ],
  endpoints: [{ protocol: "http", operation: "GET", resource: "/orders/{id}", requests: 600, errors: 6, rate: 10, errorPct: 1, p50: 3, p99: 12, estimated: false }],
  nodes: ["n1", "n2"],
  external: [],
  pipeline: { seen: true, drops: [] },
  at: new Date(0),
};
const frame = { source: "http://influx db w", rangeS: 60, width: 100, height: 20 };
const press = (s: TopState, ...keys: string[]) => keys.reduce((st, k) => { const n = onKey(st, data, k); assert.equal(typeof n, "object"); return n as TopState; }, s);

describe("render", () => {
  it("lists services by rate with the selection marked, and the footer", () => {
    const lines = render(initialState(), data, frame);
    assert.equal(lines.length, 20);
    const rows = lines.filter((l) => /^[ >](api|orders|web)\b/.test(l));
    assert.deepEqual(rows.map((l) => l.slice(1).split(/\s+/)[0]), ["orders", "api", "web"]);
    assert.match(rows[0]!, /^>orders\s+server\s+20\.0\s+0\.0%\s+~1\.00ms\s+~4\.00ms\s+1200$/);
    assert.equal(lines[lines.length - 2], "pipeline: no drops");
  });
  it("drills into a service: endpoints, callers and callees", () => {
    const s = press(initialState(), "j", "\r");
    assert.deepEqual([s.view, s.service], ["service", "api"]);
    const text = render(s, data, frame).join("\n");
    assert.match(text, /SERVICE api/);
    assert.match(text, />http\s+GET\s+10\.0\s+1\.00%\s+3\.00ms\s+12\.0ms\s+\/orders\/\{id\}/);
    assert.match(text, /CALLERS\n {2}web -> api {2}http/);
    assert.match(text, /CALLEES\n {2}api -> orders {2}grpc/);
    assert.equal(press(s, "\u001b").view, "services");
  });
  it("filters with / and shows edges with e", () => {
    const f = press(initialState(), "/", "w", "e", "\r");
    assert.equal(f.filter, "we");
    assert.deepEqual(render(f, data, frame).filter((l) => /^[ >][a-z]/.test(l)).map((l) => l.trim().split(/\s+/)[0]), [">web"]);
    const e = press(initialState(), "e");
    const text = render(e, data, frame).join("\n");
    assert.match(text, /EDGES/);
    assert.match(text, />api\s+->\s+orders\s+grpc/);
    assert.equal(onKey(e, data, "q"), "quit");
  });
  it("names the pipeline's drops in the footer", () => {
    const d = { ...data, pipeline: { seen: true, drops: [{ component: "aggregator", reason: "drops_late", count: 7 }] } };
    assert.equal(render(initialState(), d, frame).at(-2), "pipeline drops: aggregator.drops_late=7");
  });
  it("cycles the nodes with n: every node, each node with data, every node again", () => {
    const seen = [initialState()];
    for (let i = 0; i < 3; i++) seen.push(press(seen.at(-1)!, "n"));
    assert.deepEqual(seen.map((s) => s.node), ["", "n1", "n2", ""]);
    assert.match(render(seen[0]!, data, frame)[0]!, /node: all/);
    assert.match(render(seen[2]!, data, frame)[0]!, /node: n2/);
    assert.match(render(seen[0]!, data, frame).at(-1)!, / n node /);
    // a node given with --node that has no data: the next is every node; an empty view names the others
    assert.equal(nextNode("gone", data.nodes), "");
    const empty = render({ ...initialState(), node: "gone" }, { ...data, services: [] }, frame).join("\n");
    assert.match(empty, /no requests recorded on node gone in this range; nodes with requests: n1, n2/);
  });
  it("marks external peers in the services, edges and drill-down views, with a legend line", () => {
    const d: TopData = {
      ...data,
      services: [...data.services, { service: "203.0.113.9:5432", role: "external", requests: 300, errors: 3, rate: 5, errorPct: 1, p50: undefined, p99: undefined, estimated: false }],
      edges: [...data.edges, { client: "orders", server: "203.0.113.9:5432", protocol: "mysql", requests: 300, errors: 3, rate: 5, errorPct: 1, p99: 2 }],
      external: ["203.0.113.9:5432"],
    };
    const services = render(initialState(), d, frame);
    assert.ok(services.some((l) => /^ 203\.0\.113\.9:5432\*\s+external\s+5\.00\s+1\.00%\s+-\s+-\s+300$/.test(l)), services.join("\n"));
    assert.ok(services.includes(EXTERNAL_LEGEND));
    assert.ok(services.some((l) => /^ api\s+server/.test(l)), "a traced service is not marked");
    const edges = render(press(initialState(), "e"), d, frame);
    assert.ok(edges.some((l) => /^ orders\s+->\s+203\.0\.113\.9:5432\*\s+mysql/.test(l)), edges.join("\n"));
    assert.ok(edges.includes(EXTERNAL_LEGEND));
    const orders = { ...initialState(), view: "service" as const, service: "orders" };
    assert.match(render(orders, d, frame).join("\n"), /CALLEES\n {2}orders -> 203\.0\.113\.9:5432\* {2}mysql[\s\S]*\* external: not a traced process/);
    const peer = { ...initialState(), view: "service" as const, service: "203.0.113.9:5432" };
    assert.match(render(peer, d, frame).join("\n"), /PEER 203\.0\.113\.9:5432\* {2}5\.00\/s {2}errors 1\.00%[\s\S]*CALLERS\n {2}orders -> 203\.0\.113\.9:5432\* {2}mysql/);
    // no external on screen: no legend
    assert.ok(!render(initialState(), data, frame).includes(EXTERNAL_LEGEND));
    const filtered = render({ ...initialState(), filter: "api" }, d, frame);
    assert.ok(!filtered.includes(EXTERNAL_LEGEND), filtered.join("\n"));
  });
  it("splits terminal input into keys", () => {
    assert.deepEqual(splitKeys("j\u001b[Bq\u001b"), ["j", "\u001b[B", "q", "\u001b"]);
  });
});
