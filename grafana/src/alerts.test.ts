import { describe, it, before } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { parse } from "yaml";
import { alertGroups, type AlertGroup, type AlertRule } from "./alerts.js";
import { DATASOURCE_UID } from "./model.js";
import { GRAFANA_DIR } from "./build.js";
import type { ValidateFunction } from "ajv";
import { alertRuleSchema, schemaErrors } from "./grafana-schema.js";

/** A rule of the provisioning file in the shape of Grafana's alert rule API (what the SDK types). */
const asApiRule = (g: AlertGroup, r: AlertRule) => ({ ...r, folderUID: g.folder, orgID: g.orgId, ruleGroup: g.name });

/** `$X` references of a math expression and the `expression` of a reduce. */
function refsOf(model: Record<string, unknown>): string[] {
  if (model.type === "math") return [...String(model.expression).matchAll(/\$(\w+)/g)].map((m) => m[1]!);
  if (typeof model.type === "string" && typeof model.expression === "string") return [model.expression];
  return [];
}

describe("default alert rules", () => {
  let s: { alertRule: ValidateFunction };
  let groups: AlertGroup[];
  before(() => {
    s = { alertRule: alertRuleSchema() };
    groups = (parse(fs.readFileSync(path.join(GRAFANA_DIR, "provisioning/alerting/wirescope.yaml"), "utf8")) as { apiVersion: number; groups: AlertGroup[] }).groups;
  });

  it("the provisioning file holds the rules: error and latency budget burn per service, pipeline drops", () => {
    assert.deepEqual(groups, alertGroups());
    const uids = groups.flatMap((g) => g.rules.map((r) => r.uid));
    assert.deepEqual(uids, ["wirescope-error-budget-burn", "wirescope-latency-budget-burn", "wirescope-pipeline-drops"]);
  });

  it("every rule is a valid Grafana alert rule (the foundation SDK's types)", () => {
    for (const g of groups) for (const r of g.rules) assert.ok(s.alertRule(asApiRule(g, r)), `${r.uid}:\n${schemaErrors(s.alertRule.errors)}`);
  });

  it("conditions and expressions refer to queries defined before them; queries use the provisioned datasource", () => {
    for (const g of groups) {
      for (const r of g.rules) {
        const seen = new Set<string>();
        for (const q of r.data) {
          for (const ref of refsOf(q.model)) assert.ok(seen.has(ref), `${r.uid}/${q.refId} refers to ${ref}`);
          if (q.datasourceUid !== "__expr__") {
            assert.equal(q.datasourceUid, DATASOURCE_UID);
            assert.match(String(q.model.query), /\$timeFilter/, `${r.uid}/${q.refId}: Grafana fills the time range`);
            assert.ok(q.relativeTimeRange && q.relativeTimeRange.from > 0);
          }
          assert.ok(!seen.has(q.refId), `${r.uid}: refId ${q.refId} twice`);
          seen.add(q.refId);
        }
        assert.ok(seen.has(r.condition), `${r.uid}: condition ${r.condition}`);
      }
    }
  });

  it("each rule has one runbook line and a link to the dashboard that answers it", () => {
    for (const g of groups) {
      for (const r of g.rules) {
        assert.ok(r.annotations.runbook.length > 40 && !r.annotations.runbook.includes("\n"), `${r.uid}: a runbook line`);
        assert.match(r.annotations.runbook_url, /^\/d\/wirescope-[a-z-]+\?/);
        assert.ok(r.annotations.summary);
      }
    }
  });

  it("the schema refuses what Grafana would refuse", () => {
    const g = groups[0]!;
    const r = structuredClone(g.rules[0]!) as unknown as Record<string, unknown>;
    r.noDataState = "Silence";
    assert.equal(s.alertRule(asApiRule(g, r as unknown as AlertRule)), false, "an unknown no-data state");
    const r2 = structuredClone(g.rules[0]!);
    (r2.data[2]!.model as Record<string, unknown>).type = "reduce-ish";
    assert.equal(s.alertRule(asApiRule(g, r2)), false, "an unknown expression type");
  });
});
