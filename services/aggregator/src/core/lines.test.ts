import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { escStr, num } from "./lines.js";

describe("escStr", () => {
  it("quotes as the three rewrites in a row do, whichever of them has anything to match", () => {
    const ref = (v: string) => '"' + v.replace(/[\\"]/g, "\\$&").replace(/[\u0000-\u0009\u000b-\u001f]/g, " ").replace(/\n/g, "\\n") + '"';
    const alphabet = ['"', "\\", "\n", "\t", "\u0000", "\u001f", "a", "é", " ", "{", "}", ":", ","];
    let seed = 3;
    const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 8);
    const inputs = ["", "plain", JSON.stringify([{ key: "http.route", value: "/a\"b\\c" }]), ...Array.from({ length: 3000 }, () => Array.from({ length: rnd() % 12 }, () => alphabet[rnd() % alphabet.length]).join(""))];
    for (const v of inputs) assert.equal(escStr(v), ref(v), JSON.stringify(v));
  });
});

describe("num", () => {
  it("writes what String(Math.round(v * 1000) / 1000) writes", () => {
    const ref = (v: number) => (Number.isFinite(v) ? String(Math.round(v * 1000) / 1000) : "0");
    let seed = 11;
    const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
    const inputs = [0, -0, 0.0004, 0.0005, 0.001, 0.1, 0.12, 1, 999.9995, 1e-7, -1.5, -0.0004, NaN, Infinity, 2 ** 43 - 0.001, 2 ** 43, 2 ** 43 + 0.5, 1e21, 1.5e22, 1_764_600_000_123.456];
    for (let i = 0; i < 20_000; i++) inputs.push(rnd() * 10 ** Math.floor(rnd() * 16), 1_764_600_000_000 + rnd() * 1e9, Math.round(rnd() * 1e9) / 1000);
    for (const v of inputs) assert.equal(num(v), ref(v), String(v));
  });
});
