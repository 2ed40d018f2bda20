import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { appendedTo } from "./run.js";

describe("demo: appendedTo", () => {
  it("returns only what is appended after it was made, reading each byte once, a character split across reads whole", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ws-appended-"));
    try {
      const log = path.join(dir, "part.log");
      const read = appendedTo(log);
      assert.equal(read(), "", "no file yet");
      fs.writeFileSync(log, "started\n");
      assert.equal(read(), "started\n");
      const euro = Buffer.from("€"); // three bytes, appended one at a time
      fs.appendFileSync(log, Buffer.concat([Buffer.from("price "), euro.subarray(0, 1)]));
      assert.equal(read(), "started\nprice ");
      fs.appendFileSync(log, euro.subarray(1));
      fs.appendFileSync(log, "5\n");
      assert.equal(read(), "started\nprice €5\n");
      assert.equal(read(), "started\nprice €5\n", "nothing new, nothing read twice");

      // a second start appends to the same log: only its own lines count
      const again = appendedTo(log);
      fs.appendFileSync(log, "demo api: running (pid 7)\n");
      assert.equal(again(), "demo api: running (pid 7)\n");
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
