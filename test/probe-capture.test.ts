// `wirescope capture` against tcpdump on the same real traffic: tshark decodes the same HTTP
// requests and responses from both files, and `wirescope decode` gives the same records.
import { test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { execFileSync } from "node:child_process";
import { tempDir, wirescopeDecode, WIRESCOPE_BIN } from "./support/index.js";
import type { RecordJson } from "@wirescope/wire";
import { bpfAvailable, runChild, start, stopByPid } from "./probe-support.js";


const tsharkHttp = (file: string) =>
  execFileSync("tshark", ["-r", file, "-Y", "http", "-T", "fields", "-e", "http.request.method", "-e", "http.request.uri", "-e", "http.response.code", "-e", "http.content_length_header"], { encoding: "utf8", timeout: 60_000 })
    .trim().split("\n").filter(Boolean);

const decodeRecords = (file: string) => wirescopeDecode(file, ["--format", "ndjson"]);

test("wirescope capture: tshark and wirescope decode see the same HTTP exchanges as in a tcpdump capture", { timeout: 120_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  const dir = tempDir("wirescope-capture-");
  const server = await runChild("http-server", `
import http from "node:http";
const srv = http.createServer((req, res) => {
  let n = 0;
  req.on("data", (d) => (n += d.length));
  req.on("end", () => { res.statusCode = req.url.includes("missing") ? 404 : 200; res.end("body of " + req.url + " after " + n + " bytes"); });
});
srv.listen(0, "127.0.0.1", () => console.log("PORT " + srv.address().port));
`);
  t.after(() => server.kill());
  const port = (await server.waitLine(/^PORT (\d+)/))[1];
  const tcpdumpFile = path.join(dir, "tcpdump.pcap");
  const captureFile = path.join(dir, "wirescope.pcapng");
  const tcpdump = await start("tcpdump", ["-i", "lo", "--immediate-mode", "-B", "32768", "-U", "-n", "-w", tcpdumpFile, `tcp port ${port}`], /listening on/);
  t.after(() => stopByPid(tcpdump));
  const capture = await start(process.execPath, [WIRESCOPE_BIN, "capture", "--output", captureFile, "--port", port, "--mount-tracefs"], /capturing to/);
  t.after(() => stopByPid(capture));

  const client = await runChild("http-client", `
import http from "node:http";
const port = Number(process.argv[2]);
const agent = new http.Agent({ keepAlive: true, maxSockets: 2 });
const paths = ["/a", "/b/c?x=1", "/missing", "/upload", "/d"];
for (let round = 0; round < 3; round++) {
  await Promise.all(paths.map((p) => new Promise((resolve, reject) => {
    const body = p === "/upload" ? Buffer.alloc(50_000, 97) : undefined;
    const req = http.request({ port, host: "127.0.0.1", path: p + "#" , method: body ? "POST" : "GET", agent }, (res) => { res.resume(); res.on("end", resolve); });
    req.on("error", reject);
    req.end(body);
  })));
}
agent.destroy();
console.log("DONE");
`, [port]);
  t.after(() => client.kill());
  await client.waitLine(/^DONE/, 30_000);
  await client.exited;
  await new Promise((r) => setTimeout(r, 500));
  await stopByPid(capture);
  await stopByPid(tcpdump);

  const want = tsharkHttp(tcpdumpFile);
  const got = tsharkHttp(captureFile);
  assert.equal(want.filter((l) => /^(GET|POST)\t/.test(l)).length, 15, `tcpdump saw every request: ${want.join(" | ")}`);
  assert.deepEqual([...got].sort(), [...want].sort(), "same HTTP requests and responses");

  // packet comments name the process
  const comments = execFileSync("tshark", ["-r", captureFile, "-Y", "frame.comment", "-T", "fields", "-e", "frame.comment"], { encoding: "utf8" });
  assert.match(comments, new RegExp(`process=node pid=${server.pid}`));

  const key = (r: RecordJson) => `${r.protocol} ${r.operation} ${r.resource} ${r.status}`;
  const recWant = decodeRecords(tcpdumpFile).map(key).sort();
  const recGot = decodeRecords(captureFile).map(key).sort();
  assert.equal(recWant.length, 15);
  assert.deepEqual(recGot, recWant, "wirescope decode: same records");
});
