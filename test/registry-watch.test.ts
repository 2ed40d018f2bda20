// watchAnnounced against a real nats-server: started before the registry bucket exists (errors
// counted, watched again with backoff), then a member announced, one that leaves by deleting its
// entry, one whose entry is never refreshed (gone by the TTL, which the watch does not report).
import { test } from "node:test";
import assert from "node:assert/strict";
import { connect } from "@nats-io/transport-node";
import { announce, openRegistry, registryKey, watchAnnounced, type Announcement } from "@wirescope/runtime";
import { startNats, waitFor } from "./support/index.js";

test("watchAnnounced: a bucket made later, joins, leaves, a member expired by its TTL", { timeout: 60_000 }, async (t) => {
  const nats = await startNats({ jetstream: true });
  t.after(() => nats.stop());
  const nc = await connect({ servers: `nats://127.0.0.1:${nats.port}` });
  t.after(() => nc.close());
  const stop = new AbortController();
  t.after(() => stop.abort());
  let list: Announcement[] | undefined;
  let errors = 0;
  let restarts = 0;
  const ttlMs = 2_000;
  const w = watchAnnounced(nc, {
    signal: stop.signal,
    onChange: (l) => (list = l),
    onError: () => void errors++,
    onRestart: () => void restarts++,
    backoffMs: { min: 50, max: 400 },
    ttlMs,
  });

  // no bucket yet: the watch cannot start; it is tried again, with backoff
  await waitFor(() => errors >= 2, { timeoutMs: 10_000, intervalMs: 20, what: "failed watches while the bucket is missing" });
  assert.equal(list, undefined);

  const kv = await openRegistry(nc);
  const a: Announcement = { component: "parser", instance: "p1", address: "127.0.0.1:1", node: "n", pid: 4242, startedAt: Date.now() };
  const member = announce(kv, a, () => {});
  await waitFor(() => list?.some((x) => x.pid === 4242) === true, { timeoutMs: 10_000, intervalMs: 20, what: "the member once the bucket exists" });
  assert.ok(restarts >= 2);

  // leaves: its entry deleted
  await member.stop();
  await waitFor(() => list?.length === 0, { timeoutMs: 5_000, intervalMs: 20, what: "the member that left" });

  // written once and never again (a crashed member): gone after the TTL, with no delete to see
  const b = { ...a, instance: "p2", pid: 4343 };
  await kv.put(registryKey(b.component, b.instance), new TextEncoder().encode(JSON.stringify(b)));
  await waitFor(() => list?.some((x) => x.pid === 4343) === true, { timeoutMs: 5_000, intervalMs: 20, what: "the second member" });
  const seen = Date.now();
  await waitFor(() => list?.length === 0, { timeoutMs: 10_000, intervalMs: 20, what: "the member expired" });
  assert.ok(Date.now() - seen >= ttlMs - 500, "not before its TTL");
  assert.equal(await kv.get(registryKey(b.component, b.instance)).then((e) => e?.operation), "PUT", "the server still holds it (its own TTL is longer)");

  stop.abort();
  await w.done;
});
