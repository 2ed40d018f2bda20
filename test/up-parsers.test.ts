// `wirescope up --parsers 3 --aggregators 2` end to end (no probe, no demo, so no workload: the
// counts under a workload and a kill are the fault suite's, parser-replica.faults.test.ts): three
// parser processes on --parser-port, +10, +20 split the 64 raw partitions, `status` lists each
// with the partitions it owns, and a replica killed with SIGKILL is started again by up, counted,
// and gets its share back; up deletes the dead one's membership entry (parsers and aggregators),
// so the others take over at once. parser-2's metrics port is taken before up starts: parser-2
// alone goes without /metrics.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFile } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { promisify } from "node:util";
import { REPO_ROOT, portPicker, stackPorts, stackArgs, stopUp, tempDir, waitFor } from "./support/index.js";
import { ownedIn } from "./aggregator-support.js";

const run = promisify(execFile);
const P = 64;

type Row = { component: string; instance: string; address: string; health: string; info: Record<string, string>; restarts?: number };

test("up --parsers 3: three replicas on their own ports split the partitions; one killed (and an aggregator) is restarted and gets its share back", { timeout: 300_000 }, async () => {
  const dataDir = tempDir("wirescope-up-parsers-");
  const pick = portPicker();
  const ports = await stackPorts(2, 3, pick);
  const metricsPort = await pick(3, 10);
  // parser-2's metrics port, taken by someone else
  const squatter = net.createServer((s) => s.destroy());
  await new Promise<void>((r) => squatter.listen(metricsPort + 10, "127.0.0.1", r));
  const args = [...stackArgs(dataDir, ports), "--parsers", "3", "--aggregators", "2", "--no-install", "--no-build", "--no-demo", "--no-probe", "--parser-metrics-port", String(metricsPort), "--aggregator-metrics-port", "0"];
  const up = spawn(process.execPath, ["bin/wirescope.js", "up", ...args], { cwd: REPO_ROOT, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  up.stdout.on("data", (d: Buffer) => (out += d.toString()));
  up.stderr.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((r) => up.once("exit", () => r()));
  const reach = ["--data-dir", dataDir, "--nats-url", `nats://127.0.0.1:${ports.nats}`, "--influx-url", `http://127.0.0.1:${ports.influx}`];
  const status = async (json = true) => {
    const r = await run(process.execPath, ["bin/wirescope.js", "status", ...(json ? ["--json"] : []), "--timeout", "5000", ...reach], { cwd: REPO_ROOT, timeout: 60_000 }).catch((e: { stdout?: string }) => ({ stdout: e.stdout ?? "" }));
    return r.stdout;
  };
  const parsers = async () => (JSON.parse((await status()) || "[]") as Row[]).filter((r) => r.component === "parser");
  /** Waits until `n` replicas serve, each counts n members and owns a share, and the shares cover every partition once. */
  const split = async (n: number) => {
    let last: Row[] = [];
    await waitFor(
      async () => {
        last = await parsers();
        if (last.length !== n || !last.every((r) => r.health === "SERVING" && (r.info.members ?? "").split(",").length === n)) return false;
        const all = last.flatMap((r) => ownedIn(r.info.partitions_owned));
        return all.length === P && new Set(all).size === P && last.every((r) => ownedIn(r.info.partitions_owned).length > 0);
      },
      { timeoutMs: 90_000, intervalMs: 1000, what: `${n} parser replicas sharing the partitions` },
    ).catch((e: unknown) => assert.fail(`${String(e)}\n${JSON.stringify(last, null, 1)}\n${out}`));
    return last;
  };
  try {
    await waitFor(() => /^ready: \d+ processes running$/m.test(out) || up.exitCode !== null, { timeoutMs: 180_000, intervalMs: 200, what: "`ready` from up" });
    assert.equal(up.exitCode, null, `up exited early:\n${out}`);
    const pidOf = (name: string) => Number(new RegExp(`^${name}\\s+(\\d+)\\s+grpc://`, "m").exec(out)?.[1]);
    for (const [name, port] of [["parser", ports.parser], ["parser-2", ports.parser + 10], ["parser-3", ports.parser + 20], ["aggregator", ports.aggregator], ["aggregator-2", ports.aggregator + 1]] as const) {
      assert.match(out, new RegExp(`^${name}\\s+\\d+\\s+grpc://127\\.0\\.0\\.1:${port}\\s+ready\\s+0\\s`, "m"), out);
    }
    // parser-2 goes without /metrics, parser and parser-3 serve theirs
    assert.match(out, new RegExp(`^parser-2: its metrics port 127\\.0\\.0\\.1:${metricsPort + 10} is already in use, so it has no /metrics, the others keep theirs`, "m"), out);
    assert.match(out, new RegExp(`^metrics \\(Prometheus\\): parser http://127\\.0\\.0\\.1:${metricsPort}/metrics  parser-3 http://127\\.0\\.0\\.1:${metricsPort + 20}/metrics$`, "m"), out);
    for (const port of [metricsPort, metricsPort + 20]) {
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      assert.match(text, /^wirescope_ready\{[^}]*component="parser"/m, `${port}: ${text.slice(0, 500)}`);
    }

    const first = await split(3);
    assert.deepEqual(first.map((r) => r.address.replace(/^grpc:\/\//, "")).sort(), [ports.parser, ports.parser + 10, ports.parser + 20].map((p) => `127.0.0.1:${p}`).sort());
    // the table says which partitions each owns
    const table = (await status(false)).split("\n").filter((l) => l.startsWith("parser "));
    assert.equal(table.length, 3, table.join("\n"));
    for (const l of table) assert.match(l, /owns=\d+\/64:\d/, l);

    // kill -9 one replica: up starts it again (counted), the partitions move and come back
    const victim = pidOf("parser-2");
    assert.ok(victim > 0, out);
    process.kill(victim, "SIGKILL");
    await waitFor(() => /restarted parser-2 \(pid \d+\), restart #1/.test(out), { timeoutMs: 60_000, intervalMs: 200, what: "up to restart parser-2" });
    // up said goodbye for it (its membership entry deleted), so the survivors took its partitions
    // at the deletion ("replica left"), not after the TTL ("died")
    const victimId = first.find((r) => r.address.endsWith(`:${ports.parser + 10}`))!.instance;
    assert.match(out, new RegExp(`^wirescope up: parser-2's membership entry deleted \\(${victimId}\\): the other parser replicas take its partitions now$`, "m"), out);
    for (const log of ["parser.log", "parser-3.log"]) {
      const lines = fs.readFileSync(path.join(dataDir, "logs", log), "utf8").split("\n").filter((l) => l.includes(victimId));
      assert.ok(lines.some((l) => l.includes("parser replica left")), `${log}: ${lines.join("\n")}`);
    }
    const after = await split(3);
    const restarted = after.find((r) => r.address.endsWith(`:${ports.parser + 10}`));
    assert.ok(restarted && restarted.instance !== first.find((r) => r.address.endsWith(`:${ports.parser + 10}`))?.instance, "a new process (instance) on parser-2's port");
    assert.equal(restarted!.restarts, 1, "status shows up's restart of parser-2");
    assert.deepEqual(after.filter((r) => r !== restarted).map((r) => r.restarts), [0, 0], "the other replicas ran on");
    assert.doesNotMatch(out, /restarted (parser|parser-3|aggregator|aggregator-2|nats-server|influxd) /, out);

    // the same for an aggregator instance: its entry deleted by up, the other takes over at once
    const aggregators = async () => (JSON.parse((await status()) || "[]") as Row[]).filter((r) => r.component === "aggregator");
    const aggVictim = (await aggregators()).find((r) => r.address.endsWith(`:${ports.aggregator + 1}`))!.instance;
    process.kill(pidOf("aggregator-2"), "SIGKILL");
    await waitFor(() => /restarted aggregator-2 \(pid \d+\), restart #1/.test(out), { timeoutMs: 60_000, intervalMs: 200, what: "up to restart aggregator-2" });
    assert.match(out, new RegExp(`^wirescope up: aggregator-2's membership entry deleted \\(\\S+\\.${aggVictim}\\): the other aggregator instances take its partitions now$`, "m"), out);
    assert.ok(fs.readFileSync(path.join(dataDir, "logs", "aggregator.log"), "utf8").split("\n").some((l) => l.includes(aggVictim) && l.includes("aggregator replica left")), "the other instance heard the goodbye");
    let aggs: Row[] = [];
    await waitFor(
      async () => {
        aggs = await aggregators();
        const all = aggs.flatMap((r) => ownedIn(r.info.partitions_owned));
        return aggs.length === 2 && aggs.every((r) => r.health === "SERVING" && (r.info.members ?? "").split(",").length === 2) && all.length === P && new Set(all).size === P;
      },
      { timeoutMs: 90_000, intervalMs: 1000, what: "2 aggregators sharing the partitions again" },
    ).catch((e: unknown) => assert.fail(`${String(e)}\n${JSON.stringify(aggs, null, 1)}`));
  } finally {
    await stopUp(up, exited);
    await new Promise((r) => squatter.close(r));
  }
});
