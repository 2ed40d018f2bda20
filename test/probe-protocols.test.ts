// The probe on real node:http2, @grpc/grpc-js and MariaDB + mysql2 traffic: for every connection,
// both ends' bytes per direction equal exactly what the recording proxy relayed.
import { test } from "node:test";
import assert from "node:assert/strict";
import { bpfAvailable, CollectingProbe, startRecordingProxy, runChild, assertPairsExact, CHILD_REQUIRE } from "./probe-support.js";
import { startMariaDb } from "./support/mariadb.js";

async function scenario(t: import("node:test").TestContext, serverSrc: string | { port: number; pid: number; comm: string }, clientSrc: string, clientArgs: (port: number) => string[]) {
  const probe = new CollectingProbe();
  t.after(() => probe.stop());
  let serverPort: number, serverPid: number, serverComm: string;
  if (typeof serverSrc === "string") {
    const server = await runChild("server", serverSrc);
    t.after(() => server.kill());
    serverPort = Number((await server.waitLine(/^PORT (\d+)/))[1]);
    serverPid = server.pid;
    serverComm = "node";
  } else {
    ({ port: serverPort, pid: serverPid, comm: serverComm } = serverSrc);
  }
  const proxy = await startRecordingProxy(serverPort);
  t.after(() => proxy.close());
  const client = await runChild("client", clientSrc, clientArgs(proxy.port));
  t.after(() => client.kill());
  await client.waitLine(/^DONE/, 30_000);
  assert.equal(await client.exited, 0);
  await assertPairsExact(probe, proxy.pairs, { proxyPort: proxy.port, serverPort, clientPid: client.pid, serverPid, clientComm: "node", serverComm });
  return { probe, proxy, client };
}

test("probe: node:http2 requests and responses, byte for byte", { timeout: 60_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  const server = `
import http2 from "node:http2";
const srv = http2.createServer();
srv.on("stream", (stream, headers) => {
  const chunks = [];
  stream.on("data", (d) => chunks.push(d));
  stream.on("end", () => {
    stream.respond({ ":status": 200, "content-type": "text/plain", "x-path": headers[":path"] });
    stream.end("h2 got " + Buffer.concat(chunks).length + " bytes");
  });
});
srv.listen(0, "127.0.0.1", () => console.log("PORT " + srv.address().port));
`;
  const client = `
import http2 from "node:http2";
const session = http2.connect("http://127.0.0.1:" + process.argv[2]);
for (let i = 0; i < 10; i++) {
  await new Promise((resolve, reject) => {
    const req = session.request({ ":method": "POST", ":path": "/h2/" + i, "content-type": "application/octet-stream" });
    req.on("response", () => {});
    req.on("data", () => {});
    req.on("end", resolve);
    req.on("error", reject);
    req.end(Buffer.alloc(1000 * (i + 1), i));
  });
}
session.close(() => console.log("DONE"));
`;
  const { proxy } = await scenario(t, server, client, (p) => [String(p)]);
  assert.equal(proxy.pairs.length, 1);
  assert.ok(Buffer.concat(proxy.pairs[0].c2s).subarray(0, 24).equals(Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")), "HTTP/2 preface");
});

test("probe: @grpc/grpc-js unary calls, byte for byte", { timeout: 60_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  const svc = `const id = (b) => b;
const svc = { say: { path: "/test.Echo/Say", requestStream: false, responseStream: false, requestSerialize: id, requestDeserialize: id, responseSerialize: id, responseDeserialize: id } };
`;
  const server = `${CHILD_REQUIRE}const grpc = require("@grpc/grpc-js");
${svc}
const server = new grpc.Server();
server.addService(svc, { say: (call, cb) => cb(null, Buffer.concat([Buffer.from("re:"), call.request])) });
server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, port) => { if (err) throw err; console.log("PORT " + port); });
`;
  const client = `${CHILD_REQUIRE}const grpc = require("@grpc/grpc-js");
${svc}
const Client = grpc.makeGenericClientConstructor(svc, "Echo");
const c = new Client("127.0.0.1:" + process.argv[2], grpc.credentials.createInsecure());
for (let i = 0; i < 20; i++) {
  const res = await new Promise((resolve, reject) => c.say(Buffer.from("message " + i), (err, r) => (err ? reject(err) : resolve(r))));
  if (res.toString() !== "re:message " + i) throw new Error("bad reply " + res);
}
c.close();
setTimeout(() => console.log("DONE"), 200);
`;
  const { proxy } = await scenario(t, server, client, (p) => [String(p)]);
  assert.equal(proxy.pairs.length, 1);
  const c2s = Buffer.concat(proxy.pairs[0].c2s).toString("latin1");
  assert.ok(c2s.startsWith("PRI * HTTP/2.0") && c2s.includes("message 19"), "gRPC over HTTP/2 with every request message");
});

test("probe: MariaDB (mariadbd) with the mysql2 client: handshake, queries, prepared statements, byte for byte", { timeout: 90_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  const db = await startMariaDb({ skipGrantTables: true });
  t.after(() => db.stop());
  const client = `${CHILD_REQUIRE}const mysql = require("mysql2/promise");
const conn = await mysql.createConnection({ host: "127.0.0.1", port: Number(process.argv[2]), user: "root" });
await conn.query("CREATE DATABASE IF NOT EXISTS ws");
await conn.query("CREATE TABLE ws.t (id INT PRIMARY KEY, name VARCHAR(100))");
for (let i = 0; i < 20; i++) await conn.execute("INSERT INTO ws.t VALUES (?, ?)", [i, "name-" + i]);
const [rows] = await conn.query("SELECT * FROM ws.t ORDER BY id");
if (rows.length !== 20) throw new Error("rows " + rows.length);
await conn.query("SELECT REPEAT('x', 100000) AS big");
await conn.end();
console.log("DONE");
`;
  const { proxy } = await scenario(t, { port: db.port, pid: db.proc.pid, comm: "mariadbd" }, client, (p) => [String(p)]);
  assert.equal(proxy.pairs.length, 1);
  assert.match(Buffer.concat(proxy.pairs[0].c2s).toString("latin1"), /INSERT INTO ws\.t VALUES/);
});
