// Grafana's own schema for what we generate, as JSON Schema made from the TypeScript types of
// @grafana/grafana-foundation-sdk (Grafana's published dashboard, panel-options and alerting
// types), so the dashboards and alert rules are checked against Grafana's definitions, not ours.
// Used by tests only (ts-json-schema-generator and ajv are dev dependencies).
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createRequire } from "node:module";
import { createGenerator } from "ts-json-schema-generator";
import { Ajv, type ValidateFunction, type ErrorObject } from "ajv";

const require = createRequire(import.meta.url);
const SDK = path.dirname(path.dirname(require.resolve("@grafana/grafana-foundation-sdk/dashboard")));

/** The panel plugins whose options the SDK types (plugin id → SDK module). */
export const PANEL_OPTION_MODULES: Record<string, string> = { timeseries: "timeseries", table: "table", heatmap: "heatmap", barchart: "barchart", nodeGraph: "nodegraph" };
/** Those of them with a type for `fieldConfig.defaults.custom`. */
const FIELD_CONFIG = new Set(["timeseries", "table", "barchart"]);

/**
 * What the SDK leaves open: `cog.Dataquery` is an interface every datasource's query implements,
 * and the SDK has no InfluxDB module. This is the InfluxDB datasource's raw-InfluxQL query.
 */
const INFLUXQL_QUERY = {
  type: "object",
  additionalProperties: false,
  required: ["refId", "datasource", "rawQuery", "query", "resultFormat"],
  properties: {
    refId: { type: "string" },
    datasource: { type: "object", required: ["type", "uid"], properties: { type: { const: "influxdb" }, uid: { type: "string" } }, additionalProperties: false },
    rawQuery: { const: true },
    query: { type: "string", minLength: 1 },
    resultFormat: { enum: ["time_series", "table", "logs"] },
    alias: { type: "string" },
  },
};

/** An alert rule's query model: an InfluxQL query (with the interval and points Grafana's
 *  alerting adds) or a server-side expression (reduce, math, threshold, ...). */
const ALERT_MODEL = {
  anyOf: [
    { ...INFLUXQL_QUERY, properties: { ...INFLUXQL_QUERY.properties, intervalMs: { type: "number" }, maxDataPoints: { type: "number" } } },
    {
      type: "object",
      additionalProperties: false,
      required: ["refId", "datasource", "type", "expression"],
      properties: {
        refId: { type: "string" },
        datasource: { type: "object", properties: { type: { const: "__expr__" }, uid: { const: "__expr__" } }, required: ["type", "uid"], additionalProperties: false },
        type: { enum: ["math", "reduce", "resample", "classic_conditions", "threshold", "sql"] },
        expression: { type: "string", minLength: 1 },
        reducer: { enum: ["last", "mean", "min", "max", "sum", "count", "median"] },
        settings: { type: "object", properties: { mode: { enum: ["", "dropNN", "replaceNN"] }, replaceWithValue: { type: "number" } }, additionalProperties: false },
      },
    },
  ],
};

/**
 * One TypeScript program for every type we need (parsing the SDK is the slow part): a file of
 * aliases in a temporary folder, each naming one SDK type.
 */
function generator(types: Record<string, string>): (alias: string, dataquery?: object) => Record<string, unknown> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "grafana-schema-"));
  const file = path.join(dir, "types.ts");
  const lines = Object.entries(types).map(([alias, ref]) => {
    const [file, name] = ref.split("#") as [string, string];
    const from = JSON.stringify(path.join(SDK, file).replace(/\.d\.ts$/, ".js"));
    return `import type { ${name} as ${alias}_ } from ${from};\nexport type ${alias} = ${alias}_;\n`;
  });
  fs.writeFileSync(file, lines.join(""));
  const g = createGenerator({ path: file, tsconfig: undefined, skipTypeCheck: true, expose: "all", additionalProperties: false, topRef: true });
  fs.rmSync(dir, { recursive: true }); // the program has read it
  return (alias, dataquery = INFLUXQL_QUERY) => {
    const s = g.createSchema(alias) as { definitions?: Record<string, unknown> };
    for (const k of Object.keys(s.definitions ?? {})) if (/Dataquery$/.test(k)) s.definitions![k] = dataquery;
    return s;
  };
}

export interface GrafanaSchemas {
  dashboard: ValidateFunction;
  panelOptions: Map<string, ValidateFunction>;
  panelFieldConfig: Map<string, ValidateFunction>;
}

/** Builds the validators (a few seconds: the SDK's .d.ts files are parsed once). */
export function grafanaSchemas(): GrafanaSchemas {
  const types: Record<string, string> = { WsDashboard: "dashboard/types.gen.d.ts#Dashboard" };
  for (const [plugin, mod] of Object.entries(PANEL_OPTION_MODULES)) {
    types[`Ws${plugin}Options`] = `${mod}/types.gen.d.ts#Options`;
    if (FIELD_CONFIG.has(plugin)) types[`Ws${plugin}FieldConfig`] = `${mod}/types.gen.d.ts#FieldConfig`;
  }
  const schema = generator(types);
  const ajv = new Ajv({ allErrors: true, strict: false });
  const panelOptions = new Map<string, ValidateFunction>();
  const panelFieldConfig = new Map<string, ValidateFunction>();
  for (const plugin of Object.keys(PANEL_OPTION_MODULES)) {
    panelOptions.set(plugin, ajv.compile(schema(`Ws${plugin}Options`)));
    if (FIELD_CONFIG.has(plugin)) panelFieldConfig.set(plugin, ajv.compile(schema(`Ws${plugin}FieldConfig`)));
  }
  return { dashboard: ajv.compile(schema("WsDashboard")), panelOptions, panelFieldConfig };
}

/** Grafana's alert rule (the provisioning API's shape) as a validator. */
export function alertRuleSchema(): ValidateFunction {
  const schema = generator({ WsAlertRule: "alerting/types.gen.d.ts#Rule" });
  return new Ajv({ allErrors: true, strict: false }).compile(schema("WsAlertRule", ALERT_MODEL));
}

/** Ajv's errors, one line each (anyOf branches reduced to their most specific messages). */
export function schemaErrors(errors: ErrorObject[] | null | undefined): string {
  return (errors ?? []).map((e) => `${e.instancePath || "/"} ${e.message}${e.params && "additionalProperty" in e.params ? `: ${String(e.params.additionalProperty)}` : ""}`).join("\n");
}
