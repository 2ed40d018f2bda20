// `npm start` end to end: the real stack comes up on free loopback ports, every service answers
// gRPC health and Status, `wirescope status` sees them all SERVING, and a Ctrl-C (SIGINT to the
// process group, as a terminal sends it) leaves no process behind.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import path from "node:path";
import fs from "node:fs";
import { checkHealth, createClient, ServingStatus, COMPONENT_SERVICES, tcpReachable, type Component } from "@wirescope/runtime";
import { REPO_ROOT, portPicker, stackPorts, stackArgs, privateRun, tempDir, waitFor, pidAlive } from "./support/index.js";
import { bpfAvailable, bpfUnavailable } from "./probe-support.js";


/** `wirescope status --json` on a stack whose probe is not running: asserts the probe row is DOWN (exit code 1) and returns its error. */
function probeDown(dataDir: string, ports: { nats: number; influx: number }): string {
  const st = spawnSync(process.execPath, ["bin/wirescope.js", "status", "--json", "--data-dir", dataDir, "--nats-url", `nats://127.0.0.1:${ports.nats}`, "--influx-url", `http://127.0.0.1:${ports.influx}`], { cwd: REPO_ROOT, encoding: "utf8", timeout: 60_000 });
  assert.equal(st.status, 1, `a component is down: exit code 1\n${st.stdout}${st.stderr}`);
  const probe = (JSON.parse(st.stdout) as { component: string; health: string; error?: string }[]).find((r) => r.component === "probe");
  assert.equal(probe?.health, "DOWN", st.stdout);
  return probe?.error ?? "";
}

const ebpfUsable = () => bpfUnavailable() === undefined;

test("npm start reaches ready, every process is healthy, Ctrl-C leaves nothing behind", { timeout: 240_000 }, async () => {
  const dataDir = tempDir("wirescope-up-");
  const ports = await stackPorts();
  const args = [
    "start",
    "--",
    ...stackArgs(dataDir, ports),
    "--no-build", // npm start has just built; `up` would only find nothing to do
    "--no-demo", // the demo has its own test (demo.test.ts)
  ];
  // Own process group, like a shell job: SIGINT to the group is what Ctrl-C does.
  // As root, in a mount namespace with its own /run: the probe's single-instance lock is then this
  // stack's alone, whatever other probe runs on the machine (unshare and sh exec: the pid is npm's).
  const [cmd, cmdArgs] = ebpfUsable() ? privateRun(["npm", ...args]) : ["npm", args];
  const npm = spawn(cmd, cmdArgs, { cwd: REPO_ROOT, detached: true, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, npm_config_update_notifier: "false" } });
  let out = "";
  npm.stdout.on("data", (d: Buffer) => (out += d.toString()));
  npm.stderr.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => npm.once("exit", (code) => resolve(code)));
  const pids = new Map<string, number>();
  try {
    await waitFor(() => /^ready: \d+ processes running$/m.test(out) || npm.exitCode !== null, { timeoutMs: 180_000, intervalMs: 200, what: "`ready` from npm start" });
    assert.equal(npm.exitCode, null, `npm start exited early:\n${out}`);

    for (const m of out.matchAll(/^(nats-server|influxd|probe|parser|aggregator)\s+(\d+)\s/gm)) pids.set(m[1], Number(m[2]));
    const expected = ebpfUsable() ? ["nats-server", "influxd", "probe", "parser", "aggregator"] : ["nats-server", "influxd", "parser", "aggregator"];
    assert.deepEqual([...pids.keys()].sort(), [...expected].sort(), `process table:\n${out}`);
    if (!ebpfUsable()) assert.match(out, /^capture is OFF: /m);
    else assert.doesNotMatch(out, /capture is OFF/);
    for (const [name, pid] of pids) assert.ok(pidAlive(pid), `${name} (pid ${pid}) is running`);

    // Health and Status over gRPC, straight from the services.
    for (const c of ["probe", "parser", "aggregator"] as Component[]) {
      if (!pids.has(c)) continue;
      const address = `127.0.0.1:${ports[c]}`;
      // Generous deadlines: a busy probe on a loaded 2-core machine can be slow to answer.
      let last = "";
      await waitFor(
        async () => {
          const h = await checkHealth(address, "", 5000);
          last = h.error ?? ServingStatus[h.status];
          return h.status === ServingStatus.SERVING;
        },
        { timeoutMs: 30_000, what: `${c} to answer SERVING` },
      ).catch((e: unknown) => assert.fail(`${c} health: ${last} (${String(e)})`));
      const client = createClient(COMPONENT_SERVICES[c], address);
      try {
        const s = await client.status({}, { timeoutMs: 10_000 });
        assert.equal(s.component, c);
        assert.equal(s.ready, true);
        assert.equal(s.info.pid, String(pids.get(c)));
      } finally {
        client.close();
      }
    }

    // `up` says where to look with commands that reach this stack (no default ports here): run
    // them as printed. `wirescope status --json` finds every service (through the registry), with
    // the NATS user `up` generated in the data dir.
    const printed = (cmd: string) => {
      const m = new RegExp(`npx wirescope ${cmd}((?: --[a-z-]+ \\S+)*)`).exec(out);
      assert.ok(m, `up prints \`npx wirescope ${cmd}\`:\n${out}`);
      return [cmd, ...m[1]!.trim().split(" ")];
    };
    const reach = printed("status").slice(1);
    assert.deepEqual(reach, ["--nats-url", `nats://127.0.0.1:${ports.nats}`, "--influx-url", `http://127.0.0.1:${ports.influx}`, "--data-dir", dataDir]);
    assert.deepEqual(printed("top").slice(1), reach);
    assert.deepEqual(printed("tail").slice(1), reach);
    const top = spawnSync(process.execPath, ["bin/wirescope.js", ...printed("top"), "--once"], { cwd: REPO_ROOT, encoding: "utf8", timeout: 60_000 });
    assert.equal(top.status, 0, `top as printed: ${top.stderr}\n${top.stdout}`);
    assert.match(top.stdout, /^wirescope top {2}http:\/\/127\.0\.0\.1:\d+ db wirescope/);
    const st = spawnSync(process.execPath, ["bin/wirescope.js", ...printed("status"), "--json", "--timeout", "10000"], {
      cwd: REPO_ROOT,
      encoding: "utf8",
      timeout: 60_000,
    });
    assert.equal(st.status, 0, `status exit code; stderr: ${st.stderr}\n${st.stdout}`);
    const rows = JSON.parse(st.stdout) as { component: string; health: string; address: string }[];
    const byComponent = new Map(rows.map((r) => [r.component, r]));
    for (const name of ["nats", "influxdb", ...expected.filter((e) => !["nats-server", "influxd"].includes(e))]) {
      assert.equal(byComponent.get(name)?.health, "SERVING", `${name} in status: ${st.stdout}`);
    }
    for (const c of ["probe", "parser", "aggregator"] as Component[]) {
      if (pids.has(c)) assert.equal(byComponent.get(c)?.address, `127.0.0.1:${ports[c]}`);
    }

    // Ctrl-C.
    process.kill(-npm.pid!, "SIGINT");
    let timer: NodeJS.Timeout | undefined;
    const code = await Promise.race([exited, new Promise<"timeout">((r) => (timer = setTimeout(() => r("timeout"), 60_000)))]);
    clearTimeout(timer);
    assert.notEqual(code, "timeout", `npm start did not stop after SIGINT:\n${out}`);
    await waitFor(() => [...pids.values()].every((p) => !pidAlive(p)), { timeoutMs: 30_000, what: "every child to be gone" });
    assert.match(out, /stopped nats-server/);
    // Nothing listens on the stack's ports any more.
    for (const p of Object.values(ports)) assert.equal(await tcpReachable("127.0.0.1", p, 500), false, `port ${p} still open`);
  } finally {
    // On failure: nothing may survive the test.
    try {
      process.kill(-npm.pid!, "SIGKILL");
    } catch {
      // group already gone
    }
    for (const pid of pids.values()) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone
      }
    }
  }
});

test("children of a SIGKILLed `up` are stopped by the next `up` on the same data dir", { timeout: 180_000 }, async () => {
  const dataDir = tempDir("wirescope-up-");
  const args = async (pick = portPicker()) => [
    "bin/wirescope.js", "up", "--no-install", "--no-build", "--no-probe", "--no-demo",
    "--data-dir", dataDir,
    "--nats-url", `nats://127.0.0.1:${await pick()}`,
    "--influx-url", `http://127.0.0.1:${await pick()}`,
    "--parser-port", String(await pick()),
    "--aggregator-port", String(await pick()),
  ];
  const start = async () => {
    const p = spawn(process.execPath, await args(), { cwd: REPO_ROOT, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    p.stdout.on("data", (d: Buffer) => (out += d.toString()));
    p.stderr.on("data", (d: Buffer) => (out += d.toString()));
    const exited = new Promise<void>((r) => p.once("exit", () => r()));
    await waitFor(() => /^ready: /m.test(out) || p.exitCode !== null, { timeoutMs: 120_000, what: "ready" });
    assert.equal(p.exitCode, null, out);
    const pids = [...out.matchAll(/^(nats-server|influxd|parser|aggregator)\s+(\d+)\s/gm)].map((m) => Number(m[2]));
    assert.equal(pids.length, 4, out);
    return { p, pids, exited, output: () => out };
  };
  const first = await start();
  const second: { p?: ReturnType<typeof spawn>; pids: number[] } = { pids: [] };
  try {
    first.p.kill("SIGKILL");
    await first.exited;
    assert.ok(first.pids.every(pidAlive), "children outlive a SIGKILLed up");
    const s = await start();
    second.p = s.p;
    second.pids = s.pids;
    assert.match(s.output(), /left over from a previous `wirescope up`/);
    assert.ok(first.pids.every((pid) => !pidAlive(pid)), "leftovers stopped");
    s.p.kill("SIGTERM");
    await s.exited;
    await waitFor(() => s.pids.every((pid) => !pidAlive(pid)), { timeoutMs: 30_000, what: "second stack to stop" });
  } finally {
    for (const pid of [...first.pids, ...second.pids]) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone
      }
    }
    second.p?.kill("SIGKILL");
  }
});

test("without root, `up` starts everything else and says plainly why the probe is not running", { timeout: 180_000 }, async (t) => {
  if (process.getuid?.() !== 0) return t.skip("needs root to drop to an unprivileged user");
  const home = tempDir("wirescope-up-nobody-");
  fs.chmodSync(home, 0o777);
  const ports = await stackPorts();
  const p = spawn(
    "setpriv",
    [
      "--reuid=65534", "--regid=65534", "--clear-groups", "--",
      "env", `HOME=${home}`,
      process.execPath, "bin/wirescope.js", "up", "--no-build", "--no-demo",
      ...stackArgs(path.join(home, "ws"), ports),
    ],
    { cwd: REPO_ROOT, stdio: ["ignore", "pipe", "pipe"] },
  );
  let out = "";
  p.stdout.on("data", (d: Buffer) => (out += d.toString()));
  p.stderr.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((r) => p.once("exit", () => r()));
  const pids: number[] = [];
  try {
    await waitFor(() => /^ready: /m.test(out) || p.exitCode !== null, { timeoutMs: 120_000, what: "ready" });
    assert.equal(p.exitCode, null, out);
    assert.match(out, /^probe\s+-\s+-\s+DOWN/m);
    assert.match(out, /^ready: 4 processes running$/m);
    // The last line says that nothing is captured, why, and what to do.
    await waitFor(() => /capture is OFF/.test(out), { timeoutMs: 5000, what: "the capture line" });
    assert.equal(out.trimEnd().split("\n").at(-1), "capture is OFF: eBPF needs root. Fix: run `sudo npm start` (or `sudo npx wirescope up`)");
    // `status` lists the probe as DOWN with the same reason, instead of leaving it out.
    assert.match(probeDown(path.join(home, "ws"), ports), /eBPF needs root; fix: run `sudo npm start`/);
    for (const m of out.matchAll(/^(nats-server|influxd|parser|aggregator)\s+(\d+)\s/gm)) pids.push(Number(m[2]));
    assert.equal(pids.length, 4);
    for (const c of ["parser", "aggregator"] as const) {
      assert.equal((await checkHealth(`127.0.0.1:${ports[c]}`, "", 5000)).status, ServingStatus.SERVING, c);
    }
    process.kill(p.pid!, "SIGINT"); // setpriv execs: this is `up` itself
    await exited;
    await waitFor(() => pids.every((pid) => !pidAlive(pid)), { timeoutMs: 30_000, what: "children to stop" });
  } finally {
    for (const pid of [...pids, p.pid!]) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone
      }
    }
  }
});

test("as root, a probe that cannot start: the last line says capture is OFF with the probe's own reason, status lists it DOWN", { timeout: 180_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  // Another probe holds the single-instance lock: in a private mount namespace whose /run is a
  // temp dir, so that no real probe on this machine is disturbed.
  const dataDir = tempDir("wirescope-up-locked-");
  const ports = await stackPorts();
  const p = spawn(
    ...privateRun(["flock", "/run/wirescope-probe.lock", process.execPath, "bin/wirescope.js", "up", "--no-install", "--no-build", "--no-demo", ...stackArgs(dataDir, ports)]),
    { cwd: REPO_ROOT, detached: true, stdio: ["ignore", "pipe", "pipe"] },
  );
  let out = "";
  p.stdout.on("data", (d: Buffer) => (out += d.toString()));
  p.stderr.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((r) => p.once("exit", () => r()));
  const pids: number[] = [];
  try {
    await waitFor(() => /^capture is OFF/m.test(out) || p.exitCode !== null, { timeoutMs: 150_000, what: "the capture line" });
    assert.equal(p.exitCode, null, out);
    assert.match(out, /^probe\s+-\s+-\s+DOWN/m);
    assert.match(out, /^ready: 4 processes running$/m);
    assert.match(out.trimEnd().split("\n").at(-1)!, /^capture is OFF: the probe failed to start: probe exited during startup: eBPF unavailable: another wirescope probe is already running on this host .*\. Fix: see /);
    for (const m of out.matchAll(/^(nats-server|influxd|parser|aggregator)\s+(\d+)\s/gm)) pids.push(Number(m[2]));
    assert.equal(pids.length, 4, out);
    assert.match(probeDown(dataDir, ports), /another wirescope probe is already running/);
    process.kill(-p.pid!, "SIGINT");
    await exited;
    await waitFor(() => pids.every((pid) => !pidAlive(pid)), { timeoutMs: 30_000, what: "children to stop" });
  } finally {
    try {
      process.kill(-p.pid!, "SIGKILL");
    } catch {
      // group gone
    }
    for (const pid of pids) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone
      }
    }
  }
});

test("the parent gone and its output closed: `up` still stops every child (no EPIPE crash)", { timeout: 180_000 }, async () => {
  const dataDir = tempDir("wirescope-up-");
  const pick = portPicker();
  const args = [
    "bin/wirescope.js", "up", "--no-install", "--no-build", "--no-probe", "--no-demo",
    "--data-dir", dataDir,
    "--nats-url", `nats://127.0.0.1:${await pick()}`,
    "--influx-url", `http://127.0.0.1:${await pick()}`,
    "--parser-port", String(await pick()),
    "--aggregator-port", String(await pick()),
  ];
  // A shell between the test and `up`, as `npm start` has: killing it re-parents `up`, and the
  // pipes it wrote to lose their reader.
  const quoted = [process.execPath, ...args].map((a) => `'${a}'`).join(" ");
  const sh = spawn("bash", ["-c", `${quoted}; true`], { cwd: REPO_ROOT, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  sh.stdout.on("data", (d: Buffer) => (out += d.toString()));
  sh.stderr.on("data", (d: Buffer) => (out += d.toString()));
  let pids: number[] = [];
  let upPid = 0;
  try {
    await waitFor(() => /^ready: /m.test(out) || sh.exitCode !== null, { timeoutMs: 120_000, what: "ready" });
    assert.equal(sh.exitCode, null, out);
    pids = [...out.matchAll(/^(nats-server|influxd|parser|aggregator)\s+(\d+)\s/gm)].map((m) => Number(m[2]));
    assert.equal(pids.length, 4, out);
    upPid = Number(spawnSync("pgrep", ["-P", String(sh.pid)], { encoding: "utf8" }).stdout.trim().split("\n")[0]);
    assert.ok(upPid > 0, "up's pid");
    sh.stdout.destroy();
    sh.stderr.destroy();
    sh.kill("SIGKILL");
    await waitFor(() => !pidAlive(upPid) && pids.every((pid) => !pidAlive(pid)), { timeoutMs: 60_000, what: "up and its children to stop" });
  } finally {
    for (const pid of [upPid, ...pids]) {
      try {
        if (pid > 0) process.kill(pid, "SIGKILL");
      } catch {
        // gone
      }
    }
  }
});
