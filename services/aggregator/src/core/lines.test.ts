import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { escStr } from "./lines.js";

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
