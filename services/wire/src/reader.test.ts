import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { BinaryReader, BinaryWriter } from "@bufbuild/protobuf/wire";
import * as r from "./reader.js";

const U64S = [0n, 1n, 127n, 128n, 300n, 2n ** 32n - 1n, 2n ** 32n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 53n + 1n, 1_764_600_000_123_456_789n, 2n ** 63n, 2n ** 64n - 1n];

describe("wire reader", () => {
  it("reads 64-bit varints as protobuf-es does, as numbers, text and BigInts", () => {
    for (const v of U64S) {
      const bytes = new BinaryWriter().uint64(v).finish();
      r.setCursor(bytes, 0);
      r.varint64(bytes.length);
      assert.equal(r.pos, bytes.length);
      assert.equal(r.u64Big(), new BinaryReader(bytes).uint64(), `u64 ${v}`);
      assert.equal(r.u64Text(), v.toString());
      assert.equal(r.u64Num(), Number(v));
      assert.equal(r.i64Big(), BigInt.asIntN(64, v));
      assert.equal(r.i64Num(), Number(BigInt.asIntN(64, v)));
    }
  });

  it("reads strings as protobuf-es's BinaryReader.string() does (lenient: invalid UTF-8 becomes U+FFFD), repeated ones from the cache", () => {
    const texts = [Uint8Array.of(), new TextEncoder().encode("GET"), new TextEncoder().encode("ünïcode/π ✓"), Uint8Array.of(0x61, 0xff, 0x62, 0xc3), new TextEncoder().encode("x".repeat(47)), new TextEncoder().encode("y".repeat(300))];
    for (const t of texts) {
      const bytes = new BinaryWriter().bytes(t).finish();
      for (let k = 0; k < 2; k++) {
        r.setCursor(bytes, 0);
        assert.equal(r.string(bytes.length), new BinaryReader(bytes).string());
        assert.equal(r.pos, bytes.length);
      }
    }
  });

  it("throws WireError, and only that, on truncated or malformed fields", () => {
    const cases: [Uint8Array, (end: number) => unknown][] = [
      [Uint8Array.of(0x80), r.varint],
      [Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01), r.varint64],
      [Uint8Array.of(0x05, 0x61), r.string],
      [Uint8Array.of(0x01, 0x02), r.float32],
      [Uint8Array.of(0x01), (end) => r.skip(1, end)],
      [Uint8Array.of(0x01), (end) => r.skip(3, end)],
    ];
    for (const [bytes, read] of cases) {
      r.setCursor(bytes, 0);
      assert.throws(() => read(bytes.length), r.WireError, Buffer.from(bytes).toString("hex"));
    }
  });
});
