// forgetMembers (@wirescope/runtime membership-nats.ts) on a real nats-server: `up` deletes the
// membership entry of a replica that died, matched by its control address, and calls it off once
// it stops waiting (3 s), because the replica it restarts meanwhile has the same address.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Kvm } from "@nats-io/kv";
import { forgetMembers } from "@wirescope/runtime";
import { startNats } from "./support/index.js";
import { natsConnect } from "./aggregator-support.js";

test("forgetMembers deletes the entries that match, and none once its signal is aborted", { timeout: 60_000 }, async () => {
  const nats = await startNats({ jetstream: true });
  const nc = await natsConnect(nats.url);
  try {
    const kv = await new Kvm(nc).create("forget-members", { history: 1 });
    await kv.put("n-parser-1", JSON.stringify({ id: "n-parser-1", grpc: "127.0.0.1:7702" }));
    await kv.put("n-parser-2", JSON.stringify({ id: "n-parser-2", grpc: "127.0.0.1:7712" }));
    const live = async () => {
      const keys: string[] = [];
      for await (const k of await kv.keys()) if ((await kv.get(k))?.operation === "PUT") keys.push(k);
      return keys.sort();
    };
    const byAddress = (grpc: string) => (m: { grpc?: string }) => m.grpc === grpc;

    const gaveUp = new AbortController();
    gaveUp.abort();
    assert.deepEqual(await forgetMembers(nc, "forget-members", byAddress("127.0.0.1:7712"), undefined, gaveUp.signal), [], "called off: nothing deleted");
    assert.deepEqual(await live(), ["n-parser-1", "n-parser-2"]);

    assert.deepEqual(await forgetMembers(nc, "forget-members", byAddress("127.0.0.1:7712"), undefined, new AbortController().signal), ["n-parser-2"]);
    assert.deepEqual(await live(), ["n-parser-1"], "only the matching entry deleted");
  } finally {
    await nc.close();
    await nats.stop();
  }
});
