import { test } from "node:test";
import assert from "node:assert/strict";
import { BinaryWriter } from "@bufbuild/protobuf/wire";
import { WireWriter, varint64Len, varintLen, writeVarint64 } from "./writer.js";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

test("varint64Len: the bytes writeVarint64 writes, at every bit length of either half", () => {
  const out = new Uint8Array(10);
  for (let bits = 0; bits <= 64; bits++) {
    for (const v of [bits ? 1n << BigInt(bits - 1) : 0n, (1n << BigInt(bits)) - 1n]) {
      const lo = Number(v & 0xffff_ffffn);
      const hi = Number(v >> 32n);
      assert.equal(varint64Len(lo, hi), writeVarint64(out, 0, lo, hi), `${v}`);
      assert.equal(varint64Len(lo, hi), new BinaryWriter().uint64(v).finish().length, `${v} as protobuf-es writes it`);
      if (!hi) assert.equal(varintLen(lo), varint64Len(lo, hi));
    }
  }
});

test("WireWriter.beginLen/endLen: a LEN field written in place is protobuf-es's, whether the length takes fewer, as many or more bytes than the room left", () => {
  for (const room of [1, 2, 3]) {
    for (const n of [0, 1, 127, 128, 300, 16_383, 16_384, 70_000, 2_097_152]) {
      const body = Buffer.alloc(n, n & 0xff);
      const w = new WireWriter(16);
      w.uint(8, 5); // a field before
      const start = w.beginLen(42, room);
      w.raw(body);
      w.endLen(start, room);
      w.string(50, "after");
      const ref = new BinaryWriter().uint32(8).uint32(5).uint32(42).bytes(body).uint32(50).string("after").finish();
      assert.equal(hex(w.view()), hex(ref), `${n} bytes, room ${room}`);
    }
  }
});

test("WireWriter.uint64: the (lo, hi) halves as uint() writes the same number; nothing for 0", () => {
  const a = new WireWriter(4);
  const b = new WireWriter(4);
  for (const v of [0n, 1n, 0xffff_ffffn, 1n << 32n, (1n << 64n) - 1n, 1_796_000_000_000_000_000n]) {
    a.uint64(16, Number(v & 0xffff_ffffn), Number(v >> 32n));
    b.uint(16, v);
  }
  assert.equal(hex(a.view()), hex(b.view()));
  assert.equal(a.len, 2 + 6 + 6 + 11 + 10, "five fields (tag and 1, 5, 5, 10, 9 bytes), the 0 left out");
});
