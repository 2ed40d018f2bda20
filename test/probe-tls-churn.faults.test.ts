// 10,000 short-lived TLS processes against the real probe (`wirescope probe`): curl with the
// system's libssl, curl with a copy of it (LD_LIBRARY_PATH, its own inode), curl killed with
// SIGKILL while it waits for its response (no close(2), no SSL_free), and python ssl clients, a
// few at a time against a python HTTPS server. Afterwards nothing of those processes may be left:
// no uprobe link or TLS file entry per process, no entry of a dead client in the BPF maps keyed by
// process (read through the probe's map fds with bpftool), the per-connection maps back to their
// baseline, the probe's user-space tables (process cache, open connections, HTTP/1.1 trimmer)
// back to theirs, and its RSS bounded. Every client's request is seen in plaintext at the client
// end. WIRESCOPE_TLS_CHURN_N sets the number of processes (default 10,000).
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { execFile, execFileSync, spawn } from "node:child_process";
import { promisify } from "node:util";
import { fromBinary } from "@bufbuild/protobuf";
import { connect } from "@nats-io/transport-node";
import { ConnKind, ProbeService, RawBatchSchema, Role, resolvedData } from "@wirescope/wire";
import { createClient } from "@wirescope/runtime";
import { freePort, startNats, tempDir } from "./support/index.js";
import { bpfAvailable, probeMapKeys, spawnProbe } from "./probe-support.js";
import { report } from "./support/fault-stack.js";

const run = promisify(execFile);

const N = Number(process.env.WIRESCOPE_TLS_CHURN_N ?? 10_000);
/** Clients at once: enough to keep two busy cores working, few enough to leave them to others. */
const PARALLEL = 8;

// A threaded HTTPS server: /slow/<i> says "GOT" and waits (its client is killed meanwhile).
const PY_SERVER = `
import socket, ssl, sys, threading, time
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", int(sys.argv[3]))); ls.listen(1024)
out = threading.Lock()
def say(*a):
    with out:
        print(*a, flush=True)
say("PORT", ls.getsockname()[1])
def serve(c):
    try:
        s = ctx.wrap_socket(c, server_side=True)
        req = b""
        while b"\\r\\n\\r\\n" not in req:
            d = s.recv(4096)
            if not d:
                return
            req += d
        p = req.split(b" ")[1]
        if p.startswith(b"/slow/"):
            say("GOT", p.decode())
            time.sleep(5)
        body = b"ok " + p
        s.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Length: %d\\r\\nConnection: close\\r\\n\\r\\n" % len(body) + body)
        s.close()
    except Exception:
        pass
    finally:
        c.close()
while True:
    c, _ = ls.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
`;

const PY_CLIENT = `
import socket, ssl, sys
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1]))))
s.sendall(("GET %s HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n" % sys.argv[2]).encode())
while s.recv(4096):
    pass
`;

/** The maps of the probe whose entries belong to a process, and where the tgid sits in their key. */
const PER_PROCESS: Record<string, (key: Buffer) => number> = {
  conn_by_fd: (k) => k.readUInt32LE(0),
  nonsock_fds: (k) => k.readUInt32LE(0),
  ssl_fds: (k) => k.readUInt32LE(0),
  go_calls: (k) => k.readUInt32LE(0),
  proc_state: (k) => k.readUInt32LE(0),
  active_calls: (k) => k.readUInt32LE(4), // pid_tgid
  ssl_calls: (k) => k.readUInt32LE(4),
};
/** Per connection (no tgid in the key): back to the baseline. */
const PER_CONNECTION = ["copy_policy", "peer_decision"];

interface MapCount {
  entries: number;
  /** Entries of processes in `ours` that are gone. */
  deadOurs: number;
}

/** Entry counts of the probe's maps, read through its map fds (bpftool). */
function mapCounts(pid: number, ours: Set<number>): Record<string, MapCount> {
  const out: Record<string, MapCount> = {};
  for (const [name, keys] of probeMapKeys(pid, [...Object.keys(PER_PROCESS), ...PER_CONNECTION])) {
    const tgidOf = PER_PROCESS[name];
    const deadOurs = tgidOf ? keys.filter((k) => ours.has(tgidOf(k)) && !fs.existsSync(`/proc/${tgidOf(k)}`)).length : 0;
    out[name] = { entries: keys.length, deadOurs };
  }
  return out;
}

function rssKb(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))![1]);
}

test("probe TLS churn: 10,000 short-lived TLS processes (curl, curl on a copied libssl, curl killed mid-connection, python ssl) leave no links, file entries, map entries or table rows behind", { timeout: 20 * 60_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  const dir = tempDir("wirescope-tls-churn-");
  // ECDSA: the server signs a handshake per process, cheaper than RSA's on a busy machine
  const tls = { cert: path.join(dir, "cert.pem"), key: path.join(dir, "key.pem") };
  execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", tls.key, "-out", tls.cert, "-days", "1", "-subj", "/CN=localhost"], { stdio: "ignore" });
  const libDir = path.join(dir, "lib");
  fs.mkdirSync(libDir);
  fs.copyFileSync("/usr/lib/x86_64-linux-gnu/libssl.so.3", path.join(libDir, "libssl.so.3"));
  fs.writeFileSync(path.join(dir, "server.py"), PY_SERVER);
  fs.writeFileSync(path.join(dir, "client.py"), PY_CLIENT);
  const port = await freePort();

  const nats = await startNats();
  t.after(() => nats.stop());
  const url = `nats://127.0.0.1:${nats.port}`;
  const grpcPort = await freePort();
  // the test's processes only (other engineers' processes would add their own map entries), a
  // fixed sampling level (every connection observed: each client's request is looked for)
  const probe = await spawnProbe(url, grpcPort, dir, ["--allow-port", String(port), "--allow-comm", "curl", "--allow-comm", "python3", "--sample-fraction", "1"]);
  t.after(() => probe.stop());
  const ctl = createClient(ProbeService, `127.0.0.1:${grpcPort}`);
  t.after(() => ctl.close());
  const counters = async () => (await ctl.status({})).counters;
  // loading and attaching takes seconds on a busy machine
  for (const end = Date.now() + 60_000; ;) {
    if (probe.hasExited || Date.now() > end) throw new Error(`the probe did not start: ${probe.tail()}`);
    if (await counters().then(() => true, () => false)) break;
    await new Promise((r) => setTimeout(r, 300));
  }
  const nc = await connect({ servers: url });
  t.after(() => nc.close());

  // client-end TLS connections by key, and the requests seen on each end
  const tlsRole = new Map<bigint, Role>();
  const closed = new Set<bigint>();
  const requests: [bigint, string][] = [];
  const sub = nc.subscribe("wirescope.raw.>", {
    callback: (_e, m) => {
      const b = fromBinary(RawBatchSchema, m.data);
      for (const c of b.conns) {
        if (c.kind === ConnKind.OPEN && c.tls) tlsRole.set(c.connKey, c.role);
        else if (c.kind === ConnKind.CLOSE) closed.add(c.connKey);
      }
      // conn_key of a DataEvent is relative to the batch's data_key_base
      for (const d of resolvedData(b)) {
        const r = /^GET (\/(?:c|slow|p)\/\d+) /.exec(Buffer.from(d.payload.subarray(0, 64)).toString("latin1"));
        if (r) requests.push([d.connKey, r[1]!]);
      }
    },
  });
  t.after(() => sub.unsubscribe());

  const server = spawn("python3", [path.join(dir, "server.py"), tls.cert, tls.key, String(port)], { stdio: ["ignore", "pipe", "inherit"] });
  t.after(() => server.kill("SIGKILL"));
  const got = new Map<string, () => void>();
  let lines = "";
  await new Promise<void>((ready) => server.stdout!.on("data", (d: Buffer) => {
    lines += String(d);
    let nl: number;
    while ((nl = lines.indexOf("\n")) >= 0) {
      const line = lines.slice(0, nl);
      lines = lines.slice(nl + 1);
      if (line.startsWith("PORT")) ready();
      else if (line.startsWith("GOT ")) got.get(line.slice(4))?.();
    }
  }));
  const base = `https://127.0.0.1:${port}`;
  const withCopy = { ...process.env, LD_LIBRARY_PATH: libDir };
  const ours = new Set<number>();

  /** One client process; resolves when it is gone. */
  const client = async (i: number): Promise<string> => {
    if (i % 100 === 99) {
      const p = `/p/${i}`;
      const c = execFile("python3", [path.join(dir, "client.py"), String(port), p]);
      ours.add(c.pid!);
      await new Promise((r) => c.once("exit", r));
      return p;
    }
    if (i % 10 === 3) {
      // killed while it waits for its response: no close(2), no SSL_free
      const p = `/slow/${i}`;
      const seen = new Promise<void>((r) => got.set(p, r));
      const c = spawn("curl", ["-sk", `${base}${p}`], { env: i % 20 === 3 ? withCopy : process.env, stdio: "ignore" });
      ours.add(c.pid!);
      const exited = new Promise((r) => c.once("exit", r));
      await Promise.race([seen, exited]);
      got.delete(p);
      c.kill("SIGKILL");
      await exited;
      return p;
    }
    const p = `/c/${i}`;
    const c = execFile("curl", ["-sk", `${base}${p}`], { env: i % 2 ? withCopy : process.env });
    ours.add(c.pid!);
    await new Promise((r) => c.once("exit", r));
    return p;
  };

  // warm-up: both libssl files attached, curl and python3 inspected, every kind of client once
  for (let i = 0; i < 100 && !(await counters())["tls.libraries_attached"]; i++) await run("curl", ["-sk", `${base}/warm`], { env: withCopy });
  for (let i = 0; i < 40; i++) await client(i);
  const warmed = new Set(ours);
  // settled: the warm-up's processes are gone and swept (every 5 s) from the user-space tables
  await new Promise((r) => setTimeout(r, 12_000));
  const before = await counters();
  const mapsBefore = mapCounts(probe.pid, warmed);
  const rssBefore = rssKb(probe.pid);

  const started = Date.now();
  const paths = new Set<string>();
  let next = 40;
  await Promise.all(Array.from({ length: PARALLEL }, async () => {
    while (next < N + 40) paths.add(await client(next++));
  }));
  const seconds = (Date.now() - started) / 1000;

  // every client's request in plaintext at its client end (the probe publishes within batch-ms;
  // a slow machine gets time)
  const clientSeen = () => {
    const s = new Set<string>();
    for (const [k, p] of requests) if (tlsRole.get(k) === Role.CLIENT) s.add(p);
    return s;
  };
  for (const end = Date.now() + 60_000; Date.now() < end && ![...paths].every((p) => clientSeen().has(p));) await new Promise((r) => setTimeout(r, 500));
  const missing = [...paths].filter((p) => !clientSeen().has(p));
  // settled again: two sweeps of the user-space tables
  await new Promise((r) => setTimeout(r, 12_000));
  const after = await counters();
  const mapsAfter = mapCounts(probe.pid, ours);
  const rssAfter = rssKb(probe.pid);

  const delta = (k: string) => (after[k] ?? 0) - (before[k] ?? 0);
  t.diagnostic(`${N} processes in ${seconds.toFixed(1)} s, ${PARALLEL} at once`);
  t.diagnostic(`maps before: ${JSON.stringify(mapsBefore)}`);
  t.diagnostic(`maps after:  ${JSON.stringify(mapsAfter)}`);
  t.diagnostic(`probe RSS ${(rssBefore / 1024).toFixed(1)} -> ${(rssAfter / 1024).toFixed(1)} MiB`);
  t.diagnostic(`tables: processes ${before["processes"]} -> ${after["processes"]}, connections_open ${before["connections_open"]} -> ${after["connections_open"]}, http1_trim.table ${before["http1_trim.table"]} -> ${after["http1_trim.table"]}, conns_closed_by_exit +${delta("conns_closed_by_exit")}`);
  t.diagnostic(`tls: ${JSON.stringify(Object.fromEntries(Object.entries(after).filter(([k]) => k.startsWith("tls.")).map(([k, v]) => [k, `${before[k] ?? 0} -> ${v}`])))}`);

  const serverSeen = new Set(requests.filter(([k]) => tlsRole.get(k) === Role.SERVER).map(([, p]) => p));
  const anySeen = new Set(requests.map(([, p]) => p));
  t.diagnostic(`losses: ${JSON.stringify(Object.fromEntries(Object.keys(after).filter((k) => /^(drops|shed_|nats_drop)/.test(k) && delta(k)).map((k) => [k, delta(k)])))}`);
  t.diagnostic(`missing at the client end: ${JSON.stringify(missing.slice(0, 20).map((p) => `${p}${serverSeen.has(p) ? " (server end seen)" : anySeen.has(p) ? " (seen, not TLS)" : ""}`))}`);
  const counted = Object.keys(after).filter((k) => /^(drops\.|nats_drop)/.test(k)).reduce((n, k) => n + delta(k), 0);
  const left = (m: Record<string, MapCount>) => Object.entries(m).map(([k, v]) => `${k} ${v.entries}`).join(", ");
  report({
    fault: `${N.toLocaleString("en")} short-lived TLS processes, ${PARALLEL} at a time (curl, curl on a copied libssl, 10% killed with SIGKILL mid-connection, 1% python ssl)`,
    expected: "every client's request seen in plaintext; nothing of an exited process left in the probe's maps or tables",
    served: paths.size, recorded: paths.size - missing.length, lost: missing.length, counted: counted,
    notes: `${seconds.toFixed(0)} s; maps ${left(mapsBefore)} -> ${left(mapsAfter)}; entries of exited clients ${Object.values(mapsAfter).reduce((n, v) => n + v.deadOurs, 0)}; probe RSS ${(rssBefore / 1024).toFixed(0)} -> ${(rssAfter / 1024).toFixed(0)} MiB; uprobe links +${delta("tls.uprobe_links")}`,
  });
  // a loss must be a counted one (a JS thread stalled by others' load, inspecting a big Go binary
  // someone started, drops whole batches as user.js_behind): never a silent one
  if (counted === 0) assert.deepEqual(missing.slice(0, 20), [], `${missing.length} of ${paths.size} clients' requests not seen in plaintext at the client end, no loss counted`);
  assert.ok(missing.length <= Math.max(0, N / 100), `${missing.length} of ${paths.size} clients' requests not seen`);
  // every client TLS connection was closed for the parsers (by the kernel at exit, or the reaper)
  const clientKeys = [...tlsRole].filter(([, r]) => r === Role.CLIENT).map(([k]) => k);
  assert.deepEqual(clientKeys.filter((k) => !closed.has(k)).length, 0, "every client connection closed");
  // calls: each client wrote its request; each one not killed read its response
  const killed = [...paths].filter((p) => p.startsWith("/slow/")).length;
  assert.ok(delta("tls.calls") >= 2 * (2 * N - killed), `plaintext calls: ${delta("tls.calls")}`);
  assert.equal(delta("tls.no_fd"), 0);
  assert.equal(delta("drops.kernel.ringbuf_full"), 0);

  // attach lifecycle: nothing per process (a file another process on the host maps meanwhile may
  // add its own: a few files at most, never one per client)
  assert.ok(delta("tls.libraries_attached") <= 2, `library files attached during the churn: ${delta("tls.libraries_attached")}`);
  assert.ok(delta("tls.uprobe_links") <= 11 * 4, `uprobe links added during the churn: ${delta("tls.uprobe_links")}`);

  // BPF maps: nothing of a dead client left; per-connection maps back to their baseline
  for (const name of Object.keys(PER_PROCESS)) {
    assert.ok(mapsAfter[name], `map ${name} found among the probe's fds`);
    assert.equal(mapsAfter[name]!.deadOurs, 0, `${name}: entries of exited clients`);
  }
  for (const name of PER_CONNECTION) assert.ok(mapsAfter[name]!.entries <= mapsBefore[name]!.entries + 8, `${name}: ${mapsBefore[name]!.entries} -> ${mapsAfter[name]!.entries}`);

  // user space: back to the baseline once the processes are swept
  for (const k of ["processes", "connections_open", "http1_trim.table"]) assert.ok((after[k] ?? 0) <= (before[k] ?? 0) + 8, `${k}: ${before[k]} -> ${after[k]}`);
  assert.ok(rssAfter - rssBefore < 64 * 1024, `probe RSS grew ${((rssAfter - rssBefore) / 1024).toFixed(1)} MiB`);
});
