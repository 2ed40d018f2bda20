// Tunnels and upgrades: after HTTP/1.1 CONNECT → 2xx the connection carries another protocol,
// and after 101 Switching Protocols too. Real clients through a small node:http CONNECT proxy on
// loopback (a node:http2 session, a @grpc/grpc-js channel via grpc_proxy) and a WebSocket
// handshake through node:http's upgrade; captured with tcpdump and decoded through the plugin host
// with every plugin loaded (detection by content). The tunnel's inside is compared with tshark's
// decode of the proxy → server leg of the same capture: the same bytes, seen without the tunnel.
import { test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import crypto from "node:crypto";
import * as grpc from "@grpc/grpc-js";
import { decodeCapture, type DecodedRecord } from "./protocol-support/index.js";
import { startCapture } from "./support/tcpdump.js";
import { tsharkHttp2 } from "./http-support.js";

const listen = (s: net.Server | http.Server | http2.Http2Server): Promise<number> =>
  new Promise((resolve, reject) => {
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => resolve((s.address() as net.AddressInfo).port));
  });
const closeServer = (s: { close(cb?: () => void): unknown }) => new Promise<void>((r) => s.close(() => r()));

/** A CONNECT proxy: 200, then bytes both ways. */
async function startProxy(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const proxy = http.createServer((_req, res) => res.writeHead(405).end());
  proxy.on("connect", (req: http.IncomingMessage, client: net.Socket, head: Buffer) => {
    const [host, port] = (req.url ?? "").split(":");
    const up = net.connect(Number(port), host!, () => {
      client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
      if (head.length) up.write(head);
      up.pipe(client);
      client.pipe(up);
    });
    for (const s of [client, up]) {
      sockets.add(s);
      s.on("error", () => {});
      s.on("close", () => (sockets.delete(s), client.destroy(), up.destroy()));
    }
  });
  const port = await listen(proxy);
  return {
    port,
    close: async () => {
      for (const s of sockets) s.destroy();
      await closeServer(proxy);
    },
  };
}

/** A socket through the proxy to 127.0.0.1:port, once the proxy answered 200. */
function tunnel(proxyPort: number, port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port: proxyPort, method: "CONNECT", path: `127.0.0.1:${port}`, headers: { host: `127.0.0.1:${port}` } });
    req.on("connect", (res: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
      if (res.statusCode !== 200) return reject(new Error(`CONNECT: ${res.statusCode}`));
      // the server's first bytes may come in the proxy's 200 segment: they belong to the tunnel
      if (head.length) socket.unshift(head);
      resolve(socket);
    });
    req.on("error", reject);
    req.end();
  });
}

const ident = (b: Buffer) => b;
const service = {
  unary: { path: "/tunnel.v1.Echo/Unary", requestStream: false, responseStream: false, requestSerialize: ident, requestDeserialize: ident, responseSerialize: ident, responseDeserialize: ident },
  spray: { path: "/tunnel.v1.Echo/Spray", requestStream: false, responseStream: true, requestSerialize: ident, requestDeserialize: ident, responseSerialize: ident, responseDeserialize: ident },
} satisfies grpc.ServiceDefinition;

test("CONNECT tunnels carrying HTTP/2 and gRPC are decoded inside; the CONNECT is its own record", { timeout: 120_000 }, async () => {
  const h2 = http2.createServer();
  h2.on("stream", (stream, headers) => {
    const p = String(headers[":path"]);
    let n = 0;
    stream.on("data", (d: Buffer) => (n += d.length));
    stream.on("end", () => {
      stream.respond({ ":status": p.includes("missing") ? 404 : 200, "content-type": "text/plain" });
      stream.end(`${n} bytes for ${p}`);
    });
  });
  const h2Port = await listen(h2);
  const server = new grpc.Server();
  server.addService(service, {
    unary: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) =>
      call.request.toString() === "missing" ? cb({ code: grpc.status.NOT_FOUND, details: "nothing here" }) : cb(null, call.request),
    spray: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
      for (let i = 0; i < 3; i++) call.write(Buffer.from(`item ${i}`));
      call.end();
    },
  });
  const grpcPort = await new Promise<number>((resolve, reject) => server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  const proxy = await startProxy();
  const cap = await startCapture([proxy.port, h2Port, grpcPort], "tunnels");
  const saved = process.env["grpc_proxy"];
  try {
    // HTTP/2 (prior knowledge) inside a tunnel
    const sock = await tunnel(proxy.port, h2Port);
    const session = http2.connect(`http://127.0.0.1:${h2Port}`, { createConnection: () => sock });
    const get = (p: string, body?: Buffer) =>
      new Promise<number>((resolve, reject) => {
        const s = session.request({ ":method": body ? "POST" : "GET", ":path": p });
        let status = 0;
        s.on("response", (h) => (status = Number(h[":status"])));
        s.on("data", () => {});
        s.on("end", () => resolve(status));
        s.on("error", reject);
        s.end(body);
      });
    assert.equal(await get("/in/tunnel"), 200);
    assert.equal(await get("/in/upload", Buffer.alloc(30_000, 1)), 200);
    assert.equal(await get("/in/missing"), 404);
    session.close();
    // gRPC through the proxy, the way grpc-js does it itself (grpc_proxy → CONNECT)
    process.env["grpc_proxy"] = `http://127.0.0.1:${proxy.port}`;
    const Client = grpc.makeGenericClientConstructor(service, "Echo");
    // biome-ignore lint/complexity/noBannedTypes: a generic client's methods, called by name
    const client = new Client(`127.0.0.1:${grpcPort}`, grpc.credentials.createInsecure()) as grpc.Client & Record<string, Function>;
    const unary = (m: string) => new Promise<number>((resolve) => client.unary(Buffer.from(m), { deadline: Date.now() + 20_000 }, (e: grpc.ServiceError | null) => resolve(e ? e.code : 0)));
    assert.equal(await unary("hi"), 0);
    assert.equal(await unary("missing"), grpc.status.NOT_FOUND);
    await new Promise<void>((resolve, reject) => {
      const s = client.spray(Buffer.from("go"), { deadline: Date.now() + 20_000 });
      s.on("data", () => {});
      s.on("end", () => resolve());
      s.on("error", reject);
    });
    client.close();
  } finally {
    if (saved === undefined) delete process.env["grpc_proxy"];
    else process.env["grpc_proxy"] = saved;
    await new Promise((r) => setTimeout(r, 200));
    await cap.stop();
    await proxy.close();
    await closeServer(h2);
    await new Promise<void>((r) => server.tryShutdown(() => r()));
  }

  const { records, counters } = decodeCapture(cap.file, { serverPort: proxy.port });
  const port = (a: string) => Number(a.split(":").pop());
  const viaProxy = records.filter((r) => port(r.server) === proxy.port);
  const direct = (p: number) => records.filter((r) => port(r.server) === p);
  assert.equal(counters["conn_switched.http1"], 2, `both tunnels switched: ${JSON.stringify(counters)}`);
  assert.equal(counters["unclaimed"] ?? 0, 0, "no tunnel left undecoded");

  // each tunnel: its CONNECT, then what it carried
  const connects = viaProxy.filter((r) => r.operation === "CONNECT");
  assert.deepEqual(connects.map((r) => [r.protocol, r.resource, r.status]).sort(), [["http1", `127.0.0.1:${grpcPort}`, 200], ["http1", `127.0.0.1:${h2Port}`, 200]].sort());
  const inside = viaProxy.filter((r) => r.operation !== "CONNECT");
  assert.ok(!inside.some((r) => r.protocol === "http1"), "nothing in a tunnel is taken for HTTP/1.1");
  const key = (r: DecodedRecord) => JSON.stringify([r.protocol, r.operation, r.resource, r.status, r.reqBytes, r.respBytes, r.attributes["rpc.request.messages"] ?? null, r.attributes["rpc.response.messages"] ?? null]);
  // the same streams as the proxy → server legs, which are plain HTTP/2 to our decoder...
  const legs = [...direct(h2Port), ...direct(grpcPort)];
  assert.equal(inside.length, 6, JSON.stringify(inside.map(key)));
  assert.deepEqual(inside.map(key).sort(), legs.map(key).sort());
  for (const r of inside) assert.equal(r.attributes["http2.request_unknown"], undefined);
  assert.deepEqual(inside.filter((r) => r.protocol === "http2").map((r) => [r.resource, r.status]).sort(), [["/in/missing", 404], ["/in/tunnel", 200], ["/in/upload", 200]]);
  assert.deepEqual(inside.filter((r) => r.protocol === "grpc").map((r) => [r.operation, r.status]).sort(), [["Spray", 0], ["Unary", 0], ["Unary", 5]]);
  // ...and to tshark
  for (const p of [h2Port, grpcPort]) {
    const theirs = (await tsharkHttp2(cap.file, p)).filter((t) => t.method !== undefined);
    const mine = inside.filter((r) => (p === grpcPort) === (r.protocol === "grpc"));
    assert.equal(mine.length, theirs.length, `port ${p}: tshark ${theirs.length} streams, ours ${mine.length}`);
    for (const t of theirs) {
      const i = mine.findIndex((r) => (r.resource === t.path || r.attributes["url.path"] === t.path) && r.reqBytes === t.reqBytes && r.respBytes === t.respBytes);
      assert.ok(i >= 0, `tshark's ${t.path} (${t.reqBytes}/${t.respBytes}) is not in the tunnel's records`);
      const r = mine.splice(i, 1)[0]!;
      assert.equal(r.status, p === grpcPort ? t.grpcStatus : t.status);
      if (p === grpcPort) assert.equal(r.attributes["rpc.response.messages"], t.respMessages);
    }
  }
});

test("a WebSocket upgrade is recognised (a websocket record) and its frames are not decoded as HTTP/1.1", { timeout: 60_000 }, async () => {
  const srv = http.createServer((req, res) => res.end("plain " + req.url));
  srv.on("upgrade", (req: http.IncomingMessage, socket: net.Socket) => {
    const accept = crypto.createHash("sha1").update(`${req.headers["sec-websocket-key"]}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest("base64");
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
    // echo each (small, masked) client frame back unmasked; text that looks like HTTP on purpose
    socket.on("data", (d: Buffer) => {
      const len = d[1]! & 0x7f;
      const mask = d.subarray(2, 6);
      const payload = Buffer.from(d.subarray(6, 6 + len).map((b, i) => b ^ mask[i % 4]!));
      socket.write(Buffer.concat([Buffer.from([0x81, payload.length]), payload]));
    });
    socket.on("end", () => socket.end());
    socket.on("error", () => {});
  });
  const port = await listen(srv);
  const cap = await startCapture(port, "websocket");
  try {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    await new Promise<void>((resolve, reject) => http.get({ host: "127.0.0.1", port, path: "/before", agent }, (res) => (res.resume(), res.on("end", resolve))).on("error", reject));
    agent.destroy();
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const req = http.request({ host: "127.0.0.1", port, path: "/chat?room=1", headers: { Connection: "Upgrade", Upgrade: "websocket", "Sec-WebSocket-Key": crypto.randomBytes(16).toString("base64"), "Sec-WebSocket-Version": "13" } });
      req.on("upgrade", (res: http.IncomingMessage, s: net.Socket) => (res.statusCode === 101 ? resolve(s) : reject(new Error(String(res.statusCode)))));
      req.on("error", reject);
      req.end();
    });
    for (const text of ["GET /not-a-request HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 200 OK\r\n\r\n", "hello"]) {
      const mask = crypto.randomBytes(4);
      const p = Buffer.from(text);
      socket.write(Buffer.concat([Buffer.from([0x81, 0x80 | p.length]), mask, Buffer.from(p.map((b, i) => b ^ mask[i % 4]!))]));
      await new Promise<void>((r) => socket.once("data", () => r()));
    }
    socket.end(Buffer.from([0x88, 0x80, 0, 0, 0, 0]));
    await new Promise((r) => setTimeout(r, 200));
  } finally {
    await cap.stop();
    await closeServer(srv);
  }
  const { records, counters } = decodeCapture(cap.file, { serverPort: port });
  assert.deepEqual(records.map((r) => [r.protocol, r.operation, r.resource, r.status]), [
    ["http1", "GET", "/before", 200],
    ["websocket", "GET", "/chat", 101],
  ], JSON.stringify(records));
  assert.equal(records[1]!.attributes["url.query"], "room=1");
  assert.equal(counters["unclaimed"] ?? 0, 0);
  assert.equal(counters["conn_dropped.not_mine"] ?? 0, 0);
});
