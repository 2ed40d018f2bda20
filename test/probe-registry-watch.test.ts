// The probe follows the service registry with a KV watch (issue 9): a pipeline process announced
// after the probe started is excluded at once, one that leaves is traced again, a nats-server that
// comes back empty (a new bucket) is followed again, and while nothing changes the probe makes no
// JetStream API request (it read the whole registry every second: ~6 requests a second, forever).
// Real nats-server, the real probe service with its kernel programs, real processes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { ConnKind, type ConnEvent } from "@wirescope/wire";
import { announce, openRegistry, selfIdentity } from "@wirescope/runtime";
import { freePort, startNats, waitFor } from "./support/index.js";
import { bpfAvailable, collectConns, runChild, serverChild, servingProbe } from "./probe-support.js";

const ECHO_SERVER = `
import net from "node:net";
const srv = net.createServer((s) => s.on("data", (d) => s.write(d)));
srv.listen(0, "127.0.0.1", () => console.log("PORT " + srv.address().port));
`;

/** One echo exchange per line on stdin; prints its local port, then DONE when closed. argv: port */
const TALKER = `
import net from "node:net";
import readline from "node:readline";
const port = Number(process.argv[2]);
for await (const _ of readline.createInterface({ input: process.stdin })) {
  await new Promise((resolve) => {
    const s = net.connect(port, "127.0.0.1", () => { console.log("LOCAL " + s.localPort); s.write("ping"); });
    s.on("data", () => s.end());
    s.on("close", resolve);
  });
  console.log("DONE");
}
`;

/** Counts the JetStream API requests every client makes (a subscriber on `$JS.API.>`). */
async function apiRequests(url: string): Promise<{ nc: NatsConnection; count(): number }> {
  const nc = await connect({ servers: url, name: "api-counter" });
  let n = 0;
  nc.subscribe("$JS.API.>", { callback: () => void n++ });
  await nc.flush();
  return { nc, count: () => n };
}

test("probe: the registry watch excludes a member announced after start, traces it again once it left, follows a new server, and idles without JetStream requests", { timeout: 120_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  const port = await freePort();
  let nats = await startNats({ jetstream: true, port });
  t.after(() => nats.stop());
  const url = `nats://127.0.0.1:${port}`;
  const { ctl } = await servingProbe(t, url, ["--batch-ms", "10", "--sample-fraction", "1"]); // every connection, whatever the machine's load
  const counter = async (name: string) => (await ctl.status({})).counters[name] ?? 0;
  let nc = await connect({ servers: url });
  t.after(() => nc.close());
  const conns: ConnEvent[] = [];
  await collectConns(nc, conns);

  const { server, port: echoPort } = await serverChild(t, "echo", ECHO_SERVER);
  const serverPort = String(echoPort);
  const talker = await runChild("talker", TALKER, [serverPort], { stdin: true });
  t.after(() => talker.kill());

  /** One exchange of the talker: whether the probe saw the talker's end (the server's end, always traced, says when it would have). */
  const exchange = async (): Promise<boolean> => {
    const from = talker.lines.length;
    talker.proc.stdin!.write("go\n");
    const local = Number((await talker.waitLine(/^LOCAL (\d+)/, 15_000, from))[1]);
    await talker.waitLine(/^DONE$/, 15_000, from);
    await waitFor(() => conns.some((c) => c.process?.pid === server.pid && c.remotePort === local && c.kind === ConnKind.CLOSE), { timeoutMs: 15_000, intervalMs: 20, what: "the server's end of the exchange" });
    return conns.some((c) => c.process?.pid === talker.pid && c.localPort === local);
  };
  const member = (kv: Awaited<ReturnType<typeof openRegistry>>) =>
    announce(kv, { component: "parser", instance: "watched", address: "127.0.0.1:1", node: "test-node", pid: talker.pid, ...selfIdentity(), startedAt: Date.now() }, () => {});

  // 1. not announced: traced like any process
  assert.equal(await exchange(), true, "the talker is traced before it is announced");

  // 2. announced after the probe started: excluded as soon as the watch delivers it
  let kv = await openRegistry(nc);
  const t0 = Date.now();
  let m = member(kv);
  await waitFor(async () => (await counter("pipeline_excluded.pids")) === 1, { timeoutMs: 5_000, intervalMs: 20, what: "the announced member excluded" });
  t.diagnostic(`announced -> excluded in ${Date.now() - t0} ms`);
  assert.equal(await exchange(), false, "an announced member is not traced");

  // 3. idle: members refresh their entries (every 5 s), the probe makes no JetStream API request
  const api = await apiRequests(url);
  await new Promise((r) => setTimeout(r, 6_000));
  const idle = api.count();
  await api.nc.close();
  assert.equal(idle, 0, `JetStream API requests in 6 s of idle: ${idle}`);

  // 4. the member leaves (deletes its entry): traced again
  await m.stop();
  await waitFor(async () => (await counter("pipeline_excluded.pids")) === 0, { timeoutMs: 5_000, intervalMs: 20, what: "the member that left no longer excluded" });
  assert.equal(await exchange(), true, "a member that left is traced again");

  // 5. nats-server comes back empty (a new store: the bucket is made again) and the member
  //    announces itself there: the probe follows the new bucket
  await nats.stop();
  nats = await startNats({ jetstream: true, port });
  await nc.close();
  nc = await connect({ servers: url });
  await collectConns(nc, conns);
  kv = await openRegistry(nc);
  m = member(kv);
  t.after(() => m.stop());
  await waitFor(async () => (await counter("pipeline_excluded.pids")) === 1, { timeoutMs: 20_000, intervalMs: 50, what: "the member excluded through the new server's bucket" });
  assert.ok((await counter("registry_watch_restarts")) >= 1, "the watch was made again");
  assert.equal(await exchange(), false, "excluded again after the server came back");
});
