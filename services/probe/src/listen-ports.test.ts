import { test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { parseListenPorts, readListenPorts, listenPorts } from "./listen-ports.js";
import { nativeListenPorts } from "./native.js";

test("parseListenPorts: LISTEN rows only (state 0A), each port once", () => {
  const text = [
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode",
    "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1",
    "   1: 0100007F:D431 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 2 1",
    "   2: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3 1",
    "   3: 0100007F:C350 0100007F:1F90 06 00000000:00000000 03:00001770 00000000     0        0 0 3",
  ].join("\n");
  assert.deepEqual(parseListenPorts(text), [8080]);
});

test("listenPorts: the kernel's sock_diag answer holds what /proc/net/tcp{,6} lists, our own listeners included", async () => {
  const v4 = net.createServer().listen(0, "127.0.0.1");
  const v6 = net.createServer().listen(0, "::");
  await Promise.all([v4, v6].map((s) => new Promise((r) => s.once("listening", r))));
  try {
    const mine = [v4, v6].map((s) => (s.address() as net.AddressInfo).port);
    const native = nativeListenPorts();
    assert.ok(native, "the addon answers (built with the probe)");
    for (const p of mine) {
      assert.ok(native.includes(p), `sock_diag lists ${p}`);
      assert.ok(readListenPorts().includes(p), `/proc lists ${p}`);
      assert.ok(listenPorts().includes(p));
    }
    // other processes open and close listeners meanwhile: the two answers agree within a few tries
    let diff: number[] = [];
    for (let i = 0; i < 5; i++) {
      const a = new Set(nativeListenPorts());
      const b = new Set(readListenPorts());
      diff = [...a].filter((p) => !b.has(p)).concat([...b].filter((p) => !a.has(p)));
      if (!diff.length) break;
    }
    assert.deepEqual(diff, [], "the same ports from both");
    assert.equal(new Set(native).size, native.length, "each port once");
  } finally {
    v4.close();
    v6.close();
  }
});
