import { describe, it, before } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { allDashboards } from "./index.js";
import { GRAFANA_DIR } from "./build.js";
import { grafanaSchemas, schemaErrors, PANEL_OPTION_MODULES, type GrafanaSchemas } from "./grafana-schema.js";

/** Grafana's built-in panel plugins we use beyond those the SDK types options for. */
const OTHER_PANELS = new Set(["traces"]);

describe("dashboards against Grafana's schema (@grafana/grafana-foundation-sdk types)", () => {
  let s: GrafanaSchemas;
  before(() => {
    s = grafanaSchemas();
  });

  it("every committed dashboard file is a valid Grafana dashboard", () => {
    const files = fs.readdirSync(path.join(GRAFANA_DIR, "dashboards")).filter((f) => f.endsWith(".json"));
    assert.equal(files.length, Object.keys(allDashboards()).length);
    for (const f of files) {
      const d: unknown = JSON.parse(fs.readFileSync(path.join(GRAFANA_DIR, "dashboards", f), "utf8"));
      assert.ok(s.dashboard(d), `${f}:\n${schemaErrors(s.dashboard.errors)}`);
    }
  });

  it("every panel's options and field config are valid for its plugin", () => {
    for (const d of Object.values(allDashboards())) {
      for (const p of d.panels) {
        const where = `${d.uid} / ${p.title} (${p.type})`;
        const opts = s.panelOptions.get(p.type);
        assert.ok(opts || OTHER_PANELS.has(p.type), `${where}: unknown panel plugin`);
        if (opts) assert.ok(opts(p.options), `${where} options:\n${schemaErrors(opts.errors)}`);
        const fc = s.panelFieldConfig.get(p.type);
        const custom = p.fieldConfig.defaults.custom;
        if (fc && custom !== undefined) assert.ok(fc(custom), `${where} fieldConfig.defaults.custom:\n${schemaErrors(fc.errors)}`);
      }
    }
  });

  it("the schema catches what Grafana would not load", () => {
    const d = structuredClone(allDashboards()["red-overview"]!) as unknown as { panels: Record<string, unknown>[]; templating: { list: Record<string, unknown>[] } };
    assert.ok(s.dashboard(d));
    d.panels[0]!.gridPos = { x: 0, y: 0, w: "12", h: 8 };
    assert.equal(s.dashboard(d), false, "a string width");
    const d2 = structuredClone(allDashboards()["red-overview"]!) as unknown as { templating: { list: Record<string, unknown>[] } };
    d2.templating.list[1]!.type = "tagvalues";
    assert.equal(s.dashboard(d2), false, "an unknown variable type");
    const d3 = structuredClone(allDashboards()["red-overview"]!) as unknown as { panels: { fieldConfig: { defaults: Record<string, unknown> } }[] };
    d3.panels[0]!.fieldConfig.defaults.links = [{ title: "x", url: 3 }];
    assert.equal(s.dashboard(d3), false, "a link whose url is not a string");
    const opts = s.panelOptions.get("timeseries")!;
    assert.equal(opts({ legend: { displayMode: "sideways" } }), false, "an unknown legend mode");
    assert.ok(Object.keys(PANEL_OPTION_MODULES).length >= 5);
  });
});
