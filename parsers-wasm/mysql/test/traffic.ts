// Benchmark traffic for the decode-only benchmark (test-support/decode.bench.ts): one
// connection after its handshake, as an application's pool uses it — text queries returning a
// few rows (CLIENT_DEPRECATE_EOF, as current servers and clients negotiate), prepared statement
// executions, inserts, and an occasional error.
import type { TrafficSample } from "../../test-support/traffic.js";
import type { CapturedChunk } from "../../test-support/relay.js";
import { B, pkt, lenenc, coldef, textRow, binaryRow, ok, err, u32, greeting, login, BASE_CAPS, CAPS } from "./wire.js";

export async function traffic(n = 20000): Promise<TrafficSample[]> {
  const chunks: CapturedChunk[] = [];
  let ts = 1_700_000_000_000_000_000n;
  const push = (dir: 0 | 1, bytes: Buffer) => chunks.push({ dir, bytes, tsNs: (ts += dir ? 150_000n : 20_000n) });
  const caps = BASE_CAPS | CAPS.DEPRECATE_EOF;
  push(1, pkt(0, greeting("8.0.36", caps, "mysql_native_password")));
  push(0, pkt(1, login(caps, "app", Buffer.alloc(20, 7), "shop", "mysql_native_password")));
  push(1, pkt(2, ok()));
  push(0, pkt(0, B([0x16], "SELECT id, name FROM users WHERE id = ?")));
  push(1, B(pkt(1, B([0x00], u32(1), [2, 0], [1, 0], [0], [0, 0])), pkt(2, coldef("?", "")), pkt(3, coldef("id", "users")), pkt(4, coldef("name", "users"))));
  const cols = B(pkt(1, lenenc(3)), pkt(2, coldef("id", "orders")), pkt(3, coldef("status", "orders")), pkt(4, coldef("total", "orders")));
  for (let i = 0; i < n; i++) {
    switch (i % 4) {
      case 0: {
        push(0, pkt(0, B([3], `SELECT id, status, total FROM orders WHERE customer_id = ${i % 977} AND status = 'open' ORDER BY id DESC LIMIT 5`)));
        const rows = [0, 1, 2, 3, 4].map((r) => pkt(5 + r, textRow(i * 5 + r, "open", `${(i % 300) + 0.5}`)));
        push(1, B(cols, ...rows, pkt(10, ok(0, 0, 2, 0xfe))));
        break;
      }
      case 1:
        push(0, pkt(0, B([0x17], u32(1), [0], u32(1), [0], [1], [3, 0], u32(i))));
        push(1, B(pkt(1, lenenc(2)), pkt(2, coldef("id", "users")), pkt(3, coldef("name", "users")), pkt(4, binaryRow(i, `user-${i}`)), pkt(5, ok(0, 0, 2, 0xfe))));
        break;
      case 2:
        push(0, pkt(0, B([3], `INSERT INTO events (kind, payload, at) VALUES ('click', '{"x":${i}}', NOW())`)));
        push(1, pkt(1, ok(1, i)));
        break;
      default:
        push(0, pkt(0, B([3], `UPDATE carts SET qty = qty + 1 WHERE id = ${i}`)));
        push(1, pkt(1, i % 100 === 3 ? err(1213, "40001", "Deadlock found when trying to get lock; try restarting transaction") : ok(1, 0)));
    }
  }
  return [{ name: "mysql queries, executes, inserts", plugin: "mysql", connections: [chunks], pairs: n + 2 }];
}
