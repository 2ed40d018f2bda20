// What each demo part really did, counted as it happens and written to `<dir>/counts/<part>.json`
// every second and at exit. Keys: "<role> <protocol> <operation> <resource> <outcome>", e.g.
// "server http GET /shop/items/{id} 200" or "client grpc POST /shop.Orders/PlaceOrder 13".
import fs from "node:fs";
import path from "node:path";

export class Counts {
  private readonly c = new Map<string, number>();
  private readonly file: string;
  private timer: NodeJS.Timeout;
  constructor(dir: string, part: string) {
    fs.mkdirSync(path.join(dir, "counts"), { recursive: true });
    this.file = path.join(dir, "counts", `${part}.json`);
    this.timer = setInterval(() => this.flush(), 1000);
    this.timer.unref();
  }
  add(role: "server" | "client", protocol: string, operation: string, resource: string, outcome: string | number): void {
    const k = `${role} ${protocol} ${operation} ${resource} ${outcome}`;
    this.c.set(k, (this.c.get(k) ?? 0) + 1);
  }
  /** Writes the counts atomically (a reader never sees half a file). */
  flush(): void {
    const tmp = `${this.file}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(Object.fromEntries(this.c), null, 1));
    fs.renameSync(tmp, this.file);
  }
  stop(): void {
    clearInterval(this.timer);
    this.flush();
  }
}

/** All parts' counts in `dir`, merged. */
export function readCounts(dir: string): Map<string, number> {
  const out = new Map<string, number>();
  const d = path.join(dir, "counts");
  if (!fs.existsSync(d)) return out;
  for (const f of fs.readdirSync(d)) {
    if (!f.endsWith(".json")) continue;
    const j = JSON.parse(fs.readFileSync(path.join(d, f), "utf8")) as Record<string, number>;
    for (const [k, v] of Object.entries(j)) out.set(k, (out.get(k) ?? 0) + v);
  }
  return out;
}
