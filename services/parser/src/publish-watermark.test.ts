import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { PublishWatermark } from "./publish-watermark.js";

describe("PublishWatermark", () => {
  it("is now when nothing is held, queued or in flight", () => {
    const w = new PublishWatermark(0);
    assert.equal(w.through(1000, false, Infinity), 1000);
  });

  it("holds at the start of the last completed flush while records wait (records made by the sweep)", () => {
    const w = new PublishWatermark(0);
    w.took();
    w.completed(500);
    assert.equal(w.through(900, true, Infinity), 500);
  });

  it("dates records by their raw message's arrival: one queued while output waited, handled after a later flush", () => {
    const w = new PublishWatermark(0);
    // message M arrives at 100 and is queued (input paused; it waits for its turn)
    assert.equal(w.through(150, false, 100), 100, "queued: its arrival");
    // a flush begins at 200 (M still queued) and completes
    w.took();
    w.completed(200);
    assert.equal(w.through(250, false, 100), 100, "still queued");
    // M is handled at 300: its records are held, nothing queued. The flush start (200) would pass
    // records that ended before 100 and are not published yet.
    w.handled(100);
    assert.equal(w.through(300, true, Infinity), 100);
    // a flush takes them at 400 and publishes for a while
    w.took();
    w.handled(410); // a message handled meanwhile
    assert.equal(w.through(450, true, Infinity), 100, "in flight: the first arrival it carries");
    w.completed(400);
    assert.equal(w.through(500, true, Infinity), 400, "held since: the completed flush's start bounds it");
    w.took();
    w.completed(520);
    assert.equal(w.through(600, false, Infinity), 600);
  });

  it("takes the oldest of what is queued, held and in flight", () => {
    const w = new PublishWatermark(0);
    w.handled(300);
    w.took();
    w.handled(350);
    assert.equal(w.through(400, true, 320), 0, "nothing completed yet: the start");
    w.completed(10);
    assert.equal(w.through(400, true, 320), 10);
    const v = new PublishWatermark(0);
    v.completed(250);
    v.handled(300);
    v.took();
    v.handled(350);
    assert.equal(v.through(400, true, 320), 250);
    v.completed(390);
    assert.equal(v.through(400, true, 320), 320, "the queued message is the oldest left");
  });
});
