// HTTP/1.1, HTTP/2 and gRPC decoders against real clients and servers: traffic on loopback is
// captured with tcpdump, decoded by our plugins through the plugin host (all plugins loaded,
// detection by content), decoded by tshark, and compared field by field.
import { test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import fs from "node:fs";
import path from "node:path";
import { execFile } from "node:child_process";
import * as grpc from "@grpc/grpc-js";
import { decodeCapture, type DecodedRecord } from "./protocol-support/index.js";
import { PLUGINS_DIR } from "./support/index.js";
import { startCapture } from "./support/tcpdump.js";
import { h2Frame, hpackNewName } from "@wirescope/plugin-host/test-support/http2";
import { ConnectionEngine, Plugin, PluginRegistry } from "@wirescope/plugin-host";
import { recordToJson, type RecordJson } from "@wirescope/wire";
import { CaptureStreams } from "@wirescope/capture";
import { tsharkHttp1, tsharkHttp2, type TsharkH2Stream } from "./http-support.js";

const listen = (s: net.Server | http.Server | http2.Http2Server): Promise<number> =>
  new Promise((resolve, reject) => {
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => resolve((s.address() as net.AddressInfo).port));
  });
const closeServer = (s: { close(cb?: () => void): unknown }) => new Promise<void>((r) => s.close(() => r()));

function decodeOurs(file: string, port: number): DecodedRecord[] {
  // WIRESCOPE_KEEP_CAPTURES=<dir> keeps the captures for a look with tshark/wireshark
  const keep = process.env["WIRESCOPE_KEEP_CAPTURES"];
  if (keep) fs.copyFileSync(file, path.join(keep, path.basename(file)));
  const { records, counters } = decodeCapture(file, { serverPort: port });
  const traps = Object.entries(counters).filter(([k, v]) => k.startsWith("plugin_traps") && v > 0);
  assert.deepEqual(traps, [], "no plugin trap");
  return records;
}

// ------------------------------------------------------------------------------------ HTTP/1.1

function request(agent: http.Agent, port: number, opts: http.RequestOptions, body?: Buffer[]): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port, agent, ...opts }, (res) => {
      const parts: Buffer[] = [];
      res.on("data", (d: Buffer) => parts.push(d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts) }));
    });
    req.on("error", reject);
    req.setTimeout(20_000, () => req.destroy(new Error("request timed out")));
    if (opts.headers && (opts.headers as Record<string, string>)["Expect"]) {
      req.on("continue", () => {
        for (const b of body ?? []) req.write(b);
        req.end();
      });
      req.flushHeaders();
      return;
    }
    for (const b of body ?? []) req.write(b);
    req.end();
  });
}

test("http1: node:http keep-alive, chunked, large bodies, HEAD, 100-continue, 204, 500 and raw pipelining agree with tshark", { timeout: 120_000 }, async () => {
  const large = Buffer.alloc(1 << 20, 0x61);
  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const parts: Buffer[] = [];
    req.on("data", (d: Buffer) => parts.push(d));
    req.on("end", () => {
      const u = req.url ?? "";
      if (u.startsWith("/large")) {
        res.writeHead(200, { "content-type": "application/octet-stream" });
        for (let i = 0; i < 16; i++) res.write(large.subarray(i << 16, (i + 1) << 16));
        res.end();
      } else if (u.startsWith("/echo")) {
        res.writeHead(201);
        res.write(Buffer.concat(parts));
        res.end();
      } else if (u.startsWith("/empty")) {
        res.writeHead(204).end();
      } else if (u.startsWith("/fail")) {
        res.writeHead(500, { "content-length": "4" }).end("oops");
      } else {
        res.writeHead(200, { "content-length": "5" }).end(req.method === "HEAD" ? undefined : "hello");
      }
    });
  };
  const server = http.createServer(handler);
  server.on("checkContinue", (req, res) => {
    res.writeContinue();
    handler(req, res);
  });
  const port = await listen(server);
  const cap = await startCapture(port, "http1");
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const r1 = await request(agent, port, { path: "/a?x=1&y=two", headers: { traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" } });
    assert.equal(r1.body.toString(), "hello");
    await request(agent, port, { method: "POST", path: "/echo" }, [Buffer.from("chunk one,"), Buffer.from("chunk two")]);
    const big = await request(agent, port, { path: "/large" });
    assert.equal(big.body.length, large.length);
    await request(agent, port, { method: "HEAD", path: "/a" });
    await request(agent, port, { method: "PUT", path: "/echo/continue", headers: { Expect: "100-continue", "content-length": "11" } }, [Buffer.from("hello world")]);
    await request(agent, port, { path: "/empty" });
    await request(agent, port, { method: "DELETE", path: "/fail" });
    agent.destroy();
    // pipelining: three requests in one write, read until three responses are in
    await new Promise<void>((resolve, reject) => {
      const sock = net.connect(port, "127.0.0.1", () => sock.write("GET /p1 HTTP/1.1\r\nHost: pipe\r\n\r\nGET /p2 HTTP/1.1\r\nHost: pipe\r\n\r\nGET /fail HTTP/1.1\r\nHost: pipe\r\nConnection: close\r\n\r\n"));
      let got = "";
      sock.on("data", (d) => (got += d.toString("latin1")));
      sock.on("end", () => (got.split("HTTP/1.1 ").length - 1 === 3 ? resolve() : reject(new Error(`pipelined responses: ${got}`))));
      sock.on("error", reject);
      sock.setTimeout(20_000, () => sock.destroy(new Error("pipelining timed out")));
    });
  } finally {
    agent.destroy();
    await cap.stop();
    await closeServer(server);
  }
  const ours = decodeOurs(cap.file, port).filter((r) => r.protocol === "http1");
  const theirs = await tsharkHttp1(cap.file, port);
  assert.equal(theirs.length, 10, "tshark sees the ten requests");
  assert.equal(ours.length, theirs.length, `record count: ${JSON.stringify(ours.map((r) => r.resource))}`);
  // records leave in response order, which for HTTP/1.1 is request order per connection
  const sorted = [...ours].sort((a, b) => (BigInt(a.startNs) < BigInt(b.startNs) ? -1 : BigInt(a.startNs) > BigInt(b.startNs) ? 1 : 0));
  theirs.forEach((t, i) => {
    const r = sorted[i]!;
    const q = t.uri.indexOf("?");
    const p = q < 0 ? t.uri : t.uri.slice(0, q);
    assert.equal(r.operation, t.method, `#${i} method`);
    assert.equal(r.resource, p, `#${i} path`);
    assert.equal(r.attributes["url.query"], q < 0 ? undefined : t.uri.slice(q + 1), `#${i} query`);
    assert.equal(r.attributes["server.address"], t.host, `#${i} host`);
    assert.equal(r.status, t.status, `#${i} ${t.uri} status`);
    assert.equal(r.error, (t.status ?? 0) >= 500, `#${i} error`);
    assert.equal(r.incomplete, undefined, `#${i} complete`);
  });
  const by = (path: string, method = "GET") => sorted.find((r) => r.resource === path && r.operation === method)!;
  assert.equal(by("/large").respBytes, large.length);
  assert.equal(by("/echo", "POST").reqBytes, 19);
  assert.equal(by("/echo", "POST").respBytes, 19);
  assert.equal(by("/echo/continue", "PUT").reqBytes, 11);
  assert.equal(by("/a", "HEAD").respBytes, 0);
  assert.deepEqual(by("/a").trace, { traceId: "0af7651916cd43dd8448eb211c80319c", parentSpanId: "b7ad6b7169203331", flags: 1, format: "w3c" });
});

// ------------------------------------------------------------------------------------ HTTP/2

function compareH2(ours: DecodedRecord[], theirs: TsharkH2Stream[], label: string): void {
  const want = theirs.filter((t) => t.method !== undefined);
  assert.equal(ours.length, want.length, `${label}: record count (ours ${ours.length}, tshark ${want.length})`);
  const left = [...ours];
  for (const t of want) {
    const grpcCall = (t.contentType ?? "").startsWith("application/grpc");
    const q = (t.path ?? "").indexOf("?");
    const p = q < 0 ? t.path : t.path!.slice(0, q);
    const i = left.findIndex((r) => (grpcCall ? r.resource === t.path : r.attributes["url.path"] === p) && r.reqBytes === t.reqBytes && r.respBytes === t.respBytes && r.attributes["server.address"] === t.authority && (grpcCall ? r.status === (t.grpcStatus ?? null) : r.status === (t.status ?? null)));
    assert.ok(i >= 0, `${label}: no record matches tshark's stream ${t.streamId} ${JSON.stringify(t)}\nours: ${JSON.stringify(left.map((r) => [r.resource, r.status, r.reqBytes, r.respBytes]))}`);
    const r = left.splice(i, 1)[0]!;
    assert.equal(r.attributes["network.protocol.version"], "2");
    if (grpcCall) {
      assert.equal(r.protocol, "grpc", `${label}: stream ${t.streamId} protocol`);
      assert.equal(r.attributes["rpc.grpc.status_code"], t.grpcStatus);
      assert.equal(r.attributes["rpc.grpc.status_message"], t.grpcMessage ?? "");
      assert.equal(r.attributes["rpc.request.messages"], t.reqMessages, `${label}: stream ${t.streamId} request messages`);
      assert.equal(r.attributes["rpc.response.messages"], t.respMessages, `${label}: stream ${t.streamId} response messages`);
      assert.equal(r.error, t.grpcStatus !== 0);
    } else {
      assert.equal(r.protocol, "http2", `${label}: stream ${t.streamId} protocol`);
      assert.equal(r.operation, t.method);
      assert.equal(r.attributes["http.response.status_code"], t.status);
      assert.equal(r.error, (t.status ?? 0) >= 500);
    }
  }
}

test("http2: node:http2 prior knowledge with 60 concurrent streams, bodies and CONTINUATION agrees with tshark", { timeout: 120_000 }, async () => {
  const server = http2.createServer({ settings: { maxFrameSize: 16384 } });
  server.on("stream", (stream, headers) => {
    const path = String(headers[":path"]);
    let n = 0;
    stream.on("data", (d: Buffer) => (n += d.length));
    stream.on("end", () => {
      if (path.startsWith("/missing")) stream.respond({ ":status": 404 }, { endStream: true });
      else if (path.startsWith("/boom")) {
        stream.respond({ ":status": 503, "content-type": "text/plain" });
        stream.end("unavailable");
      } else if (path.startsWith("/big-headers")) {
        stream.respond({ ":status": 200, "x-big": "h".repeat(40_000) });
        stream.end("ok");
      } else {
        stream.respond({ ":status": 200, "content-type": "text/plain" });
        stream.end(`got ${n} bytes for ${path}`);
      }
    });
  });
  const port = await listen(server);
  const cap = await startCapture(port, "http2");
  const client = http2.connect(`http://127.0.0.1:${port}`);
  try {
    const call = (headers: http2.OutgoingHttpHeaders, body?: Buffer) =>
      new Promise<number>((resolve, reject) => {
        const s = client.request(headers, { endStream: body === undefined });
        s.setTimeout(20_000, () => s.close(http2.constants.NGHTTP2_CANCEL));
        let status = 0;
        s.on("response", (h) => (status = Number(h[":status"])));
        s.on("data", () => {});
        s.on("end", () => resolve(status));
        s.on("error", reject);
        if (body !== undefined) s.end(body);
      });
    const calls: Promise<number>[] = [];
    for (let i = 0; i < 60; i++) {
      if (i % 10 === 3) calls.push(call({ ":method": "POST", ":path": `/upload/${i}?n=${i}` }, Buffer.alloc(1000 + i * 500, 0x62)));
      else if (i % 10 === 5) calls.push(call({ ":path": `/missing/${i}` }));
      else if (i % 10 === 7) calls.push(call({ ":path": `/boom/${i}` }));
      else calls.push(call({ ":path": `/item/${i}`, "x-request-id": `req-${i}` }));
    }
    // a request header block larger than a frame: HEADERS + CONTINUATION
    calls.push(call({ ":path": "/big-headers", "x-large": "v".repeat(50_000) }));
    // every printable character in a path: Huffman codes of 5 to 28 bits
    let printable = "";
    for (let c = 0x21; c < 0x7f; c++) if (c !== 0x3f && c !== 0x23) printable += String.fromCharCode(c);
    calls.push(call({ ":path": `/all/${printable}` }));
    const statuses = await Promise.all(calls);
    assert.equal(statuses.filter((s) => s === 404).length, 6);
  } finally {
    client.close();
    await cap.stop();
    await closeServer(server);
  }
  const ours = decodeOurs(cap.file, port).filter((r) => r.protocol === "http2");
  const theirs = await tsharkHttp2(cap.file, port);
  compareH2(ours, theirs, "prior knowledge");
  assert.ok(ours.some((r) => r.resource === "/big-headers" && r.status === 200), "the CONTINUATION request decoded");
  assert.equal(ours.filter((r) => r.resource.startsWith("/all/")).length, 1, "the path with every printable character decoded");

});

test("http2: a connection picked up mid-way never yields a wrong path (real node:http2 traffic, pickup at every chunk)", { timeout: 120_000 }, async () => {
  const server = http2.createServer();
  server.on("stream", (stream, headers) => {
    const p = String(headers[":path"]);
    stream.respond({ ":status": p.includes("/r/3") ? 404 : 200, "content-type": "application/json", "x-shard": String(p.length % 3) });
    stream.end("{}");
  });
  const port = await listen(server);
  const cap = await startCapture(port, "h2pickup");
  const client = http2.connect(`http://127.0.0.1:${port}`);
  try {
    // one request at a time, so that every request is its own chunk; repeated paths and headers
    // make the encoder refer back to dynamic-table entries
    for (let i = 0; i < 40; i++) {
      await new Promise<void>((resolve, reject) => {
        const s = client.request({ ":path": `/r/${i % 7}?v=${i % 3}`, "x-tenant": "acme", "x-request-id": `id-${i % 5}` });
        s.setTimeout(20_000, () => s.close(http2.constants.NGHTTP2_CANCEL));
        s.on("data", () => {});
        s.on("end", () => resolve());
        s.on("error", reject);
      });
    }
  } finally {
    client.close();
    await cap.stop();
    await closeServer(server);
  }
  const theirs = await tsharkHttp2(cap.file, port);
  assert.equal(theirs.filter((t) => t.method).length, 40);
  const known = new Set(theirs.map((t) => `${t.method} ${t.path} ${t.status}`));
  let withPath = 0;
  let unknown = 0;
  for (let k = 1; k <= 60; k++) {
    for (const r of decodeFromChunk(cap.file, k)) {
      const p = r.attributes["url.path"];
      if (p === undefined) {
        assert.equal(r.attributes["http2.request_unknown"], true, `pickup after ${k}: a record without a path says so`);
        unknown++;
        continue;
      }
      withPath++;
      const q = r.attributes["url.query"];
      const key = `${r.operation} ${String(p)}${q === undefined ? "" : `?${String(q)}`} ${r.status}`;
      assert.ok(known.has(key), `pickup after ${k} chunks: "${key}" is not a stream tshark saw`);
    }
  }
  assert.ok(withPath > 0, "requests after the pickup point decode");
  assert.ok(unknown > 0, "streams from before the pickup point are written as unknown");
});

/** Decodes a capture's connections as if picked up after `skip` chunks of each direction. */
function decodeFromChunk(file: string, skip: number): RecordJson[] {
  const reg = new PluginRegistry();
  reg.add(Plugin.fromFile(path.join(PLUGINS_DIR, "http2.json"), { flags: 0 }));
  const engine = new ConnectionEngine(reg);
  const out: RecordJson[] = [];
  const conns = new Map<unknown, { ec: ReturnType<ConnectionEngine["openConnection"]>; seen: [number, number] }>();
  const take = (rs: Uint8Array[]) => rs.forEach((b) => out.push(recordToJson(b)));
  CaptureStreams.open(file, {
    open: (c) => void conns.set(c, { ec: engine.openConnection({ protocol: "http2" }), seen: [0, 0] }),
    data: (c, dir, bytes, ts) => {
      const x = conns.get(c)!;
      if (++x.seen[dir] <= skip) return;
      if (x.seen[dir] === skip + 1) take(x.ec.gap(dir, 0, ts).records);
      take(x.ec.data(dir, bytes, ts).records);
    },
    gap: (c, dir, len, ts) => take(conns.get(c)!.ec.gap(dir, len, ts).records),
    close: (c, _r, ts) => take(conns.get(c)!.ec.close(ts).records),
  }).run();
  return out;
}

test("http2: h2c upgrade from nghttp -u (stream 1 is the HTTP/1.1 request) agrees with tshark", { timeout: 60_000 }, async () => {
  // node:http2 has no h2c upgrade, so the server side is hand-made: 101, then plain frames
  const server = net.createServer((sock) => {
    let buf = Buffer.alloc(0);
    let upgraded = false;
    sock.on("error", () => {});
    sock.on("data", (d) => {
      buf = Buffer.concat([buf, d]);
      if (!upgraded) {
        const end = buf.indexOf("\r\n\r\n");
        if (end < 0) return;
        buf = buf.subarray(end + 4);
        upgraded = true;
        sock.write("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n");
        sock.write(h2Frame(4, 0, 0, Buffer.alloc(0)));
        sock.write(h2Frame(1, 4, 1, Buffer.concat([Buffer.from([0x88]), hpackNewName("content-type", "text/plain")])));
        sock.write(h2Frame(0, 1, 1, Buffer.from("upgraded hello")));
      }
      if (buf.subarray(0, 3).toString() === "PRI") {
        if (buf.length < 24) return;
        buf = buf.subarray(24);
      }
      while (buf.length >= 9) {
        const len = buf.readUIntBE(0, 3);
        if (buf.length < 9 + len) return;
        const type = buf[3]!;
        const flags = buf[4]!;
        const sid = buf.readUInt32BE(5) & 0x7fffffff;
        buf = buf.subarray(9 + len);
        if (type === 4 && !(flags & 1)) sock.write(h2Frame(4, 1, 0, Buffer.alloc(0)));
        if (type === 1 && flags & 1) sock.write(h2Frame(1, 5, sid, Buffer.from([0x8d]))); // :status 404, END_STREAM
        if (type === 7) sock.end();
      }
    });
  });
  const port = await listen(server);
  const cap = await startCapture(port, "h2c");
  try {
    await new Promise<void>((resolve, reject) => {
      execFile("nghttp", ["-u", "-n", `http://127.0.0.1:${port}/first?up=1`, `http://127.0.0.1:${port}/second`], { timeout: 20_000 }, (err, _o, stderr) => (err ? reject(new Error(`nghttp: ${err.message} ${stderr}`)) : resolve()));
    });
  } finally {
    await cap.stop();
    await closeServer(server);
  }
  const ours = decodeOurs(cap.file, port);
  const theirs = await tsharkHttp2(cap.file, port, "http");
  assert.ok(theirs.some((t) => t.h2cUpgrade && t.streamId === 1), "tshark saw the upgrade");
  assert.equal(ours.filter((r) => r.protocol !== "http2").length, 0, "all records are http2");
  compareH2(ours, theirs, "h2c");
  const first = ours.find((r) => r.resource === "/first")!;
  assert.equal(first.status, 200);
  assert.equal(first.attributes["url.query"], "up=1");
  assert.equal(first.respBytes, 14);
  assert.equal(ours.find((r) => r.resource === "/second")?.status, 404);
});

// ------------------------------------------------------------------------------------ gRPC

const ident = (b: Buffer) => b;
const service = {
  unary: { path: "/test.v1.Echo/Unary", requestStream: false, responseStream: false, requestSerialize: ident, requestDeserialize: ident, responseSerialize: ident, responseDeserialize: ident },
  client: { path: "/test.v1.Echo/Collect", requestStream: true, responseStream: false, requestSerialize: ident, requestDeserialize: ident, responseSerialize: ident, responseDeserialize: ident },
  server: { path: "/test.v1.Echo/Spray", requestStream: false, responseStream: true, requestSerialize: ident, requestDeserialize: ident, responseSerialize: ident, responseDeserialize: ident },
  bidi: { path: "/test.v1.Echo/Chat", requestStream: true, responseStream: true, requestSerialize: ident, requestDeserialize: ident, responseSerialize: ident, responseDeserialize: ident },
} satisfies grpc.ServiceDefinition;

test("grpc: @grpc/grpc-js unary, client/server streaming and bidi with OK and error statuses agree with tshark", { timeout: 120_000 }, async () => {
  const server = new grpc.Server();
  server.addService(service, {
    unary: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      if (call.request.toString() === "missing") cb({ code: grpc.status.NOT_FOUND, details: "no such key: missing" });
      else cb(null, Buffer.concat([Buffer.from("echo:"), call.request]));
    },
    client: (call: grpc.ServerReadableStream<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      let n = 0;
      call.on("data", () => n++);
      call.on("end", () => cb(null, Buffer.from(`got ${n}`)));
    },
    server: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
      const n = Number(call.request.toString());
      for (let i = 0; i < n; i++) call.write(Buffer.from(`item ${i}`));
      if (n === 2) call.emit("error", { code: grpc.status.RESOURCE_EXHAUSTED, details: "quota" });
      else call.end();
    },
    bidi: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      call.on("data", (d: Buffer) => call.write(Buffer.concat([Buffer.from("re:"), d])));
      call.on("end", () => call.end());
    },
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  const cap = await startCapture(port, "grpc");
  const Client = grpc.makeGenericClientConstructor(service, "Echo");
  // biome-ignore lint/complexity/noBannedTypes: a generic client's methods, called by name
  const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as grpc.Client & Record<string, Function>;
  const deadline = () => ({ deadline: Date.now() + 20_000 });
  try {
    const unary = (msg: string) => new Promise<grpc.StatusObject | Buffer>((resolve) => client.unary(Buffer.from(msg), deadline(), (e: grpc.ServiceError | null, r: Buffer) => resolve(e ?? r)));
    assert.equal(((await unary("hi")) as Buffer).toString(), "echo:hi");
    assert.equal(((await unary("missing")) as grpc.StatusObject).code, grpc.status.NOT_FOUND);
    await new Promise<void>((resolve, reject) => {
      const c = client.client(deadline(), (e: grpc.ServiceError | null) => (e ? reject(e) : resolve()));
      for (let i = 0; i < 5; i++) c.write(Buffer.from(`part ${i}`));
      c.end();
    });
    for (const n of [4, 2]) {
      await new Promise<void>((resolve) => {
        const s = client.server(Buffer.from(String(n)), deadline());
        s.on("data", () => {});
        s.on("error", () => resolve());
        s.on("end", () => resolve());
      });
    }
    await new Promise<void>((resolve, reject) => {
      const b = client.bidi(deadline());
      let got = 0;
      b.on("data", () => {
        if (++got === 3) b.end();
      });
      b.on("end", () => resolve());
      b.on("error", reject);
      for (let i = 0; i < 3; i++) b.write(Buffer.from(`m${i}`));
    });
  } finally {
    client.close();
    await cap.stop();
    await new Promise<void>((r) => server.tryShutdown(() => r()));
  }
  const ours = decodeOurs(cap.file, port);
  const theirs = await tsharkHttp2(cap.file, port);
  assert.equal(theirs.filter((t) => t.method).length, 6, "tshark sees six calls");
  compareH2(ours, theirs, "grpc");
  const bySvc = (m: string) => ours.filter((r) => r.attributes["rpc.method"] === m);
  assert.equal(bySvc("Unary").length, 2);
  assert.deepEqual(bySvc("Unary").map((r) => r.status).sort(), [0, 5]);
  assert.equal(bySvc("Collect")[0]!.attributes["rpc.request.messages"], 5);
  assert.deepEqual(bySvc("Spray").map((r) => [r.status, r.attributes["rpc.response.messages"]]).sort(), [[0, 4], [8, 2]]);
  assert.equal(bySvc("Chat")[0]!.attributes["rpc.response.messages"], 3);
  for (const r of ours) assert.equal(r.attributes["rpc.service"], "test.v1.Echo");
});

test("grpc: streaming calls last until END_STREAM or RST_STREAM, with messages each way (times and counts agree with tshark)", { timeout: 120_000 }, async () => {
  const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const server = new grpc.Server();
  server.addService(service, {
    unary: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, call.request),
    client: (call: grpc.ServerReadableStream<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      let n = 0;
      call.on("data", () => n++);
      call.on("end", () => cb(null, Buffer.from(`got ${n}`)));
    },
    server: async (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
      // the first message goes out at once: the response HEADERS come long before the end
      for (let i = 0; i < Number(call.request.toString()) && !call.cancelled; i++) {
        call.write(Buffer.from(`item ${i}`));
        await pause(40);
      }
      if (!call.cancelled) call.end();
    },
    bidi: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      call.on("data", (d: Buffer) => call.write(Buffer.concat([Buffer.from("re:"), d])));
      call.on("end", () => call.end());
    },
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  const cap = await startCapture(port, "grpc-streams");
  const Client = grpc.makeGenericClientConstructor(service, "Echo");
  // biome-ignore lint/complexity/noBannedTypes: a generic client's methods, called by name
  const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as grpc.Client & Record<string, Function>;
  const spray = (n: number, opts: { cancelAfter?: number; deadlineMs?: number } = {}) =>
    new Promise<void>((resolve) => {
      const s = client.server(Buffer.from(String(n)), { deadline: Date.now() + (opts.deadlineMs ?? 20_000) });
      let got = 0;
      s.on("data", () => {
        if (++got === opts.cancelAfter) s.cancel(); // RST_STREAM CANCEL from the client
      });
      s.on("error", () => resolve());
      s.on("end", () => resolve());
    });
  try {
    await spray(4);
    await new Promise<void>((resolve, reject) => {
      const c = client.client({ deadline: Date.now() + 20_000 }, (e: grpc.ServiceError | null) => (e ? reject(e) : resolve()));
      void (async () => {
        for (let i = 0; i < 4; i++) {
          c.write(Buffer.from(`part ${i}`));
          await pause(40);
        }
        c.end();
      })();
    });
    await new Promise<void>((resolve, reject) => {
      const b = client.bidi({ deadline: Date.now() + 20_000 });
      let got = 0;
      b.on("data", () => {
        if (++got === 3) b.end();
        else void pause(40).then(() => b.write(Buffer.from(`m${got}`)));
      });
      b.on("end", () => resolve());
      b.on("error", reject);
      b.write(Buffer.from("m0"));
    });
    await spray(10, { cancelAfter: 2 });
    await spray(10, { deadlineMs: 150 });
    await pause(300); // the server's side of the cancelled calls settles before the capture stops
  } finally {
    client.close();
    await cap.stop();
    await new Promise<void>((r) => server.tryShutdown(() => r()));
  }
  const ours = decodeOurs(cap.file, port);
  const theirs = (await tsharkHttp2(cap.file, port)).filter((t) => t.method !== undefined).sort((a, b) => a.streamId - b.streamId);
  assert.equal(theirs.length, 5, "tshark sees five calls");
  assert.equal(ours.length, 5, JSON.stringify(ours));
  // records come out as calls end, which here is call order
  const [sp, co, bi, cancelled, late] = ours;
  for (const [i, r] of ours.entries()) {
    const t = theirs[i]!;
    assert.equal(r.resource, t.path, `call ${i}`);
    assert.equal(r.startNs, t.startNs, `call ${i} (${t.path}) starts at its request HEADERS`);
    assert.equal(String(BigInt(r.startNs) + BigInt(r.durationNs)), t.endNs, `call ${i} (${t.path}) ends at END_STREAM or RST_STREAM`);
    assert.equal(r.reqBytes, t.reqBytes);
    assert.equal(r.respBytes, t.respBytes);
  }
  const ms = (r: DecodedRecord) => Number(BigInt(r.durationNs) / 1_000_000n);
  assert.deepEqual([sp!.status, sp!.attributes["rpc.request.messages"], sp!.attributes["rpc.response.messages"]], [0, 1, 4]);
  assert.ok(ms(sp!) >= 120, `server streaming lasted ${ms(sp!)} ms, not until its first response HEADERS`);
  assert.deepEqual([co!.status, co!.attributes["rpc.request.messages"], co!.attributes["rpc.response.messages"]], [0, 4, 1]);
  assert.ok(ms(co!) >= 120, `client streaming lasted ${ms(co!)} ms`);
  assert.deepEqual([bi!.status, bi!.attributes["rpc.request.messages"], bi!.attributes["rpc.response.messages"]], [0, 3, 3]);
  assert.ok(ms(bi!) >= 80, `bidi lasted ${ms(bi!)} ms`);
  for (const [r, t] of [[cancelled!, theirs[3]!], [late!, theirs[4]!]] as const) {
    assert.equal(r.incomplete, true, "a reset call is incomplete");
    assert.equal(r.attributes["http2.rst_stream.error_code"], 8, "CANCEL");
    assert.equal(r.status, null);
    assert.equal(r.attributes["rpc.response.messages"], t.respMessages);
  }
  assert.ok((cancelled!.attributes["rpc.response.messages"] as number) >= 2);
  assert.ok(ms(late!) >= 100, `the call cut by its deadline lasted ${ms(late!)} ms`);
});
