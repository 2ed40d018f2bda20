// Traces: spans written by the aggregator (one per record, linked and sampled).
import { dashboard, panel, target, tagVariable, textVariable, match, type Panel, type Dashboard } from "../model.js";

const COLUMNS = `"trace_id", "span_id", "parent_span_id", "name", "duration_ms", "status", "error", "peer_service", "linked_by"`;

/** The latest spans of the selected services. */
export function recentSpans(): Panel {
  return panel("table", "Recent spans", [target(`SELECT ${COLUMNS} FROM "spans" WHERE ${match("service")} AND $timeFilter GROUP BY "service", "kind" ORDER BY time DESC LIMIT 100`, "table")], {
    w: 24,
    h: 10,
  });
}

/** Every span of one trace (enter its id in the trace_id box), in time order. */
export function traceSpans(): Panel {
  return panel("table", "Trace $trace_id", [target(`SELECT ${COLUMNS} FROM "spans" WHERE "trace_id" = '$trace_id' AND $timeFilter GROUP BY "service", "kind"`, "table")], {
    w: 24,
    h: 10,
    transformations: [{ id: "sortBy", options: { sort: [{ field: "Time" }] } }],
  });
}

/** The slowest spans over the time range. */
export function slowestSpans(): Panel {
  return panel("table", "Slowest spans", [target(`SELECT top("duration_ms", 20) AS "duration_ms", "trace_id", "name", "service" FROM "spans" WHERE ${match("service")} AND $timeFilter`, "table")], { w: 12, h: 10 });
}

/** Failed spans (every error is kept by the sampler). */
export function errorSpans(): Panel {
  return panel("table", "Errors", [target(`SELECT "trace_id", "name", "status", "duration_ms", "peer_service" FROM "spans" WHERE ${match("service")} AND "error" = true AND $timeFilter GROUP BY "service" ORDER BY time DESC LIMIT 50`, "table")], { w: 12, h: 10 });
}

export function traces(): Dashboard {
  return dashboard("wirescope-traces", "Wirescope · Traces", [tagVariable("service", "spans", "service"), textVariable("trace_id", "trace id")], [recentSpans(), traceSpans(), slowestSpans(), errorSpans()], ["traces"]);
}
