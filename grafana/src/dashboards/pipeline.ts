// Pipeline health: every component writes `pipeline` points about itself (events in/out, drops
// by reason, lag). Field names differ per component, so regexes pick them by suffix/prefix.
import { dashboard, panel, target, tagVariable, match, unit, UID, type Panel, type Dashboard } from "../model.js";

const where = `${match("component")} AND ${match("instance")} AND $timeFilter`;

/** Everything counted in (`*_in` fields), per component. */
export function flowIn(): Panel {
  return panel("timeseries", "In (per interval)", [target(`SELECT sum(/_in$/) FROM "pipeline" WHERE ${where} GROUP BY time($__interval), "component" fill(0)`, "time_series", "A", "$tag_component $col")], { fieldConfig: unit("short") });
}

/** Everything counted out (`*_out` fields), per component. */
export function flowOut(): Panel {
  return panel("timeseries", "Out (per interval)", [target(`SELECT sum(/_out$/) FROM "pipeline" WHERE ${where} GROUP BY time($__interval), "component" fill(0)`, "time_series", "A", "$tag_component $col")], { fieldConfig: unit("short") });
}

/** Drops by reason (`drops_*` fields of every component: the aggregators' own, and the parsers' that the aggregators write for them): nothing is lost silently. */
export function drops(): Panel {
  return panel("timeseries", "Drops by reason", [target(`SELECT sum(/^drops_/) FROM "pipeline" WHERE ${where} GROUP BY time($__interval), "component" fill(0)`, "time_series", "A", "$tag_component $col")], {
    fieldConfig: unit("short", { custom: { drawStyle: "bars", fillOpacity: 80, stacking: { mode: "normal" } } }),
  });
}

/** Lag: how far behind the wall clock each instance is, how long an aggregator holds its windows open (after a stall or a restart), and how far behind the slowest parser's watermark is (windows wait for it). */
export function lag(): Panel {
  return panel(
    "timeseries",
    "Lag",
    [
      target(`SELECT max("lag_ms") FROM "pipeline" WHERE ${where} GROUP BY time($__interval), "component", "instance" fill(none)`, "time_series", "A", "$tag_instance"),
      target(`SELECT max("windows_held_ms") FROM "pipeline" WHERE "component" = 'aggregator' AND ${match("instance")} AND $timeFilter GROUP BY time($__interval), "instance" fill(none)`, "time_series", "B", "$tag_instance windows held"),
      target(`SELECT max("parser_lag_ms") FROM "pipeline" WHERE "component" = 'aggregator' AND ${match("instance")} AND $timeFilter GROUP BY time($__interval), "instance" fill(none)`, "time_series", "C", "$tag_instance parsers behind"),
    ],
    { fieldConfig: unit("ms") },
  );
}

/** Buffers: lines waiting for InfluxDB, batches held until their windows are written, open windows. */
export function buffers(): Panel {
  return panel("timeseries", "Aggregator buffers", [target(`SELECT max("pending_lines") AS "pending lines", max("held_batches") AS "held batches", max("open_windows") AS "open windows" FROM "pipeline" WHERE "component" = 'aggregator' AND ${match("instance")} AND $timeFilter GROUP BY time($__interval) fill(none)`)], {
    fieldConfig: unit("short"),
  });
}

/**
 * The aggregator's deliveries: stalls (heartbeats missed and the server not answering, or NATS
 * disconnected: windows held 30 s), pulls lost (heartbeats missed, the server answering: pulled
 * again, nothing held) and consumer restarts; how long windows stay held is on the Lag panel.
 */
export function deliveries(): Panel {
  return panel("timeseries", "Aggregator deliveries: stalls, lost pulls, consumer restarts", [target(`SELECT sum("delivery_stalls") AS "stalls (windows held 30 s)", sum("pulls_lost") AS "pulls lost (nothing held)", sum("consumer_restarts") AS "consumer restarts" FROM "pipeline" WHERE "component" = 'aggregator' AND ${match("instance")} AND $timeFilter GROUP BY time($__interval) fill(0)`)], {
    fieldConfig: unit("short"),
  });
}

/** Span volume control (the sample rate and the span budget) and cardinality folding. */
export function spanVolume(): Panel {
  return panel("timeseries", "Spans kept / dropped, values folded", [target(`SELECT sum("spans_kept") AS "kept", sum("spans_dropped") AS "dropped (sampled out)", sum("spans_over_budget") AS "of them over the span budget", sum("folded_values") AS "tag values folded into *" FROM "pipeline" WHERE "component" = 'aggregator' AND ${match("instance")} AND $timeFilter GROUP BY time($__interval) fill(0)`)], {
    fieldConfig: unit("short"),
  });
}

/** OTLP span export (`--otlp-endpoint`; zeros when it is off): sent, waiting, lost. */
export function otlpExport(): Panel {
  return panel("timeseries", "OTLP span export", [target(`SELECT sum("otlp_spans_exported") AS "exported", max("otlp_queued") AS "queued", sum("drops_otlp_queue_full") + sum("drops_otlp_failed") + sum("drops_otlp_rejected") AS "dropped", sum("otlp_export_errors") AS "failed requests" FROM "pipeline" WHERE "component" = 'aggregator' AND ${match("instance")} AND $timeFilter GROUP BY time($__interval) fill(0)`)], {
    fieldConfig: unit("short"),
  });
}

/**
 * Sampling under overload: the probe sheds new connections beyond its budget, and the aggregator
 * scales what it observed (docs/aggregator.md, "Sampled series"). The lowest observed fraction of
 * each service's RED points and of each edge: 1 when every request was seen, below 1 when the
 * numbers shown are estimates (exactly the points with `sampled` = true; a boolean field cannot
 * be aggregated in InfluxQL, its fraction can).
 */
export function observedFraction(): Panel {
  return panel(
    "timeseries",
    "Observed fraction (1 = exact, below 1 = sampled under overload)",
    [
      target(`SELECT min("observed_fraction") AS "observed_fraction" FROM "red" WHERE $timeFilter GROUP BY time($__interval), "service" fill(none)`, "time_series", "A", "$tag_service"),
      target(`SELECT min("observed_fraction") AS "observed_fraction" FROM "edges" WHERE $timeFilter GROUP BY time($__interval), "client", "server" fill(none)`, "time_series", "B", "$tag_client → $tag_server"),
    ],
    { fieldConfig: unit("percentunit", { min: 0, max: 1 }) },
  );
}

/**
 * Requests served while their connections were shed (the probes' ShedReports, docs/aggregator.md
 * "Sampled series"): counted into their ends' series (those points are exact though sampled), or
 * why not: the end had no series in the window or the next (unobserved), no end of that process
 * and port was ever seen (unmapped), the report came after its window was written (late), or the
 * protocol does not answer each request before the next (protocol: its series stay estimates).
 */
export function shedRequests(): Panel {
  return panel(
    "timeseries",
    "Requests served while shed: counted into their series, or why not",
    [
      target(
        `SELECT sum("shed_requests_counted") AS "counted", sum("shed_requests_unobserved") AS "unobserved end", sum("shed_requests_unmapped") AS "unmapped end", sum("shed_requests_late") AS "late report", sum("shed_requests_protocol") AS "protocol (estimated)" FROM "pipeline" WHERE "component" = 'aggregator' AND ${match("instance")} AND $timeFilter GROUP BY time($__interval) fill(0)`,
      ),
    ],
    { fieldConfig: unit("short") },
  );
}

export function pipelineHealth(): Dashboard {
  return dashboard(UID.pipeline, "Wirescope · Pipeline health", [tagVariable("component", "pipeline", "component"), tagVariable("instance", "pipeline", "instance", { where: `"component" =~ /^$component$/` })], [flowIn(), flowOut(), drops(), lag(), buffers(), deliveries(), spanVolume(), otlpExport(), observedFraction(), shedRequests()], ["pipeline"]);
}
