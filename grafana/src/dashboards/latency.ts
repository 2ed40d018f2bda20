// Latency distribution from `latency_hist` (OpenTelemetry default buckets, `le` tag).
import { dashboard, panel, target, tagVariable, match, unit, placement, placementVariables, UID, type Panel, type Dashboard } from "../model.js";

const where = `${match("service")} AND ${match("role")} AND ${match("resource")} AND ${placement()} AND $timeFilter`;

/** Heatmap of per-bucket counts (`bucket` field; `count` is cumulative). */
export function latencyHeatmap(): Panel {
  return panel("heatmap", "Latency heatmap", [target(`SELECT sum("bucket") FROM "latency_hist" WHERE ${where} GROUP BY time($__interval), "le" fill(0)`, "time_series", "A", "$tag_le")], {
    w: 24,
    h: 10,
    options: {
      calculate: false,
      rowsFrame: { layout: "le" },
      yAxis: { unit: "ms" },
      cellGap: 1,
      color: { mode: "scheme", scheme: "Oranges", steps: 64 },
      tooltip: { mode: "single", yHistogram: true },
    },
    transformations: [{ id: "sortBy", options: { sort: [{ field: "le" }] } }],
  });
}

/** Cumulative distribution over the time range: requests at or below each boundary. */
export function cumulativeBuckets(): Panel {
  return panel("barchart", "Requests at or below each bound", [target(`SELECT sum("count") AS "requests" FROM "latency_hist" WHERE ${where} GROUP BY "le"`, "table")], {
    options: { xField: "le", orientation: "vertical" },
    fieldConfig: unit("short"),
  });
}

/** p50/p90/p99 of the selected series over time. */
export function percentiles(): Panel {
  return panel("timeseries", "Percentiles (slowest series)", [target(`SELECT max("p50_ms") AS "p50", max("p90_ms") AS "p90", max("p99_ms") AS "p99", max("max_ms") AS "max" FROM "red" WHERE ${where} GROUP BY time($__interval) fill(none)`)], {
    fieldConfig: unit("ms"),
  });
}

export function latency(): Dashboard {
  return dashboard(
    UID.latency,
    "Wirescope · Latency",
    [...placementVariables(), tagVariable("service", "red", "service", { where: placement() }), tagVariable("role", "red", "role"), tagVariable("resource", "red", "resource", { where: `"service" =~ /^$service$/` })],
    [latencyHeatmap(), cumulativeBuckets(), percentiles()],
    ["latency"],
  );
}
