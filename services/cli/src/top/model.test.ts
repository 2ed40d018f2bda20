import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { buildQueries, edgeRows, endpointRows, externalNames, histogramQuantile, mapNodeKinds, nodeNames, peerRows, pipelineHealth, quote, rowsOf, serviceRows, sortServices } from "./model.js";

describe("histogramQuantile", () => {
  it("interpolates inside the bucket holding the rank", () => {
    // 100 values: 50 in (0,5], 40 in (5,10], 10 in (10,25].
    const b = new Map([["0", 0], ["5", 50], ["10", 90], ["25", 100], ["+Inf", 100]]);
    assert.equal(histogramQuantile(b, 0.5), 5);
    assert.equal(histogramQuantile(b, 0.7), 7.5);
    assert.equal(histogramQuantile(b, 0.99), 10 + 15 * 0.9);
  });
  it("is clamped by the points' own quantiles (see serviceRows)", () => {
    const rows = serviceRows([{ service: "s", role: "server", requests: 4, errors: 0, p50lo: 1, p50hi: 1, p99lo: 1, p99hi: 1 }], [{ service: "s", role: "server", le: "5", count: 4 }], 1);
    assert.deepEqual([rows[0]!.p50, rows[0]!.p99, rows[0]!.estimated], [1, 1, false]);
  });
  it("answers the open bucket's lower bound and nothing for an empty histogram", () => {
    assert.equal(histogramQuantile(new Map([["10", 1], ["+Inf", 10]]), 0.99), 10);
    assert.equal(histogramQuantile(new Map([["10", 0], ["+Inf", 0]]), 0.5), undefined);
    assert.equal(histogramQuantile(new Map(), 0.5), undefined);
  });
});

describe("serviceRows", () => {
  it("prefers the server side, keeps client-only services, and is exact for one point", () => {
    const red = [
      { service: "api", role: "client", requests: 10, errors: 0, p50lo: 1, p50hi: 1, p99lo: 2, p99hi: 2 },
      { service: "api", role: "server", requests: 60, errors: 6, p50lo: 3.5, p50hi: 3.5, p99lo: 9, p99hi: 9 },
      { service: "loadgen", role: "client", requests: 30, errors: 0, p50lo: 1, p50hi: 4, p99lo: 3, p99hi: 7 },
    ];
    const hist = [
      { service: "loadgen", role: "client", le: "5", count: 30 },
      { service: "loadgen", role: "client", le: "+Inf", count: 30 },
    ];
    const rows = serviceRows(red, hist, 60);
    const api = rows.find((r) => r.service === "api")!;
    assert.deepEqual([api.role, api.requests, api.rate, api.errorPct, api.p50, api.p99, api.estimated], ["server", 60, 1, 10, 3.5, 9, false]);
    const lg = rows.find((r) => r.service === "loadgen")!;
    // The histogram places p50 at 2.5 and p99 at 4.95, both inside the brackets [1, 4] and [3, 7].
    assert.deepEqual([lg.role, lg.p50, lg.p99, lg.estimated], ["client", 2.5, 4.95, true]);
  });
});

describe("endpointRows", () => {
  it("adds the status classes of one endpoint together", () => {
    const eps = endpointRows(
      [
        { protocol: "http", operation: "GET", resource: "/a", status_class: "2xx", requests: 9, errors: 0, p50lo: 1, p50hi: 1, p99lo: 2, p99hi: 2 },
        { protocol: "http", operation: "GET", resource: "/a", status_class: "5xx", requests: 1, errors: 1, p50lo: 5, p50hi: 5, p99lo: 5, p99hi: 5 },
      ],
      [
        { protocol: "http", operation: "GET", resource: "/a", le: "1", count: 5 },
        { protocol: "http", operation: "GET", resource: "/a", le: "10", count: 10 },
      ],
      10,
    );
    assert.equal(eps.length, 1);
    // p50 from the histogram (1) inside the bracket [1, 5]; p99 from it (9.91) clamped to [2, 5].
    assert.deepEqual([eps[0]!.requests, eps[0]!.errors, eps[0]!.errorPct, eps[0]!.p50, eps[0]!.p99, eps[0]!.estimated], [10, 1, 10, 1, 5, true]);
  });
});

describe("edgeRows and pipelineHealth", () => {
  it("rates edges and lists only non-zero drops", () => {
    assert.deepEqual(edgeRows([{ client: "web", server: "api", protocol: "http", requests: 20, errors: 2, p99: 4 }], 10)[0], {
      client: "web", server: "api", protocol: "http", requests: 20, errors: 2, rate: 2, errorPct: 10, p99: 4,
    });
    const h = pipelineHealth([{ component: "aggregator", sum_drops_late: 3, sum_drops_invalid: 0, sum_records_in: 100, sum_spans_dropped: 50 }]);
    assert.deepEqual(h, { seen: true, drops: [{ component: "aggregator", reason: "drops_late", count: 3 }] });
    assert.deepEqual(pipelineHealth([]), { seen: false, drops: [] });
  });
});

describe("queries", () => {
  it("quotes names and flattens series", () => {
    assert.equal(quote("o'k\\x"), "'o\\'k\\\\x'");
    const q = buildQueries(60, { service: "a'b" });
    assert.match(q.endpoints!, /"service" = 'a\\'b'/);
    assert.match(q.red!, /time > now\(\) - 60s/);
    const rows = rowsOf({ results: [{ statement_id: 0 }, { statement_id: 1, series: [{ name: "red", tags: { service: "x" }, columns: ["time", "requests"], values: [[0, 5]] }] }] }, 1);
    assert.deepEqual(rows, [{ service: "x", time: 0, requests: 5 }]);
    assert.throws(() => rowsOf({ results: [{ statement_id: 0, error: "bad" }] }, 0), /bad/);
  });
  it("keeps one node's points when asked (red, latency_hist, edges, endpoints), the drops and the nodes of all", () => {
    const q = buildQueries(60, { service: "api", node: "n'2" });
    for (const k of ["red", "hist", "edges", "endpoints", "endpointHist", "mapNodes"]) assert.match(q[k]!, /WHERE time > now\(\) - 60s AND "node" = 'n\\'2'/, k);
    for (const k of ["pipeline", "nodes"]) assert.doesNotMatch(q[k]!, /"node" =/, k);
    assert.match(q.nodes!, /FROM "red" .*GROUP BY "node"$/);
    for (const q0 of [buildQueries(60), buildQueries(60, { node: "" })]) for (const v of Object.values(q0)) assert.doesNotMatch(v, /"node" =/);
    assert.deepEqual(nodeNames([{ node: "b", requests: 3 }, { node: "a", requests: 1 }, { node: "c", requests: 0 }, { node: "", requests: 5 }]), ["a", "b"]);
  });
  it("sorts descending by the key, ties by name", () => {
    const r = [
      { n: "b", rate: 1, errorPct: 0 },
      { n: "a", rate: 1, errorPct: 5 },
      { n: "c", rate: 3, errorPct: 1 },
    ];
    assert.deepEqual(sortServices([...r], "rate", (x) => x.n).map((x) => x.n), ["c", "a", "b"]);
    assert.deepEqual(sortServices([...r], "errors", (x) => x.n).map((x) => x.n), ["a", "c", "b"]);
    assert.deepEqual(sortServices([...r], "name", (x) => x.n).map((x) => x.n), ["a", "b", "c"]);
  });
});

describe("externalNames and peerRows", () => {
  it("takes the service map's nodes without series (external peers, services of other nodes) and gives each the figures of the edges that reach it", () => {
    const kinds = mapNodeKinds([
      { service: "203.0.113.9:5432", kind: "external" },
      { service: "api", kind: "service" },
      { service: "198.51.100.7", kind: "external" },
      { service: "billing", kind: "service" },
    ]);
    assert.deepEqual(externalNames(kinds), ["198.51.100.7", "203.0.113.9:5432"]);
    const edges = edgeRows(
      [
        { client: "api", server: "203.0.113.9:5432", protocol: "postgresql", requests: 30, errors: 3, p99: 2 },
        { client: "web", server: "203.0.113.9:5432", protocol: "postgresql", requests: 10, errors: 0, p99: 9 },
        { client: "198.51.100.7", server: "api", protocol: "http2", requests: 20, errors: 0, p99: 1 },
        { client: "api", server: "billing", protocol: "grpc", requests: 50, errors: 5, p99: 3 },
      ],
      10,
    );
    const rows = peerRows(kinds, edges, serviceRows([{ service: "api", role: "server", requests: 20, errors: 0, points: 1, p50lo: 1, p50hi: 1, p99lo: 1, p99hi: 1 }], [], 10));
    assert.deepEqual(
      rows.map((r) => [r.service, r.role, r.requests, r.errors, r.rate, r.errorPct, r.p50, r.p99]),
      [
        ["198.51.100.7", "external", 20, 0, 2, 0, undefined, undefined], // only a client: what api answered it
        ["203.0.113.9:5432", "external", 40, 3, 4, 7.5, undefined, undefined], // a server: what its callers saw
        ["billing", "other-node", 50, 5, 5, 10, undefined, undefined], // traced, its series on another node
      ],
      "api has red series: a service row, not a peer",
    );
  });
});
