// HTTP/2 and gRPC connections that predate the capture: a node:http2 session and a @grpc/grpc-js
// channel open their connections and use them (filling both sides' HPACK dynamic tables), THEN
// `wirescope capture` starts, then they go on. The capture is decoded with `wirescope decode`
// (detection by content, no port hints) and by tshark, and compared with what the clients did:
// what does not depend on the lost tables is recovered (static and literal fields, dynamic
// entries inserted after the capture began), what does is absent and counted, never wrong.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { tempDir, wirescopeDecode, WIRESCOPE_BIN } from "./support/index.js";
import { bpfAvailable, runChild, CHILD_REQUIRE, start, stopByPid } from "./probe-support.js";
import { tsharkHttp2 } from "./http-support.js";

const SERVICE = `
const id = (x) => x;
const m = (name, requestStream, responseStream) => ({ path: "/test.v1.Echo/" + name, requestStream, responseStream, requestSerialize: id, requestDeserialize: id, responseSerialize: id, responseDeserialize: id });
const service = { Unary: m("Unary", false, false), Spray: m("Spray", false, true), Collect: m("Collect", true, false), Chat: m("Chat", true, true) };
`;

test("HTTP/2 and gRPC connections opened before the capture: recovered where HPACK allows, unknown otherwise, never wrong", { timeout: 240_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  const dir = tempDir("wirescope-midstream-h2-");
  const go = path.join(dir, "go");

  const servers = await runChild("h2-servers", `${CHILD_REQUIRE}
import http2 from "node:http2";
const grpc = require("@grpc/grpc-js");
${SERVICE}
const h2 = http2.createServer();
h2.on("stream", (s, h) => {
  s.on("data", () => {});
  s.on("end", () => {
    const p = h[":path"];
    s.respond({ ":status": p.includes("missing") ? 404 : 200, "content-type": "text/plain", "x-served-for": p });
    s.end("body of " + p);
  });
});
await new Promise((r) => h2.listen(0, "127.0.0.1", r));
const server = new grpc.Server();
server.addService(service, {
  Unary: (call, cb) => (call.request.toString() === "missing" ? cb({ code: 5, details: "no such key" }) : cb(null, Buffer.from("echo:" + call.request))),
  Spray: async (call) => {
    for (let i = 0; i < Number(call.request.toString()); i++) {
      call.write(Buffer.from("item " + i));
      await new Promise((r) => setTimeout(r, 20));
    }
    call.end();
  },
  Collect: (call, cb) => { let n = 0; call.on("data", () => n++); call.on("end", () => cb(null, Buffer.from("got " + n))); },
  Chat: (call) => { call.on("data", (d) => call.write(Buffer.concat([Buffer.from("re:"), d]))); call.on("end", () => call.end()); },
});
const gport = await new Promise((res, rej) => server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
console.log("PORTS " + h2.address().port + " " + gport);
`);
  t.after(() => servers.kill());
  const ports = (await servers.waitLine(/^PORTS (\d+) (\d+)/))!;
  const h2Port = Number(ports[1]);
  const grpcPort = Number(ports[2]);

  const clients = await runChild("h2-clients", `${CHILD_REQUIRE}
import http2 from "node:http2";
import fs from "node:fs";
const grpc = require("@grpc/grpc-js");
${SERVICE}
const [h2Port, grpcPort, go] = process.argv.slice(2);
const session = http2.connect("http://127.0.0.1:" + h2Port);
const request = (p, { method = "GET", body, authority } = {}) => new Promise((resolve, reject) => {
  const s = session.request({ ":method": method, ":path": p, "x-tenant": "acme", ...(authority ? { ":authority": authority } : {}) });
  let status = 0;
  s.on("response", (h) => (status = h[":status"]));
  s.on("data", () => {});
  s.on("end", () => resolve(status));
  s.on("error", reject);
  s.end(body);
});
const Client = grpc.makeGenericClientConstructor(service, "Echo");
const c = new Client("127.0.0.1:" + grpcPort, grpc.credentials.createInsecure());
const deadline = () => ({ deadline: Date.now() + 20000 });
const unary = (msg) => new Promise((resolve) => c.Unary(Buffer.from(msg), deadline(), (e) => resolve(e ? e.code : 0)));
const spray = (n) => new Promise((resolve) => {
  const s = c.Spray(Buffer.from(String(n)), deadline());
  let k = 0;
  s.on("data", () => k++);
  s.on("status", (st) => resolve([st.code, 1, k]));
  s.on("error", () => {});
});
const collect = (n) => new Promise((resolve) => {
  const s = c.Collect(deadline(), (e) => resolve([e ? e.code : 0, n, 1]));
  for (let i = 0; i < n; i++) s.write(Buffer.from("part " + i));
  s.end();
});
const chat = (n) => new Promise((resolve) => {
  const s = c.Chat(deadline());
  let k = 0;
  s.on("data", () => { if (++k === n) s.end(); });
  s.on("status", (st) => resolve([st.code, n, k]));
  s.on("error", () => {});
  for (let i = 0; i < n; i++) s.write(Buffer.from("m" + i));
});
// before the capture: both connections open, every header the later calls use already indexed
for (let i = 0; i < 3; i++) await request("/before/" + i, { method: i === 2 ? "POST" : "GET", body: i === 2 ? "x" : undefined });
await unary("warm");
await unary("missing");
await spray(1);
await collect(1);
await chat(1);
console.log("WARM");
while (!fs.existsSync(go)) await new Promise((r) => setTimeout(r, 20));
await new Promise((r) => setTimeout(r, 200));
const did = { h2: [], grpc: [] };
for (let i = 0; i < 3; i++) did.h2.push(["GET", "/after/" + i, await request("/after/" + i), null]);
did.h2.push(["POST", "/after/upload", await request("/after/upload", { method: "POST", body: Buffer.alloc(40000, 97) }), null]);
did.h2.push(["GET", "/after/missing", await request("/after/missing"), null]);
// a new :authority is inserted into the dynamic table after the capture began, then referenced
for (let i = 0; i < 2; i++) did.h2.push(["GET", "/after/named/" + i, await request("/after/named/" + i, { authority: "after.test" }), "after.test"]);
did.grpc.push(["Unary", await unary("hello"), 1, 1]);
did.grpc.push(["Unary", await unary("missing"), 1, 0]);
did.grpc.push(["Spray", ...(await spray(4))]);
did.grpc.push(["Collect", ...(await collect(5))]);
did.grpc.push(["Chat", ...(await chat(3))]);
console.log("DID " + JSON.stringify(did));
session.close();
c.close();
console.log("DONE");
`, [String(h2Port), String(grpcPort), go]);
  t.after(() => clients.kill());
  await clients.waitLine(/^WARM/, 60_000);

  const file = path.join(dir, "capture.pcapng");
  const capture = await start(process.execPath, [WIRESCOPE_BIN, "capture", "--output", file, "--pid", String(servers.pid), "--mount-tracefs"], /capturing to/);
  t.after(() => stopByPid(capture));
  await new Promise((r) => setTimeout(r, 300));
  fs.writeFileSync(go, "");
  const did = JSON.parse((await clients.waitLine(/^DID (.*)/, 60_000))[1]!) as { h2: [string, string, number, string | null][]; grpc: [string, number, number, number][] };
  await clients.waitLine(/^DONE/, 30_000);
  await new Promise((r) => setTimeout(r, 500));
  await stopByPid(capture);
  if (process.env.WIRESCOPE_KEEP_CAPTURE) fs.copyFileSync(file, process.env.WIRESCOPE_KEEP_CAPTURE);

  const records = wirescopeDecode(file, ["--format", "ndjson"]);
  const port = (a: string) => Number(a.split(":").pop());
  const ours = records.filter((r) => [h2Port, grpcPort].includes(port(r.server)));
  assert.ok(!ours.some((r) => r.resource.includes("/before/")), "nothing from before the capture");

  // HTTP/2: every request after the capture began, with its status; :authority only where the
  // encoder inserted it after the capture began (before, it is an entry we never saw)
  const h = ours.filter((r) => port(r.server) === h2Port);
  assert.deepEqual(h.map((r) => [r.operation, r.resource, r.status, r.attributes["server.address"] ?? null]), did.h2, JSON.stringify(h));
  for (const r of h) {
    assert.equal(r.protocol, "http2");
    assert.equal(r.incomplete, undefined);
    assert.ok((r.attributes["http2.unknown_fields"] as number) > 0, "fields from entries before the capture are counted");
  }
  assert.equal(h.find((r) => r.resource === "/after/upload")!.reqBytes, 40000);

  // gRPC: content-type and grpc-status are entries from before the capture: the calls are known
  // as gRPC by their shape, with their messages each way and no status rather than a guessed one
  const g = ours.filter((r) => port(r.server) === grpcPort);
  assert.deepEqual(g.map((r) => [r.attributes["rpc.method"], r.attributes["rpc.request.messages"], r.attributes["rpc.response.messages"]]), did.grpc.map(([m, , rq, rs]) => [m, rq, rs]), JSON.stringify(g));
  for (const [i, r] of g.entries()) {
    assert.equal(r.protocol, "grpc");
    assert.equal(r.resource, `/test.v1.Echo/${did.grpc[i]![0]}`);
    assert.equal(r.attributes["rpc.service"], "test.v1.Echo");
    assert.equal(r.attributes["http2.grpc_inferred"], true);
    assert.ok((r.attributes["http2.unknown_fields"] as number) > 0);
    if (r.status !== null) assert.equal(r.status, did.grpc[i]![1], "a status, when known, is the one the client got");
    assert.equal(r.incomplete, undefined);
  }

  // tshark on the same capture: every stream it decoded a request for is one of our records, with
  // the same DATA bytes each way; where it names grpc-status, so do we, with the same value
  for (const p of [h2Port, grpcPort]) {
    const theirs = (await tsharkHttp2(file, p)).filter((x) => x.method !== undefined);
    const mine = ours.filter((r) => port(r.server) === p);
    assert.equal(theirs.length, mine.length, `port ${p}: tshark ${theirs.length} requests, ours ${mine.length}`);
    for (const x of theirs) {
      const i = mine.findIndex((r) => (r.resource === x.path || r.attributes["url.path"] === x.path) && r.reqBytes === x.reqBytes && r.respBytes === x.respBytes);
      assert.ok(i >= 0, `tshark's stream ${x.streamId} ${x.path} (${x.reqBytes}/${x.respBytes} bytes) has no record`);
      const r = mine.splice(i, 1)[0]!;
      if (x.grpcStatus !== undefined) assert.equal(r.status, x.grpcStatus);
      if (r.protocol === "http2") assert.equal(r.status, x.status);
      else {
        assert.equal(r.attributes["rpc.request.messages"], x.reqMessages);
        assert.equal(r.attributes["rpc.response.messages"], x.respMessages);
      }
    }
  }
});
