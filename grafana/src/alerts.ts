// Default alert rules, provisioned with the dashboards (provisioning/alerting/wirescope.yaml):
// error-budget and latency-budget burn per service (multi-window, multi-burn-rate: the budget
// burns 14.4 times too fast over both the last hour and the last 5 minutes, which spends 2% of a
// 30-day budget in an hour), and pipeline drops. Each rule carries a runbook line.
//
// Queries are raw InfluxQL (Grafana alerting runs them server side, with $timeFilter from each
// query's relative time range); reduce and math are Grafana's server-side expressions.
import { DATASOURCE_UID, UID } from "./model.js";

/** Service level objectives the default rules watch. */
export const SLO = {
  /** Share of server requests that succeed. */
  availability: 0.99,
  /** Share of server requests answered within `latencyMs` (a `le` boundary of latency_hist). */
  latency: 0.99,
  latencyMs: 500,
  /** Burn rate that pages: budget spent this many times faster than it lasts. */
  fastBurn: 14.4,
};

export interface AlertQuery {
  refId: string;
  relativeTimeRange?: { from: number; to: number };
  datasourceUid: string;
  model: Record<string, unknown> & { refId: string };
}

export interface AlertRule {
  uid: string;
  title: string;
  condition: string;
  data: AlertQuery[];
  noDataState: "OK" | "Alerting" | "NoData" | "KeepLast";
  execErrState: "Alerting" | "Error" | "OK" | "KeepLast";
  for: string;
  annotations: { summary: string; description: string; runbook: string; runbook_url: string };
  labels: Record<string, string>;
  isPaused: false;
}

export interface AlertGroup {
  orgId: number;
  name: string;
  folder: string;
  interval: string;
  rules: AlertRule[];
}

const EXPR = "__expr__";

/** An InfluxQL query over the last `fromS` seconds. */
export function influxQuery(refId: string, query: string, fromS: number): AlertQuery {
  return {
    refId,
    relativeTimeRange: { from: fromS, to: 0 },
    datasourceUid: DATASOURCE_UID,
    model: { refId, datasource: { type: "influxdb", uid: DATASOURCE_UID }, rawQuery: true, query, resultFormat: "time_series", intervalMs: 10_000, maxDataPoints: 43_200 },
  };
}

function expression(refId: string, model: Record<string, unknown>): AlertQuery {
  return { refId, datasourceUid: EXPR, model: { refId, datasource: { type: EXPR, uid: EXPR }, ...model } };
}

/** One number per series: the value over the query's whole range (the queries have no GROUP BY time). */
const reduceLast = (refId: string, of: string) => expression(refId, { type: "reduce", expression: of, reducer: "last", settings: { mode: "dropNN" } });
const math = (refId: string, expr: string) => expression(refId, { type: "math", expression: expr });

const HOUR = 3600;
const FIVE_MIN = 300;

const link = (uid: string, vars: string) => `/d/${uid}?${vars}`;

/** Error ratio over both windows above SLO.fastBurn × the error budget, per service. */
export function errorBudgetBurn(): AlertRule {
  const q = `SELECT sum("errors") / sum("requests") FROM "red" WHERE "role" = 'server' AND $timeFilter GROUP BY "service"`;
  const threshold = +(SLO.fastBurn * (1 - SLO.availability)).toFixed(6);
  return {
    uid: "wirescope-error-budget-burn",
    title: "Error budget burning fast",
    condition: "BURN",
    data: [influxQuery("H", q, HOUR), influxQuery("M", q, FIVE_MIN), reduceLast("H1", "H"), reduceLast("M1", "M"), math("BURN", `$H1 > ${threshold} && $M1 > ${threshold}`)],
    noDataState: "OK",
    execErrState: "Error",
    for: "2m",
    annotations: {
      summary: "{{ $labels.service }} fails more than " + `${(threshold * 100).toFixed(1)}% of requests over the last hour and 5 minutes (SLO ${SLO.availability * 100}% success)`,
      description: `At this rate the 30-day error budget of ${((1 - SLO.availability) * 100).toFixed(1)}% is gone in ${(30 / SLO.fastBurn).toFixed(1)} days.`,
      runbook: "Open Operations for the service: Errors by resource names the failing endpoint; its link lists the failed spans; follow a trace id to the deepest failing span (often a callee: database, cache, broker) and fix that first.",
      runbook_url: link(UID.operations, "var-service={{ $labels.service }}"),
    },
    labels: { severity: "page", source: "wirescope", slo: "availability" },
    isPaused: false,
  };
}

/** Share of requests slower than SLO.latencyMs over both windows above SLO.fastBurn × the budget, per service. */
export function latencyBudgetBurn(): AlertRule {
  const within = (fromS: number, refId: string) => influxQuery(refId, `SELECT sum("count") FROM "latency_hist" WHERE "role" = 'server' AND "le" = '${SLO.latencyMs}' AND $timeFilter GROUP BY "service"`, fromS);
  const all = (fromS: number, refId: string) => influxQuery(refId, `SELECT sum("count") FROM "latency_hist" WHERE "role" = 'server' AND "le" = '+Inf' AND $timeFilter GROUP BY "service"`, fromS);
  const threshold = +(SLO.fastBurn * (1 - SLO.latency)).toFixed(6);
  return {
    uid: "wirescope-latency-budget-burn",
    title: "Latency budget burning fast",
    condition: "BURN",
    data: [
      within(HOUR, "HF"),
      all(HOUR, "HA"),
      within(FIVE_MIN, "MF"),
      all(FIVE_MIN, "MA"),
      reduceLast("HF1", "HF"),
      reduceLast("HA1", "HA"),
      reduceLast("MF1", "MF"),
      reduceLast("MA1", "MA"),
      math("BURN", `(1 - $HF1 / $HA1) > ${threshold} && (1 - $MF1 / $MA1) > ${threshold}`),
    ],
    noDataState: "OK",
    execErrState: "Error",
    for: "2m",
    annotations: {
      summary: `{{ $labels.service }}: more than ${(threshold * 100).toFixed(1)}% of requests slower than ${SLO.latencyMs} ms over the last hour and 5 minutes (SLO ${SLO.latency * 100}% within ${SLO.latencyMs} ms)`,
      description: `At this rate the 30-day latency budget is gone in ${(30 / SLO.fastBurn).toFixed(1)} days.`,
      runbook: "Open Latency for the service: Percentiles by resource names the slow endpoint; its link lists the slowest spans; in their traces, find the callee whose span takes the time (a query, a lock, a full broker) before tuning the service.",
      runbook_url: link(UID.latency, "var-service={{ $labels.service }}&var-role=server"),
    },
    labels: { severity: "page", source: "wirescope", slo: "latency" },
    isPaused: false,
  };
}

/** Any drop counted by the pipeline in the last 10 minutes: something was lost, and the counter says why. */
export function pipelineDrops(): AlertRule {
  return {
    uid: "wirescope-pipeline-drops",
    title: "Wirescope pipeline drops",
    condition: "DROPS",
    data: [influxQuery("D", `SELECT sum(/^drops_/) FROM "pipeline" WHERE $timeFilter GROUP BY "component", "instance"`, 600), reduceLast("D1", "D"), math("DROPS", "$D1 > 0")],
    noDataState: "OK",
    execErrState: "Error",
    for: "0s",
    annotations: {
      summary: "{{ $labels.component }} {{ $labels.instance }} dropped data in the last 10 minutes",
      description: "Metrics, spans or edges are missing for the affected windows; the drop counter's name says what was lost and why.",
      runbook: "Open Pipeline health: Drops by reason names the counter and the component; drops_late/future: clocks or lag (see Lag), component parser: drops_requests_missed_*/drops_raw_batches_missed_* raw messages a parser never got (a replica killed, its subscription overflowing: docs/parser.md), drops_probe_drops_* what the probes dropped (drops_probe_drops_raw_batches_unheard / _requests_unheard: raw batches a probe published while no parser was subscribed to their partition: parsers down, or not started yet), drops_influx_*: InfluxDB down or refusing writes (its log), drops_cardinality: an unbounded resource (raise --max-series-per-service or fix the path); `wirescope status` shows every counter.",
      runbook_url: link(UID.pipeline, "var-component={{ $labels.component }}"),
    },
    labels: { severity: "ticket", source: "wirescope" },
    isPaused: false,
  };
}

export function alertGroups(): AlertGroup[] {
  return [
    { orgId: 1, name: "wirescope-slo", folder: "Wirescope", interval: "1m", rules: [errorBudgetBurn(), latencyBudgetBurn()] },
    { orgId: 1, name: "wirescope-pipeline", folder: "Wirescope", interval: "1m", rules: [pipelineDrops()] },
  ];
}
