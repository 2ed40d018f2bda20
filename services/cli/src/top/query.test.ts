import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { freePort } from "@wirescope/runtime";
import { fetchTop } from "./query.js";

describe("fetchTop", () => {
  it("says where InfluxDB was looked for and how to start the stack when nothing answers there", async () => {
    const port = await freePort(); // nothing listens there: bound, then closed
    await assert.rejects(
      fetchTop({ url: `http://127.0.0.1:${port}`, database: "wirescope" }, 60, {}, 5000),
      (e: Error) => {
        assert.equal(e.message, `InfluxDB at http://127.0.0.1:${port} is unreachable (fetch failed: connect ECONNREFUSED 127.0.0.1:${port}): is the stack running? \`npm start\` (or \`npx wirescope up\`) starts it; --influx-url names another InfluxDB`);
        return true;
      },
    );
  });
});
