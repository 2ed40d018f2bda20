// `npm start` as a new root user would meet it, on a machine that is not ready for the probe:
// tracefs is not mounted (a private mount namespace with tracefs unmounted) and the memlock
// limit is low (soft limit lowered to 1 MiB). `up` must mount tracefs, raise the probe's limit,
// say so, and start capturing. Then every child is killed with SIGKILL in turn: each comes back,
// its restart is counted in up's log and in `wirescope status`, and the others keep running.
// Finally a SIGTERM to npm alone (not its process group, as a process manager or a closing IDE
// would send it) kills npm's shell; `up` notices that its parent is gone and stops everything.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { checkHealth, ServingStatus, tcpReachable } from "@wirescope/runtime";
import { REPO_ROOT, stackPorts, stackArgs, privateRun, tempDir, waitFor, pidAlive } from "./support/index.js";
import { bpfAvailable } from "./probe-support.js";

const CHILDREN = ["nats-server", "influxd", "probe", "parser", "aggregator"] as const;

const softMemlock = (pid: number) => /^Max locked memory\s+(\S+)/m.exec(fs.readFileSync(`/proc/${pid}/limits`, "utf8"))![1];

test("npm start prepares the probe, restarts each child killed with SIGKILL, and stops when npm is SIGTERMed", { timeout: 480_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  const dataDir = tempDir("wirescope-up-sup-");
  const ports = await stackPorts();
  const hard = /^Max locked memory\s+\S+\s+(\S+)/m.exec(fs.readFileSync("/proc/self/limits", "utf8"))![1];
  const upArgs = [
    ...stackArgs(dataDir, ports),
    "--no-install",
    "--no-build",
    "--no-demo", // the demo has its own test (demo.test.ts)
  ];
  // unshare, sh and prlimit each exec the next: the pid we get is npm's. /run is a temp dir in the
  // namespace, so the probe's single-instance lock is its own (other probes may run on this machine).
  const npm = spawn(
    ...privateRun(["prlimit", `--memlock=1048576:${hard}`, "--", "npm", "start", "--", ...upArgs], { unmountTracefs: true }),
    { cwd: REPO_ROOT, detached: true, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, npm_config_update_notifier: "false" } },
  );
  let out = "";
  npm.stdout.on("data", (d: Buffer) => (out += d.toString()));
  npm.stderr.on("data", (d: Buffer) => (out += d.toString()));
  const npmExited = new Promise<void>((r) => npm.once("exit", () => r()));
  const seen = new Set<number>();
  const pidOf = new Map<string, number>();
  const grab = () => {
    for (const m of out.matchAll(/^(nats-server|influxd|probe|parser|aggregator)\s+(\d+)\s/gm)) pidOf.set(m[1], Number(m[2]));
    for (const m of out.matchAll(/restarted (nats-server|influxd|probe|parser|aggregator) \(pid (\d+)\)/g)) pidOf.set(m[1], Number(m[2]));
    for (const p of pidOf.values()) seen.add(p);
  };
  try {
    await waitFor(() => /^ready: \d+ processes running$/m.test(out) || npm.exitCode !== null, { timeoutMs: 240_000, intervalMs: 200, what: "`ready` from npm start" });
    assert.equal(npm.exitCode, null, `npm start exited early:\n${out}`);
    grab();
    assert.deepEqual([...pidOf.keys()].sort(), [...CHILDREN].sort(), out);
    // What up did to make the probe work, in its own words.
    assert.match(out, /^mounted tracefs on \/sys\/kernel\/tracing/m);
    assert.match(out, /^raised the memlock limit \(RLIMIT_MEMLOCK\) for the probe from 1 MiB to /m);
    assert.notEqual(softMemlock(pidOf.get("probe")!), "1048576", "the probe runs with the raised limit");
    assert.doesNotMatch(out, /capture is OFF/);
    assert.match(out.trimEnd().split("\n").at(-1)!, /^ready: 5 processes running$/);

    // Each child, SIGKILLed in turn, comes back with a new pid; up counts the restart.
    for (const name of [...CHILDREN].reverse()) {
      const before = pidOf.get(name)!;
      process.kill(before, "SIGKILL");
      const restarted = new RegExp(`^wirescope up: restarted ${name} \\(pid (\\d+)\\), restart #1$`, "m");
      await waitFor(() => restarted.test(out), { timeoutMs: 120_000, intervalMs: 200, what: `${name} to be restarted` }).catch((e: unknown) => assert.fail(`${String(e)}\n${out}`));
      grab();
      const after = pidOf.get(name)!;
      assert.notEqual(after, before);
      assert.ok(pidAlive(after), `${name} (pid ${after}) is running`);
      assert.match(out, new RegExp(`^wirescope up: ${name} \\(pid ${before}\\) exited unexpectedly \\(SIGKILL\\); restarting in `, "m"));
      // the others were left alone
      for (const other of CHILDREN) if (other !== name) assert.ok(pidAlive(pidOf.get(other)!), `${other} still running after ${name} was killed`);
    }
    assert.equal(npm.exitCode, null, "up never stopped the stack");
    for (const c of ["probe", "parser", "aggregator"] as const) {
      await waitFor(async () => (await checkHealth(`127.0.0.1:${ports[c]}`, "", 5000)).status === ServingStatus.SERVING, { timeoutMs: 60_000, what: `${c} SERVING again` });
    }

    // status: every component SERVING, each with one restart.
    type Row = { component: string; health: string; restarts?: number };
    let rows: Row[] = [];
    let last = "";
    await waitFor(
      () => {
        const st = spawnSync(process.execPath, ["bin/wirescope.js", "status", "--json", "--timeout", "10000", "--data-dir", dataDir, "--nats-url", `nats://127.0.0.1:${ports.nats}`, "--influx-url", `http://127.0.0.1:${ports.influx}`], { cwd: REPO_ROOT, encoding: "utf8", timeout: 60_000 });
        last = `${st.stdout}${st.stderr}`;
        rows = JSON.parse(st.stdout) as Row[];
        return st.status === 0;
      },
      { timeoutMs: 60_000, intervalMs: 1000, what: "status to exit 0" },
    ).catch((e: unknown) => assert.fail(`${String(e)}\n${last}`));
    assert.deepEqual(
      rows.map((r) => [r.component, r.health, r.restarts]),
      [["nats", "SERVING", 1], ["influxdb", "SERVING", 1], ["probe", "SERVING", 1], ["parser", "SERVING", 1], ["aggregator", "SERVING", 1]],
    );
    // The probe (restarted before them) counts the restarted nats-server and influxd by their new
    // pids: up rewrites <data-dir>/pipeline.pids, the probe reads it every second.
    const servers = [pidOf.get("nats-server")!, pidOf.get("influxd")!].join(",");
    assert.equal(fs.readFileSync(path.join(dataDir, "pipeline.pids"), "utf8"), servers.replace(",", "\n") + "\n");
    await waitFor(
      () => {
        const st = spawnSync(process.execPath, ["bin/wirescope.js", "status", "--json", "--timeout", "10000", "--data-dir", dataDir, "--nats-url", `nats://127.0.0.1:${ports.nats}`, "--influx-url", `http://127.0.0.1:${ports.influx}`], { cwd: REPO_ROOT, encoding: "utf8", timeout: 60_000 });
        last = (JSON.parse(st.stdout || "[]") as { component: string; info?: Record<string, string> }[]).find((r) => r.component === "probe")?.info?.pipeline_pids ?? "";
        return last === servers;
      },
      { timeoutMs: 30_000, intervalMs: 1000, what: `the probe to count nats-server and influxd by their new pids ${servers}` },
    ).catch((e: unknown) => assert.fail(`${String(e)}; the probe has ${last}`));
    const table = spawnSync(process.execPath, ["bin/wirescope.js", "status", "--data-dir", dataDir, "--nats-url", `nats://127.0.0.1:${ports.nats}`, "--influx-url", `http://127.0.0.1:${ports.influx}`], { cwd: REPO_ROOT, encoding: "utf8", timeout: 60_000 });
    assert.match(table.stdout, /^COMPONENT\s+INSTANCE\s+ADDRESS\s+HEALTH\s+UPTIME\s+RESTARTS/m);
    assert.match(table.stdout, /^probe\s+\S+\s+127\.0\.0\.1:\d+\s+SERVING\s+\S+(?: \S+)?\s+1\s/m);

    // SIGTERM to npm only: npm passes it to its shell, which dies; up's parent is gone.
    process.kill(npm.pid!, "SIGTERM");
    await npmExited;
    await waitFor(() => [...seen].every((p) => !pidAlive(p)), { timeoutMs: 60_000, what: "every child to be gone" }).catch((e: unknown) => assert.fail(`${String(e)}\n${out}`));
    await waitFor(() => /^stopped nats-server \(pid \d+\)$/m.test(out), { timeoutMs: 10_000, what: "up to report it stopped nats-server" });
    assert.match(out, /is gone: stopping/);
    await waitFor(() => !fs.existsSync(path.join(dataDir, "up.pid")), { timeoutMs: 10_000, what: "up to remove its lock as it exits" });
    for (const p of Object.values(ports)) assert.equal(await tcpReachable("127.0.0.1", p, 500), false, `port ${p} still open`);
  } finally {
    try {
      process.kill(-npm.pid!, "SIGKILL");
    } catch {
      // group already gone
    }
    grab();
    for (const pid of seen) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone
      }
    }
  }
});
