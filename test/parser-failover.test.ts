// kill -9 one of three parser replicas while real redis-cli traffic is replayed: its partitions
// are taken over within the membership TTL, connections on partitions that did not move come
// out complete, and every lost connection is counted by the survivors (raw_batches_missed), and
// every request those connections held too (requests_missed, from each batch's served_before).
//
// A loss is counted against a sequence some replica committed: the victim is killed only once its
// progress entry holds progress for every partition it owns (a stream that no replica ever
// committed before its owner died has no such sequence, docs/parser.md), and a hole is seen only
// when a later batch of its partition arrives: once the survivors own every partition, one more
// conversation goes to each partition. Under load the publishing loop slows (a few hundred
// conversations instead of ~900): without these two the count fell short by the streams whose
// first batches met the dead window and the holes no later batch revealed.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Kvm } from "@nats-io/kv";
import { ownerOf } from "@wirescope/runtime";
import { parserStatus, redisTraffic, settleRecords, startFleet, startParser, toRawBatches, useParserBed, waitForFleet } from "./parser-support.js";
import { REDIS_PLUGIN_DIR, waitFor } from "./support/index.js";

const P = 64;
const TTL_MS = 3000;
const RATE_PER_S = 250;
const LAST_FLUSH_MS = 1000;
const PROBE_ID = "test-probe"; // toRawBatches' default probe id: progress keys are PROBE_ID/partition
const ARGS = ["--builtin-dir", REDIS_PLUGIN_DIR, "--member-ttl-ms", String(TTL_MS), "--heartbeat-ms", "500"];

describe("parser failover: kill -9 one of three replicas under load", { timeout: 180_000 }, () => {
  const bed = useParserBed({ redis: true });

  it("takes over the dead replica's partitions and counts exactly what it lost", async () => {
    const templates = await redisTraffic(bed.redis!.port, 32, "f");
    const fleet = await startFleet(bed, 3, ARGS, "failover", P);
    const members = fleet.map((p) => p.instance);
    const victim = fleet[0]!;
    const survivors = fleet.slice(1);
    const killedParts = new Set([...Array(P).keys()].filter((p) => ownerOf(p, members) === victim.instance));
    assert.ok(killedParts.size > 5, `victim owns ${killedParts.size} partitions`);

    // The victim's progress entry: what the survivors count its losses against.
    const kv = await new Kvm(bed.nc).open("wirescope-parser-progress");
    const victimCommittedAll = async () => {
      const progress = (await kv.get(victim.instance))?.json<Record<string, number>>() ?? {};
      return [...killedParts].every((p) => progress[`${PROBE_ID}/${p}`] !== undefined);
    };
    // The watched membership entry stays small: the progress is not in it.
    const memberKv = await new Kvm(bed.nc).open("wirescope-parsers");
    const victimMemberEntry = async () => (await memberKv.get(victim.instance))?.string() ?? "";

    // Publish one conversation per RawBatch at a steady rate; kill the victim after 2 s, once its
    // entry holds progress for each of its partitions; go on for TTL + 4 s after the kill.
    const seqs = new Map<number, number>();
    const servedRunning = new Map<number, number>();
    const sent: { key: bigint; partition: number; at: number; template: number; served: number }[] = [];
    let key = 1_000_000n;
    const publishOne = () => {
      const conv = templates[sent.length % templates.length]!;
      const plan = toRawBatches([conv], { partitions: P, firstKey: key, seqStart: seqs, servedStart: servedRunning, probeId: PROBE_ID });
      const b = plan.batches[0]!;
      bed.nc.publish(`wirescope.raw.${b.partition}`, b.bytes);
      sent.push({ key, partition: b.partition, at: Date.now(), template: sent.length % templates.length, served: b.served });
      key++;
    };
    let killedAt = 0;
    let checkedAt = 0;
    const t0 = Date.now();
    while (!killedAt || Date.now() - killedAt < TTL_MS + 4000) {
      publishOne();
      if (!killedAt && Date.now() - t0 >= 2000 && Date.now() - checkedAt >= 100) {
        checkedAt = Date.now();
        if (await victimCommittedAll()) {
          const entry = await victimMemberEntry();
          assert.ok(entry.includes(`"id":"${victim.instance}"`) && !entry.includes("progress") && entry.length < 1024, `the victim's membership entry: ${entry.slice(0, 200)}`);
          victim.proc.child.kill("SIGKILL");
          killedAt = Date.now();
        } else assert.ok(Date.now() - t0 < 30_000, "the victim's entry never held progress for all its partitions");
      }
      await new Promise((r) => setTimeout(r, 1000 / RATE_PER_S));
    }
    // The survivors own every partition: one more conversation on each reveals every hole left.
    await waitForFleet(survivors, P);
    const fleetAt = Date.now();
    for (let i = 0; i < P; i++) publishOne();
    await bed.nc.flush();
    const seen = await settleRecords(bed.nc, 2000, 60_000);
    const statuses = await Promise.all(survivors.map(parserStatus));
    const counted = statuses.reduce((n, s) => n + (s.counters["raw_batches_missed.handover"] ?? 0) + (s.counters["raw_batches_missed.gap"] ?? 0), 0);
    const requestsCounted = statuses.reduce((n, s) => n + (s.counters["requests_missed.handover"] ?? 0) + (s.counters["requests_missed.gap"] ?? 0), 0);

    const perConn = new Map<bigint, { n: number; parsers: Set<string> }>();
    for (const s of seen) {
      const e = perConn.get(s.record.connKey) ?? { n: 0, parsers: new Set<string>() };
      e.n++;
      e.parsers.add(s.parserId);
      perConn.set(s.record.connKey, e);
    }
    // Records per session, learned from the sessions on partitions that never moved (each
    // template conversation must give the same number every time).
    const perTemplate = new Map<number, number>();
    for (const s of sent) {
      const e = perConn.get(s.key);
      if (killedParts.has(s.partition) || !e) continue;
      const want = perTemplate.get(s.template);
      if (want === undefined) perTemplate.set(s.template, e.n);
      else assert.equal(e.n, want, `template ${s.template}: ${e.n} records, elsewhere ${want}`);
    }
    assert.ok([...perTemplate.values()].every((n) => n >= 6), "each redis-cli session runs six commands");
    let lost = 0;
    let requestsLost = 0;
    let publishedNearKill = 0;
    let requestsNearKill = 0;
    let firstTakeover = Infinity;
    for (const s of sent) {
      const e = perConn.get(s.key);
      if (e) {
        assert.equal(e.parsers.size, 1, `connection ${s.key} decoded by ${[...e.parsers]}`);
        const want = perTemplate.get(s.template);
        if (want !== undefined) assert.equal(e.n, want, `connection ${s.key}: ${e.n} records, expected ${want} (partial or duplicated)`);
      }
      if (!killedParts.has(s.partition) || s.at >= fleetAt) {
        assert.ok(e, `connection ${s.key} on ${killedParts.has(s.partition) ? "" : "un"}moved partition ${s.partition} lost${s.at >= fleetAt ? " after the survivors owned every partition" : ""}`);
        if (!killedParts.has(s.partition)) continue;
      }
      if (!e) (lost++, (requestsLost += s.served));
      else if (s.at >= killedAt - LAST_FLUSH_MS && s.at <= killedAt && e.parsers.has(victim.instance)) (publishedNearKill++, (requestsNearKill += s.served));
      if (!e) {
        // lost: counted below
      } else if (s.at > killedAt) {
        assert.ok(!e.parsers.has(victim.instance), "the dead replica cannot have decoded after its death");
        firstTakeover = Math.min(firstTakeover, s.at - killedAt);
      }
    }
    console.log(`partitions moved ${killedParts.size}; conversations sent ${sent.length}; lost ${lost}; counted ${counted}; takeover after ${firstTakeover} ms`);
    assert.ok(lost > 0, "the dead window must lose something on the victim's partitions");
    assert.ok(Number.isFinite(firstTakeover), "the victim's partitions were never taken over");
    assert.ok(firstTakeover <= TTL_MS + 3000, `takeover took ${firstTakeover} ms`);
    // Every loss is counted. The count can exceed the loss only by batches the victim published
    // in its last flush before dying, before its progress entry was written (one flush: 20 ms
    // plus event-loop lag; LAST_FLUSH_MS is a generous bound for a loaded machine).
    assert.ok(counted >= lost, `lost ${lost} but counted ${counted}`);
    assert.ok(counted - lost <= publishedNearKill, `counted ${counted} for ${lost} lost (${publishedNearKill} published just before the kill)`);
    // The same in requests, from the running count each batch states (RawBatch.served_before)
    console.log(`requests lost ${requestsLost}; counted ${requestsCounted}`);
    assert.ok(requestsLost > 0);
    assert.ok(requestsCounted >= requestsLost, `requests lost ${requestsLost} but counted ${requestsCounted}`);
    assert.ok(requestsCounted - requestsLost <= requestsNearKill, `requests counted ${requestsCounted} for ${requestsLost} lost (${requestsNearKill} in batches published just before the kill)`);
  });
});

describe("parser handover: a replica that joins a running fleet", { timeout: 120_000 }, () => {
  const bed = useParserBed({ redis: true });

  it("counts a batch its partitions lost in the move, against the previous owners' progress", async () => {
    const templates = await redisTraffic(bed.redis!.port, 4, "j");
    const fleet = await startFleet(bed, 2, ARGS, "join", P);
    const seqs = new Map<number, number>();
    const served = new Map<number, number>();
    let key = 2_000_000n;
    // one batch on every partition (consecutive keys: key mod P)
    const publishAll = async () => {
      for (let i = 0; i < P; i++) {
        const b = toRawBatches([templates[i % templates.length]!], { partitions: P, firstKey: key++, seqStart: seqs, servedStart: served, probeId: PROBE_ID }).batches[0]!;
        bed.nc.publish(`wirescope.raw.${b.partition}`, b.bytes);
      }
      await bed.nc.flush();
    };
    await publishAll();
    // both replicas committed their partitions' progress (batch 1 of each)
    const kv = await new Kvm(bed.nc).open("wirescope-parser-progress");
    await waitFor(async () => {
      const all: Record<string, number> = {};
      for (const p of fleet) Object.assign(all, (await kv.get(p.instance))?.json<Record<string, number>>() ?? {});
      return [...Array(P).keys()].every((p) => all[`${PROBE_ID}/${p}`] === 1);
    }, { timeoutMs: 15_000, what: "the progress of both replicas committed" });

    const joined = await startParser(bed.nats.url, ARGS, "join-2");
    bed.procs.push(joined);
    fleet.push(joined);
    await waitForFleet(fleet, P);
    const moved = [...Array(P).keys()].filter((p) => ownerOf(p, fleet.map((f) => f.instance)) === joined.instance);
    assert.ok(moved.length > 5, `the newcomer took ${moved.length} partitions`);
    // batch 2 of each moved partition lost in the move (published while neither owner subscribed)
    for (const p of moved) seqs.set(p, seqs.get(p)! + 1);
    await publishAll();
    let c: Record<string, number> = {};
    const said = () => JSON.stringify(Object.fromEntries(Object.entries(c).filter(([k]) => /handover|progress|partitions|raw_batches/.test(k))));
    await waitFor(async () => ((c = (await parserStatus(joined)).counters)["raw_batches_missed.handover"] ?? 0) >= moved.length, { timeoutMs: 20_000, what: `${moved.length} batches counted lost in the move` }).catch((e: Error) => {
      throw new Error(`${e.message}; the newcomer's counters: ${said()}`);
    });
    await new Promise((r) => setTimeout(r, 1500));
    const st = await Promise.all(fleet.map(parserStatus));
    assert.equal(st[2]!.counters["raw_batches_missed.handover"], moved.length, "one per moved partition, by the newcomer");
    assert.equal(st[0]!.counters["raw_batches_missed.handover"] ?? 0, 0);
    assert.equal(st[1]!.counters["raw_batches_missed.handover"] ?? 0, 0);
    assert.equal(st.reduce((n, s) => n + (s.counters["raw_batches_missed.gap"] ?? 0), 0), 0, "no gap besides the move's");
  });
});
