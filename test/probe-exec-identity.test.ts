// A process that runs exec is another program from then on: a launcher that execs its server, a
// shell that execs node. The kernel tells the probe (WS_EV_PROC_EXEC) and the connections opened
// after the exec carry the new program's identity (name, exe, cmdline), those before it the old
// one. Real probe service with its kernel programs, real nats-server, one pid running bash, then
// python3, then python3 again with another command line (the name alone does not change there).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import { connect } from "@nats-io/transport-node";
import { ConnKind, type ConnEvent } from "@wirescope/wire";
import { startNats, waitFor } from "./support/index.js";
import { bpfAvailable, collectConns, serverChild, servingProbe } from "./probe-support.js";

const ECHO_SERVER = `
import net from "node:net";
const srv = net.createServer((s) => s.on("data", (d) => s.write(d)));
srv.listen(0, "127.0.0.1", () => console.log("PORT " + srv.address().port));
`;

// each stage: one exchange with the echo server, then a line on stdin (the test sends it once the
// probe has published the connection, so it named the program that made it), then the next
// program in the same pid
const STAGE_B = `import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1]))); s.sendall(b"B"); s.recv(1); s.close()
print("B", flush=True); sys.stdin.readline()`;
const STAGE_A = `import os, socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1]))); s.sendall(b"A"); s.recv(1); s.close()
print("A", flush=True); sys.stdin.readline()
os.execv(sys.executable, [sys.executable, "-c", sys.argv[2], sys.argv[1]])`;
const SHELL = `exec 3<>/dev/tcp/127.0.0.1/$0; printf S >&3; read -n 1 -u 3 r; exec 3>&-; echo S; read -r _; exec python3 -c "$1" "$0" "$2"`;

test("probe: connections after an exec carry the new program's identity, those before it the old one", { timeout: 90_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  const nats = await startNats({ jetstream: true });
  t.after(() => nats.stop());
  const url = `nats://127.0.0.1:${nats.port}`;
  const { ctl } = await servingProbe(t, url, ["--batch-ms", "10", "--sample-fraction", "1"]); // every connection, whatever the machine's load
  const nc = await connect({ servers: url });
  t.after(() => nc.close());
  const conns: ConnEvent[] = [];
  await collectConns(nc, conns);

  const port = String((await serverChild(t, "echo", ECHO_SERVER)).port);

  const child = spawn("bash", ["-c", SHELL, port, STAGE_A, STAGE_B], { stdio: ["pipe", "pipe", "inherit"] });
  const exited = new Promise((r) => child.once("exit", r));
  // (hooks run in order: this one before the kill below)
  t.after(() => {
    // where the child stands if it never got through (read from /proc while it lives)
    const read = (f: string) => { try { return fs.readFileSync(`/proc/${child.pid}/${f}`, "utf8").replace(/\0/g, " ").trim(); } catch { return "-"; } };
    if (child.exitCode === null && child.signalCode === null) t.diagnostic(`child: ${read("comm")} wchan ${read("wchan")} syscall ${read("syscall")}`);
  });
  t.after(async () => {
    child.kill("SIGKILL");
    await exited;
  });
  let out = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  // (bash moves its /dev/tcp socket onto fd 3: that fd is seen as one more, inferred, connection)
  const opens = () => conns.filter((c) => c.process?.pid === child.pid && c.kind === ConnKind.OPEN && c.remotePort === Number(port) && !c.inferred);
  t.after(() => {
    for (const c of conns.filter((x) => x.process?.pid === child.pid)) t.diagnostic(JSON.stringify({ kind: c.kind, ts: String(c.timestampNs), lp: c.localPort, rp: c.remotePort, name: c.process?.name, inferred: c.inferred }));
  });
  for (const n of [1, 2, 3]) {
    await waitFor(() => opens().length === n, { timeoutMs: 30_000, intervalMs: 20, what: `connection ${n} of pid ${child.pid} (stdout ${JSON.stringify(out)})` });
    child.stdin.write("\n");
  }
  await exited;
  assert.equal(out, "S\nA\nB\n", "every stage talked to the server");
  const [shell, a, b] = opens().sort((x, y) => (x.timestampNs < y.timestampNs ? -1 : 1)).map((c) => c.process!);
  assert.equal(shell!.name, "bash");
  assert.equal(shell!.exe, fs.realpathSync("/usr/bin/bash"));
  assert.match(shell!.cmdline, /^bash -c exec 3<>/);
  assert.equal(a!.name, "python3", "after the shell's exec: the new program's name");
  assert.match(a!.exe, /python3/);
  // (each command line holds the next stage's code as an argument: told apart by how it starts)
  assert.match(a!.cmdline, /^\S*python3 -c import os, socket/);
  assert.equal(b!.name, "python3");
  assert.equal(b!.exe, a!.exe);
  assert.match(b!.cmdline, /^\S*python3 -c import socket, sys\n/, "after python's own exec: same name, the new command line");
  // (status counters are taken once a second)
  await waitFor(async () => ((await ctl.status({})).counters["processes_exec_refreshed"] ?? 0) >= 2, { timeoutMs: 5_000, intervalMs: 100, what: "two identities read again after exec" });
});
