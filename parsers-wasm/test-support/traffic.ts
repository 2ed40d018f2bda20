// Realistic traffic for the decode-only benchmark: real clients and servers (node:http,
// node:http2) talking through the capture relay, or a generator where a server would add nothing
// (Redis RESP). Each sample is one connection's chunks, exactly as a socket-level probe sees them.
// A decoder may add its own generator as parsers-wasm/<name>/test/traffic.ts exporting
// `traffic(): Promise<TrafficSample[]>`; it is used instead of these.

import http from "node:http";
import http2 from "node:http2";
import type net from "node:net";
import { startRelay, type CapturedChunk } from "./relay.js";

export interface TrafficSample {
  /** What the sample is (shown in the table). */
  name: string;
  /** The plugin that decodes it. */
  plugin: string;
  /** One connection (or several, each a list of chunks). */
  connections: CapturedChunk[][];
  /** Request/response pairs in the sample (to check the decoder found them all). */
  pairs: number;
}

const PATHS = ["/api/v1/users/12345", "/api/v1/orders?status=open&limit=50", "/static/app.3f9a1c.js", "/healthz", "/api/v1/cart/items/998877", "/search?q=observability+pipeline"];
const UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36";

function body(i: number): string {
  return JSON.stringify({ id: i, name: `item-${i}`, tags: ["a", "b", "c"], price: 12.5 + (i % 10), ok: true });
}

async function listen(server: net.Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  return (server.address() as net.AddressInfo).port;
}

/** HTTP/1.1 keep-alive: node:http client and server, `n` requests on one connection. */
export async function http1Traffic(n = 4000): Promise<TrafficSample> {
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const i = Number(req.headers["x-request-id"] ?? 0);
      const status = i % 50 === 0 ? 404 : i % 97 === 0 ? 500 : 200;
      res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store", "x-served-by": "bench" });
      res.end(body(i));
    });
  });
  const port = await listen(server);
  const relay = await startRelay(port);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    for (let i = 0; i < n; i++) {
      const post = i % 4 === 3;
      await new Promise<void>((resolve, reject) => {
        const req = http.request(
          {
            host: "127.0.0.1",
            port: relay.port,
            agent,
            method: post ? "POST" : "GET",
            path: PATHS[i % PATHS.length],
            headers: { "user-agent": UA, accept: "application/json", "accept-encoding": "gzip, deflate", "x-request-id": String(i), ...(post ? { "content-type": "application/json" } : {}) },
          },
          (res) => {
            res.resume();
            res.on("end", resolve);
          },
        );
        req.on("error", reject);
        req.end(post ? body(i) : undefined);
      });
    }
  } finally {
    agent.destroy();
    await new Promise((r) => setTimeout(r, 50));
    await relay.close();
    server.close();
  }
  return { name: "http1 node:http keep-alive", plugin: "http1", connections: relay.connections.map((c) => c.chunks), pairs: n };
}

/** HTTP/2 (prior knowledge): node:http2 client and server, `n` requests, 32 streams in flight. */
export async function http2Traffic(n = 4000, concurrency = 32): Promise<TrafficSample> {
  const server = http2.createServer();
  server.on("stream", (stream, headers) => {
    const i = Number(headers["x-request-id"] ?? 0);
    stream.on("data", () => {});
    stream.on("end", () => {
      if (stream.destroyed) return;
      stream.respond({ ":status": i % 50 === 0 ? 404 : 200, "content-type": "application/json", "cache-control": "no-store", "x-served-by": "bench" });
      stream.end(body(i));
    });
  });
  const port = await listen(server);
  const relay = await startRelay(port);
  const client = http2.connect(`http://127.0.0.1:${relay.port}`);
  try {
    let next = 0;
    const worker = async () => {
      while (next < n) {
        const i = next++;
        const post = i % 4 === 3;
        await new Promise<void>((resolve, reject) => {
          const req = client.request({ ":method": post ? "POST" : "GET", ":path": PATHS[i % PATHS.length]!, "user-agent": UA, accept: "application/json", "accept-encoding": "gzip, deflate", "x-request-id": String(i) });
          req.on("response", () => {});
          req.on("data", () => {});
          req.on("end", resolve);
          req.on("error", reject);
          req.end(post ? body(i) : undefined);
        });
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
  } finally {
    await new Promise<void>((r) => client.close(() => r()));
    await new Promise((r) => setTimeout(r, 50));
    await relay.close();
    server.close();
  }
  return { name: `http2 node:http2 ${concurrency} streams`, plugin: "http2", connections: relay.connections.map((c) => c.chunks), pairs: n };
}

/** Redis RESP: pipelined batches of typical commands and their replies (generated). */
export function redisTraffic(n = 20000): TrafficSample {
  const enc = (args: string[]) => `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join("")}`;
  const chunks: CapturedChunk[] = [];
  let ts = 1_700_000_000_000_000_000n;
  for (let i = 0; i < n; ) {
    const batch = 1 + (i % 8);
    let req = "";
    let rep = "";
    for (let k = 0; k < batch && i < n; k++, i++) {
      switch (i % 5) {
        case 0:
          req += enc(["GET", `user:${i}:profile`]);
          rep += `$${body(i).length}\r\n${body(i)}\r\n`;
          break;
        case 1:
          req += enc(["SET", `session:${i}`, body(i), "EX", "3600"]);
          rep += "+OK\r\n";
          break;
        case 2:
          req += enc(["INCR", `counter:${i % 100}`]);
          rep += `:${i}\r\n`;
          break;
        case 3:
          req += enc(["HGETALL", `cart:${i}`]);
          rep += "*4\r\n$4\r\nitem\r\n$5\r\n12345\r\n$3\r\nqty\r\n$1\r\n2\r\n";
          break;
        default:
          req += enc(["LPUSH", `queue:${i % 3}`, body(i)]);
          rep += i % 50 === 0 ? "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n" : `:${i % 1000}\r\n`;
      }
    }
    chunks.push({ dir: 0, bytes: Buffer.from(req), tsNs: (ts += 20_000n) });
    chunks.push({ dir: 1, bytes: Buffer.from(rep), tsNs: (ts += 80_000n) });
  }
  return { name: "redis pipelined 1-8", plugin: "redis", connections: [chunks], pairs: n };
}
