// A parser replica is SERVING only once it receives raw data: its partitions assigned and their
// subscriptions at the server. `up` starts the next component (and a user's traffic flows) when
// the parser first answers SERVING; a replica that said so before subscribing lost the first raw
// batches of every probe, the opens of the connections among them, with nothing to count them
// against (the fault suite's 3-server cluster run: 637 requests of 42,592, 2026-12-04).
// Here one batch per partition is published the moment the parser first answers SERVING, and
// every one must be received.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import { ConnEventSchema, ConnKind, RawBatchSchema, Role } from "@wirescope/wire";
import { checkHealth, rawSubject, ServingStatus } from "@wirescope/runtime";
import { REPO_ROOT, freePort, spawnTracked, tempDir, waitFor } from "./support/index.js";
import { parserStatus, useParserBed } from "./parser-support.js";

const P = 64;

describe("parser readiness", { timeout: 120_000 }, () => {
  const bed = useParserBed();

  it("answers SERVING only once its partitions are subscribed: batches published at that moment are all received", async () => {
    const port = await freePort();
    const grpc = `127.0.0.1:${port}`;
    const log = path.join(tempDir("wirescope-parser-ready-"), "parser.log");
    const proc = await spawnTracked("parser-ready", process.execPath, [path.join(REPO_ROOT, "bin/wirescope.js"), "parser", "--nats-url", bed.nats.url, "--grpc-port", String(port), "--log-format", "json", "--node", "test-node", "--metrics-port", "0"], { logFile: log });
    bed.procs.push({ proc, instance: "", grpc, log });
    // as often as the health answers come: the first SERVING, not one a poll later
    await waitFor(
      async () => {
        if (proc.hasExited) throw new Error(`parser exited: ${proc.tail(20)}`);
        return (await checkHealth(grpc, "", 1000)).status === ServingStatus.SERVING;
      },
      { timeoutMs: 60_000, intervalMs: 5, what: "the parser SERVING" },
    );
    for (let p = 0; p < P; p++) {
      const open = create(ConnEventSchema, { connKey: BigInt(1000 + p), kind: ConnKind.OPEN, role: Role.SERVER, localAddress: "10.0.0.2", localPort: 8080, remoteAddress: "10.0.0.1", remotePort: 40_000 + p, timestampNs: 1n });
      bed.nc.publish(rawSubject(p), toBinary(RawBatchSchema, create(RawBatchSchema, { partition: p, batchSeq: 1n, probeId: "probe-ready", node: "test-node", conns: [open] })));
    }
    await bed.nc.flush();
    let last: Record<string, number> = {};
    await waitFor(
      async () => {
        last = (await parserStatus({ proc, instance: "", grpc, log })).counters;
        return (last.raw_batches ?? 0) >= P;
      },
      { timeoutMs: 10_000, intervalMs: 100, what: `${P} raw batches received` },
    ).catch(() => undefined);
    assert.equal(last.raw_batches ?? 0, P, `every batch published at the first SERVING received: ${JSON.stringify(last)}\n${fs.readFileSync(log, "utf8").slice(-3000)}`);
    assert.equal(last.partitions_owned, P);
  });
});
