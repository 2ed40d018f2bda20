import { test } from "node:test";
import assert from "node:assert/strict";
import { seriesFor, collect } from "./metrics.js";
import { Counters } from "./counters.js";
import { spawnSync } from "node:child_process";

test("status counter names map to Prometheus families and labels", () => {
  const cases: [string, boolean, string, string, Record<string, string>][] = [
    ["records_published", false, "wirescope_records_published_total", "counter", {}],
    ["records_dropped.malformed", false, "wirescope_drops_total", "counter", { what: "records", reason: "malformed" }],
    ["nats_drops_queue_full", false, "wirescope_drops_total", "counter", { what: "nats", reason: "queue_full" }],
    ["probe_drops.ringbuf_full", false, "wirescope_drops_total", "counter", { what: "probe", reason: "ringbuf_full" }],
    ["host.bytes_dropped.unclaimed", false, "wirescope_dropped_bytes_total", "counter", { source: "plugin_host", reason: "unclaimed" }],
    ["raw_decode_errors.truncated", false, "wirescope_raw_decode_errors_total", "counter", { key: "truncated" }],
    ["plugin_traps.http.oom", false, "wirescope_plugin_traps_total", "counter", { key: "http.oom" }],
    ["records_per_s.http", true, "wirescope_records_per_s", "gauge", { key: "http" }],
    ["nats_queue_depth", true, "wirescope_nats_queue_depth", "gauge", {}],
    ["9bad-name", false, "wirescope__9bad_name_total", "counter", {}],
  ];
  for (const [name, gauge, family, type, labels] of cases) assert.deepEqual(seriesFor(name, gauge), { family, type, labels }, name);
});

test("collect reads the counters once per scrape; gauges are what `set` wrote", () => {
  const c = new Counters();
  c.add("records_published", 5);
  c.set("partitions_owned", 3);
  c.setTotal("plugin_traps.redis", 2);
  const fams = collect({ component: "parser", instance: "i-1", version: "1.0", counters: c, info: new Map([["node", "n"]]), ready: () => true, warnings: () => 0, uptimeSeconds: () => 1 });
  const by = new Map(fams.map((f) => [f.name, f]));
  assert.deepEqual(by.get("wirescope_records_published_total")?.values, [{ labels: { component: "parser", instance: "i-1" }, value: 5 }]);
  assert.equal(by.get("wirescope_partitions_owned")?.type, "gauge");
  assert.equal(by.get("wirescope_plugin_traps_total")?.type, "counter");
  assert.deepEqual(by.get("wirescope_service_info")?.values[0].labels, { component: "parser", instance: "i-1", version: "1.0", node: "n" });
});

test("the registry's process metrics do not wake an idle process more than a few times a second", () => {
  // A child with the registry and nothing else to do: the main thread's context switches over 2 s
  // count its wake-ups (prom-client's default 10 ms event-loop sampler alone made ~200).
  const script = `
    import fs from "node:fs";
    const { metricsRegistry } = await import(${JSON.stringify(new URL("./metrics.js", import.meta.url).href)});
    const { Counters } = await import(${JSON.stringify(new URL("./counters.js", import.meta.url).href)});
    metricsRegistry({ component: "t", instance: "t", version: "0", counters: new Counters(), info: new Map(), ready: () => true, warnings: () => 0, uptimeSeconds: () => 0 });
    const switches = () => { const s = fs.readFileSync("/proc/thread-self/status", "utf8"); return Number(/\\nvoluntary_ctxt_switches:\\s+(\\d+)/.exec(s)[1]) + Number(/nonvoluntary_ctxt_switches:\\s+(\\d+)/.exec(s)[1]); };
    setTimeout(() => { const a = switches(); setTimeout(() => { console.log(switches() - a); }, 2000); }, 300);
  `;
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  const wakeups = Number(r.stdout.trim());
  assert.ok(wakeups < 30, `${wakeups} wake-ups of an idle process in 2 s`);
});
