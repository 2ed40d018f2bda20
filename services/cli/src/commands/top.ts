// `wirescope top`: a live terminal view of the services InfluxDB holds, like top(1): rate, error %,
// p50 and p99 per service, drill-down into endpoints, callers and callees, the edges of the service
// map, and the pipeline's own drops in the footer. Refreshes every --interval (one window).
import { loadConfig, optionsHelp, OPTIONS } from "@wirescope/runtime/config";
import { redactUrl } from "@wirescope/runtime/redact";
import { colorAllowed } from "@wirescope/runtime/log-levels";
import { flagsHelp, parseFlags, withEnv, type FlagSpec } from "@wirescope/runtime/flags";
import { UsageError, type Command } from "../command.js";
import { SORT_KEYS, type SortKey } from "../top/model.js";
import { fetchTop } from "../top/query.js";
import { initialState, onKey, render, type TopData, type TopState } from "../top/screen.js";

/** Shared options top reads as its own (see LoadConfigInput.own): `--node` is the node to show. */
const OWN_SHARED = ["node"];

/** top's own flags (after the shared ones): --help, the completions and the parser read this table. */
export const TOP_FLAGS: readonly FlagSpec[] = withEnv("top", [
  { flag: "range", value: "DURATION", default: "1m", description: "how far back to look: 30s, 5m, 1h" },
  { flag: "interval", value: "MS", default: "10000, the aggregator's window", description: "refresh period in ms" },
  { flag: "sort", value: "KEY", default: "rate", description: "rate, errors, p50, p99 or name" },
  { flag: "filter", value: "TEXT", description: "show only rows containing TEXT" },
  { flag: "service", value: "NAME", description: "open this service's view at start" },
  { flag: "node", value: "NAME", description: "show only what was observed on this node (the node tag; n cycles the nodes)" },
  { flag: "edges", description: "open the edges view at start" },
  { flag: "once", description: "print once and exit (the default when stdout is not a terminal)" },
  { flag: "timeout", value: "MS", default: "5000", description: "query deadline in ms" },
]);

/** Parses top's own flags (`--flag value` or `--flag=value`). */
export function parseTopArgs(args: string[], env: NodeJS.ProcessEnv = process.env) {
  return parseFlags(args, TOP_FLAGS, { command: "top", env }).values() as { range?: string; interval?: string; sort?: string; filter?: string; service?: string; node?: string; edges?: boolean; once?: boolean; timeout?: string };
}

const USAGE = `usage: wirescope top [--range 1m] [--interval ms] [--sort KEY] [--filter TEXT] [--service NAME] [--node NAME] [--edges] [--once] [options]

A live view of every service's rate, error %, p50 and p99 from InfluxDB, refreshed every window.
Keys: up/down (or j/k) move, Enter opens a service (its endpoints, callers and callees), e shows
the edges of the service map, s changes the sort, / filters, n shows the next node (every node,
then each node with data), r refreshes, Esc goes back, q quits.
Without a terminal (or with --once) it prints the view once and exits.
Percentiles marked ~ are estimated from histogram buckets (several series or windows).
Names marked * are external peers: ends that are not traced processes, named by their address
(the service map's external nodes); their row shows the edges that reach them.

top options:
${flagsHelp(TOP_FLAGS)}

options:
${optionsHelp(OWN_SHARED)}`;

/** "90", "90s", "5m", "1h" → seconds. */
export function parseRange(v: string): number {
  const m = /^(\d+(?:\.\d+)?)(s|m|h)?$/.exec(v.trim());
  if (!m) throw new UsageError(`--range: expected a duration like 30s, 5m or 1h, got "${v}"`);
  const n = Number(m[1]) * (m[2] === "h" ? 3600 : m[2] === "m" ? 60 : 1);
  if (!(n >= 1)) throw new UsageError("--range: must be at least 1s");
  return n;
}

function positive(name: string, v: string | undefined, def: number): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`--${name}: expected a positive number, got "${v}"`);
  return n;
}

/** Splits one chunk of terminal input into keys (escape sequences kept whole). */
export function splitKeys(chunk: string): string[] {
  const keys: string[] = [];
  for (let i = 0; i < chunk.length; ) {
    if (chunk[i] === "\u001b" && chunk[i + 1] === "[" && i + 2 < chunk.length) {
      keys.push(chunk.slice(i, i + 3));
      i += 3;
    } else {
      keys.push(chunk[i]!);
      i++;
    }
  }
  return keys;
}

const command: Command = {
  name: "top",
  summary: "live terminal view of services, endpoints and edges from InfluxDB",
  usage: USAGE,
  flags: [...OPTIONS.filter((o) => !OWN_SHARED.includes(o.flag)), ...TOP_FLAGS],
  async run(argv) {
    const { config, rest } = loadConfig({ argv, own: OWN_SHARED, command: "top" });
    const values = parseTopArgs(rest);
    const rangeS = parseRange(values.range ?? "1m");
    const intervalMs = positive("interval", values.interval, 10_000);
    const timeoutMs = positive("timeout", values.timeout, 5000);
    const sort = (values.sort ?? "rate") as SortKey;
    if (!SORT_KEYS.includes(sort)) throw new UsageError(`--sort: one of ${SORT_KEYS.join(", ")}`);
    const target = { url: config.influx.url, database: config.influx.database, token: config.influx.token, user: config.influx.user, password: config.influx.password };
    const source = `${redactUrl(config.influx.url)} db ${config.influx.database}`;

    if (values.node === "") throw new UsageError("--node: expected a node name (without it: every node)");
    let state: TopState = { ...initialState(sort), filter: values.filter ?? "", node: values.node ?? "" };
    const scope = () => ({ service: state.view === "service" ? state.service : undefined, node: state.node || undefined });
    if (values.service !== undefined) state = { ...state, view: "service", service: values.service };
    else if (values.edges) state = { ...state, view: "edges" };

    const out = process.stdout;
    const interactive = !values.once && out.isTTY === true && process.stdin.isTTY === true;
    if (!interactive) {
      // One view, plain text, for scripts and pipes; a closed pipe (`| head`) ends quietly.
      out.on("error", (e: NodeJS.ErrnoException) => {
        if (e.code === "EPIPE") process.exit(0);
      });
      const data = await fetchTop(target, rangeS, scope(), timeoutMs);
      const lines = render(state, data, { source, rangeS, width: 200, height: 0 });
      out.write(lines.join("\n") + "\n");
      return 0;
    }

    const color = colorAllowed();
    let data: TopData = { services: [], edges: [], endpoints: [], nodes: [], external: [], pipeline: { drops: [], seen: false }, at: new Date(), error: "loading…" };
    let timer: NodeJS.Timeout | undefined;
    let closed = false;
    let inFlight = false;
    /** A refresh asked for while one was in flight: run after it (the view's scope changed). */
    let again = false;

    const draw = () => {
      if (closed) return;
      const lines = render(state, data, { source, rangeS, width: out.columns || 80, height: out.rows || 24 });
      const shown = lines.map((l) => (color && l.startsWith(">") ? `\u001b[7m${l}\u001b[0m` : l));
      out.write(`\u001b[H${shown.join("\u001b[K\n")}\u001b[K\u001b[J`);
    };
    /** `asked`: on a key (run after the one in flight); a tick is skipped while one is in flight. */
    const refresh = async (asked = false) => {
      if (closed) return;
      if (inFlight) {
        if (asked) again = true;
        return;
      }
      inFlight = true;
      const want = JSON.stringify(scope());
      let got: TopData;
      try {
        got = await fetchTop(target, rangeS, scope(), timeoutMs);
      } catch (e) {
        got = { ...data, at: new Date(), error: `refresh failed: ${(e as Error).message}` };
      } finally {
        inFlight = false;
      }
      // Rows of a service or node the view has left meanwhile are not shown under the new one.
      if (JSON.stringify(scope()) === want) data = got;
      else again = true;
      if (again) {
        again = false;
        void refresh(true);
        return;
      }
      const n = state.view === "services" ? data.services.length : state.view === "edges" ? data.edges.length : data.endpoints.length;
      if (state.selected >= n) state = { ...state, selected: Math.max(0, n - 1) };
      draw();
    };

    return await new Promise<number>((resolve) => {
      const finish = () => {
        if (closed) return;
        closed = true;
        clearInterval(timer);
        process.stdin.setRawMode(false);
        process.stdin.pause();
        out.write("\u001b[?25h\u001b[?1049l");
        resolve(0);
      };
      out.write("\u001b[?1049h\u001b[?25l");
      process.stdin.setRawMode(true);
      process.stdin.setEncoding("utf8");
      process.stdin.on("data", (chunk: string) => {
        for (const key of splitKeys(chunk)) {
          const prevView = state.view;
          const prevService = state.service;
          const prevNode = state.node;
          const next = onKey(state, data, key);
          if (next === "quit") return finish();
          if (next === "refresh") {
            void refresh(true);
            continue;
          }
          state = next;
          // Opening another service needs its endpoints: fetch now instead of at the next tick.
          if (state.view === "service" && (prevView !== "service" || prevService !== state.service)) {
            data = { ...data, endpoints: [] };
            void refresh(true);
          } else if (state.node !== prevNode) {
            // Another node: its rows, not the last node's under the new name.
            data = { ...data, services: [], edges: [], endpoints: [], error: "loading…" };
            void refresh(true);
          }
        }
        draw();
      });
      out.on("resize", draw);
      process.once("SIGINT", finish);
      process.once("SIGTERM", finish);
      timer = setInterval(() => void refresh(), intervalMs);
      draw();
      void refresh();
    });
  },
};

export default command;
