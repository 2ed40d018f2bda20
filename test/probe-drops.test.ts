// When user space falls behind, the probe drops and counts; it never blocks the traced process.
import { test } from "node:test";
import assert from "node:assert/strict";
import { EbpfSource } from "@wirescope/probe";
import { bpfAvailable, runChild } from "./probe-support.js";

const BLAST = `
import net from "node:net";
const srv = net.createServer((s) => s.resume());
srv.listen(0, "127.0.0.1", () => {
  const c = net.connect(srv.address().port, "127.0.0.1", async () => {
    console.log("SENDING");
    const chunk = Buffer.alloc(32 * 1024, 120);
    const end = Date.now() + Number(process.argv[2]);
    let sent = 0;
    while (Date.now() < end) {
      if (!c.write(chunk)) await new Promise((r) => c.once("drain", r));
      sent += chunk.length;
    }
    console.log("SENT " + sent);
    c.end();
    srv.close();
  });
});
`;

test("probe: a JS consumer that stalls loses whole batches, counted; the traced process is not slowed into a halt", { timeout: 60_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  let delivered = 0;
  const src = new EbpfSource({ mountTracefs: true, queueBatches: 2, batchMs: 5, batchBytes: 64 * 1024 });
  const ac = new AbortController();
  const done = src.run((b) => void (delivered += b.conns.length + b.data.length), ac.signal);
  t.after(() => (ac.abort(), done));
  const blast = await runChild("blast", BLAST, ["2000"]);
  t.after(() => blast.kill());
  // sending before the stall (a child's start-up can take longer than a fixed wait on a busy machine)
  await blast.waitLine(/^SENDING/, 20_000);
  await new Promise((r) => setTimeout(r, 200));
  // stall this process's event loop: the poller thread keeps going, batches pile up and are dropped
  const end = Date.now() + 1200;
  while (Date.now() < end);
  const sent = Number((await blast.waitLine(/^SENT (\d+)/, 20_000))[1]);
  assert.ok(sent > 10 * 1024 * 1024, `the traced process kept sending (${sent} bytes)`);
  await blast.exited;
  await new Promise((r) => setTimeout(r, 300));
  // The probe sees every process on the machine, so events keep trickling in: the identity
  // events = delivered + dropped + pending holds whenever the poller is between two events; the two
  // native counters are not read as one snapshot, so read until a quiet instant (bounded).
  let s = src.stats();
  for (let i = 0; i < 50 && s.events !== delivered + s.drops["user.js_behind"] + (s.pending ?? 0); i++) {
    await new Promise((r) => setTimeout(r, 20));
    s = src.stats();
  }
  assert.ok(s.drops["user.js_behind"] > 0, `events dropped while JS was stalled: ${JSON.stringify(s.drops)}`);
  assert.equal(s.events, delivered + s.drops["user.js_behind"] + (s.pending ?? 0), "every event was delivered, counted as dropped, or is still pending");
});

test("probe: a ring buffer too small for the traffic counts ringbuf_full drops", { timeout: 60_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  const src = new EbpfSource({ mountTracefs: true, ringbufBytes: 8192 });
  const ac = new AbortController();
  const done = src.run(() => {}, ac.signal);
  t.after(() => (ac.abort(), done));
  const blast = await runChild("blast", BLAST, ["500"]);
  t.after(() => blast.kill());
  await blast.waitLine(/^SENT/, 20_000);
  await blast.exited;
  await new Promise((r) => setTimeout(r, 200));
  assert.ok(src.stats().drops["kernel.ringbuf_full"] > 0, JSON.stringify(src.stats().drops));
});
