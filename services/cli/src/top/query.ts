// Reads what `wirescope top` shows from InfluxDB with InfluxQL over HTTP `/query`: served by 1.x,
// by 2.x through its v1 compatibility API (a DBRP mapping for the bucket), and by 3.x. All the
// statements of one refresh go in one request.
import { authHeaders, type InfluxTarget } from "@wirescope/aggregator/influx/detect";
import { errorMessage } from "@wirescope/runtime/errors";
import { redactUrl } from "@wirescope/runtime/redact";
import { buildQueries, edgeRows, endpointRows, externalNames, mapNodeKinds, nodeNames, peerRows, pipelineHealth, rowsOf, serviceRows, type InfluxQLResult, type Row, type Scope } from "./model.js";
import type { TopData } from "./screen.js";

export class InfluxQueryError extends Error {}

/** Runs `statements` in one request; returns the parsed body. */
export async function influxql(target: InfluxTarget, statements: string[], timeoutMs: number): Promise<InfluxQLResult> {
  const params = new URLSearchParams({ db: target.database, q: statements.join(";\n"), epoch: "ms" });
  let res: Response;
  try {
    res = await fetch(new URL(`/query?${params}`, target.url), { headers: authHeaders(target), signal: AbortSignal.timeout(timeoutMs) });
  } catch (e) {
    // The first thing a newcomer meets when the stack is not up: say where we looked and what to do.
    throw new InfluxQueryError(`InfluxDB at ${redactUrl(target.url)} is unreachable (${errorMessage(e)}): is the stack running? \`npm start\` (or \`npx wirescope up\`) starts it; --influx-url names another InfluxDB`);
  }
  const text = await res.text();
  if (res.status === 401 || res.status === 403) throw new InfluxQueryError(`InfluxDB refused the query (HTTP ${res.status}): check --influx-user/--influx-password or --influx-token`);
  let body: InfluxQLResult;
  try {
    body = JSON.parse(text) as InfluxQLResult;
  } catch {
    throw new InfluxQueryError(`InfluxDB answered HTTP ${res.status} without JSON: ${text.slice(0, 200)}`);
  }
  if (!res.ok && !body.error) throw new InfluxQueryError(`InfluxDB answered HTTP ${res.status}`);
  return body;
}

/** One refresh: services, edges, pipeline drops, the nodes, and the endpoints of the scope's
 *  service when given; of the scope's node when given. */
export async function fetchTop(target: InfluxTarget, rangeS: number, scope: Scope, timeoutMs: number): Promise<TopData> {
  const q = buildQueries(rangeS, scope);
  const names = Object.keys(q);
  const body = await influxql(target, names.map((n) => q[n]!), timeoutMs);
  const rows = (name: string) => {
    const i = names.indexOf(name);
    return i < 0 ? [] : rowsOf(body, i);
  };
  let pipeline: TopData["pipeline"];
  try {
    pipeline = pipelineHealth(rows("pipeline"));
  } catch {
    // `sum(*)` on a measurement that does not exist yet is an error on some versions: no data.
    pipeline = { drops: [], seen: false };
  }
  let mapNodes: Row[];
  try {
    mapNodes = rows("mapNodes");
  } catch {
    // a store written before map_nodes existed: no external peers known
    mapNodes = [];
  }
  const services = serviceRows(rows("red"), rows("hist"), rangeS);
  const edges = edgeRows(rows("edges"), rangeS);
  const kinds = mapNodeKinds(mapNodes);
  const external = externalNames(kinds);
  return {
    services: [...services, ...peerRows(kinds, edges, services)],
    edges,
    external,
    endpoints: scope.service === undefined ? [] : endpointRows(rows("endpoints"), rows("endpointHist"), rangeS),
    nodes: nodeNames(rows("nodes")),
    pipeline,
    at: new Date(),
  };
}
