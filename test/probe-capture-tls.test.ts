// `wirescope capture --plaintext` against tcpdump on the same TLS traffic: tshark reading the
// plaintext pcapng with no key log decodes the same HTTP/1.1 and HTTP/2 exchanges (method, path,
// status) that it decodes from the tcpdump capture decrypted with the clients' key log. The
// servers run before the capture starts (found by its scan), the clients after: nginx
// (libssl.so.3) serving curl (HTTP/1.1 and h2 by ALPN) and python's ssl; a node server (OpenSSL
// inside the node executable, memory BIOs) serving node:https and node:http2 clients. HTTP/2
// without TLS is recognized by tshark only on ports it dissects as HTTP: the capture prints the
// Decode As rule for them, and the test uses it.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { execFile, execFileSync } from "node:child_process";
import { promisify } from "node:util";
import { freePort, tempDir, WIRESCOPE_BIN } from "./support/index.js";
import { bpfAvailable, start, stopByPid } from "./probe-support.js";
import { selfSigned, tsharkExchanges, exchangeKey, startNginx, startNodeTlsServers, NODE_TLS_FIXTURES, PY_CLIENT } from "./tls-support.js";
import { startTcpdump } from "./support/tcpdump.js";

const run = promisify(execFile);

test("wirescope capture --plaintext: tshark decodes the same HTTP/1.1 and h2 exchanges without keys as tcpdump's capture with the key log", { timeout: 120_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  const dir = tempDir("wirescope-capture-tls-");
  const tls = selfSigned(dir);
  const ngx = await freePort();
  const nginx = await startNginx(dir, ngx, tls);
  t.after(() => nginx.kill("SIGKILL"));
  const { web, pid: nodeServerPid } = await startNodeTlsServers(t, tls);
  const nodeServer = { pid: nodeServerPid };

  const tcpdumpFile = path.join(dir, "tcpdump.pcap");
  const captureFile = path.join(dir, "plaintext.pcapng");
  const tcpdump = await startTcpdump(tcpdumpFile, ["-i", "lo", `tcp port ${ngx}`]);
  t.after(() => tcpdump.stop());
  const tcpdumpNode = await startTcpdump(path.join(dir, "tcpdump-node.pcap"), ["-i", "lo", `tcp port ${web}`]);
  t.after(() => tcpdumpNode.stop());
  const capture = await start(process.execPath, [WIRESCOPE_BIN, "capture", "--plaintext", "--output", captureFile, "--port", String(ngx), "--port", String(web), "--mount-tracefs"], /capturing to/);
  t.after(() => stopByPid(capture));
  let summary = "";
  capture.stderr!.on("data", (d: Buffer) => (summary += String(d)));

  const keylog = path.join(dir, "keylog.txt");
  const env = { ...process.env, SSLKEYLOGFILE: keylog };
  const base = `https://127.0.0.1:${ngx}`;
  await run("curl", ["-sk", "--http1.1", `${base}/h1/a`, `${base}/missing`, `${base}/h1/b?q=2`], { env });
  await run("curl", ["-sk", "--http1.1", "-X", "POST", "--data-binary", "x".repeat(3000), `${base}/h1/post`], { env });
  await run("curl", ["-sk", "--http2", `${base}/h2/a`, `${base}/missing`, `${base}/h2/b`], { env });
  fs.writeFileSync(path.join(dir, "client.py"), PY_CLIENT);
  await run("python3", [path.join(dir, "client.py"), String(ngx), keylog], { env });
  for (const mode of ["https", "h2"]) {
    await run(process.execPath, [`--tls-keylog=${keylog}`, path.join(NODE_TLS_FIXTURES, "client.mjs"), mode, String(web), tls.cert], { timeout: 60_000 });
  }
  await new Promise((r) => setTimeout(r, 500));
  await stopByPid(capture);
  await tcpdump.stop();
  await tcpdumpNode.stop();
  t.diagnostic(summary.trim());

  const theirs = [tcpdumpFile, path.join(dir, "tcpdump-node.pcap")].flatMap((f) => tsharkExchanges(f, keylog)).map(exchangeKey).sort();
  // nginx: 4 + 3 + 4 from curl and python; node: 3 https + 3 h2
  assert.equal(theirs.length, 17, `tshark decrypted every exchange: ${JSON.stringify(theirs)}`);
  // the probe sees every network namespace: a connection elsewhere may share a port number with
  // ours. Ours are the streams whose packets the servers sent (named in the packet comments).
  const servers = new Set([String(nginx.pid), String(nodeServer.pid)]);
  const mine = new Set(execFileSync("tshark", ["-r", captureFile, "-Y", "frame.comment", "-T", "fields", "-e", "tcp.stream", "-e", "frame.comment"], { encoding: "utf8" })
    .trim().split("\n").filter((l) => servers.has(/ pid=(\d+)/.exec(l)?.[1] ?? "")).map((l) => l.split("\t")[0]!));
  const oursFile = path.join(dir, "ours.pcapng");
  execFileSync("tshark", ["-r", captureFile, "-Y", `tcp.stream in {${[...mine].join(",")}}`, "-w", oursFile]);
  const noKeys = path.join(dir, "no-keys.txt");
  fs.writeFileSync(noKeys, "");
  // Wireshark finds HTTP/2 without TLS only on ports it dissects as HTTP: the capture says which
  // ports need Decode As, and how
  const hint = /HTTP\/2 plaintext on server ports? [\d, ]+: Wireshark needs Decode As HTTP there \(tshark -r \S+ (.*)\)\n/.exec(summary);
  assert.ok(hint, `the capture names the HTTP/2 ports: ${summary}`);
  const decodeAs = hint[1]!.split(" ");
  assert.deepEqual(decodeAs, [`-d`, `tcp.port==${Math.min(ngx, web)},http`, `-d`, `tcp.port==${Math.max(ngx, web)},http`]);
  const ours = tsharkExchanges(oursFile, noKeys, decodeAs).map(exchangeKey).sort();
  assert.deepEqual(ours, theirs, "the plaintext capture shows the same exchanges, without keys");

  // nothing in the file is TLS: every connection was written as its plaintext
  const tlsFrames = execFileSync("tshark", ["-r", oursFile, "-Y", "tls", "-T", "fields", "-e", "frame.number"], { encoding: "utf8" }).trim();
  assert.equal(tlsFrames, "", "no TLS record in the plaintext capture");
  // 4 nginx connections (curl ×3, python) + 2 node connections (one per client), each once
  assert.equal(mine.size, 6, "one TCP stream per connection");
  // the summary's counts cover everything captured (the probe sees every network namespace: a
  // connection elsewhere may share a port number), and calls without their connection are counted
  // host-wide (a port filter cannot apply inside a library call); ours are checked above
  assert.match(summary, /TLS: \d+ connections as plaintext \(\d+ handshake bytes left out\), \d+ left as ciphertext, \d+ restarted, \d+ calls without their connection/);
  const syns = execFileSync("tshark", ["-r", oursFile, "-Y", "tcp.flags.syn == 1 && tcp.flags.ack == 0", "-T", "fields", "-e", "frame.comment"], { encoding: "utf8" }).trim().split("\n");
  assert.equal(syns.filter((c) => / tls=openssl \(plaintext\)$/.test(c)).length, 6, `each connection's SYN says it is plaintext: ${syns.join(" | ")}`);
});
