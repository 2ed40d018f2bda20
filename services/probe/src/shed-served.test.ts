import { test } from "node:test";
import assert from "node:assert/strict";
import { ShedServedDeltas } from "./shed-served.js";

test("ShedServedDeltas: what each server end's running total grew by; an end evicted and back starts from 0; ends gone are forgotten", () => {
  const d = new ShedServedDeltas();
  assert.deepEqual(d.update([]), []);
  assert.deepEqual(d.update([100, 8080, 5, 200, 9090, 1]), [{ pid: 100, port: 8080, requests: 5 }, { pid: 200, port: 9090, requests: 1 }]);
  assert.deepEqual(d.update([100, 8080, 5, 200, 9090, 4]), [{ pid: 200, port: 9090, requests: 3 }], "unchanged totals say nothing");
  assert.deepEqual(d.update([100, 8080, 2]), [{ pid: 100, port: 8080, requests: 2 }], "below the last total: evicted and counted again from 0");
  assert.deepEqual(d.update([200, 9090, 4]), [{ pid: 200, port: 9090, requests: 4 }], "an end forgotten (not in the last reading) is new again");
  assert.deepEqual(d.update([100, 8081, 7, 100, 8080, 7]), [{ pid: 100, port: 8081, requests: 7 }, { pid: 100, port: 8080, requests: 7 }], "one process, two ports: two ends");
});
