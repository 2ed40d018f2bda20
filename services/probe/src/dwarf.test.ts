import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { structMemberOffsets, DwarfError } from "./dwarf.js";

// A hand-made .debug_abbrev/.debug_info pair in the shape Go's linker writes (DW_TAG_structure_type
// named with its package path, DW_TAG_member with a constant DW_AT_data_member_location).
//   abbrev 1: compile_unit, children, name string
//   abbrev 2: structure_type, children, name string, byte_size data1
//   abbrev 3: member, no children, name string, data_member_location (form per test), type ref4
//   abbrev 4: base_type, no children, name strp (a .debug_str offset), data member implicit_const
const uleb = (n: number) => {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return out;
};
const str = (s: string) => [...Buffer.from(s + "\0")];

function abbrevs(locForm: number): Buffer {
  return Buffer.from([
    ...uleb(1), 0x11, 1, 0x03, 0x08, 0, 0,
    ...uleb(2), 0x13, 1, 0x03, 0x08, 0x0b, 0x0b, 0, 0,
    ...uleb(3), 0x0d, 0, 0x03, 0x08, 0x38, locForm, 0x49, 0x13, 0, 0,
    ...uleb(4), 0x24, 0, 0x03, 0x0e, 0x3e, 0x21, ...uleb(5), 0, 0,
    0,
  ]);
}

function member(name: string, loc: number[]): number[] {
  return [...uleb(3), ...str(name), ...loc, 0, 0, 0, 0];
}

function unit(version: 4 | 5, dies: number[]): Buffer {
  const header = version === 5 ? [5, 0, 0x01, 8, 0, 0, 0, 0] : [4, 0, 0, 0, 0, 0, 8];
  const body = [...header, ...dies];
  const len = Buffer.alloc(4);
  len.writeUInt32LE(body.length);
  return Buffer.concat([len, Buffer.from(body)]);
}

const tlsConn = (loc: (n: number) => number[]) => [
  ...uleb(2), ...str("crypto/tls.Conn"), 64,
  ...member("conn", loc(0)),
  ...member("isClient", loc(16)),
  0,
];

describe("structMemberOffsets", () => {
  it("reads member offsets of the wanted structs (DWARF 4, udata locations), skipping other DIEs", () => {
    const info = unit(4, [
      ...uleb(1), ...str("net"),
      ...uleb(4), 0, 0, 0, 0, // base type: strp name into .debug_str, implicit_const attribute
      ...uleb(2), ...str("net.other"), 8, ...member("fd", uleb(200)), 0,
      ...uleb(2), ...str("net.netFD"), 80, ...member("pfd", uleb(0)), ...member("family", uleb(300)), 0,
      ...tlsConn(uleb),
      0,
    ]);
    const got = structMemberOffsets(info, abbrevs(0x0f), Buffer.from("int\0"), new Set(["net.netFD", "crypto/tls.Conn"]));
    assert.deepEqual(Object.fromEntries([...got].map(([k, v]) => [k, Object.fromEntries(v)])), {
      "net.netFD": { pfd: 0, family: 300 },
      "crypto/tls.Conn": { conn: 0, isClient: 16 },
    });
  });
  it("reads DWARF 5 unit headers and DW_OP_plus_uconst locations (exprloc)", () => {
    const info = unit(5, [...uleb(1), ...str("crypto/tls"), ...tlsConn((n) => [1 + uleb(n).length, 0x23, ...uleb(n)]), 0]);
    const got = structMemberOffsets(info, abbrevs(0x18), undefined, new Set(["crypto/tls.Conn"]));
    assert.deepEqual(Object.fromEntries(got.get("crypto/tls.Conn")!), { conn: 0, isClient: 16 });
  });
  it("stops at the first unit that has them all, and misses nothing across units", () => {
    const a = unit(4, [...uleb(1), ...str("a"), ...tlsConn(uleb), 0]);
    const b = unit(4, [...uleb(1), ...str("b"), ...uleb(2), ...str("net.conn"), 8, ...member("fd", uleb(0)), 0, 0]);
    const got = structMemberOffsets(Buffer.concat([a, b]), abbrevs(0x0f), undefined, new Set(["crypto/tls.Conn", "net.conn"]));
    assert.equal(got.get("net.conn")!.get("fd"), 0);
    // a broken unit after the one that completes the set is never read
    const only = structMemberOffsets(Buffer.concat([a, Buffer.from([0xff, 0xff, 0xff, 0xf0, 1, 2])]), abbrevs(0x0f), undefined, new Set(["crypto/tls.Conn"]));
    assert.equal(only.get("crypto/tls.Conn")!.get("isClient"), 16);
  });
  it("throws DwarfError on truncated or unknown input, never reads past the section", () => {
    const good = unit(4, [...uleb(1), ...str("x"), ...tlsConn(uleb), 0]);
    for (const cut of [5, 12, 20, good.length - 3]) {
      const b = Buffer.from(good.subarray(0, cut));
      b.writeUInt32LE(cut - 4, 0);
      assert.throws(() => structMemberOffsets(b, abbrevs(0x0f), undefined, new Set(["crypto/tls.Conn"])), DwarfError, `cut at ${cut}`);
    }
    assert.throws(() => structMemberOffsets(good, abbrevs(0x7f), undefined, new Set(["crypto/tls.Conn"])), /unknown attribute form/);
    const v9 = Buffer.from(good);
    v9.writeUInt16LE(9, 4);
    assert.throws(() => structMemberOffsets(v9, abbrevs(0x0f), undefined, new Set(["x"])), /DWARF version 9/);
  });
});
