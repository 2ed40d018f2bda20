// Writes the dashboards and provisioning files (committed build output):
//   grafana/dashboards/*.json, grafana/provisioning/{datasources,dashboards,alerting}/wirescope.yaml
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { allDashboards } from "./index.js";
import { datasourcesYaml, dashboardsYaml, alertingYaml } from "./provisioning.js";

export const GRAFANA_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/** File path → content of everything the build writes. */
export function buildOutputs(): Map<string, string> {
  const out = new Map<string, string>();
  for (const [name, d] of Object.entries(allDashboards())) out.set(path.join("dashboards", `${name}.json`), JSON.stringify(d, null, 2) + "\n");
  out.set(path.join("provisioning", "datasources", "wirescope.yaml"), datasourcesYaml());
  out.set(path.join("provisioning", "dashboards", "wirescope.yaml"), dashboardsYaml());
  out.set(path.join("provisioning", "alerting", "wirescope.yaml"), alertingYaml());
  return out;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  for (const [rel, content] of buildOutputs()) {
    const p = path.join(GRAFANA_DIR, rel);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, content);
    console.log(`wrote grafana/${rel}`);
  }
}
