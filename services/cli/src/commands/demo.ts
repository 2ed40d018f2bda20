// `wirescope demo`: a small shop of real processes (HTTP/1.1, HTTP/2, gRPC, MySQL, Redis, Kafka)
// with a steady, known traffic mix, so there is something to see right away. `wirescope up`
// starts it unless --no-demo is given.
import path from "node:path";
import { parseArgs } from "node:util";
import { loadConfig, optionsHelp } from "@wirescope/common";
import { UsageError, type Command } from "../command.js";
import { DEFAULT_BASE_PORT, DEFAULT_RATE, PARTS, type Part } from "../demo/spec.js";
import { runDemo, DB_PASSWORD, DB_USER } from "../demo/run.js";
import { runPart } from "../demo/parts.js";

const USAGE = `usage: wirescope demo [--demo-port N] [--rate R] [--dir DIR] [options]

Starts a small shop of real processes and keeps traffic flowing through it until Ctrl-C:
  loadgen -HTTP/1.1-> web -HTTP/2-> api -gRPC-> orders -MySQL-> mariadbd
                                    api -Redis-> redis-server     orders -Kafka-> kafka <- shipping
about 5% of the calls fail on purpose (404s, and every 10th order hits a duplicate key).
Needs mariadbd and redis-server (Debian: mariadb-server, redis-server); all on 127.0.0.1.

demo options:
  --demo-port N   first of six consecutive ports (default ${DEFAULT_BASE_PORT}: web, api, orders, kafka, redis, mariadb)
  --rate R        requests per second the load generator sends to web (default ${DEFAULT_RATE})
  --requests N    the load generator stops after N requests (default: never)
  --dir DIR       the demo's data, logs and counts (default <data-dir>/demo)
  --part NAME     run one part only (${PARTS.join(", ")}); used by the demo itself

options:
${optionsHelp()}`;

const command: Command = {
  name: "demo",
  summary: "run a small shop of real services with steady traffic to look at",
  usage: USAGE,
  async run(argv) {
    const { config, rest } = loadConfig({ argv });
    let values;
    try {
      ({ values } = parseArgs({ args: rest, strict: true, options: { "demo-port": { type: "string" }, rate: { type: "string" }, requests: { type: "string" }, dir: { type: "string" }, part: { type: "string" } } }));
    } catch (e) {
      throw new UsageError(`${(e as Error).message} (see wirescope demo --help)`);
    }
    const basePort = Number(values["demo-port"] ?? DEFAULT_BASE_PORT);
    if (!Number.isInteger(basePort) || basePort < 1 || basePort > 65530) throw new UsageError("--demo-port: expected a port number (1-65530)");
    const rate = Number(values.rate ?? DEFAULT_RATE);
    if (!(rate > 0 && rate <= 10_000)) throw new UsageError("--rate: expected requests per second between 0 and 10000");
    const requests = Number(values.requests ?? 0);
    if (!Number.isInteger(requests) || requests < 0) throw new UsageError("--requests: expected a whole number");
    const dir = path.resolve(values.dir ?? path.join(config.dataDir, "demo"));
    if (values.part !== undefined) {
      if (!(PARTS as readonly string[]).includes(values.part)) throw new UsageError(`--part: one of ${PARTS.join(", ")}`);
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
