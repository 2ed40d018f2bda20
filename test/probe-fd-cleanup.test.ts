// What the kernel closes without close(2) the probe forgets too (bpf/wirescope.bpf.c, "process
// lifecycle"): at a process's exit every open fd of its table (read from the table's bitmap of open
// fds, a word of 64 at a time), at exec the close-on-exec fds. A python child holds 1,000 TCP
// connections to this process (not traced: the probe's own pid), one more connection on an fd at
// the top of a table grown to its hard limit, and a file it read; the probe runs in this process and
// its per-fd maps are read with bpftool.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { waitFor } from "./support/index.js";
import { bpfAvailable, CollectingProbe, probeMapKeys } from "./probe-support.js";

const CHILD = `
import os, resource, socket, sys
port, mode = int(sys.argv[1]), sys.argv[2]
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(1000)]  # close-on-exec
for s in socks:
    s.send(b"x")
keep = socket.create_connection(("127.0.0.1", port))
keep.set_inheritable(True)  # kept across exec
keep.send(b"k")
high = hard - 1
os.dup2(socks[0].fileno(), high, inheritable=False)  # the table grows to its limit
hs = socket.socket(fileno=high)  # held: a dropped object would close it
hs.send(b"h")
f = open("/etc/hostname", "rb")
f.read()
print("FDS", keep.fileno(), high, f.fileno(), *[s.fileno() for s in socks], flush=True)
sys.stdin.readline()
if mode == "exec":
    os.execv("/bin/sleep", ["sleep", "60"])
`;

// the peer: a process of its own, so that this one's JS thread is free to take the probe's events
const SERVER = `
import resource, socket
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
ls = socket.socket(); ls.bind(("127.0.0.1", 0)); ls.listen(4096)
print("PORT", ls.getsockname()[1], flush=True)
conns = []
while True:
    conns.append(ls.accept()[0])
`;

const fdOf = (k: Buffer) => k.readUInt32LE(4);
const tgidOf = (k: Buffer) => k.readUInt32LE(0);

test("probe: a process's exit forgets every open fd (1,002 sockets, one at the top of a 20,000-fd table, a file); exec forgets the close-on-exec ones and keeps the others", { timeout: 120_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  const server = spawn("python3", ["-c", SERVER], { stdio: ["ignore", "pipe", "inherit"] });
  t.after(() => server.kill("SIGKILL"));
  let serverOut = "";
  server.stdout!.on("data", (d: Buffer) => (serverOut += d));
  await waitFor(() => /PORT \d+/.test(serverOut), { timeoutMs: 30_000, intervalMs: 50, what: "the server" });
  const port = Number(/PORT (\d+)/.exec(serverOut)![1]);
  // events of this port only: the whole host's would fill this thread's queue on a busy machine
  const probe = new CollectingProbe({ tls: false, filter: { allowPids: [], denyPids: [], allowPorts: [port], denyPorts: [], allowComms: [], denyComms: [], allowCgroups: [], denyCgroups: [] } });
  t.after(() => probe.stop());

  for (const mode of ["exit", "exec"] as const) {
    const child = spawn("python3", ["-c", CHILD, String(port), mode], { stdio: ["pipe", "pipe", "inherit"] });
    t.after(() => child.kill("SIGKILL"));
    let out = "";
    child.stdout!.on("data", (d: Buffer) => (out += d));
    await waitFor(() => /FDS [\d ]+\n/.test(out), { timeoutMs: 60_000, intervalMs: 50, what: `${mode}: the child's connections` });
    const [keep, high, file, ...held1000] = /FDS ([\d ]+)/.exec(out)![1]!.trim().split(" ").map(Number) as [number, number, number, ...number[]];
    const pid = child.pid!;
    const entries = () => {
      const m = probeMapKeys(process.pid, ["conn_by_fd", "nonsock_fds"]);
      const fds = (name: string) => new Set(m.get(name)!.filter((k) => tgidOf(k) === pid).map(fdOf));
      return { conns: fds("conn_by_fd"), nonsock: fds("nonsock_fds") };
    };
    const held = entries();
    const sockets = [...held1000, keep, high];
    assert.deepEqual(sockets.filter((fd) => !held.conns.has(fd)), [], `${mode}: every connection tracked`);
    assert.ok(held.nonsock.has(file), `${mode}: the file is known not to be a socket`);

    child.stdin!.write("go\n");
    const closed = () => probe.find((o) => o.tgid === pid).filter(([, v]) => v.close).length;
    const state = () => `${mode}: ${probe.find((o) => o.tgid === pid).length} opens, ${closed()} closes, drops ${JSON.stringify(Object.entries(probe.source.stats().drops).filter(([, v]) => v))}, entries ${JSON.stringify(Object.entries(entries()).map(([k, v]) => [k, v.size]))}`;
    // the close events: every one, unless this thread fell behind the probe on a busy machine and
    // the loss was counted (user.js_behind); the maps below are the kernel's side, exact either way
    const until = async (n: number, what: string) => {
      const behind = () => probe.source.stats().drops["user.js_behind"] ?? 0;
      await waitFor(() => closed() === n, { timeoutMs: 20_000, intervalMs: 100, what }).catch((e) => {
        if (!behind()) throw new Error(`${(e as Error).message}: ${state()}`);
        t.diagnostic(`${what}: ${state()} (events lost, counted)`);
      });
    };
    if (mode === "exit") {
      await new Promise((r) => child.once("exit", r));
      // each connection got its close at the exit (read before the maps: bpftool blocks this thread)
      await until(sockets.length, "a close for every connection");
      const after = entries();
      assert.deepEqual([...after.conns], [], "exit: no connection entry left");
      assert.deepEqual([...after.nonsock], [], "exit: no non-socket entry left");
    } else {
      // sleep runs with the same pid: only the inheritable connection is left of the python's
      await until(sockets.length - 1, "a close for every close-on-exec connection");
      const after = entries();
      assert.deepEqual([...after.conns], [keep], "exec: only the inheritable connection's entry is kept");
      assert.ok(!after.nonsock.has(file), "exec: the close-on-exec file forgotten");
      child.kill("SIGKILL");
      await new Promise((r) => child.once("exit", r));
      await until(sockets.length, "the kept connection's close at exit");
      assert.deepEqual([...entries().conns], [], "exec, then exit: no connection entry left");
    }
  }
});
