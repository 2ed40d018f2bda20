// TLS plaintext through uprobes on OpenSSL and GnuTLS (no keys): nginx with TLS (libssl.so.3)
// serving curl (HTTP/1.1, and HTTP/2 by ALPN h2), python's ssl client and gnutls-cli
// (libgnutls.so.30), all on loopback, traced by the real
// probe (`wirescope probe`), decoded by the real parser. The oracle is tshark: the same traffic
// recorded by tcpdump and decrypted with the clients' SSLKEYLOGFILE. Both ends' records must
// agree with it field by field (method, path, status), carry tls = true and the library name,
// and the ciphertext must not be published.
//
// The second test drives the attach lifecycle in-process: a library file mapped only after the
// probe started (announced by the mmap tracepoint), many short-lived TLS processes (no growth),
// a process killed inside SSL_read (counted), and a clean detach.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { execFile, spawn } from "node:child_process";
import { promisify } from "node:util";
import { Role } from "@wirescope/wire";
import { freePort, tempDir, waitFor } from "./support/index.js";
import { bpfAvailable } from "./probe-support.js";
import { settleRecords, readRecords, parserStatus } from "./parser-support.js";
import { selfSigned, tsharkExchanges, exchangeKey as key, assertEndsMatchTshark, tracedPipeline, startNginx, PY_CLIENT } from "./tls-support.js";
import { startTcpdump } from "./support/tcpdump.js";

const run = promisify(execFile);

/** gnutls-cli against 127.0.0.1:port: writes `requests`, waits until the server closes. */
async function gnutlsClient(port: number, requests: string[], env: NodeJS.ProcessEnv): Promise<void> {
  const p = spawn("gnutls-cli", ["--insecure", "--logfile=/dev/null", "-p", String(port), "127.0.0.1"], { env, stdio: ["pipe", "ignore", "ignore"] });
  const exited = new Promise<number | null>((r) => p.once("exit", r));
  p.stdin!.write(requests.join(""));
  const timer = setTimeout(() => p.kill("SIGKILL"), 20_000);
  const code = await exited;
  clearTimeout(timer);
  p.stdin!.destroy();
  assert.equal(code, 0, "gnutls-cli finished");
}

test("probe TLS: nginx + curl (HTTP/1.1, h2) + python ssl + gnutls-cli, both ends' records match tshark's decryption, no ciphertext published", { timeout: 240_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  const dir = tempDir("wirescope-probe-tls-");
  const tls = selfSigned(dir);
  const port = await freePort();
  const nginx = await startNginx(dir, port, tls);
  t.after(() => nginx.kill("SIGKILL"));

  // nginx, started before the probe, is found by the /proc scan at start
  const { parser, nc, counters } = await tracedPipeline(t, dir, port, () => run("curl", ["-sk", `https://127.0.0.1:${port}/warmup`]));
  // nginx's libssl was found by the scan at start (other processes' TLS libraries may be too)
  assert.ok((await counters())["tls.libraries_attached"]! >= 1, "libssl attached from the scan at start");

  const pcap = path.join(dir, "tls.pcap");
  const keylog = path.join(dir, "keylog.txt");
  const tcpdump = await startTcpdump(pcap, ["-i", "lo", `tcp port ${port}`]);
  t.after(() => tcpdump.stop());

  const env = { ...process.env, SSLKEYLOGFILE: keylog };
  const base = `https://127.0.0.1:${port}`;
  await run("curl", ["-sk", "--http1.1", `${base}/h1/a`, `${base}/missing`, `${base}/h1/b?q=2`], { env });
  await run("curl", ["-sk", "--http1.1", "-X", "POST", "--data-binary", "x".repeat(3000), `${base}/h1/post`], { env });
  await run("curl", ["-sk", "--http2", `${base}/h2/a`, `${base}/missing`, `${base}/h2/b`], { env });
  fs.writeFileSync(path.join(dir, "client.py"), PY_CLIENT);
  await run("python3", [path.join(dir, "client.py"), String(port), keylog], { env });
  // GnuTLS: gnutls-cli sends the requests as typed, and leaves when nginx closes after the last
  await gnutlsClient(port, ["GET /g/one HTTP/1.1\r\nHost: x\r\n\r\n", "GET /missing HTTP/1.1\r\nHost: x\r\n\r\n",
    "GET /g/two?q=3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"], env);

  // 14 exchanges, each recorded on both ends; then a quiet spell shows nothing more comes
  const waitUntil = Date.now() + 90_000;
  // nginx's port can also be another process's ephemeral port (freePort is free only when asked):
  // the connections of this test are the ones whose server end is nginx
  const ours = <T extends { record: { resource: string; server?: { port: number } } }>(l: T[]) => l.filter((s) => s.record.resource !== "/warmup" && s.record.server?.port === port);
  while (ours(await readRecords(nc).catch(() => [])).length < 28 && Date.now() < waitUntil) await new Promise((r) => setTimeout(r, 500));
  const records = ours(await settleRecords(nc, 2000, 30_000)).map((s) => s.record);
  await new Promise((r) => setTimeout(r, 300));
  await tcpdump.stop();

  const theirs = tsharkExchanges(pcap, keylog).map(key).sort();
  assert.equal(theirs.length, 14, `tshark decrypted every exchange: ${JSON.stringify(theirs)}`);
  const http = records.filter((r) => r.protocol.startsWith("http"));
  t.diagnostic(`probe: ${JSON.stringify(await counters())}`);
  t.diagnostic(`parser: ${JSON.stringify((await parserStatus(parser)).counters)}`);
  // gnutls-cli's own records say GnuTLS; everything else is OpenSSL (nginx, curl, python)
  assertEndsMatchTshark(t, http, theirs, { library: (r) => (r.role === Role.CLIENT && r.client?.process?.name === "gnutls-cli" ? "gnutls" : "openssl") });
  assert.equal(http.filter((r) => r.protocol === "http2").length, 6, "h2 over ALPN decoded on both ends");
  assert.equal(http.filter((r) => r.attributes["tls.library"]?.value.value === "gnutls").length, 3, "gnutls-cli's three requests");
  assert.equal(records.length, http.length, "nothing but the HTTP exchanges was decoded (no ciphertext)");
  const c = await counters();
  assert.ok((c["tls.cipher_bytes_saved"] ?? 0) > 4000, `ciphertext not published: ${c["tls.cipher_bytes_saved"]}`);
  assert.ok((c["tls.calls"] ?? 0) >= 28, `plaintext calls: ${c["tls.calls"]}`);
  assert.ok((c["tls.call_empty"] ?? 0) > 0, "nginx's non-blocking SSL_read that found nothing was counted, not shipped");
  assert.equal(c["tls.no_fd"] ?? 0, 0);
  const st = await parserStatus(parser);
  assert.deepEqual(Object.entries(st.counters).filter(([k, v]) => /desync|resync/.test(k) && v > 0), [], "the decoders never lost their place");
  t.diagnostic(`tls counters: ${JSON.stringify(Object.fromEntries(Object.entries(c).filter(([k]) => k.startsWith("tls."))))}`);
});

const PY_VICTIM = `
import socket, ssl, sys
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1]))))
s.sendall(b"GET /silent HTTP/1.1\\r\\n\\r\\n")
print("waiting", flush=True)
s.recv(10)
`;

// One SSL_write_ex of 64 MiB (sendall hands its whole buffer to one call): the server reads the
// head only, so the call blocks in write(2) once the socket's buffers are full.
const PY_WRITER = `
import socket, ssl, sys
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1]))))
print("writing", flush=True)
s.sendall(b"POST /silent-writer HTTP/1.1\\r\\nContent-Length: 67108864\\r\\n\\r\\n" + b"x" * 67108864)
`;

const PY_SERVER = `
import socket, ssl, sys, threading, time
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
ls = socket.socket(); ls.bind(("127.0.0.1", 0)); ls.listen(64)
print("PORT", ls.getsockname()[1], flush=True)
def serve(c):
    try:
        s = ctx.wrap_socket(c, server_side=True)
        req = s.recv(4096)
        if b"/silent" in req:
            print("SILENT", req.split(b" ")[1].decode(), flush=True)  # the client is inside its call
            time.sleep(60)  # never answers: the client waits inside SSL_read
        s.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\nConnection: close\\r\\n\\r\\nok")
        s.close()
    except Exception:
        pass
while True:
    c, _ = ls.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
`;

test("probe TLS lifecycle: a library mapped after start is attached once, 100 short-lived clients add no links, a client killed inside SSL_read is counted", { timeout: 180_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  const { EbpfSource } = await import("@wirescope/probe/ebpf-source");
  const { EMPTY_FILTER } = await import("@wirescope/probe");
  const dir = tempDir("wirescope-probe-tls-life-");
  const tls = selfSigned(dir);
  // a libssl file no process maps yet (its own inode): only the mmap announcement can find it
  const libDir = path.join(dir, "lib");
  fs.mkdirSync(libDir);
  fs.copyFileSync("/usr/lib/x86_64-linux-gnu/libssl.so.3", path.join(libDir, "libssl.so.3"));
  fs.writeFileSync(path.join(dir, "server.py"), PY_SERVER);
  const tlsErrors: string[] = [];
  // the test's processes only (library announcements are host-wide either way): another node
  // process's TLS connection opened before this source started counts no_fd, as documented
  const src = new EbpfSource({ tls: true, filter: { ...EMPTY_FILTER, allowComms: ["curl", "python3"] }, onTlsError: (file, error) => tlsErrors.push(`${file}: ${error}`) });
  const ac = new AbortController();
  const conns: { tls: boolean; comm: string; connKey: bigint; tgid: number }[] = [];
  // the plaintext heads written by the processes the test kills (a view: copied)
  const heads: { tgid: number; connKey: bigint; head: string; original: number }[] = [];
  const victims = new Set<number>();
  const running = src.run((b) => {
    conns.push(...b.conns.filter((c) => c.tls));
    for (const d of b.data) if (victims.has(d.tgid) && d.direction === 1) heads.push({ tgid: d.tgid, connKey: d.connKey, head: Buffer.from(d.payload.subarray(0, 40)).toString("latin1"), original: d.originalLength });
  }, ac.signal);
  t.after(() => (ac.abort(), running));
  const server = spawn("python3", [path.join(dir, "server.py"), tls.cert, tls.key], { stdio: ["ignore", "pipe", "inherit"] });
  t.after(() => server.kill("SIGKILL"));
  // the line can come in more than one read (print writes "PORT" and the number apart)
  let out = "";
  const port = await new Promise<string>((res) => server.stdout!.on("data", (d: Buffer) => {
    out += String(d);
    const m = /PORT (\d+)\n/.exec(out);
    if (m) res(m[1]!);
  }));
  const url = `https://127.0.0.1:${port}/x`;
  const stats = () => src.stats().tls!;

  // started after the probe, with the copy: announced by the mmap tracepoint, attached, traced
  // (a client that exits before its maps are read is counted as gone, and the next one offers
  // the file again: keep starting clients until it is attached)
  // (other processes on the machine may map other libssl files meanwhile: only ours is looked at)
  const copy = path.join(libDir, "libssl.so.3");
  const copyEntry = () => [...src.tls!.files.values()].find((f) => f.path === copy);
  for (let i = 0; i < 50 && !copyEntry(); i++) {
    await run("curl", ["-sk", url], { env: { ...process.env, LD_LIBRARY_PATH: libDir } });
    await new Promise((r) => setTimeout(r, 100));
  }
  await waitFor(() => !!copyEntry(), { timeoutMs: 10_000, intervalMs: 20, what: "the copy attached" });
  t.diagnostic(`files: ${JSON.stringify([...src.tls!.files])}`);
  // OpenSSL 3: read, write, their _ex forms and SSL_do_handshake, entry and return, and SSL_free
  assert.equal(copyEntry()!.links, 11, `the copy's eleven uprobes: ${JSON.stringify(copyEntry())}`);
  assert.ok(stats()["lib_mapped"]! >= 1, "announced by sys_enter_mmap");
  const callsBefore = stats()["calls"]!;
  await run("curl", ["-sk", url], { env: { ...process.env, LD_LIBRARY_PATH: libDir } });
  await waitFor(() => stats()["calls"]! >= callsBefore + 2, { timeoutMs: 10_000, intervalMs: 20, what: "plaintext through the copy" });

  // many short-lived TLS processes: one attach per file, whatever the number of processes (the
  // system's libssl, used by half of them, may get its attach here if nothing mapped it before)
  const links = stats()["uprobe_links"]!;
  const filesBefore = new Set(src.tls!.files.keys());
  for (let i = 0; i < 100; i++) await run("curl", ["-sk", url], { env: i % 2 ? { ...process.env, LD_LIBRARY_PATH: libDir } : process.env });
  const added = [...src.tls!.files].filter(([k]) => !filesBefore.has(k)).map(([, f]) => f);
  assert.ok(added.every((f) => f.path !== copy) && added.filter((f) => f.path === "/usr/lib/x86_64-linux-gnu/libssl.so.3").length <= 1, `no file entry per process: ${JSON.stringify(added)}`);
  assert.equal(stats()["uprobe_links"], links + added.reduce((n, f) => n + f.links, 0), "no link per process, only per new file");
  assert.ok(stats()["calls"]! >= callsBefore + 200, `every client's plaintext: ${stats()["calls"]}`);
  await waitFor(() => conns.filter((c) => c.comm === "curl").length >= 100, { timeoutMs: 10_000, intervalMs: 20, what: "TLS opens of the clients" });

  // a client killed while it waits inside SSL_read: its call is forgotten at thread exit, counted
  const abandoned = stats()["call_abandoned"]!;
  // (python with a blocking socket waits in read(2) inside SSL_read_ex; curl would wait in poll)
  fs.writeFileSync(path.join(dir, "victim.py"), PY_VICTIM);
  const victim = spawn("python3", [path.join(dir, "victim.py"), port], { stdio: ["ignore", "pipe", "inherit"] });
  await new Promise((r) => victim.stdout!.once("data", r));
  await waitFor(() => out.includes("SILENT /silent\n"), { timeoutMs: 20_000, intervalMs: 20, what: "the victim's request at the server" });
  await new Promise((r) => setTimeout(r, 300));
  victim.kill("SIGKILL");
  await new Promise((r) => victim.once("exit", r));
  await waitFor(() => stats()["call_abandoned"]! > abandoned, { timeoutMs: 10_000, intervalMs: 20, what: "the abandoned call counted" });
  assert.equal(stats()["no_fd"], 0);

  // a client killed inside SSL_write once the socket took its first records (64 MiB in one call,
  // the server reads no further than the head): its plaintext is sent at its exit, up to the
  // ciphertext the socket took, and the call is not counted abandoned
  fs.writeFileSync(path.join(dir, "writer.py"), PY_WRITER);
  const writer = spawn("python3", [path.join(dir, "writer.py"), port], { stdio: ["ignore", "pipe", "inherit"] });
  victims.add(writer.pid!);
  await new Promise((r) => writer.stdout!.once("data", r));
  const atExit = stats()["write_at_exit"]!;
  const abandonedBefore = stats()["call_abandoned"]!;
  // the server has the head: the writer is inside its one SSL_write (64 MiB do not fit in the
  // socket's buffers), soon blocked in write(2). A fixed wait instead raced python's 64 MiB
  // allocation on a busy machine: killed before the call, nothing to send at its exit.
  await waitFor(() => out.includes("SILENT /silent-writer"), { timeoutMs: 20_000, intervalMs: 20, what: "the writer's head at the server" });
  await new Promise((r) => setTimeout(r, 200));
  writer.kill("SIGKILL");
  await new Promise((r) => writer.once("exit", r));
  await waitFor(() => stats()["write_at_exit"]! > atExit, { timeoutMs: 10_000, intervalMs: 20, what: "the killed write's plaintext sent at its exit" });
  await waitFor(() => heads.some((h) => h.head.startsWith("POST /silent-writer ")), { timeoutMs: 10_000, intervalMs: 20, what: `the killed write's plaintext: ${JSON.stringify(heads.slice(0, 3).map((h) => h.head))}` });
  const written = heads.filter((h) => h.tgid === writer.pid);
  t.diagnostic(`killed mid-write: ${written.length} events, ${written.reduce((n, h) => n + h.original, 0)} bytes stated of 67,108,917, read_user drops ${src.stats().drops["kernel.read_user"] ?? 0}`);
  assert.ok(conns.some((c) => c.tgid === writer.pid && c.connKey === written[0]!.connKey), "on the client's TLS connection");
  assert.ok(written.reduce((n, h) => n + h.original, 0) < 67_108_864, "no more than the ciphertext the socket took");
  assert.equal(stats()["call_abandoned"], abandonedBefore, "the write is not counted abandoned");

  // the probe goes on: the next client is traced as before
  const after = stats()["calls"]!;
  await run("curl", ["-sk", url]);
  await waitFor(() => stats()["calls"]! >= after + 2, { timeoutMs: 10_000, intervalMs: 20, what: "traced after the kill" });

  // a TLS library the probe cannot read (NSS's libssl3.so; here a stand-in file of that name),
  // loaded by three processes: said once, counted once, no longer announced
  const nss = path.join(libDir, "libssl3.so");
  fs.copyFileSync("/usr/lib/x86_64-linux-gnu/libz.so.1", nss);
  const unsupported = stats()["libraries_unsupported"]!;
  for (let i = 0; i < 3; i++) await run("python3", ["-c", `import ctypes; ctypes.CDLL(${JSON.stringify(nss)}); import time; time.sleep(0.5)`]);
  await waitFor(() => tlsErrors.some((e) => e.startsWith(`${nss}: NSS`)), { timeoutMs: 10_000, intervalMs: 20, what: "the NSS stand-in said" });
  assert.equal(tlsErrors.filter((e) => e.startsWith(nss)).length, 1, `once: ${JSON.stringify(tlsErrors)}`);
  assert.equal(stats()["libraries_unsupported"], unsupported + 1);
});
