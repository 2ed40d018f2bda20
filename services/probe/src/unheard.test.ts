import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { UnheardReplies } from "./unheard.js";

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
