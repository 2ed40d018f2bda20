// RED overview: rate, errors and duration per service, from the `red` measurement.
import { dashboard, panel, target, tagVariable, match, unit, placement, placementVariables, dashboardLink, columnLinks, UID, type Panel, type Dashboard, type DataLink } from "../model.js";

const where = `${match("service")} AND ${match("role")} AND ${placement()} AND $timeFilter`;

/** From a series named by its service (`$tag_service`) to that service's endpoints. */
const seriesToEndpoints: DataLink[] = [dashboardLink("Endpoints of ${__field.labels.service}", UID.operations, { service: "${__field.labels.service:percentencode}" }, ["node", "namespace"])];

/** Per-service series, each linked to the service's endpoints. */
const perService = (u: string, extra: Record<string, unknown> = {}) => {
  const fc = unit(u, extra);
  return { ...fc, defaults: { ...fc.defaults, links: seriesToEndpoints } };
};

/** Requests per second per service (requests in each 10 s window / window length). */
export function requestRate(): Panel {
  return panel("timeseries", "Request rate", [target(`SELECT sum("requests") / ($__interval_ms / 1000) FROM "red" WHERE ${where} GROUP BY time($__interval), "service" fill(0)`, "time_series", "A", "$tag_service")], {
    fieldConfig: perService("reqps"),
  });
}

/** Share of requests that failed (errors / requests), per service. */
export function errorRatio(): Panel {
  return panel("timeseries", "Error ratio", [target(`SELECT sum("errors") / sum("requests") * 100 FROM "red" WHERE ${where} GROUP BY time($__interval), "service" fill(none)`, "time_series", "A", "$tag_service")], {
    fieldConfig: perService("percent", { min: 0 }),
  });
}

/** Exact mean duration: sum of durations / requests. */
export function meanDuration(): Panel {
  return panel("timeseries", "Mean duration", [target(`SELECT sum("duration_sum_ms") / sum("requests") FROM "red" WHERE ${where} GROUP BY time($__interval), "service" fill(none)`, "time_series", "A", "$tag_service")], {
    fieldConfig: perService("ms"),
  });
}

/** p99 per service: the worst p99 among its series (sketch percentiles do not add up across series). */
export function p99Duration(): Panel {
  return panel("timeseries", "p99 duration (slowest series)", [target(`SELECT max("p99_ms") FROM "red" WHERE ${where} GROUP BY time($__interval), "service" fill(none)`, "time_series", "A", "$tag_service")], {
    fieldConfig: perService("ms"),
    description: "DDSketch p99 (1% relative accuracy) of the slowest operation of each service.",
  });
}

/** Requests by status class (2xx/4xx/5xx, ok/error), stacked. */
export function statusClasses(): Panel {
  return panel("timeseries", "Requests by status class", [target(`SELECT sum("requests") FROM "red" WHERE ${where} GROUP BY time($__interval), "status_class" fill(0)`, "time_series", "A", "$tag_status_class")], {
    fieldConfig: unit("short", { custom: { stacking: { mode: "normal" }, drawStyle: "bars", fillOpacity: 80 } }),
  });
}

/** One row per service, role and protocol over the time range. */
export function servicesTable(): Panel {
  return panel(
    "table",
    "Services",
    [target(`SELECT sum("requests") AS "requests", sum("errors") AS "errors", sum("duration_sum_ms") / sum("requests") AS "mean_ms", max("p99_ms") AS "p99_ms", max("max_ms") AS "max_ms" FROM "red" WHERE ${where} GROUP BY "service", "role", "protocol"`, "table")],
    {
      w: 24,
      h: 10,
      options: { sortBy: [{ displayName: "requests", desc: true }] },
      transformations: [{ id: "organize", options: { excludeByName: { Time: true } } }],
      fieldConfig: { defaults: {}, overrides: [columnLinks("service", [dashboardLink("Endpoints of ${__data.fields.service}", UID.operations, { service: "${__data.fields.service:percentencode}" }, ["node", "namespace"])])] },
    },
  );
}

export function redOverview(): Dashboard {
  return dashboard(
    UID.red,
    "Wirescope · RED overview",
    [...placementVariables(), tagVariable("service", "red", "service", { where: placement() }), tagVariable("role", "red", "role")],
    [requestRate(), errorRatio(), meanDuration(), p99Duration(), statusClasses(), servicesTable()],
    ["red"],
  );
}
