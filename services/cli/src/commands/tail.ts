// `wirescope tail`: follows the records the parsers publish (core subscription on
// wirescope.records.>, so it never touches the stream's consumers) and prints them as NDJSON
// (the same shape as `wirescope decode`) or as a table.
import { fromBinary } from "@bufbuild/protobuf";
import { loadConfig, optionsHelp, OPTIONS } from "@wirescope/runtime/config";
import { flagsHelp, parseFlags, type FlagSpec, withEnv } from "@wirescope/runtime/flags";
import { recordToJson, RecordBatchSchema, recordsOf, type Record as WsRecord } from "@wirescope/wire";
import { natsWithStack } from "../stack-state.js";
import { UsageError, type Command } from "../command.js";

/** tail's own flags (after the shared ones): --help, the completions and the parser read this table. */
export const TAIL_FLAGS: readonly FlagSpec[] = withEnv("tail", [
  { flag: "protocol", value: "P", description: "only records of this protocol" },
  { flag: "service", value: "S", description: "only records whose client or server service is S" },
  { flag: "format", value: "ndjson|table", default: "ndjson", description: "one JSON object per record, or aligned columns" },
  { flag: "limit", value: "N", default: "until Ctrl-C", description: "stop after N records" },
]);

const USAGE = `usage: wirescope tail [--protocol P] [--service S] [--format ndjson|table] [--limit N] [options]

Prints records as the parsers publish them. --service matches the client or server service name.
--limit stops after N records (default: until Ctrl-C).

options:
${flagsHelp(TAIL_FLAGS)}
${optionsHelp()}`;

/** `wirescope decode`'s NDJSON object, plus what only a live parser knows: service names and node. */
export function recordJson(r: WsRecord): unknown {
  const j: Record<string, unknown> = { ...recordToJson(r) };
  if (r.client?.service) j.clientService = r.client.service;
  if (r.server?.service) j.serverService = r.server.service;
  if (r.node) j.node = r.node;
  return j;
}

function tableRow(r: WsRecord): string {
  const ms = (Number(r.durationNs) / 1e6).toFixed(2);
  return [
    new Date(Number(r.startNs / 1_000_000n)).toISOString().slice(11, 23),
    r.protocol.padEnd(6),
    (r.client?.service ?? "").padEnd(20),
    "->",
    (r.server?.service ?? "").padEnd(20),
    r.operation.padEnd(8),
    r.resource.slice(0, 48).padEnd(48),
    String(r.status ?? (r.incomplete ? "incomplete" : "")).padEnd(6),
    `${ms}ms`,
  ].join(" ");
}

/** `wirescope tail`'s own flags (after the shared options), as `--flag value` or `--flag=value`. */
export function parseTailArgs(args: readonly string[], env: NodeJS.ProcessEnv = process.env): { protocol?: string; service?: string; format: string; limit: number } {
  const p = parseFlags(args, TAIL_FLAGS, { command: "tail", env });
  const format = p.get("format") ?? "ndjson";
  const limit = p.has("limit") ? Number(p.get("limit")) : Infinity;
  if (format !== "ndjson" && format !== "table") throw new UsageError("--format is ndjson or table");
  if (!(limit > 0)) throw new UsageError("--limit must be a positive number");
  return { protocol: p.get("protocol"), service: p.get("service"), format, limit };
}

const command: Command = {
  name: "tail",
  summary: "follow the records flowing out of the parsers",
  usage: USAGE,
  flags: [...OPTIONS, ...TAIL_FLAGS],
  async run(argv) {
    const { config, rest } = loadConfig({ argv, command: "tail" });
    const { protocol, service, format, limit } = parseTailArgs(rest);
    const { connectNats, silentLogger } = await import("../clients.js");
    const nc = await connectNats(natsWithStack(config.nats, config.dataDir), silentLogger(), { retry: false, name: "wirescope-tail" });
    let stopping = false;
    const stop = () => {
      if (stopping) return;
      stopping = true;
      nc.drain().catch(() => undefined);
    };
    // `wirescope tail | head`: the reader went away; stop quietly like any filter does
    let closed = false;
    process.stdout.on("error", (e: NodeJS.ErrnoException) => {
      if (e.code !== "EPIPE") throw e;
      closed = true;
      stop();
    });
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
    const sub = nc.subscribe("wirescope.records.>");
    let n = 0;
    let bad = 0;
    for await (const m of sub) {
      let records;
      try {
        // a batch that does not decode, or whose records name connection entries it lacks
        records = recordsOf(fromBinary(RecordBatchSchema, m.data));
      } catch {
        if (++bad === 1) process.stderr.write("tail: skipping messages that are not RecordBatch\n");
        continue;
      }
      for (const r of records) {
        if (closed) break;
        if (protocol && r.protocol !== protocol) continue;
        if (service && r.server?.service !== service && r.client?.service !== service) continue;
        process.stdout.write(format === "table" ? tableRow(r) + "\n" : JSON.stringify(recordJson(r)) + "\n");
        if (++n >= limit) {
          await nc.drain();
          return 0;
        }
      }
    }
    return 0;
  },
};
export default command;
