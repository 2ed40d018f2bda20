// The demo shop, declared once: its parts, their ports, the traffic mix and the injected errors.
// The parts read it to behave, `wirescope demo` to start them, and the tests to know what to
// expect. Every part also counts what it really did (counts.ts), so tests compare InfluxDB with
// those counts, not with the intended rates.
//
//   loadgen ──HTTP/1.1 keep-alive──▶ web ══HTTP/2 over TLS══▶ api ──gRPC──▶ orders ──MySQL (pool)──▶ mariadbd
//                                                                │                │
//                                                                └─RESP─▶ redis   └─Kafka produce─▶ kafka ◀─fetch── shipping
//
// web → api is TLS (h2 by ALPN) with a certificate `wirescope demo` makes once into <dir>/tls/:
// the probe reads its plaintext from node's OpenSSL, and the map shows the same edge.
import path from "node:path";
import { localTlsFiles, type LocalTlsFiles } from "../local-stack/index.js";

export const PARTS = ["kafka", "orders", "api", "web", "shipping", "loadgen"] as const;
export type Part = (typeof PARTS)[number];

/** Ports relative to the base port (`--demo-port`, default 17080). */
export const PORT_OFFSETS = { web: 0, api: 1, orders: 2, kafka: 3, redis: 4, mariadb: 5 } as const;
export type PortName = keyof typeof PORT_OFFSETS;
export const DEFAULT_BASE_PORT = 17080;

export function ports(base: number): Record<PortName, number> {
  const out = {} as Record<PortName, number>;
  for (const [k, v] of Object.entries(PORT_OFFSETS)) out[k as PortName] = base + v;
  return out;
}

/** Requests per second the load generator sends to `web` (one keep-alive connection per 10/s). */
export const DEFAULT_RATE = 20;

/**
 * The load generator's cycle of 20 requests, repeated: 14 item views, 5 orders, 1 page that does
 * not exist. Which item is viewed, and therefore which are cache hits, follows from the counter.
 */
export const CYCLE: readonly ("item" | "order" | "missing")[] = [
  "item", "item", "order", "item", "item", "item", "order", "item", "item", "missing",
  "item", "order", "item", "item", "item", "order", "item", "item", "order", "item",
];

/** Items in the catalogue (ids 1..ITEMS); an item is cached in Redis for CACHE_TTL_S. */
export const ITEMS = 50;
export const CACHE_TTL_S = 5;

/** Every FAIL_EVERY-th order fails in the database (a duplicate key), reported as gRPC INTERNAL. */
export const FAIL_EVERY = 10;

/** Extra latency `orders` adds to each call, cycling through these (ms): a known spread. */
export const ORDERS_DELAY_MS: readonly number[] = [1, 2, 3, 5, 8];

export const KAFKA_TOPIC = "orders";
export const GRPC_SERVICE = "shop.Orders";

/** The demo's TLS files (its own CA, and api's certificate for 127.0.0.1) in the demo's folder. */
export const demoTlsDir = (dir: string) => path.join(dir, "tls");
export const demoTlsFiles = (dir: string): LocalTlsFiles => localTlsFiles(demoTlsDir(dir));
