import { test } from "node:test";
import assert from "node:assert/strict";
import { ConnTracker } from "./conn-tracker.js";
import type { ConnRecord } from "./events.js";

const c = (tgid: number, key: bigint, kind: "open" | "close"): ConnRecord => ({
  kind, connKey: key, tgid, tid: tgid, tsMono: 1n, cgroupId: 0n, family: 4, localAddress: "127.0.0.1", localPort: 1,
  remoteAddress: "127.0.0.1", remotePort: 2, role: 1, inferred: false, tls: false, tlsLibrary: "", fd: 3, comm: "x", sentBytes: 0n, recvBytes: 0n,
});

test("ConnTracker: closes the connections of exited processes only, once", () => {
  const t = new ConnTracker();
  t.note(c(1, 10n, "open"));
  t.note(c(1, 11n, "open"));
  t.note(c(2, 20n, "open"));
  t.note(c(1, 11n, "close"));
  assert.equal(t.size, 2);
  const closed = t.reap((pid) => pid === 1, 99n);
  assert.deepEqual(closed.map((x) => [x.connKey, x.kind, x.tsMono]), [[10n, "close", 99n]]);
  assert.deepEqual(t.reap((pid) => pid === 1, 100n), []);
  assert.equal(t.size, 1);
  const capped = new ConnTracker(1);
  capped.note(c(1, 1n, "open"));
  capped.note(c(1, 2n, "open"));
  assert.equal(capped.size, 1);
});
