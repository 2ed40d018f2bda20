// Traces: spans written by the aggregator (one per record, linked and sampled).
import { dashboard, panel, target, tagVariable, textVariable, queryVariable, match, placement, placementVariables, dashboardLink, columnLinks, UID, type Panel, type Dashboard } from "../model.js";

const COLUMNS = `"trace_id", "span_id", "parent_span_id", "name", "duration_ms", "status", "error", "peer_service", "linked_by"`;
/** The selected services where they run (node, namespace) and endpoints. A trace itself is shown
 *  whole, whichever nodes its spans ran on. */
const where = `${match("service")} AND ${placement()} AND ${match("resource")} AND $timeFilter`;

/** Every trace id column opens its trace in the trace view above (same dashboard). */
const traceLinks = () => ({
  defaults: {},
  overrides: [columnLinks("trace_id", [dashboardLink("Trace ${__data.fields.trace_id}", UID.traces, { trace_id: "${__data.fields.trace_id}" }, ["node", "namespace", "service", "resource"])])],
});

/**
 * The trace view: the columns of the data frame Grafana's traces panel renders (traceID, spanID,
 * parentSpanID, serviceName, serviceTags, operationName, startTime and duration in ms; tags and
 * serviceTags as JSON arrays of {key, value}, parsed by the convertFieldType transformation).
 */
export const TRACE_FRAME_QUERY = `SELECT "trace_id" AS "traceID", "span_id" AS "spanID", "parent_span_id" AS "parentSpanID", "service" AS "serviceName", "service_tags" AS "serviceTags", "name" AS "operationName", "start_ms" AS "startTime", "duration_ms" AS "duration", "tags" AS "tags", "kind" AS "kind" FROM "spans" WHERE "trace_id" = '$trace_id' AND $timeFilter`;

export function traceView(): Panel {
  return panel("traces", "Trace view $trace_id", [target(TRACE_FRAME_QUERY, "table")], {
    w: 24,
    h: 14,
    transformations: [
      { id: "organize", options: { excludeByName: { Time: true } } },
      { id: "convertFieldType", options: { conversions: [
          { targetField: "tags", destinationType: "other" },
          { targetField: "serviceTags", destinationType: "other" },
        ], fields: {} } },
    ],
  });
}

/** The latest spans of the selected services. */
export function recentSpans(): Panel {
  return panel("table", "Recent spans", [target(`SELECT ${COLUMNS} FROM "spans" WHERE ${match("service")} AND ${placement()} AND $timeFilter GROUP BY "service", "kind" ORDER BY time DESC LIMIT 100`, "table")], {
    w: 24,
    h: 10,
    fieldConfig: traceLinks(),
  });
}

/** Every span of one trace (enter its id in the trace_id box, or follow a trace id link), in time order. */
export function traceSpans(): Panel {
  return panel("table", "Spans of trace $trace_id", [target(`SELECT ${COLUMNS} FROM "spans" WHERE "trace_id" = '$trace_id' AND $timeFilter GROUP BY "service", "kind"`, "table")], {
    w: 24,
    h: 10,
    transformations: [{ id: "sortBy", options: { sort: [{ field: "Time" }] } }],
  });
}

/** The slowest spans of the selected services and endpoints over the time range. */
export function slowestSpans(): Panel {
  return panel("table", "Slowest spans", [target(`SELECT top("duration_ms", 20) AS "duration_ms", "trace_id", "name", "service", "resource" FROM "spans" WHERE ${where}`, "table")], {
    w: 12,
    h: 10,
    fieldConfig: traceLinks(),
  });
}

/** Failed spans of the selected services and endpoints (every error is kept by the sampler). */
export function errorSpans(): Panel {
  return panel("table", "Failed spans", [target(`SELECT "trace_id", "name", "status", "duration_ms", "peer_service" FROM "spans" WHERE ${where} AND "error" = true GROUP BY "service" ORDER BY time DESC LIMIT 50`, "table")], {
    w: 12,
    h: 10,
    fieldConfig: traceLinks(),
  });
}

export function traces(): Dashboard {
  return dashboard(
    UID.traces,
    "Wirescope · Traces",
    [
      ...placementVariables(),
      tagVariable("service", "spans", "service", { where: placement() }),
      // `resource` is a field of spans (not a tag): its values come from a SELECT.
      queryVariable("resource", "endpoint", `SELECT DISTINCT("resource") FROM "spans" WHERE ${match("service")} AND ${placement()} AND $timeFilter`),
      textVariable("trace_id", "trace id"),
    ],
    [traceView(), slowestSpans(), errorSpans(), recentSpans(), traceSpans()],
    ["traces"],
  );
}
