// Per-operation drill-down for one service: which operations and resources are slow or failing.
import { dashboard, panel, target, tagVariable, match, unit, placement, placementVariables, dashboardLink, columnLinks, UID, type Panel, type Dashboard } from "../model.js";

const where = `${match("service")} AND ${match("protocol")} AND ${match("resource")} AND ${placement()} AND $timeFilter`;

/** From an endpoint to its slowest and failed spans (the traces dashboard, filtered to it). */
const endpointToSpans = (resource: string) => [dashboardLink("Slowest and failed spans of ${__data.fields.resource}", UID.traces, { service: "${service:percentencode}", resource }, ["node", "namespace"])];

/** Every operation/resource/status class of the service, over the time range. */
export function operationsTable(): Panel {
  return panel(
    "table",
    "Operations",
    [target(`SELECT sum("requests") AS "requests", sum("errors") AS "errors", sum("duration_sum_ms") / sum("requests") AS "mean_ms", max("p50_ms") AS "p50_ms", max("p90_ms") AS "p90_ms", max("p99_ms") AS "p99_ms", max("max_ms") AS "max_ms" FROM "red" WHERE ${where} GROUP BY "operation", "resource", "status_class", "role"`, "table")],
    {
      w: 24,
      h: 10,
      options: { sortBy: [{ displayName: "requests", desc: true }] },
      transformations: [{ id: "organize", options: { excludeByName: { Time: true } } }],
      fieldConfig: { defaults: {}, overrides: [columnLinks("resource", endpointToSpans("${__data.fields.resource:percentencode}"))] },
    },
  );
}

/** Requests per second per resource. */
export function resourceRate(): Panel {
  return panel("timeseries", "Rate by resource", [target(`SELECT sum("requests") / ($__interval_ms / 1000) FROM "red" WHERE ${where} GROUP BY time($__interval), "operation", "resource" fill(0)`, "time_series", "A", "$tag_operation $tag_resource")], { fieldConfig: unit("reqps") });
}

/** p50/p90/p99 per resource (the worst series of each resource). */
export function resourcePercentiles(): Panel {
  return panel(
    "timeseries",
    "Percentiles by resource",
    [target(`SELECT max("p50_ms") AS "p50", max("p90_ms") AS "p90", max("p99_ms") AS "p99" FROM "red" WHERE ${where} GROUP BY time($__interval), "resource" fill(none)`, "time_series", "A", "$tag_resource $col")],
    { fieldConfig: unit("ms") },
  );
}

/** Errors per resource and status class. */
export function resourceErrors(): Panel {
  return panel("timeseries", "Errors by resource", [target(`SELECT sum("errors") FROM "red" WHERE ${where} GROUP BY time($__interval), "resource", "status_class" fill(0)`, "time_series", "A", "$tag_resource $tag_status_class")], {
    fieldConfig: unit("short", { custom: { drawStyle: "bars", fillOpacity: 80 } }),
  });
}

export function operations(): Dashboard {
  return dashboard(
    UID.operations,
    "Wirescope · Operations",
    [
      ...placementVariables(),
      tagVariable("service", "red", "service", { multi: false, where: placement() }),
      tagVariable("protocol", "red", "protocol", { where: match("service") }),
      tagVariable("resource", "red", "resource", { where: match("service") }),
    ],
    [operationsTable(), resourceRate(), resourcePercentiles(), resourceErrors()],
    ["red"],
  );
}
