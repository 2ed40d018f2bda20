import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { HealthGate } from "./health.js";
import { Counters } from "./counters.js";

describe("HealthGate", () => {
  it("serves only when every required dependency is up, and tells listeners on change", () => {
    const g = new HealthGate();
    const seen: boolean[] = [];
    g.onChange((s) => seen.push(s));
    const nats = g.require("nats");
    const influx = g.require("influxdb");
    assert.equal(g.serving, false);
    nats.up();
    assert.equal(g.serving, false);
    assert.deepEqual(g.reasons(), ["influxdb: not connected yet"]);
    influx.up();
    assert.equal(g.serving, true);
    influx.down("ping: HTTP 503");
    assert.deepEqual(g.reasons(), ["influxdb: ping: HTTP 503"]);
    influx.up();
    g.stop();
    assert.equal(g.serving, false);
    influx.up();
    assert.equal(g.serving, false, "stopping is final");
    assert.deepEqual(seen, [true, false, true, false]);
  });

  it("returns the same state for a dependency required twice", () => {
    const g = new HealthGate();
    g.require("nats").up();
    assert.equal(g.require("nats").isUp, true);
    assert.equal(g.serving, true);
  });
});

describe("Counters", () => {
  it("adds, sets gauges and snapshots sorted by name", () => {
    const c = new Counters();
    c.add("b_events");
    c.add("b_events", 4);
    c.set("a_depth", 7);
    c.set("a_depth", 2);
    assert.equal(c.get("missing"), 0);
    assert.deepEqual(Object.entries(c.snapshot()), [
      ["a_depth", 2],
      ["b_events", 5],
    ]);
  });
});
