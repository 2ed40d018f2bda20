// A replica cut off from NATS (through a loopback relay we can sever) loses its partitions to
// the other replica after the TTL; while cut off it does not judge the other dead, and after
// reconnecting it never claims every partition: the fleet simply rebalances back.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { waitFor, REDIS_PLUGIN_DIR } from "./support/index.js";
import { parserStatus, startParser, useParserBed, waitForFleet } from "./parser-support.js";

const P = 64;
const ARGS = ["--builtin-dir", REDIS_PLUGIN_DIR, "--member-ttl-ms", "2000", "--heartbeat-ms", "500"];

/** A TCP relay to `target` that can be severed (all sockets destroyed, new ones refused). */
async function severableRelay(target: number): Promise<{ port: number; sever(): void; restore(): Promise<void>; close(): void }> {
  const sockets = new Set<net.Socket>();
  let cut = false;
  const server = net.createServer((c) => {
    if (cut) return c.destroy();
    const s = net.connect(target, "127.0.0.1");
    sockets.add(c).add(s);
    c.pipe(s).pipe(c);
    const end = () => (c.destroy(), s.destroy(), sockets.delete(c), sockets.delete(s));
    c.on("error", end).on("close", end);
    s.on("error", end).on("close", end);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    sever() {
      cut = true;
      for (const s of sockets) s.destroy();
    },
    async restore() {
      cut = false;
    },
    close() {
      cut = true;
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

describe("parser replica cut off from NATS", { timeout: 120_000 }, () => {
  const bed = useParserBed();

  it("loses its partitions while cut off and never claims them all when it comes back", async () => {
    const relay = await severableRelay(bed.nats.port);
    try {
      const a = await startParser(bed.nats.url, ARGS, "reconnect-a");
      const b = await startParser(`nats://127.0.0.1:${relay.port}`, ARGS, "reconnect-b");
      bed.procs.push(a, b);
      await waitForFleet([a, b], P);
      const bOwned: number[] = [];
      relay.sever();
      // a takes everything after the TTL; b, unable to hear anyone, keeps its view frozen.
      await waitFor(async () => (await parserStatus(a)).counters["partitions_owned"] === P, { timeoutMs: 15_000, what: "a owns all" });
      for (let i = 0; i < 6; i++) {
        bOwned.push((await parserStatus(b)).counters["partitions_owned"] ?? 0);
        await new Promise((r) => setTimeout(r, 500));
      }
      await relay.restore();
      await waitForFleet([a, b], P, 30_000);
      for (let i = 0; i < 4; i++) {
        bOwned.push((await parserStatus(b)).counters["partitions_owned"] ?? 0);
        await new Promise((r) => setTimeout(r, 250));
      }
      assert.ok(bOwned.every((n) => n < P), `b claimed every partition at some point: ${bOwned}`);
      const [sa, sb] = await Promise.all([parserStatus(a), parserStatus(b)]);
      assert.equal((sa.counters["partitions_owned"] ?? 0) + (sb.counters["partitions_owned"] ?? 0), P);
      assert.ok((sb.counters["partitions_owned"] ?? 0) > 0, "b got its share back");
    } finally {
      relay.close();
    }
  });
});
