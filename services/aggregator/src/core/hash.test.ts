import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { id64, id128, unitFromHex, hex16 } from "./hash.js";

describe("id128", () => {
  it("is id64(s) + id64(s + \"\\u0001\") in one pass", () => {
    let seed = 99;
    const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 8);
    const inputs = ["", "a", "\u0001", "0000000000000001", "ünï", ...Array.from({ length: 2000 }, () => hex16(rnd(), rnd()))];
    for (const s of inputs) assert.equal(id128(s), id64(s) + id64(s + "\u0001"), s);
  });
});

describe("unitFromHex", () => {
  it("reads the first 8 hex digits as parseInt does", () => {
    const ref = (h: string) => {
      const n = parseInt(h.slice(0, 8), 16);
      return Number.isFinite(n) ? n / 0x1_0000_0000 : 0;
    };
    let seed = 7;
    const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 8);
    const inputs = ["", "0", "ffffffff", "FFFFFFFFFFFF", "00000000ffff", "12g45678", "g", "abcDEF0123", ...Array.from({ length: 2000 }, () => hex16(rnd(), rnd()).slice(0, rnd() % 17))];
    for (const h of inputs) assert.equal(unitFromHex(h), ref(h), h);
  });
});
