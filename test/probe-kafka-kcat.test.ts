// The probe on librdkafka (kcat 1.7.1, librdkafka 2.0.2) talking to the Kafka test broker: every
// kcat connection is captured byte for byte in both directions (the same bytes tcpdump saw;
// librdkafka writes with sendmsg and iovecs, reads with recvmsg), and the records decoded from
// the probe's bytes equal the records decoded from the wire (~10 s).
import { test } from "node:test";
import assert from "node:assert/strict";
import { startKafkaTestBroker } from "@wirescope/cli/demo/kafka-broker/index";
import type { RecordJson } from "@wirescope/wire";
import { waitFor } from "./support/index.js";
import { bpfAvailable, CollectingProbe, assemble } from "./probe-support.js";
import { captureDecoded, captureBytes, decodeChunks, runKcat } from "./protocol-support/index.js";

const TOPIC = "orders";
const MESSAGES = 12;

/** What the comparison looks at: everything but timing. */
function summary(r: RecordJson): string {
  const a = r.attributes;
  return JSON.stringify([a["kafka.correlation_id"], r.operation, a["kafka.api_version"], r.resource, r.status, r.incomplete ?? false, a["messaging.batch.message_count"], a["kafka.compression"], r.reqBytes, r.respBytes]);
}

/**
 * The correlation ids of responses the wire carried to kcat after the last byte it read: a
 * response the broker wrote while kcat was closing the connection (a Fetch held for up to
 * `maxFetchWaitMs` answered as kcat stops) reaches its socket but is never read, and the close
 * then resets the connection. Empty unless the probe's received bytes are the wire's first bytes,
 * equal to what the close event counts as read, and the rest is whole Kafka responses.
 */
function unreadResponses(wire: Buffer, seen: Buffer, readAtClose: number): Set<number> {
  const ids = new Set<number>();
  if (seen.length >= wire.length || seen.length !== readAtClose || !wire.subarray(0, seen.length).equals(seen)) return ids;
  let o = seen.length;
  while (o + 8 <= wire.length) {
    ids.add(wire.readInt32BE(o + 4));
    o += 4 + wire.readInt32BE(o);
  }
  return o === wire.length ? ids : new Set();
}

test("probe: kcat's Kafka connections byte for byte, and the same records as the wire", { timeout: 120_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  const broker = await startKafkaTestBroker({ defaultPartitions: 2, autoCreateTopics: false, maxFetchWaitMs: 200 });
  t.after(() => broker.stop());
  broker.createTopic(TOPIC, 2);
  const addr = `127.0.0.1:${broker.port}`;
  const probe = new CollectingProbe();
  t.after(() => probe.stop());
  const toBroker = (pid: number) => probe.find((c) => c.tgid === pid && c.remotePort === broker.port);
  // the probe attaches while it starts: list metadata until it sees a kcat connection
  const warmUntil = Date.now() + 30_000;
  for (;;) {
    const { pid } = await runKcat(addr, ["-L"]);
    const seen = await waitFor(() => toBroker(pid).length > 0, { timeoutMs: 2000, intervalMs: 20, what: "a warm-up connection" }).then(() => true, () => false);
    if (seen) break;
    assert.ok(Date.now() < warmUntil, "the probe saw no kcat connection within 30 s");
  }

  const pids: number[] = [];
  const { pcap, records: wireRecords } = await captureDecoded(broker.port, "probe-kafka-kcat", { plugins: ["kafka"] }, async () => {
    let input = "";
    for (let i = 0; i < MESSAGES; i++) input += `k${i}:zstd-${i}-${"0".repeat(200)}\n`;
    pids.push((await runKcat(addr, ["-P", "-t", TOPIC, "-K", ":", "-z", "zstd", "-X", "enable.idempotence=true"], input)).pid);
    const group = await runKcat(addr, ["-G", "billing", "-X", "auto.offset.reset=earliest", "-e", "-f", "%s\n", TOPIC]);
    assert.equal(group.out.split("\n").filter(Boolean).length, MESSAGES);
    pids.push(group.pid);
  });
  const wire = captureBytes(pcap, broker.port);

  let compared = 0;
  const syscalls = new Map<number, number>();
  for (const pid of pids) {
    const conns = toBroker(pid);
    assert.ok(conns.length > 0, `kcat ${pid}: connections seen`);
    // every connection's close carries its totals: wait for them, so all data events are in
    await waitFor(() => conns.every(([, v]) => v.close !== undefined), { timeoutMs: 10_000, intervalMs: 20, what: `kcat ${pid}: close events` });
    for (const [, v] of conns) {
      const port = v.open!.localPort;
      const where = `kcat ${pid} port ${port}`;
      for (const d of [...v.data[1], ...v.data[2]]) syscalls.set(d.syscall, (syscalls.get(d.syscall) ?? 0) + 1);
      const eg = assemble(v.data[1]);
      const ing = assemble(v.data[2]);
      assert.deepEqual([eg.gaps, ing.gaps, eg.discontinuities, ing.discontinuities], [[], [], 0, 0], `${where}: no gap`);
      const [c2s, s2c] = wire.get(port) ?? [Buffer.alloc(0), Buffer.alloc(0)];
      const unread = unreadResponses(s2c, ing.bytes, Number(v.close!.recvBytes));
      t.diagnostic(`${where}: sent ${eg.bytes.length}/${c2s.length} received ${ing.bytes.length}/${s2c.length} (probe/wire), ${unread.size} responses never read`);
      assert.ok(eg.bytes.equals(c2s), `${where}: sent ${eg.bytes.length} bytes, the wire has ${c2s.length}`);
      assert.ok(ing.bytes.equals(unread.size ? s2c.subarray(0, ing.bytes.length) : s2c), `${where}: received ${ing.bytes.length} bytes, the wire has ${s2c.length}`);
      // librdkafka may close a connection it no longer needs before it sends anything (a
      // coordinator's while the consumer stops): nothing on the wire and nothing seen, as compared
      if (c2s.length === 0) continue;
      // the probe's events in time order, as the parser gets them
      const events = [...v.data[1], ...v.data[2]].sort((a, b) => (a.tsMono < b.tsMono ? -1 : a.tsMono > b.tsMono ? 1 : 0));
      const answered = (r: RecordJson) => !unread.has(r.attributes["kafka.correlation_id"] as number);
      const fromProbe = decodeChunks(events.map((d) => ({ dir: d.direction === 1 ? 0 : 1, bytes: d.payload, tsNs: d.tsMono })), { plugins: ["kafka"], serverPort: broker.port }).filter(answered).map(summary);
      const fromWire = wireRecords.filter((r) => Number(r.client.split(":").pop()) === port).filter(answered).map(summary);
      assert.ok(fromWire.length > 0, `${where}: records from the wire`);
      assert.deepEqual(fromProbe, fromWire, `${where}: records`);
      compared += fromWire.length;
    }
  }
  assert.ok(compared >= 15, `records compared: ${compared}`);
  // bpf/wirescope.h WS_SYS_*: librdkafka writes with sendmsg (iovecs) and reads with recvmsg
  t.diagnostic(`data events by syscall: ${JSON.stringify([...syscalls].sort())}`);
  assert.ok(syscalls.has(8) && syscalls.has(7), "sendmsg and recvmsg events");
  // the produced records were counted from the probe's bytes too
  const produced = wireRecords.filter((r) => r.operation === "Produce").reduce((n, r) => n + ((r.attributes["messaging.batch.message_count"] as number | undefined) ?? 0), 0);
  assert.equal(produced, MESSAGES);
});
