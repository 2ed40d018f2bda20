// The demo shop's processes. Each runs as its own process (`wirescope demo --part NAME`) with its
// process title set to its name, so the probe sees `web`, `api`, `orders`... as the kernel's comm,
// and the service map names them. Behaviour follows spec.ts; every request made or answered is
// counted (counts.ts).
import http from "node:http";
import http2 from "node:http2";
import * as grpc from "@grpc/grpc-js";
import mysql from "mysql2/promise";
import { Kafka, logLevel } from "kafkajs";
import fs from "node:fs";
import { listenOn } from "@wirescope/runtime/process";
import { startKafkaTestBroker } from "./kafka-broker/index.js";
import { Counts } from "./counts.js";
import { RespClient } from "./resp.js";
import { CACHE_TTL_S, CYCLE, DEFAULT_RATE, FAIL_EVERY, GRPC_SERVICE, ITEMS, KAFKA_TOPIC, ORDERS_DELAY_MS, demoTlsFiles, ports, type Part } from "./spec.js";

export interface PartOptions {
  part: Part;
  basePort: number;
  dir: string;
  rate: number;
  /** The load generator stops after this many requests (0 = never). */
  requests: number;
  /** MariaDB account for `orders` (the supervisor creates it). */
  dbUser: string;
  dbPassword: string;
}

/** JSON messages over real gRPC framing: the demo needs no .proto of its own. */
const json = {
  serialize: (v: unknown) => Buffer.from(JSON.stringify(v)),
  deserialize: (b: Buffer) => JSON.parse(b.toString("utf8")) as unknown,
};
const ordersService: grpc.ServiceDefinition = {
  GetItem: { path: `/${GRPC_SERVICE}/GetItem`, requestStream: false, responseStream: false, requestSerialize: json.serialize, requestDeserialize: json.deserialize, responseSerialize: json.serialize, responseDeserialize: json.deserialize },
  PlaceOrder: { path: `/${GRPC_SERVICE}/PlaceOrder`, requestStream: false, responseStream: false, requestSerialize: json.serialize, requestDeserialize: json.deserialize, responseSerialize: json.serialize, responseDeserialize: json.deserialize },
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs one part until SIGTERM/SIGINT; resolves when it has stopped. */
export async function runPart(o: PartOptions): Promise<void> {
  process.title = o.part;
  const p = ports(o.basePort);
  const counts = new Counts(o.dir, o.part);
  const stops: (() => Promise<void> | void)[] = [];
  switch (o.part) {
    case "kafka": {
      const broker = await startKafkaTestBroker({ port: p.kafka });
      stops.push(() => broker.stop());
      break;
    }
    case "orders":
      stops.push(...(await orders(o, p, counts)));
      break;
    case "api":
      stops.push(...(await api(p, counts, o.dir)));
      break;
    case "web":
      stops.push(...(await web(p, counts, o.dir)));
      break;
    case "shipping":
      stops.push(...(await shipping(p, counts)));
      break;
    case "loadgen":
      stops.push(...loadgen(p, counts, o.rate || DEFAULT_RATE, o.requests));
      break;
  }
  process.stdout.write(`demo ${o.part}: running (pid ${process.pid})\n`);
  // A part never outlives the demo that started it (even one killed with SIGKILL).
  const parent = process.ppid;
  await new Promise<void>((resolve) => {
    process.once("SIGTERM", resolve);
    process.once("SIGINT", resolve);
    // Also what keeps a part alive once its own work is done (a load generator past --requests).
    setInterval(() => process.ppid !== parent && resolve(), 500);
  });
  for (const s of stops.reverse()) await s();
  counts.stop();
  process.exit(0);
}

/** gRPC server in front of MariaDB (a pool of 4: prepared SELECTs, text INSERTs) and a Kafka producer. */
async function orders(o: PartOptions, p: ReturnType<typeof ports>, counts: Counts) {
  const pool = mysql.createPool({ host: "127.0.0.1", port: p.mariadb, user: o.dbUser, password: o.dbPassword, database: "shop", connectionLimit: 4 });
  const kafka = new Kafka({ clientId: "orders", brokers: [`127.0.0.1:${p.kafka}`], logLevel: logLevel.NOTHING, retry: { retries: 2 } });
  const producer = kafka.producer({ allowAutoTopicCreation: true });
  await producer.connect();
  let calls = 0;
  let placed = 0;
  const delay = () => sleep(ORDERS_DELAY_MS[calls++ % ORDERS_DELAY_MS.length]!);
  const server = new grpc.Server();
  server.addService(ordersService, {
    GetItem: (call: grpc.ServerUnaryCall<{ id: number }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      void (async () => {
        await delay();
        try {
          const [rows] = await pool.execute("SELECT id, name, price FROM items WHERE id = ?", [call.request.id]);
          counts.add("client", "mysql", "SELECT", "items", "ok");
          const item = (rows as unknown[])[0];
          counts.add("server", "grpc", "POST", `/${GRPC_SERVICE}/GetItem`, item ? 0 : 5);
          if (!item) cb({ code: grpc.status.NOT_FOUND, details: "no such item" });
          else cb(null, item);
        } catch (e) {
          counts.add("client", "mysql", "SELECT", "items", "error");
          counts.add("server", "grpc", "POST", `/${GRPC_SERVICE}/GetItem`, 13);
          cb({ code: grpc.status.INTERNAL, details: (e as Error).message });
        }
      })();
    },
    PlaceOrder: (call: grpc.ServerUnaryCall<{ item: number }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      void (async () => {
        await delay();
        placed++;
        // Every FAIL_EVERY-th order reuses the previous id: a duplicate key, a known error rate.
        const id = placed % FAIL_EVERY === 0 ? placed - 1 : placed;
        try {
          await pool.query(`INSERT INTO orders (id, item_id, qty) VALUES (${id}, ${Number(call.request.item) | 0}, 1)`);
          counts.add("client", "mysql", "INSERT", "orders", "ok");
        } catch (e) {
          counts.add("client", "mysql", "INSERT", "orders", "error");
          counts.add("server", "grpc", "POST", `/${GRPC_SERVICE}/PlaceOrder`, 13);
          cb({ code: grpc.status.INTERNAL, details: (e as Error).message });
          return;
        }
        try {
          await producer.send({ topic: KAFKA_TOPIC, messages: [{ key: String(id), value: JSON.stringify({ id, item: call.request.item }) }] });
          counts.add("client", "kafka", "Produce", KAFKA_TOPIC, "ok");
        } catch {
          counts.add("client", "kafka", "Produce", KAFKA_TOPIC, "error");
        }
        counts.add("server", "grpc", "POST", `/${GRPC_SERVICE}/PlaceOrder`, 0);
        cb(null, { id });
      })();
    },
  });
  await new Promise<void>((resolve, reject) => server.bindAsync(`127.0.0.1:${p.orders}`, grpc.ServerCredentials.createInsecure(), (e) => (e ? reject(e) : resolve())));
  return [
    () => server.forceShutdown(),
    () => producer.disconnect(),
    () => pool.end(),
  ];
}

/** HTTP/2 over TLS (h2 by ALPN, the demo's certificate) in front of a Redis cache and the `orders` gRPC service. */
async function api(p: ReturnType<typeof ports>, counts: Counts, dir: string) {
  const redis = new RespClient(p.redis);
  const Client = grpc.makeGenericClientConstructor(ordersService, GRPC_SERVICE);
  const client = new Client(`127.0.0.1:${p.orders}`, grpc.credentials.createInsecure());
  const call = <T>(method: "GetItem" | "PlaceOrder", req: unknown) =>
    new Promise<T>((resolve, reject) => {
      (client as unknown as Record<string, (r: unknown, cb: (e: grpc.ServiceError | null, v: T) => void) => void>)[method]!(req, (e, v) => {
        counts.add("client", "grpc", "POST", `/${GRPC_SERVICE}/${method}`, e ? e.code : 0);
        if (e) reject(e);
        else resolve(v);
      });
    });
  const tls = demoTlsFiles(dir);
  const server = http2.createSecureServer({ key: fs.readFileSync(tls.key), cert: fs.readFileSync(tls.cert) });
  server.on("stream", (stream, headers) => {
    const method = String(headers[":method"]);
    const path = String(headers[":path"]);
    const reply = (status: number, body: unknown, resource: string) => {
      counts.add("server", "http", method, resource, status);
      if (stream.destroyed) return;
      stream.respond({ ":status": status, "content-type": "application/json" });
      stream.end(JSON.stringify(body));
    };
    const item = /^\/items\/(\d+)$/.exec(path);
    if (method === "GET" && item) {
      void (async () => {
        const key = `item:${item[1]}`;
        const cached = await redis.command("GET", key);
        counts.add("client", "redis", "GET", "GET", "ok");
        if (typeof cached === "string") return reply(200, JSON.parse(cached), "/items/{id}");
        try {
          const v = await call<unknown>("GetItem", { id: Number(item[1]) });
          await redis.command("SET", key, JSON.stringify(v), "EX", String(CACHE_TTL_S));
          counts.add("client", "redis", "SET", "SET", "ok");
          reply(200, v, "/items/{id}");
        } catch (e) {
          reply((e as grpc.ServiceError).code === grpc.status.NOT_FOUND ? 404 : 503, { error: "lookup failed" }, "/items/{id}");
        }
      })();
    } else if (method === "POST" && path === "/orders") {
      const chunks: Buffer[] = [];
      stream.on("data", (c: Buffer) => chunks.push(c));
      stream.on("end", () => {
        void (async () => {
          try {
            const { item: id } = JSON.parse(Buffer.concat(chunks).toString() || "{}") as { item?: number };
            reply(201, await call<unknown>("PlaceOrder", { item: id ?? 1 }), "/orders");
          } catch {
            reply(503, { error: "order failed" }, "/orders");
          }
        })();
      });
    } else reply(404, { error: "not found" }, path);
  });
  await listenOn(server, p.api, "127.0.0.1"); // a port in use rejects: one line from `wirescope demo`
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (s) => {
    sessions.add(s);
    s.once("close", () => sessions.delete(s));
  });
  return [
    () => {
      for (const s of sessions) s.destroy();
      server.close();
    },
    () => client.close(),
    () => redis.close(),
  ];
}

/** HTTP/1.1 front end; calls `api` over one HTTP/2 session over TLS (verified with the demo's CA). */
async function web(p: ReturnType<typeof ports>, counts: Counts, dir: string) {
  const ca = fs.readFileSync(demoTlsFiles(dir).ca);
  let session: http2.ClientHttp2Session | undefined;
  const h2 = () => {
    if (!session || session.closed || session.destroyed) {
      session = http2.connect(`https://127.0.0.1:${p.api}`, { ca });
      session.on("error", () => undefined);
    }
    return session;
  };
  const callApi = (method: string, path: string, resource: string, body?: string) =>
    new Promise<{ status: number; body: string }>((resolve) => {
      const req = h2().request({ ":method": method, ":path": path, ...(body ? { "content-type": "application/json" } : {}) });
      let status = 0;
      const parts: Buffer[] = [];
      req.on("response", (h) => (status = Number(h[":status"])));
      req.on("data", (c: Buffer) => parts.push(c));
      req.on("end", () => {
        counts.add("client", "http", method, resource, status);
        resolve({ status, body: Buffer.concat(parts).toString() });
      });
      req.on("error", () => {
        counts.add("client", "http", method, resource, "error");
        resolve({ status: 0, body: "" });
      });
      req.end(body);
    });
  const server = http.createServer((req, res) => {
    const send = (status: number, body: string, resource: string) => {
      counts.add("server", "http", req.method ?? "", resource, status);
      res.writeHead(status, { "content-type": "application/json" });
      res.end(body);
    };
    const item = /^\/shop\/items\/(\d+)$/.exec(req.url ?? "");
    if (req.method === "GET" && item) {
      void callApi("GET", `/items/${item[1]}`, "/items/{id}").then((r) => send(r.status === 200 ? 200 : r.status === 404 ? 404 : 502, r.body || "{}", "/shop/items/{id}"));
    } else if (req.method === "POST" && req.url === "/shop/orders") {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => void callApi("POST", "/orders", "/orders", Buffer.concat(chunks).toString()).then((r) => send(r.status === 201 ? 201 : 502, r.body || "{}", "/shop/orders")));
    } else {
      req.resume();
      send(404, '{"error":"not found"}', req.url ?? "");
    }
  });
  server.keepAliveTimeout = 30_000;
  await listenOn(server, p.web, "127.0.0.1");
  return [
    () => {
      server.closeAllConnections();
      server.close();
    },
    () => session?.destroy(),
  ];
}

/** Kafka consumer of the placed orders. */
async function shipping(p: ReturnType<typeof ports>, counts: Counts) {
  const kafka = new Kafka({ clientId: "shipping", brokers: [`127.0.0.1:${p.kafka}`], logLevel: logLevel.NOTHING });
  const consumer = kafka.consumer({ groupId: "shipping", maxWaitTimeInMs: 200 });
  await consumer.connect();
  await consumer.subscribe({ topic: KAFKA_TOPIC, fromBeginning: true });
  await consumer.run({ eachMessage: async () => counts.add("client", "kafka", "Fetch", KAFKA_TOPIC, "message") });
  return [() => consumer.disconnect()];
}

/** Steady load on `web`: the cycle of spec.ts at `rate` requests/s over keep-alive connections, `limit` requests in all (0: no end). */
function loadgen(p: ReturnType<typeof ports>, counts: Counts, rate: number, limit: number) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: Math.max(1, Math.ceil(rate / 10)) });
  let i = 0;
  const one = () => {
    if (limit > 0 && i >= limit) {
      clearInterval(timer);
      counts.flush();
      return;
    }
    const kind = CYCLE[i % CYCLE.length]!;
    const n = i++;
    const item = ((n * 7) % ITEMS) + 1;
    const [method, path, resource, body] =
      kind === "item" ? ["GET", `/shop/items/${item}`, "/shop/items/{id}", undefined] : kind === "order" ? ["POST", "/shop/orders", "/shop/orders", JSON.stringify({ item })] : ["GET", "/shop/missing", "/shop/missing", undefined];
    const req = http.request({ host: "127.0.0.1", port: p.web, method, path, agent, headers: body ? { "content-type": "application/json" } : {} }, (res) => {
      res.resume();
      res.on("end", () => counts.add("client", "http", method, resource, res.statusCode ?? 0));
    });
    req.on("error", () => counts.add("client", "http", method, resource, "error"));
    req.end(body);
  };
  const timer = setInterval(one, 1000 / rate);
  return [() => clearInterval(timer), () => agent.destroy()];
}
