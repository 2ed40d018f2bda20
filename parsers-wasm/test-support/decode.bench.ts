// Decode-only throughput per plugin on one core: records/s and MB/s through the real host
// (ConnectionEngine → fuel-metered WASM instance → record bytes), the way the parser service and
// `wirescope decode` run it, on realistic traffic (traffic.ts or a decoder's own test/traffic.ts).
// Also the cost of runaway protection: the same run with fuel metering off. Each plugin runs
// both ways side by side: one WASM call per chunk (the ABI v1 path, what a version 1 plugin
// gets) and, for version 2 plugins, the chunks handed over in batches (EngineBatch →
// feed_batch); both must give the same records. The configurations run in alternating turns, so
// that load from elsewhere falls on all of them alike.
//
// Rates are per CPU second of this process (process.cpuUsage), not per wall second: the figure
// is "per core" even when other work shares the machine. Wall-clock rates are shown beside.
//
// Run: node scripts/bench.mjs decode   (after node scripts/build.mjs)
//      node scripts/bench.mjs decode --plugins=mysql   (one plugin)

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { ConnectionEngine, Plugin, PluginRegistry } from "@wirescope/plugin-host";
import { builtPlugins, PARSERS_ROOT, type BuiltPlugin } from "./plugins.js";
import { http1Traffic, http2Traffic, redisTraffic, type TrafficSample } from "./traffic.js";

const SECONDS = Number(process.env.WIRESCOPE_BENCH_SECONDS ?? 3);
/** `--plugins=mysql,kafka`: only these plugins (default: every built one). */
const only = process.argv.find((a) => a.startsWith("--plugins="))?.slice("--plugins=".length).split(",");

async function samplesFor(b: BuiltPlugin): Promise<TrafficSample[]> {
  const own = path.join(PARSERS_ROOT, "dist", path.relative(PARSERS_ROOT, b.sourceDir), "test/traffic.js");
  if (fs.existsSync(own)) {
    const mod = (await import(pathToFileURL(own).href)) as { traffic?: () => Promise<TrafficSample[]> };
    if (mod.traffic) return mod.traffic();
  }
  if (b.name === "http1") return [await http1Traffic()];
  if (b.name === "http2") return [await http2Traffic()];
  if (b.name === "redis") return [redisTraffic()];
  return [];
}

interface Result {
  records: number;
  bytes: number;
  /** CPU seconds (user + system) of this process. */
  seconds: number;
  wall: number;
  /** Records of the first pass (both paths must find the same). */
  first: number;
}

/** One configuration (metered or not, batched or not) of one plugin on one sample. */
interface Runner {
  once(): void;
  r: Result;
}

function runner(b: BuiltPlugin, s: TrafficSample, meter: boolean, batched: boolean): Runner {
  const reg = new PluginRegistry();
  reg.add(Plugin.fromFile(b.manifest, { meter }));
  const engine = new ConnectionEngine(reg);
  const r: Result = { records: 0, bytes: 0, seconds: 0, wall: 0, first: 0 };
  const batch = engine.batch<null>((_t, res) => void (r.records += res.records.length));
  const once = () => {
    for (const conn of s.connections) {
      const c = engine.openConnection({ protocol: s.plugin });
      if (batched) {
        for (const ch of conn) {
          batch.data(c, ch.dir, ch.bytes, ch.tsNs, null);
          r.bytes += ch.bytes.length;
        }
        batch.close(c, (conn.at(-1)?.tsNs ?? 0n) + 1n, null);
        batch.flush();
        continue;
      }
      for (const ch of conn) {
        r.records += c.data(ch.dir, ch.bytes, ch.tsNs).records.length;
        r.bytes += ch.bytes.length;
      }
      r.records += c.close((conn.at(-1)?.tsNs ?? 0n) + 1n).records.length;
    }
  };
  once(); // warm-up (JIT, instance memory)
  r.first = r.records;
  if (r.first < s.pairs * 0.99) throw new Error(`${s.name}: decoded ${r.first} records for ${s.pairs} pairs: the decoder misses requests`);
  if (batched && engine.batched.entries === 0) throw new Error(`${s.name}: nothing went through feed_batch`);
  r.records = 0;
  r.bytes = 0;
  return { once, r };
}

/**
 * Runs the configurations in turns of 0.25 s until each had SECONDS, so that every one sees the
 * same share of whatever else the machine does (sequential runs moved by ±10 % under load).
 */
function alternate(runners: Runner[]): void {
  globalThis.gc?.();
  for (let turn = 0; runners.some((x) => x.r.wall < SECONDS); turn++) {
    const order = turn % 2 ? [...runners].reverse() : runners;
    for (const x of order) {
      const t0 = process.hrtime.bigint();
      const c0 = process.cpuUsage();
      let t = 0;
      do {
        x.once();
        t = Number(process.hrtime.bigint() - t0) / 1e9;
      } while (t < 0.25);
      const cu = process.cpuUsage(c0);
      x.r.seconds += (cu.user + cu.system) / 1e6;
      x.r.wall += t;
    }
  }
}

const rows: string[] = [];
rows.push("| plugin | traffic | path | records/s (CPU) | MB/s (CPU) | ns/record | records/s (wall) | records/s unmetered (CPU) | meter cost |");
rows.push("|---|---|---|---:|---:|---:|---:|---:|---:|");
let failed = false;
for (const b of builtPlugins()) {
  if (only && !only.includes(b.name)) continue;
  let samples: TrafficSample[];
  try {
    samples = await samplesFor(b);
  } catch (e) {
    console.error(`${b.name}: traffic generation failed: ${(e as Error).message}`);
    failed = true;
    continue;
  }
  if (!samples.length) {
    rows.push(`| ${b.name} | (no traffic generator) | | | | | | | |`);
    continue;
  }
  for (const s of samples) {
    const v2 = JSON.parse(fs.readFileSync(b.manifest, "utf8")).abi >= 2;
    try {
      const paths = v2 ? [false, true] : [false];
      // [metered, unmetered] per path, all alternating
      const rs = paths.map((batched) => [runner(b, s, true, batched), runner(b, s, false, batched)] as const);
      if (v2 && rs[1]![0].r.first !== rs[0]![0].r.first) throw new Error(`${rs[1]![0].r.first} records in batches, ${rs[0]![0].r.first} one call per chunk`);
      alternate(rs.flat());
      let v1rps = 0;
      rs.forEach(([{ r: m }, { r: u }], i) => {
        const batched = paths[i]!;
        const rps = m.records / m.seconds;
        const urps = u.records / u.seconds;
        const gain = batched && v1rps ? ` (${rps >= v1rps ? "+" : ""}${(((rps - v1rps) / v1rps) * 100).toFixed(0)}%)` : "";
        if (!batched) v1rps = rps;
        rows.push(
          `| ${b.name} | ${s.name} | ${batched ? "v2 batches" : "v1, a call per chunk"} | ${Math.round(rps).toLocaleString("en-US")}${gain} | ${(m.bytes / m.seconds / 1e6).toFixed(1)} | ${Math.round(1e9 / rps)} | ${Math.round(m.records / m.wall).toLocaleString("en-US")} | ${Math.round(urps).toLocaleString("en-US")} | ${(((urps - rps) / urps) * 100).toFixed(1)}% |`,
        );
      });
    } catch (e) {
      rows.push(`| ${b.name} | ${s.name} | | failed: ${(e as Error).message} | | | | | |`);
      failed = true;
    }
  }
}
console.log(`decode-only, one core, ${SECONDS} s per configuration in alternating 0.25 s turns (node ${process.version}, load average ${os.loadavg()[0]!.toFixed(1)} on ${os.cpus().length} cores)\n`);
console.log(rows.join("\n"));
process.exit(failed ? 1 : 0);
