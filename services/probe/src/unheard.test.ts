import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { CarriedDrops, UnheardReplies } from "./unheard.js";

describe("UnheardReplies", () => {
  it("names a batch in its reply subject and reads it back from a 503 only", () => {
    const u = new UnheardReplies("_INBOX.probe");
    const reply = u.replyOf({ partition: 17, seq: 4021, served: 9 });
    assert.equal(reply, "_INBOX.probe.unheard.17.4021.9");
    assert.equal(u.subject, "_INBOX.probe.unheard.>");
    assert.deepEqual(u.parse(reply, 503), { partition: 17, seq: 4021, served: 9 });
    assert.equal(u.parse(reply, undefined), undefined, "a message without a status");
    assert.equal(u.parse(reply, 408), undefined);
    assert.equal(u.parse("_INBOX.other.unheard.1.2.3", 503), undefined);
    assert.equal(u.parse("_INBOX.probe.unheard.1.x.3", 503), undefined);
    assert.equal(u.parse("_INBOX.probe.unheard.1.2", 503), undefined);
  });
});

describe("CarriedDrops", () => {
  it("reports again what an unheard batch carried, with the batch and its requests; forgets heard ones", () => {
    const c = new CarriedDrops(1000, 3);
    c.sent({ partition: 2, seq: 5, drops: new Map([["kernel.ringbuf_full", 4], ["raw_batches_unheard", 2], ["requests_unheard", 9]]) }, 0);
    c.sent({ partition: 2, seq: 6 }, 0); // nothing carried: nothing kept
    assert.equal(c.size, 1);
    // the batch that carried earlier unheard counts was unheard too: all of it again, and it
    assert.deepEqual(c.unheard({ partition: 2, seq: 5, served: 3 }), { "kernel.ringbuf_full": 4, raw_batches_unheard: 3, requests_unheard: 12 });
    assert.equal(c.size, 0);
    assert.deepEqual(c.unheard({ partition: 2, seq: 6, served: 0 }), { raw_batches_unheard: 1 });
    // heard batches never get a status: kept for keepMs, at most max
    for (let s = 1; s <= 5; s++) c.sent({ partition: 0, seq: s, drops: new Map([["x", 1]]) }, 10);
    assert.equal(c.size, 3);
    c.sent({ partition: 0, seq: 6, drops: new Map([["x", 1]]) }, 2000);
    assert.equal(c.size, 1);
    assert.deepEqual(c.unheard({ partition: 0, seq: 6, served: 0 }), { x: 1, raw_batches_unheard: 1 });
  });
});
