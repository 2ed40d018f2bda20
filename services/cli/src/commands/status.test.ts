import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { keyCounters, formatUptime, formatTable, withExpected, type StatusRow } from "./status.js";
import type { ChildState } from "../supervisor.js";

describe("keyCounters", () => {
  it("puts non-zero losses first, then throughput, zeros last", () => {
    const got = keyCounters({ a_gauge: 5, drops_queue_full: 3, records_published: 100, drops_decode: 0, events_in: 7 }, 4).map(([k]) => k);
    assert.deepEqual(got, ["drops_queue_full", "events_in", "records_published", "a_gauge"]);
  });
});

describe("formatUptime", () => {
  it("reads like a person would say it", () => {
    assert.equal(formatUptime(undefined), "-");
    assert.equal(formatUptime(800), "800ms");
    assert.equal(formatUptime(62_000), "1m 2s");
    assert.equal(formatUptime(3 * 86_400_000 + 4 * 3_600_000), "3d 4h");
  });
});

describe("formatTable", () => {
  it("aligns columns and shows warnings and errors", () => {
    const out = formatTable([
      { component: "parser", instance: "p-1", address: "127.0.0.1:7702", health: "SERVING", uptimeMs: 5000, counters: { records_published: 3 }, info: {}, warnings: ["placeholder"] },
      { component: "aggregator", instance: "", address: "127.0.0.1:7703", health: "UNREACHABLE", counters: {}, info: {}, warnings: [], error: "connection refused" },
    ]);
    const lines = out.trimEnd().split("\n");
    assert.equal(lines.length, 3);
    assert.equal(lines[0].indexOf("ADDRESS"), lines[1].indexOf("127.0.0.1:7702"));
    assert.match(lines[1], /records_published=3 ! placeholder$/);
    assert.match(lines[2], /UNREACHABLE\s+-\s+-\s+error: connection refused$/);
  });

  it("says which partitions and services each aggregator owns", () => {
    const row = (instance: string, partitions: string, services: string): StatusRow => ({ component: "aggregator", instance, address: "-", health: "SERVING", counters: {}, info: { partitions_owned: partitions, services }, warnings: [] });
    const out = formatTable([row("a-1", "40/64: 0-2,5", "2: api:80,web"), row("a-2", "24/64: 3-4", "0")]);
    assert.match(out, /a-1 .* owns=40\/64:0-2,5 services=2:api:80,web/);
    assert.match(out, /a-2 .* owns=24\/64:3-4 services=0/);
  });

  it("says which raw partitions each parser replica owns, the list cut when long", () => {
    const row = (instance: string, partitions: string): StatusRow => ({ component: "parser", instance, address: "-", health: "SERVING", counters: {}, info: { partitions_owned: partitions }, warnings: [] });
    const long = `32/64: ${Array.from({ length: 32 }, (_, i) => 2 * i).join(",")}`;
    const out = formatTable([row("p-1", "21/64: 0-3,9,12-27"), row("p-2", long)]);
    assert.match(out, /p-1 .* owns=21\/64:0-3,9,12-27/);
    const cut = /p-2 .* owns=(\S+)/.exec(out)![1]!;
    assert.equal(cut.length, 60);
    assert.ok(cut.startsWith("32/64:0,2,4,") && cut.endsWith("…"), cut);
  });
});

describe("withExpected", () => {
  const row = (component: string, address: string, health = "SERVING"): StatusRow => ({ component, instance: `${component}-1`, address, health, counters: {}, info: {}, warnings: [] });
  const child = (name: string, component: string, address: string, state: ChildState["state"], restarts: number, reason?: string): ChildState => ({
    name, component, address, log: "-", state, restarts, exits: restarts, reason, sinceMs: 0,
  });

  it("adds up's restart counts and a DOWN row for a supervised component that answers nowhere", () => {
    const rows = withExpected(
      [row("nats", "nats://127.0.0.1:4222"), row("influxdb", "http://127.0.0.1:8086"), row("parser", "127.0.0.1:7702"), row("aggregator", "127.0.0.1:7703")],
      [
        child("nats-server", "nats", "nats://127.0.0.1:4222", "running", 2),
        child("influxd", "influxdb", "http://127.0.0.1:8086 (db wirescope)", "running", 0),
        child("probe", "probe", "grpc://127.0.0.1:7701", "down", 0, "eBPF needs root; fix: run `sudo npm start`"),
        child("parser", "parser", "grpc://127.0.0.1:7702", "running", 1),
        child("aggregator", "aggregator", "grpc://127.0.0.1:7703", "running", 0),
      ],
    );
    assert.deepEqual(rows.map((r) => [r.component, r.health, r.restarts]), [
      ["nats", "SERVING", 2], ["influxdb", "SERVING", 0], ["probe", "DOWN", 0], ["parser", "SERVING", 1], ["aggregator", "SERVING", 0],
    ]);
    const probe = rows.find((r) => r.component === "probe")!;
    assert.equal(probe.address, "127.0.0.1:7701");
    assert.equal(probe.error, "down: eBPF needs root; fix: run `sudo npm start`");
    assert.match(formatTable(rows), /^probe\s+-\s+127\.0\.0\.1:7701\s+DOWN\s+-\s+0\s+error: down: eBPF needs root/m);
  });

  it("lists every component even without `up`, and a disabled probe as DISABLED", () => {
    const none = withExpected([row("nats", "nats://x"), row("influxdb", "http://x")], []);
    assert.deepEqual(none.map((r) => [r.component, r.health]), [["nats", "SERVING"], ["influxdb", "SERVING"], ["probe", "DOWN"], ["parser", "DOWN"], ["aggregator", "DOWN"]]);
    const off = withExpected([row("parser", "127.0.0.1:1"), row("aggregator", "127.0.0.1:2")], [child("probe", "probe", "grpc://127.0.0.1:3", "disabled", 0, "disabled with --no-probe")]);
    assert.equal(off.find((r) => r.component === "probe")?.health, "DISABLED");
  });

  it("a process status does not ask (the demo) is shown as up sees it", () => {
    const running = withExpected([row("parser", "127.0.0.1:1")], [{ ...child("demo", "demo", "http://127.0.0.1:17080 (shop)", "running", 2), pid: 42 }]);
    const demo = running.find((r) => r.component === "demo")!;
    assert.deepEqual([demo.health, demo.address, demo.restarts, demo.info.pid], ["RUNNING", "127.0.0.1:17080", 2, "42"]);
    const down = withExpected([], [child("demo", "demo", "http://127.0.0.1:17080 (shop)", "down", 0, "port busy")]);
    assert.equal(down.find((r) => r.component === "demo")?.health, "DOWN");
  });

  it("a supervised process that is restarting keeps its row and says so", () => {
    const rows = withExpected([row("parser", "127.0.0.1:7702", "UNREACHABLE")], [child("parser", "parser", "grpc://127.0.0.1:7702", "restarting", 3, "exited (SIGKILL)")]);
    const p = rows.find((r) => r.component === "parser")!;
    assert.equal(p.restarts, 3);
    assert.deepEqual(p.warnings, ["up: restarting: exited (SIGKILL)"]);
  });
});
