// Decode-only benchmark traffic (node scripts/bench.mjs decode): what a node-postgres pool
// connection carries, generated. Each pair is an extended-protocol query (Parse/Bind/Describe/
// Execute/Sync, as node-postgres sends a parameterised query) or, one in four, a simple Query,
// answered with a row description, 1-5 rows, CommandComplete and ReadyForQuery; one in fifty fails.
import type { TrafficSample } from "../../../test-support/traffic.js";
import type { CapturedChunk } from "../../../test-support/relay.js";
import * as w from "./wire.js";

const STATEMENTS = [
  "SELECT id, name, email, created_at FROM users WHERE id = $1",
  "UPDATE orders SET status = $1, updated_at = now() WHERE id = $2",
  "INSERT INTO events (kind, payload, at) VALUES ($1, $2, now())",
  "SELECT o.id, o.total FROM orders o JOIN users u ON u.id = o.user_id WHERE u.email = $1 ORDER BY o.id DESC LIMIT 20",
];

export async function traffic(n = 20000): Promise<TrafficSample[]> {
  const chunks: CapturedChunk[] = [];
  let ts = 1_700_000_000_000_000_000n;
  for (let i = 0; i < n; i++) {
    const text = STATEMENTS[i % STATEMENTS.length]!;
    const simple = i % 4 === 3;
    const req = simple
      ? w.query(`SELECT count(*) FROM sessions WHERE user_id = ${i}`)
      : w.B(w.parse("", text), w.bind("", "", [String(i), `value-${i}`].slice(0, text.includes("$2") ? 2 : 1)), w.describe("P", ""), w.execute(""), w.sync());
    const rows = 1 + (i % 5);
    const rep =
      i % 50 === 49
        ? w.B(simple ? w.B() : w.parseComplete(), w.errorResponse({ S: "ERROR", V: "ERROR", C: "23505", M: "duplicate key value violates unique constraint" }), w.ready())
        : w.B(
            simple ? w.B() : w.B(w.parseComplete(), w.bindComplete()),
            w.rowDescription(["id", "name", "email"]),
            ...Array.from({ length: rows }, (_, k) => w.dataRow([String(i * 10 + k), `user-${i}`, `u${i}@example.com`])),
            w.commandComplete(`SELECT ${rows}`),
            w.ready(),
          );
    chunks.push({ dir: 0, bytes: req, tsNs: (ts += 20_000n) });
    chunks.push({ dir: 1, bytes: rep, tsNs: (ts += 80_000n) });
  }
  return [{ name: "node-postgres extended + simple", plugin: "postgresql", connections: [chunks], pairs: n }];
}
