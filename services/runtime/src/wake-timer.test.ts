import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { WakeTimer, type TimerCalls } from "./wake-timer.js";

/** Timer calls driven by the test: `advance(ms)` fires what is due, in order; nothing waits. */
function manualTimers(): TimerCalls & { advance(ms: number): void; pending(): number; fired: number } {
  let now = 0;
  let next = 1;
  const due = new Map<number, { at: number; fn: () => void }>();
  const t = {
    fired: 0,
    set(fn: () => void, ms: number) {
      const id = next++;
      due.set(id, { at: now + ms, fn });
      return id;
    },
    clear(h: unknown) {
      due.delete(h as number);
    },
    pending: () => due.size,
    advance(ms: number) {
      const end = now + ms;
      for (;;) {
        const first = [...due].filter(([, d]) => d.at <= end).sort((a, b) => a[1].at - b[1].at)[0];
        if (!first) break;
        due.delete(first[0]);
        now = first[1].at;
        t.fired++;
        first[1].fn();
      }
      now = end;
    },
  };
  return t;
}

describe("WakeTimer", () => {
  it("wakes nobody while no work arrives", () => {
    const timers = manualTimers();
    let flushes = 0;
    const w = new WakeTimer(() => flushes++, timers);
    timers.advance(60_000);
    assert.equal(timers.fired, 0);
    assert.equal(flushes, 0);
    assert.equal(w.armings, 0);
  });

  it("under steady work wakes once per period at most, and every piece of work goes out within one period", () => {
    const timers = manualTimers();
    const period = 20;
    let waiting: number[] = []; // arrival times of work not yet flushed
    let clock = 0;
    let worst = 0;
    const w = new WakeTimer(() => {
      for (const at of waiting) worst = Math.max(worst, clock - at);
      waiting = [];
    }, timers);
    // a piece of work every 3 ms for 10 s, armed by each arrival as the parser's raw batches do
    for (let i = 0; i < 3334; i++) {
      timers.advance(3);
      clock += 3;
      waiting.push(clock);
      w.arm(period);
    }
    timers.advance(period);
    clock += period;
    assert.ok(timers.fired <= 10_000 / period + 1, `fired ${timers.fired} times in 10 s`);
    assert.ok(timers.fired >= 10_000 / (period + 3) - 1, "flushes kept coming");
    assert.ok(worst <= period, `work waited ${worst} ms`);
    assert.equal(waiting.length, 0, "nothing left behind");
    // then idle again: no more wake-ups
    const before = timers.fired;
    timers.advance(60_000);
    assert.equal(timers.fired, before);
  });

  it("keeps the first deadline; fire may arm again; stop cancels and refuses later arms", () => {
    const timers = manualTimers();
    let fires = 0;
    const w: WakeTimer = new WakeTimer(() => {
      fires++;
      if (fires < 3) w.arm(5);
    }, timers);
    w.arm(10);
    w.arm(1); // a pending deadline is kept
    timers.advance(9);
    assert.equal(fires, 0);
    timers.advance(1);
    assert.equal(fires, 1);
    timers.advance(10);
    assert.equal(fires, 3, "re-armed from its own callback twice");
    assert.equal(w.armed, false);
    w.arm(5);
    w.stop();
    assert.equal(timers.pending(), 0, "stop clears the pending timeout");
    w.arm(5);
    assert.equal(w.armed, false, "stopped: arm does nothing");
    timers.advance(100);
    assert.equal(fires, 3);
  });
});
