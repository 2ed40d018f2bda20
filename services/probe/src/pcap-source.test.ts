import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import { PcapSource } from "./pcap-source.js";
import type { EventBatch } from "./events.js";
import { SHARED_CAPTURES } from "@wirescope/capture/test-support/pcap";

const FILE = `${SHARED_CAPTURES}/http1/zeek__pipelined-requests.pcap`;

test("PcapSource: replays a real capture as connections with ordered, complete bytes", { skip: !fs.existsSync(FILE) && "shared captures missing" }, async () => {
  const src = new PcapSource({ file: FILE, loops: 2, connKeyBase: 1n << 40n });
  const batches: EventBatch[] = [];
  await src.run((b) => void batches.push(b), new AbortController().signal);
  const opens = batches.flatMap((b) => b.conns).filter((c) => c.kind === "open");
  const closes = batches.flatMap((b) => b.conns).filter((c) => c.kind === "close");
  assert.ok(opens.length >= 2, "a connection per loop");
  assert.equal(closes.length, opens.length);
  assert.equal(new Set(opens.map((c) => c.connKey)).size, opens.length, "fresh keys per loop");
  for (const o of opens) assert.ok(o.connKey >> 40n === 1n);
  const first = opens[0];
  const egress = batches.flatMap((b) => b.data).filter((d) => d.connKey === first.connKey && d.direction === 1);
  let next = 0n;
  for (const d of egress) {
    assert.equal(d.seq, next);
    next += BigInt(d.originalLength);
  }
  const text = Buffer.concat(egress.map((d) => Buffer.from(d.payload))).toString("latin1");
  assert.equal(text.match(/^GET /gm)?.length, 5, "five pipelined GETs");
  assert.equal(first.role, 1);
  assert.equal(src.stats().connections, 0);
});

test("PcapSource: a file that is not a capture fails at construction", () => {
  assert.throws(() => new PcapSource({ file: "/etc/hostname" }));
  assert.throws(() => new PcapSource({ file: "/nonexistent.pcap" }));
});
