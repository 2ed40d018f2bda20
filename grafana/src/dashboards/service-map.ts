// Service map: Grafana's Node Graph from `edges` (client → server per protocol) and `map_nodes`.
import { dashboard, panel, target, tagVariable, match, placement, placementVariables, unit, dashboardLink, UID, type Panel, type Dashboard } from "../model.js";

/**
 * Nodes: every service seen (either role) with its requests and p99, and every other end of an
 * edge (an address outside: subtitle `external`), so that no edge lacks its node (the Node Graph
 * draws nothing then); edges: client → server with requests and p99. Both filtered by the node
 * and namespace variables: a service by where it runs, an edge and its ends by where its calls
 * were counted (the server's node when the server is traced, else the client's).
 */
export function serviceMap(): Panel {
  return panel(
    "nodeGraph",
    "Service map",
    [
      target(`SELECT sum("requests") AS "mainstat", max("p99_ms") AS "secondarystat", last("kind") AS "subtitle" FROM "map_nodes" WHERE ${placement()} AND $timeFilter GROUP BY "service"`, "table", "nodes"),
      target(`SELECT last("id") AS "id", sum("requests") AS "mainstat", max("p99_ms") AS "secondarystat" FROM "edges" WHERE ${match("protocol")} AND ${placement()} AND $timeFilter GROUP BY "client", "server", "protocol"`, "table", "edges"),
    ],
    {
      w: 24,
      h: 14,
      options: { nodes: { mainStatUnit: "short", secondaryStatUnit: "ms" }, edges: { mainStatUnit: "short", secondaryStatUnit: "ms" } },
      // A node's menu: its endpoints.
      fieldConfig: { defaults: { links: [dashboardLink("Endpoints of ${__data.fields.id}", UID.operations, { service: "${__data.fields.id:percentencode}" }, ["node", "namespace"])] }, overrides: [] },
      transformations: [{ id: "organize", options: { excludeByName: { Time: true }, renameByName: { service: "id", client: "source", server: "target" } } }],
    },
  );
}

/** The same edges as a table, with errors. */
export function edgesTable(): Panel {
  return panel(
    "table",
    "Calls between services",
    [target(`SELECT sum("requests") AS "requests", sum("errors") AS "errors", max("p99_ms") AS "p99_ms", sum("duration_sum_ms") / sum("requests") AS "mean_ms" FROM "edges" WHERE ${match("protocol")} AND ${placement()} AND $timeFilter GROUP BY "client", "server", "protocol"`, "table")],
    { w: 24, h: 10, fieldConfig: unit("short"), transformations: [{ id: "organize", options: { excludeByName: { Time: true } } }] },
  );
}

export function serviceMapDashboard(): Dashboard {
  return dashboard(UID.serviceMap, "Wirescope · Service map", [...placementVariables(), tagVariable("protocol", "edges", "protocol", { where: placement() })], [serviceMap(), edgesTable()], ["service-map"]);
}
