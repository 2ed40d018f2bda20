import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { errorMessage } from "./errors.js";
import { freePort } from "./process.js";

describe("errorMessage", () => {
  it("says why a fetch failed (its cause), not only that it did", async () => {
    const port = await freePort(); // nothing listens there: bound, then closed
    const e = await fetch(`http://127.0.0.1:${port}/ping`).then(() => undefined, (x: unknown) => x);
    assert.equal(errorMessage(e), `fetch failed: connect ECONNREFUSED 127.0.0.1:${port}`);
  });
  it("is the first line of any other error, or the value as text", () => {
    assert.equal(errorMessage(new Error("one\ntwo")), "one");
    assert.equal(errorMessage(new TypeError("fetch failed")), "fetch failed");
    assert.equal(errorMessage(42), "42");
  });
});
