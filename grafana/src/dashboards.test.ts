import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { allDashboards, interpolate, DATASOURCE_UID } from "./index.js";
import { buildOutputs, GRAFANA_DIR } from "./build.js";

const ctx = { fromMs: 1_000, toMs: 2_000, intervalMs: 10_000, vars: { service: ["a.b", "c"], role: "$__all", node: "$__all", namespace: "-", resource: "/x/{id}", protocol: "http", component: "aggregator", instance: "$__all", trace_id: "ab'c" } };

describe("dashboards", () => {
  it("every panel has a unique id, a grid position inside 24 columns and raw InfluxQL targets", () => {
    for (const [name, d] of Object.entries(allDashboards())) {
      const ids = d.panels.map((p) => p.id);
      assert.equal(new Set(ids).size, ids.length, name);
      for (const p of d.panels) {
        assert.ok(p.gridPos.x + p.gridPos.w <= 24, `${name}/${p.title}`);
        assert.ok(p.targets.length > 0);
        for (const t of p.targets) {
          assert.equal(t.rawQuery, true);
          assert.equal(t.datasource.uid, "${datasource}");
        }
      }
      assert.equal(d.templating.list[0]!.name, "datasource");
    }
  });

  it("every query interpolates completely (no variable left)", () => {
    for (const d of Object.values(allDashboards())) {
      for (const p of d.panels) for (const t of p.targets) assert.doesNotMatch(interpolate(t.query, ctx), /\$\w/, `${d.uid}/${p.title}: ${t.query}`);
    }
  });

  it("interpolates like Grafana: escaped regex values, (a|b) for several, .* for All", () => {
    const q = interpolate(`SELECT x FROM r WHERE "service" =~ /^$service$/ AND "role" =~ /^$role$/ AND "trace_id" = '$trace_id' AND $timeFilter GROUP BY time($__interval)`, ctx);
    assert.equal(q, `SELECT x FROM r WHERE "service" =~ /^(a\\.b|c)$/ AND "role" =~ /^.*$/ AND "trace_id" = 'ab\\'c' AND time >= 1000ms and time <= 2000ms GROUP BY time(10000ms)`);
  });

  it("the committed JSON and provisioning files are the current build output", () => {
    for (const [rel, content] of buildOutputs()) {
      const p = path.join(GRAFANA_DIR, rel);
      assert.ok(fs.existsSync(p), `${rel} missing: run npm run -w @wirescope/grafana build`);
      assert.equal(fs.readFileSync(p, "utf8"), content, `${rel} is stale: run npm run -w @wirescope/grafana build`);
    }
    assert.match(fs.readFileSync(path.join(GRAFANA_DIR, "provisioning/datasources/wirescope.yaml"), "utf8"), new RegExp(`uid: ${DATASOURCE_UID}`));
  });
});
