// `wirescope demo`: a small shop of real processes (HTTP/1.1, HTTP/2 over TLS, gRPC, MySQL, Redis, Kafka)
// with a steady, known traffic mix, so there is something to see right away. `wirescope up`
// starts it unless --no-demo is given.
import path from "node:path";
import { loadConfig, optionsHelp, OPTIONS } from "@wirescope/runtime/config";
import { flagsHelp, parseFlags, withEnv, type FlagSpec } from "@wirescope/runtime/flags";
import { UsageError, type Command } from "../command.js";
import { DEFAULT_BASE_PORT, DEFAULT_RATE, PARTS, type Part } from "../demo/spec.js";
import { runDemo, DB_PASSWORD, DB_USER } from "../demo/run.js";

/** demo's own flags (after the shared ones): --help, the completions and the parser read this table. */
export const DEMO_FLAGS: readonly FlagSpec[] = withEnv("demo", [
  { flag: "demo-port", value: "N", default: String(DEFAULT_BASE_PORT), description: "first of six consecutive ports: web, api, orders, kafka, redis, mariadb" },
  { flag: "rate", value: "R", default: String(DEFAULT_RATE), description: "requests per second the load generator sends to web" },
  { flag: "requests", value: "N", default: "never", description: "the load generator stops after N requests" },
  { flag: "dir", value: "DIR", default: "<data-dir>/demo", description: "the demo's data, logs and counts" },
  { flag: "part", value: "NAME", description: `run one part only (${PARTS.join(", ")}); used by the demo itself` },
]);

/** Parses demo's own flags (`--flag value` or `--flag=value`). */
export function parseDemoArgs(args: string[], env: NodeJS.ProcessEnv = process.env) {
  return parseFlags(args, DEMO_FLAGS, { command: "demo", env }).values() as { "demo-port"?: string; rate?: string; requests?: string; dir?: string; part?: string };
}

const USAGE = `usage: wirescope demo [--demo-port N] [--rate R] [--dir DIR] [options]

Starts a small shop of real processes and keeps traffic flowing through it until Ctrl-C:
  loadgen -HTTP/1.1-> web -HTTP/2 over TLS-> api -gRPC-> orders -MySQL-> mariadbd
                                    api -Redis-> redis-server     orders -Kafka-> kafka <- shipping
about 5% of the calls fail on purpose (404s, and every 10th order hits a duplicate key).
web -> api is HTTPS (h2 by ALPN) with a certificate of its own CA, made once into DIR/tls/.
Needs mariadbd and redis-server (Debian: mariadb-server, redis-server); all on 127.0.0.1.

demo options:
${flagsHelp(DEMO_FLAGS)}

options:
${optionsHelp()}`;

const command: Command = {
  name: "demo",
  summary: "run a small shop of real services with steady traffic to look at",
  usage: USAGE,
  flags: [...OPTIONS, ...DEMO_FLAGS],
  async run(argv) {
    const { config, rest } = loadConfig({ argv, command: "demo" });
    const values = parseDemoArgs(rest);
    const basePort = Number(values["demo-port"] ?? DEFAULT_BASE_PORT);
    if (!Number.isInteger(basePort) || basePort < 1 || basePort > 65530) throw new UsageError("--demo-port: expected a port number (1-65530)");
    const rate = Number(values.rate ?? DEFAULT_RATE);
    if (!(rate > 0 && rate <= 10_000)) throw new UsageError("--rate: expected requests per second between 0 and 10000");
    const requests = Number(values.requests ?? 0);
    if (!Number.isInteger(requests) || requests < 0) throw new UsageError("--requests: expected a whole number");
    const dir = path.resolve(values.dir ?? path.join(config.dataDir, "demo"));
    if (values.part !== undefined) {
      if (!(PARTS as readonly string[]).includes(values.part)) throw new UsageError(`--part: one of ${PARTS.join(", ")}`);
      // the demo's clients and servers (gRPC, MySQL, Kafka) are loaded only to run a part
      const { runPart } = await import("../demo/parts.js");
      await runPart({ part: values.part as Part, basePort, dir, rate, requests, dbUser: DB_USER, dbPassword: DB_PASSWORD });
      return 0;
    }
    const ac = new AbortController();
    process.once("SIGINT", () => ac.abort());
    process.once("SIGTERM", () => ac.abort());
    // The demo never outlives what started it (`up` killed with SIGKILL, a closed terminal).
    const parent = process.ppid;
    const watch = setInterval(() => process.ppid !== parent && ac.abort(), 500);
    watch.unref();
    await runDemo({ dir, basePort, rate, requests, log: (l) => process.stdout.write(`${l}\n`) }, ac.signal);
    return 0;
  },
};

export default command;
