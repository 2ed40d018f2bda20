// Wirescope's Grafana dashboards, built in TypeScript (one function per panel).
import type { Dashboard } from "./model.js";
import { redOverview } from "./dashboards/red-overview.js";
import { operations } from "./dashboards/operations.js";
import { latency } from "./dashboards/latency.js";
import { serviceMapDashboard } from "./dashboards/service-map.js";
import { traces } from "./dashboards/traces.js";
import { pipelineHealth } from "./dashboards/pipeline.js";

export * from "./model.js";
export * from "./interpolate.js";
export * from "./provisioning.js";
export * from "./expect.js";
export * from "./alerts.js";
export { TRACE_FRAME_QUERY } from "./dashboards/traces.js";

/** Every dashboard by file name (without .json). */
export function allDashboards(): Record<string, Dashboard> {
  return {
    "red-overview": redOverview(),
    operations: operations(),
    latency: latency(),
    "service-map": serviceMapDashboard(),
    traces: traces(),
    "pipeline-health": pipelineHealth(),
  };
}
