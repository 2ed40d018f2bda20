import { test } from "node:test";
import assert from "node:assert/strict";
import { GiveUp, WirescopeError, listenOn, spawnManaged, waitFor } from "./index.js";

test("waitFor: an ordinary error from the check means not yet; the value comes once the check succeeds", async () => {
  let calls = 0;
  const v = await waitFor(
    () => {
      calls++;
      if (calls < 3) throw new Error("not listening yet");
      return "up";
    },
    { timeoutMs: 10_000, intervalMs: 1, what: "the thing" },
  );
  assert.equal(v, "up");
  assert.equal(calls, 3);
});

test("waitFor: a GiveUp from the check rejects at once, without further checks", async () => {
  let calls = 0;
  await assert.rejects(
    waitFor(
      () => {
        calls++;
        throw new GiveUp("the child exited");
      },
      { timeoutMs: 60_000, intervalMs: 1, what: "the child" },
    ),
    (e: unknown) => e instanceof GiveUp && e.code === "gave_up" && e.message === "the child exited",
  );
  assert.equal(calls, 1);
});

test("waitFor: the timeout names what was awaited and the last error", async () => {
  await assert.rejects(
    waitFor(
      () => {
        throw new Error("refused");
      },
      { timeoutMs: 20, intervalMs: 5, what: "the port" },
    ),
    (e: unknown) => e instanceof WirescopeError && e.code === "timeout" && /waiting for the port: refused/.test(e.message),
  );
});

test("waitFor on a real child that exits: the check gives up on its first look after the exit", async () => {
  const child = await spawnManaged("short", process.execPath, ["-e", "process.exit(3)"]);
  await child.exited;
  let calls = 0;
  await assert.rejects(
    waitFor(
      () => {
        calls++;
        if (child.hasExited) throw new GiveUp("short exited during startup");
        return false;
      },
      { timeoutMs: 60_000, intervalMs: 1, what: "short to listen" },
    ),
    GiveUp,
  );
  assert.equal(calls, 1);
});

test("listenOn resolves with where the server listens; a port in use rejects with EADDRINUSE and leaves no listener behind", async () => {
  const net = await import("node:net");
  const a = net.createServer();
  const b = net.createServer();
  try {
    const where = await listenOn(a, 0, "127.0.0.1");
    assert.equal(where.address, "127.0.0.1");
    assert.ok(where.port > 0);
    await assert.rejects(listenOn(b, where.port, "127.0.0.1"), (e: NodeJS.ErrnoException) => e.code === "EADDRINUSE");
    assert.equal(b.listenerCount("error"), 0, "the rejected listen's error listener is gone");
    assert.equal(a.listenerCount("error"), 0, "the listening server keeps none either");
  } finally {
    a.close();
    b.close();
  }
});
