// The NATS layer against a real nats-server: batches arrive byte-identical, the outbound queue is
// bounded with counted drops while disconnected, bad input is counted, credentials are enforced.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { create, equals, toBinary } from "@bufbuild/protobuf";
import {
  BatchPublisher,
  subscribeBatches,
  connectNats,
  rawSubject,
  recordsSubject,
  Counters,
  NatsError,
  clientOutput,
  silentLogger,
  waitFor,
  type NatsConnection,
} from "@wirescope/runtime";
import {
  RawBatchSchema,
  RecordBatchSchema,
  ConnKind,
  Role,
  Direction,
} from "@wirescope/wire";
import { startNats } from "./support/index.js";

const log = silentLogger();

function sampleRaw() {
  return create(RawBatchSchema, {
    node: "node-a",
    probeId: "probe-1",
    partition: 17,
    batchSeq: 9007199254740993n,
    conns: [
      {
        connKey: 0xfedcba9876543210n,
        kind: ConnKind.OPEN,
        role: Role.SERVER,
        localAddress: "10.0.0.1",
        localPort: 8080,
        remoteAddress: "::1",
        remotePort: 54321,
        tid: 4243,
        timestampNs: 1_700_000_000_123_456_789n,
        process: { pid: 4242, name: "nginx", cmdline: "nginx -g daemon off;", pod: "web-0", namespace: "shop" },
      },
    ],
    data: [
      {
        connKey: 0xfedcba9876543210n,
        direction: Direction.INGRESS,
        seq: 0n,
        timestampNs: 1_700_000_000_223_456_789n,
        tid: 4243,
        payload: new Uint8Array([0x47, 0x45, 0x54, 0x20, 0x00, 0xff, 0x0d, 0x0a]),
        originalLength: 4096,
      },
    ],
    drops: { ringbuf_full: 3n, payload_truncated: 1n },
  });
}

function sampleRecords() {
  return create(RecordBatchSchema, {
    node: "node-a",
    parserId: "parser-2",
    partition: 17,
    batchSeq: 5n,
    records: [
      {
        protocol: "http",
        startNs: 1_700_000_000_000_000_000n,
        durationNs: 1_234_567n,
        operation: "GET",
        resource: "/api/items/{id}",
        status: 503n,
        error: true,
        requestBytes: 120n,
        responseBytes: 9000n,
        trace: { traceId: new Uint8Array(16).fill(7), parentSpanId: new Uint8Array(8).fill(9), flags: 1, format: "w3c" },
        attributes: {
          "http.request.method": { value: { case: "stringValue", value: "GET" } },
          "http.response.status_code": { value: { case: "intValue", value: 503n } },
          "error.flag": { value: { case: "boolValue", value: true } },
          "ratio": { value: { case: "doubleValue", value: 0.25 } },
          "tags": { value: { case: "stringList", value: { values: ["a", "b"] } } },
        },
        client: { address: "10.0.0.2", port: 40000, service: "frontend" },
        server: { address: "10.0.0.1", port: 8080, service: "shop/web", process: { pid: 4242, name: "nginx" } },
        connKey: 0xfedcba9876543210n,
        role: Role.SERVER,
        tid: 4243,
        node: "node-a",
      },
      { protocol: "redis", operation: "GET", status: 0n, incomplete: true },
    ],
  });
}

async function connect(url: string): Promise<NatsConnection> {
  return connectNats({ url }, log, { retry: false, name: "foundation-test" });
}

test("RawBatch and RecordBatch arrive byte-identical through nats-server and decode to equal messages", { timeout: 30_000 }, async () => {
  const nats = await startNats();
  after(() => nats.stop());
  const pubConn = await connect(nats.url);
  const subConn = await connect(nats.url);
  try {
    const raw = sampleRaw();
    const rec = sampleRecords();
    const gotRaw: { bytes: Uint8Array; msg: unknown; subject: string }[] = [];
    const gotRec: { bytes: Uint8Array; msg: unknown; subject: string }[] = [];
    const s1 = subscribeBatches(subConn, rawSubject(17), RawBatchSchema, { onBatch: (m, r) => void gotRaw.push({ msg: m, bytes: r.data, subject: r.subject }) });
    const s2 = subscribeBatches(subConn, recordsSubject(17), RecordBatchSchema, { onBatch: (m, r) => void gotRec.push({ msg: m, bytes: r.data, subject: r.subject }) });
    await subConn.flush(); // subscriptions are registered on the server before we publish

    const counters = new Counters();
    const rawPub = new BatchPublisher(pubConn, RawBatchSchema, { counters });
    const recPub = new BatchPublisher(pubConn, RecordBatchSchema, { counters });
    assert.equal(rawPub.publish(rawSubject(17), raw), true);
    assert.equal(recPub.publish(recordsSubject(17), rec), true);
    await rawPub.flush();
    await recPub.flush();
    await waitFor(() => gotRaw.length === 1 && gotRec.length === 1, { timeoutMs: 5000, what: "both batches" });

    assert.equal(gotRaw[0].subject, "wirescope.raw.17");
    assert.deepEqual(Buffer.from(gotRaw[0].bytes), Buffer.from(toBinary(RawBatchSchema, raw)));
    assert.ok(equals(RawBatchSchema, gotRaw[0].msg as typeof raw, raw), "RawBatch decodes equal");
    assert.equal(gotRec[0].subject, "wirescope.records.17");
    assert.deepEqual(Buffer.from(gotRec[0].bytes), Buffer.from(toBinary(RecordBatchSchema, rec)));
    assert.ok(equals(RecordBatchSchema, gotRec[0].msg as typeof rec, rec), "RecordBatch decodes equal");
    assert.equal(counters.get("nats_published"), 2);
    await s1.drain();
    await s2.drain();
  } finally {
    await pubConn.close();
    await subConn.close();
  }
});

test("subscribeBatches counts undecodable messages and keeps going", { timeout: 30_000 }, async () => {
  const nats = await startNats();
  after(() => nats.stop());
  const nc = await connect(nats.url);
  try {
    const counters = new Counters();
    const got: number[] = [];
    const sub = subscribeBatches(nc, rawSubject(1), RawBatchSchema, { counters, onBatch: (m) => void got.push(m.partition) });
    await nc.flush();
    nc.publish(rawSubject(1), new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff])); // truncated varint
    nc.publish(rawSubject(1), toBinary(RawBatchSchema, create(RawBatchSchema, { partition: 1 })));
    await nc.flush();
    await waitFor(() => got.length === 1, { timeoutMs: 5000, what: "the valid batch" });
    assert.equal(counters.get("nats_decode_errors"), 1);
    assert.equal(counters.get("nats_received"), 1);
    await sub.drain();
  } finally {
    await nc.close();
  }
});

test("BatchPublisher: bounded queue while disconnected, counted drops, delivery after reconnect", { timeout: 60_000 }, async () => {
  let nats = await startNats();
  const { port, dir } = nats;
  after(() => nats.stop());
  const counters = new Counters();
  const pubConn = await connectNats({ url: nats.url }, log, { retry: false, counters });
  const pub = new BatchPublisher(pubConn, RawBatchSchema, { counters, maxQueue: 10 });
  try {
    await nats.stop();
    await waitFor(() => counters.get("nats_disconnects") > 0, { timeoutMs: 10_000, what: "client to notice the disconnect" });

    let accepted = 0;
    for (let i = 0; i < 15; i++) if (pub.publish(rawSubject(3), create(RawBatchSchema, { partition: 3, batchSeq: BigInt(i) }))) accepted++;
    assert.equal(accepted, 10);
    assert.equal(counters.get("nats_drops_queue_full"), 5);
    await assert.rejects(pub.flush(300), (e: unknown) => e instanceof NatsError && e.code === "flush_timeout");

    nats = await startNats({ port, dir });
    const subConn = await connect(nats.url);
    const seqs: bigint[] = [];
    const sub = subscribeBatches(subConn, rawSubject(3), RawBatchSchema, { onBatch: (m) => void seqs.push(m.batchSeq) });
    await subConn.flush();
    // The publisher drains its queue once the client has reconnected.
    await waitFor(() => seqs.length === 10, { timeoutMs: 20_000, what: "the 10 queued batches after reconnect" });
    await pub.flush();
    assert.deepEqual(seqs, [0n, 1n, 2n, 3n, 4n, 5n, 6n, 7n, 8n, 9n]);
    assert.equal(counters.get("nats_published"), 10);
    await sub.drain();
    await subConn.close();
  } finally {
    await pubConn.close();
  }
});

test("BatchPublisher: a server that stops reading holds the windows back (bounded client buffer), the excess is a counted drop, the rest arrives", { timeout: 60_000 }, async () => {
  const nats = await startNats();
  after(() => nats.stop());
  const pubConn = await connect(nats.url);
  const subConn = await connect(nats.url);
  let received = 0;
  subConn.subscribe(rawSubject(1), { callback: () => void received++ });
  await subConn.flush();
  const counters = new Counters();
  const windowBytes = 256 * 1024;
  const pub = new BatchPublisher(pubConn, RawBatchSchema, { counters, windowBytes, maxQueueBytes: 4 << 20, maxQueue: 100_000 });
  const out = clientOutput(pubConn);
  assert.ok(out, "nats.js internals as expected: without them every window waits for a PING round trip");
  const message = new Uint8Array(64 * 1024);
  let offered = 0;
  let accepted = 0;
  let held = 0;
  process.kill(nats.pid, "SIGSTOP");
  try {
    // 48 MiB offered while the server reads nothing: more than loopback's socket buffers hold
    for (let i = 0; i < 768; i++) {
      offered++;
      if (pub.publishBytes(rawSubject(1), message)) accepted++;
      held = Math.max(held, out.pending());
      if (i % 16 === 15) await new Promise((r) => setImmediate(r));
    }
    await new Promise((r) => setTimeout(r, 200));
    held = Math.max(held, out.pending());
  } finally {
    process.kill(nats.pid, "SIGCONT");
  }
  try {
    // what the client holds unwritten stays within a window and one message (the kernel's socket
    // buffers hold the rest of what was handed over)
    assert.ok(held <= windowBytes + message.length + 1024, `client held ${held} bytes unwritten`);
    const dropped = counters.get("nats_drops_queue_full");
    assert.ok(dropped > 0, "the bounded queue overflowed while the server was stopped");
    assert.equal(accepted + dropped, offered);
    await pub.flush(30_000);
    assert.equal(counters.get("nats_published"), accepted);
    await subConn.flush();
    await waitFor(() => received === accepted, { timeoutMs: 30_000, what: `${accepted} accepted messages delivered (got ${received})` });
  } finally {
    await subConn.close();
    await pubConn.close();
  }
});

test("BatchPublisher drops (and counts) a batch larger than the server's max_payload", { timeout: 30_000 }, async () => {
  const nats = await startNats();
  after(() => nats.stop());
  const nc = await connect(nats.url);
  try {
    const counters = new Counters();
    const pub = new BatchPublisher(nc, RawBatchSchema, { counters });
    const big = create(RawBatchSchema, { data: [{ payload: new Uint8Array(2 * 1024 * 1024) }] });
    assert.equal(pub.publish(rawSubject(0), big), false);
    assert.equal(counters.get("nats_drops_too_large"), 1);
    assert.equal(pub.publish(rawSubject(0), create(RawBatchSchema, { partition: 0 })), true);
    await pub.flush();
    assert.equal(counters.get("nats_published"), 1);
  } finally {
    await nc.close();
  }
});

test("connectNats: user/password and token are sent; wrong credentials fail with code auth", { timeout: 30_000 }, async () => {
  const withUser = await startNats({ extraArgs: ["--user", "ws", "--pass", "s3cret"] });
  after(() => withUser.stop());
  const ok = await connectNats({ url: withUser.url, user: "ws", password: "s3cret" }, log, { retry: false });
  await ok.close();
  await assert.rejects(
    connectNats({ url: withUser.url, user: "ws", password: "wrong" }, log, { retry: true }),
    (e: unknown) => e instanceof NatsError && e.code === "auth" && !e.message.includes("wrong"),
  );

  const withToken = await startNats({ extraArgs: ["--auth", "tok123"] });
  after(() => withToken.stop());
  const ok2 = await connectNats({ url: withToken.url, token: "tok123" }, log, { retry: false });
  await ok2.close();
  await assert.rejects(connectNats({ url: withToken.url, token: "nope" }, log, { retry: false }), (e: unknown) => e instanceof NatsError && e.code === "auth");
});

test("connectNats with retry gives up cleanly when aborted", { timeout: 30_000 }, async () => {
  const nats = await startNats();
  const url = nats.url;
  await nats.stop(); // nothing listens there now
  const ac = new AbortController();
  setTimeout(() => ac.abort(), 500);
  await assert.rejects(connectNats({ url }, log, { retry: true, signal: ac.signal }), (e: unknown) => e instanceof NatsError && e.code === "aborted");
});
