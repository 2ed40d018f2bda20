// Damaged captures: mutated headers, absurd lengths, cut files, duplicated and shuffled blocks.
// Whatever the damage, reading gives a CaptureError at open or runs to the end (damage counted),
// and reassembly keeps its promises to the sink (open before data, nothing after close, one
// close per connection, no empty chunks or gaps). Seeded; WIRESCOPE_FUZZ_SECONDS runs longer.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { CaptureReader } from "./reader.js";
import { CaptureError } from "./errors.js";
import { CaptureStreams } from "./capture-streams.js";
import type { StreamSink } from "./reassembly.js";
import { SHARED_CAPTURES, pcapToBigEndian, pcapngToBigEndian } from "./test-support/pcap.js";

/** xorshift32: reproducible from the seed printed on failure. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 4294967296;
  };
}

function mutate(src: Buffer, r: () => number): Buffer {
  let b = Buffer.from(src);
  const n = 1 + Math.floor(r() * 8);
  for (let i = 0; i < n; i++) {
    const kind = Math.floor(r() * 6);
    // bias toward the start, where the headers are
    const at = Math.floor(r() < 0.5 ? r() * Math.min(b.length, 256) : r() * b.length);
    if (at >= b.length) continue;
    switch (kind) {
      case 0: // flip a byte
        b[at] = b[at]! ^ (1 + Math.floor(r() * 255));
        break;
      case 1: // an absurd 32-bit value (lengths, interface ids, timestamps)
        if (at + 4 <= b.length) b.writeUInt32LE([0, 0xffffffff, 0x7fffffff, 12, 1 << 26, Math.floor(r() * 4294967296)][Math.floor(r() * 6)]! >>> 0, at);
        break;
      case 2: // cut the file
        b = b.subarray(0, at);
        break;
      case 3: // duplicate a slice
        b = Buffer.concat([b.subarray(0, at), b.subarray(at, at + Math.floor(r() * 200)), b.subarray(at)]);
        break;
      case 4: // drop a slice
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + Math.floor(r() * 200))]);
        break;
      case 5: // zero a slice
        b.fill(0, at, Math.min(b.length, at + Math.floor(r() * 64)));
        break;
    }
  }
  return b;
}

function checkedSink(): { sink: StreamSink; events: number } {
  const state = new Map<number, "open" | "closed">();
  const out = { events: 0, sink: undefined as unknown as StreamSink };
  const live = (id: number) => assert.equal(state.get(id), "open", `event for connection ${id} in state ${state.get(id)}`);
  out.sink = {
    open(c) {
      assert.equal(state.has(c.id), false);
      state.set(c.id, "open");
      out.events++;
    },
    data(c, dir, bytes) {
      live(c.id);
      assert.ok(dir === 0 || dir === 1);
      assert.ok(bytes.length > 0, "empty data chunk");
      out.events++;
    },
    gap(c, _dir, len) {
      live(c.id);
      assert.ok(len > 0 && Number.isFinite(len), `gap of ${len}`);
      out.events++;
    },
    close(c) {
      live(c.id);
      state.set(c.id, "closed");
      out.events++;
    },
  };
  return out;
}

describe("damaged captures", () => {
  const seeds = [
    ["http1/zeek__pipelined-requests.pcap", "pcap"],
    ["mysql/zeek__auth.pcap", "pcap"],
    ["grpc/gRPC-Go-for-Professionals__Server_Streaming.pcapng", "pcapng"],
    ["http2/pcap_file_ex__http2_sample.pcapng", "pcapng"],
  ] as const;
  const inputs: Buffer[] = [];
  for (const [f, kind] of seeds) {
    const b = fs.readFileSync(path.join(SHARED_CAPTURES, f));
    inputs.push(b, kind === "pcap" ? pcapToBigEndian(b) : pcapngToBigEndian(b));
  }

  it("never make reading or reassembly throw anything but a CaptureError at open", { timeout: 600_000 }, () => {
    const budgetMs = Number(process.env["WIRESCOPE_FUZZ_SECONDS"] ?? 0) * 1000;
    const seed0 = Number(process.env["WIRESCOPE_FUZZ_SEED"] ?? 20261122);
    const t0 = Date.now();
    let cases = 0;
    let refused = 0;
    let damaged = 0;
    for (let i = 0; i < 1500 || Date.now() - t0 < budgetMs; i++) {
      const seed = seed0 + i;
      const r = rng(seed);
      const input = mutate(inputs[i % inputs.length]!, r);
      cases++;
      let reader: CaptureReader;
      try {
        reader = CaptureReader.fromBuffer(input, `case-${seed}`);
      } catch (e) {
        assert.ok(e instanceof CaptureError, `seed ${seed}: ${(e as Error).stack}`);
        assert.ok(!e.message.includes("\n"));
        refused++;
        continue;
      }
      const { sink } = checkedSink();
      try {
        const st = new CaptureStreams(reader, sink, { maxWaitNs: 1e9 }).run();
        if (st.reader.truncatedRecords + st.reader.corruptRecords > 0) damaged++;
        assert.ok(st.reader.packets <= input.length / 12, `seed ${seed}: more packets than bytes allow`);
      } catch (e) {
        assert.fail(`seed ${seed} (WIRESCOPE_FUZZ_SEED=${seed} reproduces it first): ${(e as Error).stack}`);
      }
    }
    // the mutations do reach both outcomes
    assert.ok(refused > 0 && damaged > 0 && cases - refused > 0, `cases ${cases}, refused ${refused}, damaged ${damaged}`);
  });
});
