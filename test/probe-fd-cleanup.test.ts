// What the kernel closes without close(2) the probe forgets too (bpf/wirescope.bpf.c, "process
// lifecycle"): at a process's exit every open fd of its table (read from the table's bitmap of open
// fds, a word of 64 at a time), at exec the close-on-exec fds. A python child holds 1,000 TCP
// connections to this process (not traced: the probe's own pid), one more connection on an fd at
// the top of a table grown to its hard limit, and a file it read; the probe runs in this process and
// its per-fd maps are read with bpftool.
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { tempDir, waitFor } from "./support/index.js";
import { bpfAvailable, CollectingProbe, probeMapKeys } from "./probe-support.js";
import { selfSigned } from "./tls-support.js";

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

/** The peer (SERVER) started, and a probe in this process that sees only its port. */
async function serverAndProbe(t: TestContext): Promise<{ port: number; probe: CollectingProbe }> {
  const server = spawn("python3", ["-c", SERVER], { stdio: ["ignore", "pipe", "inherit"] });
  t.after(() => server.kill("SIGKILL"));
  let serverOut = "";
  server.stdout!.on("data", (d: Buffer) => (serverOut += d));
  await waitFor(() => /PORT \d+/.test(serverOut), { timeoutMs: 30_000, intervalMs: 50, what: "the server" });
  const port = Number(/PORT (\d+)/.exec(serverOut)![1]);
  // events of this port only: the whole host's would fill this thread's queue on a busy machine
  const probe = new CollectingProbe({ tls: false, filter: { allowPids: [], denyPids: [], allowPorts: [port], denyPorts: [], allowComms: [], denyComms: [], allowCgroups: [], denyCgroups: [] } });
  t.after(() => probe.stop());
  return { port, probe };
}

test("probe: a process's exit forgets every open fd (1,002 sockets, one at the top of a 20,000-fd table, a file); exec forgets the close-on-exec ones and keeps the others", { timeout: 120_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  const { port, probe } = await serverAndProbe(t);

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

// close_range(2) (python's os.closerange) closes a range of fds with no close(2) to trace: the
// probe's sys_exit_close_range walks the range and forgets each fd that no longer holds a file,
// as a close would (its close event, conn_by_fd, nonsock_fds, and through conn_info the TLS
// object's ssl_fds link, copy policy, peer decision, Go call). The child stays alive after it, so
// what is forgotten is close_range's doing, not the exit's.
const RANGE_CHILD = `
import os, socket, ssl, sys
port, tport = int(sys.argv[1]), int(sys.argv[2])
f = open("/etc/hostname", "rb")
f.read()
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
t = ctx.wrap_socket(socket.create_connection(("127.0.0.1", tport)))
t.sendall(b"x"); t.recv(10)
socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(8)]
for s in socks:
    s.send(b"x")
fds = [f.fileno(), t.fileno()] + [s.fileno() for s in socks]
print("FDS", *fds, flush=True)
sys.stdin.readline()
os.closerange(min(fds[:6]), max(fds[:6]) + 1)  # the file, the TLS socket and 4 sockets; the other 4 stay
print("CLOSED", flush=True)
sys.stdin.readline()
`;

const TLS_SERVER = `
import socket, ssl, sys, threading
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); ctx.load_cert_chain(sys.argv[1], sys.argv[2])
ls = socket.socket(); ls.bind(("127.0.0.1", 0)); ls.listen()
print("PORT", ls.getsockname()[1], flush=True)
held = []
while True:
    c = ctx.wrap_socket(ls.accept()[0], server_side=True)
    c.sendall(c.recv(10))
    held.append(c)
`;

test("probe: close_range(2) forgets the fds of its range (4 connections, a TLS one's ssl_fds link, a file) while the process lives, and keeps the others", { timeout: 120_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  const started = (name: string, code: string, args: string[]) => {
    const p = spawn("python3", ["-c", code, ...args], { stdio: ["pipe", "pipe", "inherit"] });
    t.after(() => p.kill("SIGKILL"));
    let out = "";
    p.stdout!.on("data", (d: Buffer) => (out += d));
    const line = (re: RegExp) => waitFor(() => re.exec(out), { timeoutMs: 30_000, intervalMs: 50, what: name });
    return { p, line };
  };
  const tls = selfSigned(tempDir("wirescope-close-range-"));
  // both servers run before the probe: libssl is attached by the scan at start (the child's is the same file)
  const plain = started("the server", SERVER, []);
  const port = Number((await plain.line(/PORT (\d+)/))[1]);
  const tlsServer = started("the TLS server", TLS_SERVER, [tls.cert, tls.key]);
  const tport = Number((await tlsServer.line(/PORT (\d+)/))[1]);
  const probe = new CollectingProbe({ tls: true, filter: { allowPids: [], denyPids: [], allowPorts: [port, tport], denyPorts: [], allowComms: [], denyComms: [], allowCgroups: [], denyCgroups: [] } });
  t.after(() => probe.stop());

  const child = started("the child's connections", RANGE_CHILD, [String(port), String(tport)]);
  const [file, tlsFd, ...socks] = (await child.line(/FDS ([\d ]+)\n/))[1]!.trim().split(" ").map(Number) as [number, number, ...number[]];
  const pid = child.p.pid!;
  const entries = () => {
    const m = probeMapKeys(process.pid, ["conn_by_fd", "nonsock_fds", "ssl_fds"]);
    const of = (name: string) => m.get(name)!.filter((k) => tgidOf(k) === pid);
    return { conns: new Set(of("conn_by_fd").map(fdOf)), nonsock: new Set(of("nonsock_fds").map(fdOf)), ssl: of("ssl_fds").length };
  };
  // the TLS socket is tracked once its plaintext came (its second open)
  await waitFor(() => probe.find((o) => o.tgid === pid && o.tls).length === 1, { timeoutMs: 20_000, intervalMs: 100, what: "the TLS connection's plaintext" });
  const before = entries();
  assert.deepEqual([tlsFd, ...socks].filter((fd) => !before.conns.has(fd)), [], "every connection tracked");
  assert.ok(before.nonsock.has(file), "the file is known not to be a socket");
  assert.equal(before.ssl, 1, "the TLS object is linked to its socket");

  const inRange = [tlsFd, ...socks.slice(0, 4)];
  const kept = socks.slice(4);
  const closedFds = () => probe.find((o) => o.tgid === pid).filter(([, v]) => v.close).map(([, v]) => v.close!.fd).sort((a, b) => a - b);
  child.p.stdin!.write("go\n");
  await child.line(/CLOSED/);
  await waitFor(() => closedFds().length >= inRange.length, { timeoutMs: 20_000, intervalMs: 100, what: "the close events of the range" }).catch(() => {});
  assert.deepEqual(closedFds(), [...inRange].sort((a, b) => a - b), "a close event for each connection of the range, none for the others");
  const after = entries();
  assert.deepEqual([...after.conns].sort((a, b) => a - b), kept, "only the connections outside the range keep their entries");
  assert.ok(!after.nonsock.has(file), "the file of the range forgotten");
  assert.equal(after.ssl, 0, "the TLS object's link went with its connection (SSL_free never ran)");
  assert.equal(child.p.exitCode, null, "all this while the process lives");
});

// close_range(first, last, CLOSE_RANGE_CLOEXEC) (flag 4, Linux 5.11) closes nothing: it marks the
// fds of its range close-on-exec. The probe must keep their entries at that call (the fds still
// hold their sockets and carry traffic) and forget them at the exec that closes them. Python has
// no binding for it (os.closerange closes): the child calls syscall 436 through ctypes. All its
// sockets are made inheritable first, so that only close_range decides which ones an exec closes.
const CLOEXEC_CHILD = `
import ctypes, fcntl, os, socket, sys
port = int(sys.argv[1])
socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(6)]
for s in socks:
    s.set_inheritable(True)
    s.send(b"x")
marked = [s.fileno() for s in socks[:4]]
print("FDS", *[s.fileno() for s in socks], flush=True)
sys.stdin.readline()
libc = ctypes.CDLL(None, use_errno=True)
rc = libc.syscall(436, ctypes.c_uint(min(marked)), ctypes.c_uint(max(marked)), ctypes.c_uint(4))  # SYS_close_range, CLOSE_RANGE_CLOEXEC
assert rc == 0, os.strerror(ctypes.get_errno())
cloexec = [fd for fd in (s.fileno() for s in socks) if fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC]
for s in socks:
    s.send(b"y")  # every fd still holds its socket
print("MARKED", *cloexec, flush=True)
sys.stdin.readline()
os.execv("/bin/sleep", ["sleep", "60"])
`;

test("probe: close_range(CLOSE_RANGE_CLOEXEC) keeps the entries of its range at the call, and the exec that follows forgets exactly those", { timeout: 120_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  const { port, probe } = await serverAndProbe(t);
  const child = spawn("python3", ["-c", CLOEXEC_CHILD, String(port)], { stdio: ["pipe", "pipe", "inherit"] });
  t.after(() => child.kill("SIGKILL"));
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += d));
  await waitFor(() => /FDS [\d ]+\n/.test(out), { timeoutMs: 30_000, intervalMs: 50, what: "the child's connections" });
  const socks = /FDS ([\d ]+)/.exec(out)![1]!.trim().split(" ").map(Number);
  const marked = socks.slice(0, 4);
  const kept = socks.slice(4);
  const pid = child.pid!;
  const conns = () => new Set(probeMapKeys(process.pid, ["conn_by_fd"]).get("conn_by_fd")!.filter((k) => tgidOf(k) === pid).map(fdOf));
  const closedFds = () => probe.find((o) => o.tgid === pid).filter(([, v]) => v.close).map(([, v]) => v.close!.fd).sort((a, b) => a - b);
  await waitFor(() => probe.find((o) => o.tgid === pid).length >= socks.length, { timeoutMs: 20_000, intervalMs: 100, what: "the opens" }).catch(() => {});
  assert.deepEqual(socks.filter((fd) => !conns().has(fd)), [], "every connection tracked");

  child.stdin!.write("go\n");
  await waitFor(() => /MARKED[\d ]*\n/.test(out), { timeoutMs: 20_000, intervalMs: 50, what: "close_range" });
  assert.deepEqual(/MARKED([\d ]*)/.exec(out)![1]!.trim().split(" ").map(Number), marked, "the kernel marked the range close-on-exec");
  // the sends after close_range went through: give the probe the time it takes to see them
  await new Promise((r) => setTimeout(r, 500));
  assert.deepEqual(closedFds(), [], "no close event at close_range(CLOEXEC)");
  assert.deepEqual([...conns()].sort((a, b) => a - b), socks, "every entry kept at close_range(CLOEXEC)");

  child.stdin!.write("exec\n");
  await waitFor(() => closedFds().length >= marked.length, { timeoutMs: 20_000, intervalMs: 100, what: "the close events at exec" }).catch(() => {});
  assert.deepEqual(closedFds(), marked, "a close event at exec for each fd close_range marked, none for the others");
  assert.deepEqual([...conns()].sort((a, b) => a - b), kept, "exec: only the entries of the fds it kept");
  assert.equal(child.exitCode, null, "sleep runs in the same process");
  child.kill("SIGKILL");
  await new Promise((r) => child.once("exit", r));
  await waitFor(() => closedFds().length === socks.length, { timeoutMs: 20_000, intervalMs: 100, what: "the kept connections' closes at exit" }).catch(() => {});
  assert.deepEqual(closedFds(), socks, "the exit closes the rest");
  assert.deepEqual([...conns()], [], "exit: no entry left");
});
