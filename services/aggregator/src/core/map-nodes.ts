// The service map's nodes: every end of every edge, so that a map drawn from `edges` never has an
// edge whose end is not a node (Grafana's Node Graph refuses the whole map then: an external
// database or client called by address has no `red` series of its own).
//
//   a service with red series here  → its node, with its requests and its worst p99 (as the red
//                                     points written for it)
//   an edge end without them here   → its node, kind only: `external` when named by its address
//                                     (not traced), else `service` (traced, counted elsewhere:
//                                     another node, or another aggregator instance)
//
// "Here" is one window, node and namespace: the placement the dashboards' variables filter by.
// Points of an end without red series carry no counts, so that every instance writing one for the
// same end writes the same point (a fleet's instances each see only their partitions' edges).
import { isAddressName } from "@wirescope/wire";
import type { EdgeSeries, RedSeries } from "./aggregator.js";

export interface MapNode {
  service: string;
  node: string;
  namespace: string;
  kind: "service" | "external";
  /** Requests of its red series, as written (estimated when sampled); absent for an edge end without them. */
  requests?: number;
  /** The largest p99 of its red series (ms). */
  p99Ms?: number;
}

const SEP = "\u0000";

/** The map's nodes of one closed window: linear in its red series and edges. */
export function mapNodes(red: readonly RedSeries[], edges: readonly EdgeSeries[]): MapNode[] {
  const byKey = new Map<string, MapNode>();
  for (const s of red) {
    const k = s.service + SEP + s.node + SEP + s.namespace;
    let n = byKey.get(k);
    if (!n) byKey.set(k, (n = { service: s.service, node: s.node, namespace: s.namespace, kind: "service", requests: 0, p99Ms: 0 }));
    const st = s.stats;
    n.requests! += st.sampled ? Math.round(st.estimated) : st.requests;
    n.p99Ms = Math.max(n.p99Ms!, st.quantile(0.99));
  }
  for (const e of edges) {
    for (const service of [e.client, e.server]) {
      const k = service + SEP + e.node + SEP + e.namespace;
      if (!byKey.has(k)) byKey.set(k, { service, node: e.node, namespace: e.namespace, kind: isAddressName(service) ? "external" : "service" });
    }
  }
  return [...byKey.values()];
}
