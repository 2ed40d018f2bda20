// Connection identity and filtering on real traffic: fd reuse gives a new identity; connections
// open before the probe started are picked up with their role inferred; denied processes never
// appear; runtime filter changes take effect; one probe per host; clear errors without root.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { EbpfSource, EMPTY_FILTER, NativeProbe, ProbeError } from "@wirescope/probe";
import { REPO_ROOT, tempDir, waitFor } from "./support/index.js";
import { bpfAvailable, CollectingProbe, runChild, serverChild, assemble } from "./probe-support.js";

const ECHO_SERVER = `
import net from "node:net";
const srv = net.createServer((s) => s.on("data", (d) => s.write(d)));
srv.listen(0, "127.0.0.1", () => console.log("PORT " + srv.address().port));
`;

// Waits for a trigger file (argv[3]) before each step, so the test can act between steps.
const WAIT = `
import fs from "node:fs";
const waitFile = async (f) => { while (!fs.existsSync(f)) await new Promise((r) => setTimeout(r, 10)); };
`;

function exchange(msg: string) {
  return `await new Promise((resolve) => {
  const s = net.connect(port, "127.0.0.1", () => { console.log("CONN " + s.localPort + " " + s._handle.fd); s.write(${JSON.stringify(msg)}); });
  let got = 0;
  s.on("data", (d) => { got += d.length; if (got >= ${msg.length}) s.end(); });
  s.on("close", resolve);
});`;
}

test("probe: fd reuse gives a new connection identity; each connection keeps its own bytes", { timeout: 60_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  const probe = new CollectingProbe();
  t.after(() => probe.stop());
  const { port } = await serverChild(t, "echo", ECHO_SERVER);
  const client = await runChild("reuse", `import net from "node:net";\nconst port = Number(process.argv[2]);\n${exchange("first connection")}\n${exchange("second one")}\nconsole.log("DONE");`, [String(port)]);
  t.after(() => client.kill());
  await client.waitLine(/^DONE/);
  const conns = client.lines.filter((l) => l.startsWith("CONN ")).map((l) => l.split(" ").map(Number));
  assert.equal(conns.length, 2);
  assert.equal(conns[0][2], conns[1][2], "the kernel reused the fd number");
  await waitFor(() => probe.find((o) => o.tgid === client.pid).filter(([, v]) => v.close).length === 2, { timeoutMs: 10_000, intervalMs: 20, what: "both connections closed" });
  const seen = probe.find((o) => o.tgid === client.pid);
  assert.equal(seen.length, 2);
  assert.notEqual(seen[0][0], seen[1][0], "distinct connection keys");
  assert.equal(seen[0][1].open!.fd, seen[1][1].open!.fd);
  const byPort = new Map(seen.map(([, v]) => [v.open!.localPort, v]));
  assert.equal(assemble(byPort.get(conns[0][1])!.data[1]).bytes.toString(), "first connection");
  assert.equal(assemble(byPort.get(conns[1][1])!.data[1]).bytes.toString(), "second one");
  for (const [, v] of seen) assert.equal(Number(v.close!.sentBytes), assemble(v.data[1]).bytes.length);
});

test("probe: connections open before the probe started are picked up with their role inferred", { timeout: 60_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  const dir = tempDir("wirescope-pre-");
  const trigger = path.join(dir, "go");
  const { server, port } = await serverChild(t, "echo", ECHO_SERVER);
  const client = await runChild("early", `import net from "node:net";${WAIT}
const s = net.connect(${port}, "127.0.0.1", () => { s.write("before the probe"); });
s.once("data", async () => {
  console.log("READY " + s.localPort);
  await waitFile(${JSON.stringify(trigger)});
  s.write("after the probe started");
  let got = 0;
  s.on("data", (d) => { got += d.length; if (got >= 23) { s.end(); } });
});
s.on("close", () => console.log("DONE"));
`);
  t.after(() => client.kill());
  const localPort = Number((await client.waitLine(/^READY (\d+)/))[1]);
  const probe = new CollectingProbe();
  t.after(() => probe.stop());
  fs.writeFileSync(trigger, "");
  await client.waitLine(/^DONE/);
  await waitFor(() =>
    probe.find((o) => o.tgid === client.pid && o.localPort === localPort).length === 1 &&
    probe.find((o) => o.tgid === server.pid && o.remotePort === localPort).length === 1 &&
    assemble(probe.find((o) => o.tgid === server.pid && o.remotePort === localPort)[0][1].data[1]).bytes.length >= 23, { timeoutMs: 10_000, intervalMs: 20, what: "both pre-existing sides seen" });
  const [, cv] = probe.find((o) => o.tgid === client.pid && o.localPort === localPort)[0];
  const [, sv] = probe.find((o) => o.tgid === server.pid && o.remotePort === localPort)[0];
  assert.equal(cv.open!.inferred, true);
  assert.equal(cv.open!.role, 1, "client inferred: the remote port is listening");
  assert.equal(cv.open!.remotePort, port);
  assert.equal(sv.open!.inferred, true);
  assert.equal(sv.open!.role, 2, "server inferred: its local port is listening");
  assert.equal(assemble(cv.data[1]).bytes.toString(), "after the probe started");
  assert.equal(assemble(sv.data[2]).bytes.toString(), "after the probe started");
  assert.equal(assemble(sv.data[1]).bytes.toString(), "after the probe started");
});

test("probe: denied processes never appear; runtime filter changes take effect", { timeout: 60_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  const dir = tempDir("wirescope-filter-");
  const probe = new CollectingProbe({ filter: { allowPids: [], denyPids: [], allowPorts: [], denyPorts: [], allowComms: [], denyComms: ["wsdenied"], allowCgroups: [], denyCgroups: [] } });
  t.after(() => probe.stop());
  const { port } = await serverChild(t, "echo", ECHO_SERVER);
  const steps = [1, 2, 3].map((i) => path.join(dir, `step${i}`));
  const talker = (title: string) => `import net from "node:net";${WAIT}
process.title = ${JSON.stringify(title)};
const port = Number(process.argv[2]);
console.log("UP");
for (const f of ${JSON.stringify(steps)}) {
  await waitFile(f);
  ${exchange("ping")}
  console.log("STEP " + f);
}
`;
  const denied = await runChild("denied", talker("wsdenied"), [String(port)]);
  const a = await runChild("a", talker("wsa"), [String(port)]);
  const b = await runChild("b", talker("wsb"), [String(port)]);
  t.after(() => (denied.kill(), a.kill(), b.kill()));
  await Promise.all([denied, a, b].map((c) => c.waitLine(/^UP/)));
  const count = (pid: number) => probe.find((o) => o.tgid === pid).length;
  const step = async (i: number) => {
    fs.writeFileSync(steps[i], "");
    await Promise.all([denied, a, b].map((c) => c.waitLine(new RegExp(`^STEP ${steps[i]}$`))));
  };

  // step 1: the comm deny list set at start
  await step(0);
  await waitFor(() => count(a.pid) === 1 && count(b.pid) === 1, { timeoutMs: 10_000, intervalMs: 20, what: "a and b seen" });
  // step 2: at runtime, allow only b's pid
  probe.source.setFilter({ allowPids: [b.pid], denyPids: [], allowPorts: [], denyPorts: [], allowComms: [], denyComms: ["wsdenied"], allowCgroups: [], denyCgroups: [] });
  await step(1);
  await waitFor(() => count(b.pid) === 2, { timeoutMs: 10_000, intervalMs: 20, what: "b's second connection" });
  // step 3: at runtime, deny b's pid, lift the allow list
  probe.source.setFilter({ allowPids: [], denyPids: [b.pid], allowPorts: [], denyPorts: [], allowComms: [], denyComms: ["wsdenied"], allowCgroups: [], denyCgroups: [] });
  await step(2);
  await waitFor(() => count(a.pid) === 2, { timeoutMs: 10_000, intervalMs: 20, what: "a's third connection" });
  // let anything in flight arrive, then check what never may
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(count(denied.pid), 0, "the comm-denied process never appears");
  assert.equal(count(a.pid), 2, "a: steps 1 and 3, not step 2 (not on the allow list)");
  assert.equal(count(b.pid), 2, "b: steps 1 and 2, not step 3 (denied)");
  assert.equal(probe.find((o) => o.tgid === process.pid).length, 0, "the probe's own process never appears");
  assert.equal(probe.find((o) => o.comm === "wsdenied").length, 0);
});

test("probe: a second probe on the same host refuses with a clear message", { timeout: 30_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  const lock = path.join(tempDir("wirescope-lock-"), "probe.lock");
  const first = new NativeProbe({ lockPath: lock, mountTracefs: true }, () => {});
  t.after(() => first.close());
  assert.throws(() => new NativeProbe({ lockPath: lock }, () => {}), (e: unknown) => {
    assert.ok(e instanceof ProbeError);
    assert.equal(e.code, "ELOCKED");
    assert.match(e.message, new RegExp(`another wirescope probe is already running on this host \\(pid ${process.pid}`));
    return true;
  });
  first.close();
  const again = new NativeProbe({ lockPath: lock }, () => {});
  again.close();
});

test("probe: without root, opening says so and what to do", { timeout: 30_000 }, (t) => {
  if (process.getuid?.() !== 0) {
    t.skip("needs root to start an unprivileged child");
    return;
  }
  const script = `import { NativeProbe } from ${JSON.stringify(path.join(REPO_ROOT, "services/probe/dist/native.js"))};
try { new NativeProbe({}, () => {}); console.log("OPENED"); } catch (e) { console.log(e.code + " " + e.message); }`;
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], { uid: 65534, gid: 65534, encoding: "utf8", timeout: 20_000 });
  assert.match(r.stdout, /^EPERM eBPF needs root .*run as root.*--source pcap FILE/m, r.stderr);
});

test("probe: a probe process that is killed leaves nothing attached, and its lock is free again", { timeout: 60_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  const lock = path.join(tempDir("wirescope-crash-"), "probe.lock");
  const child = await runChild("doomed-probe", `import fs from "node:fs";
import { NativeProbe } from ${JSON.stringify(path.join(REPO_ROOT, "services/probe/dist/native.js"))};
// Held for the process's life: a NativeProbe the GC collects closes itself (its finalizer
// detaches everything), so an unreferenced one is gone at the first full GC while the process
// lives on. A full GC runs before the listing (after this module's body, and its finalizers
// after it), so a probe left collectable shows here every time, not when the GC happens to run.
globalThis.probe = new NativeProbe({ lockPath: ${JSON.stringify(lock)}, mountTracefs: true }, () => {});
setTimeout(() => {
  globalThis.gc();
  setTimeout(() => {
    const ids = [];
    for (const fd of fs.readdirSync("/proc/self/fdinfo")) {
      try { const m = /prog_id:\\s+(\\d+)/.exec(fs.readFileSync("/proc/self/fdinfo/" + fd, "utf8")); if (m) ids.push(m[1]); } catch {}
    }
    console.log("PROGS " + [...new Set(ids)].join(","));
  }, 100);
}, 0);
setInterval(() => {}, 1000);
`, [], { nodeArgs: ["--expose-gc"] });
  t.after(() => child.kill());
  const ids = (await child.waitLine(/^PROGS (.*)/, 30_000))[1].split(",").filter(Boolean);
  assert.ok(ids.length >= 20, `programs held by the child: ${ids.length}`);
  const alive = (id: string) => spawnSync("bpftool", ["prog", "show", "id", id], { encoding: "utf8" }).status === 0;
  assert.ok(ids.every(alive), "attached while the process lives");
  child.kill(); // SIGKILL: no cleanup code runs
  await child.exited;
  const deadline = Date.now() + 10_000;
  while (ids.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(ids.filter(alive), [], "every program detached and freed by the kernel");
  const next = new NativeProbe({ lockPath: lock }, () => {});
  next.close();
});

test("probe: IPv6 connections, and a dual-stack server's end of an IPv4 connection, carry the right addresses", { timeout: 60_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  const probe = new CollectingProbe();
  t.after(() => probe.stop());
  const { server, port } = await serverChild(t, "dual-stack", `
import net from "node:net";
const srv = net.createServer((s) => s.on("data", (d) => s.write(d)));
srv.listen(0, () => console.log("PORT " + srv.address().port)); // "::", dual stack
`);
  const client = await runChild("two-families", `import net from "node:net";
const port = Number(process.argv[2]);
for (const host of ["127.0.0.1", "::1"]) {
  await new Promise((resolve) => {
    const s = net.connect(port, host, () => { console.log("CONN " + host + " " + s.localPort); s.write("hi " + host); });
    s.on("data", () => s.end());
    s.on("close", resolve);
  });
}
console.log("DONE");`, [String(port)]);
  t.after(() => client.kill());
  await client.waitLine(/^DONE/);
  const local = Object.fromEntries(client.lines.filter((l) => l.startsWith("CONN ")).map((l) => [l.split(" ")[1], Number(l.split(" ")[2])]));
  await waitFor(() => probe.find((o) => o.tgid === server.pid || o.tgid === client.pid).length === 4, { timeoutMs: 10_000, intervalMs: 20, what: "four sockets" });
  const v4s = probe.find((o) => o.tgid === server.pid && o.remotePort === local["127.0.0.1"])[0][1].open!;
  assert.equal(v4s.family, 4);
  assert.equal(v4s.localAddress, "127.0.0.1");
  assert.equal(v4s.remoteAddress, "127.0.0.1");
  assert.equal(v4s.role, 2);
  const v6c = probe.find((o) => o.tgid === client.pid && o.localPort === local["::1"])[0][1];
  await waitFor(() => assemble(v6c.data[1]).bytes.length >= 6, { timeoutMs: 10_000, intervalMs: 20, what: "the IPv6 client's bytes" });
  assert.equal(v6c.open!.family, 6);
  assert.equal(v6c.open!.localAddress, "::1");
  assert.equal(v6c.open!.remoteAddress, "::1");
  assert.equal(v6c.open!.remotePort, port);
  assert.equal(assemble(v6c.data[1]).bytes.toString(), "hi ::1");
});

test("probe: dup2 of a socket onto an fd that was a pipe (inetd style) is traced as that socket", { timeout: 60_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  const probe = new CollectingProbe({ listenRefreshMs: 100 });
  t.after(() => probe.stop());
  const { port } = await serverChild(t, "echo", ECHO_SERVER);
  await new Promise((r) => setTimeout(r, 400)); // the listening-port refresh sees the new server
  // python3: fd 9 is first a pipe (written to, so the probe caches it as "not a socket"), then a
  // TCP socket dup2'ed over it; the bytes written to fd 9 afterwards must be captured
  const py = `
import os, socket, sys
r, w = os.pipe()
os.dup2(w, 9)
os.write(9, b"into the pipe")
s = socket.create_connection(("127.0.0.1", ${port}))
os.dup2(s.fileno(), 9)
os.write(9, b"through fd 9")
print("LOCAL", s.getsockname()[1], flush=True)
got = os.read(9, 100)
os.close(9)
s.close()
`;
  const r = spawnSync("python3", ["-c", py], { encoding: "utf8", timeout: 20_000 });
  assert.equal(r.status, 0, r.stderr);
  const localPort = Number(/LOCAL (\d+)/.exec(r.stdout)?.[1]);
  // the socket is seen once through its original fd (connect) and once through fd 9 (first use)
  const onFd9 = () => probe.find((o) => o.localPort === localPort && o.remotePort === port && o.fd === 9);
  await waitFor(() => onFd9().length === 1 && assemble(onFd9()[0][1].data[1]).bytes.length >= 12, { timeoutMs: 10_000, intervalMs: 20, what: "the dup2'ed socket's bytes" });
  const [, v] = onFd9()[0];
  assert.equal(v.open!.inferred, true);
  assert.equal(v.open!.role, 1, "client: the remote port is listening");
  assert.equal(assemble(v.data[1]).bytes.toString(), "through fd 9");
  assert.equal(v.open!.comm, "python3");
});

test("probe: without tracefs it says how to mount it (and --mount-tracefs does); without BTF it says so", { timeout: 60_000 }, (t) => {
  if (!bpfAvailable(t)) return;
  // a private mount namespace: unmounting tracefs or hiding BTF there touches nothing else
  const open = (opts: string) => `import { NativeProbe } from ${JSON.stringify(path.join(REPO_ROOT, "services/probe/dist/native.js"))};
try { const p = new NativeProbe(${opts}, () => {}); console.log("OPENED " + p.programs.length); p.close(); } catch (e) { console.log(e.code + " " + e.message); }`;
  const inNs = (setup: string, script: string) => {
    const r = spawnSync("unshare", ["-m", "--propagation", "private", "sh", "-c", `${setup}; exec "$0" --input-type=module -e "$1"`, process.execPath, script], { encoding: "utf8", timeout: 30_000 });
    return r.stdout + r.stderr;
  };
  const noTracefs = "umount /sys/kernel/tracing 2>/dev/null; umount /sys/kernel/debug 2>/dev/null; true";
  assert.match(inNs(noTracefs, open("{}")), /^ENOTRACEFS tracefs is not mounted .*mount -t tracefs nodev \/sys\/kernel\/tracing.*--mount-tracefs/m);
  assert.match(inNs(noTracefs, open("{ mountTracefs: true }")), /^OPENED \d+/m);
  assert.match(inNs("mount -t tmpfs none /sys/kernel/btf", open("{ mountTracefs: true }")), /^ENOBTF this kernel has no BTF .*CONFIG_DEBUG_INFO_BTF=y/m);
});

/** The context switches of this process's thread named `name` (0 while there is none). */
function threadSwitches(name: string): number | undefined {
  for (const tid of fs.readdirSync("/proc/self/task")) {
    try {
      if (fs.readFileSync(`/proc/self/task/${tid}/comm`, "utf8").trim() !== name) continue;
      const s = fs.readFileSync(`/proc/self/task/${tid}/status`, "utf8");
      return Number(/\nvoluntary_ctxt_switches:\s+(\d+)/.exec(s)![1]) + Number(/nonvoluntary_ctxt_switches:\s+(\d+)/.exec(s)![1]);
    } catch {
      // the thread ended meanwhile
    }
  }
  return undefined;
}

test("probe: an idle poll thread wakes once per batch-ms, not every 10 ms", { timeout: 60_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  // only a port nobody uses is traced: no event wakes the poller, its timeout alone does
  const probe = new CollectingProbe({ batchMs: 100, filter: { ...EMPTY_FILTER, allowPorts: [9] } });
  t.after(() => probe.stop());
  await waitFor(() => threadSwitches("ws-poll") !== undefined, { timeoutMs: 20_000, intervalMs: 50, what: "the poll thread" });
  await new Promise((r) => setTimeout(r, 300));
  const before = threadSwitches("ws-poll")!;
  await new Promise((r) => setTimeout(r, 3000));
  const wakeups = threadSwitches("ws-poll")! - before;
  // 3 s at one wake-up per 100 ms is 30; a 10 ms cap made 300
  assert.ok(wakeups <= 60, `${wakeups} wake-ups of an idle poll thread in 3 s`);
});

test("probe: only a process's first connection wakes the consumer at once; the later ones travel with the data", { timeout: 60_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  // a poll thread woken, and a batch sent to JS, for every new connection were most of the
  // probe's cost per connection at hundreds of connections a second: the kernel flags the one
  // open that needs it (user space reads /proc/<pid> while the process exists)
  const probe = new CollectingProbe();
  t.after(() => probe.stop());
  const { server, port } = await serverChild(t, "echo", ECHO_SERVER);
  const n = 40;
  const client = await runChild("many", `import net from "node:net";\nconst port = Number(process.argv[2]);\nfor (let i = 0; i < ${n}; i++) {\n${exchange("ping")}\n}\nconsole.log("DONE");`, [String(port)]);
  t.after(() => client.kill());
  await client.waitLine(/^DONE/);
  const ends = (pid: number) => probe.find((o) => o.tgid === pid && o.remotePort !== 0);
  await waitFor(() => ends(client.pid).filter(([, v]) => v.close).length === n && ends(server.pid).filter(([, v]) => v.close).length === n, { timeoutMs: 10_000, intervalMs: 20, what: "every connection closed at both ends" });
  for (const [who, pid] of [["client", client.pid], ["server", server.pid]] as const) {
    const opens = ends(pid).map(([, v]) => v.open!);
    assert.equal(opens.length, n, `${who}: every connection seen`);
    const first = opens.filter((o) => o.firstOfProcess);
    assert.equal(first.length, 1, `${who}: one open of ${n} woke the consumer`);
    assert.equal(first[0]!.tsMono, opens.map((o) => o.tsMono).reduce((a, b) => (b < a ? b : a)), `${who}: the first one`);
  }
});

// args: port, marker. Sends the marker, prints ECHOED once it is back, then stays connected.
const MARKER_CLIENT = `
import net from "node:net";
const s = net.connect(Number(process.argv[2]), "127.0.0.1", () => s.write(process.argv[3]));
s.on("data", () => console.log("ECHOED"));
setTimeout(() => s.end(), 30_000);
`;

test("probe: a stop hands over what was captured up to it: the last batch reaches the handler, nothing counted undelivered", { timeout: 60_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  const { port } = await serverChild(t, "echo-server", ECHO_SERVER);
  const marker = `last-words-${process.pid}-${Date.now()}`;
  const payloads: Buffer[] = [];
  // batches go out every 10 s: the marker's events wait in the poller's batch (or the ring) until the stop
  const src = new EbpfSource({ mountTracefs: true, batchMs: 10_000, filter: { ...EMPTY_FILTER, allowPorts: [port] } });
  const ac = new AbortController();
  const done = src.run((b) => {
    for (const d of b.data) payloads.push(Buffer.from(d.payload));
  }, ac.signal);
  t.after(() => (ac.abort(), done));
  const client = await runChild("marker-client", MARKER_CLIENT, [String(port), marker]);
  t.after(() => client.kill());
  await client.waitLine(/^ECHOED/);
  ac.abort();
  await done;
  const seen = Buffer.concat(payloads).toString("latin1").split(marker).length - 1;
  // sent and received by the client, received and sent by the echo server
  assert.equal(seen, 4, `the marker in ${payloads.length} data events at the stop`);
  assert.equal(src.stats().drops["user.no_handler"], 0, "no batch arrived after the handler was gone");
});
