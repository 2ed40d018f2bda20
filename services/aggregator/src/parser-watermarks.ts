// The parsers' watermarks, which every window's close waits for (docs/aggregator.md, "RED windows").
//
//   parser ──membership heartbeat (KV wirescope-parsers/<id>)──▶ { id, publishedThroughMs, ... }
//   aggregator: watch ──▶ ParserWatermarks ──lowest()──▶ Pipeline.tick: no window closes past the
//               lowest watermark of the parsers heard from lately (Aggregator.closeDue)
//
// A window closes once records dated past its end + grace arrive, or, on a quiet stream, by the
// wall clock. Both assumed every record of a window is published within the grace after it
// ends. A parser held up longer (its JetStream publish timing out under a flood, its event loop
// busy with 100,000 connection events) broke that: the stream looked idle, or another parser's
// records moved event time on, windows closed, and the held records came late (`drops_late`).
// Each parser now states, in every heartbeat, the wall-clock time before which every record it
// made is acknowledged by JetStream; while one is behind, windows wait for it.
//
// A parser not heard from for `holdMs` (killed, or blocked that long) holds nothing, and no window
// waits more than `holdMs` past its close time (a parser's clock may be behind the probes'): a
// dead parser delays windows by at most holdMs, never for good.
import type { NatsConnection } from "@nats-io/nats-core";
import { type Counters, type Logger, SupervisedLoop, iterateRun, openBucketOnceCreated } from "@wirescope/runtime";

interface Mark {
  /** Every record the parser made before this wall-clock time (its clock) is acknowledged. */
  throughMs: number;
  /** When its last heartbeat arrived here (wall ms, this process's clock). */
  heardMs: number;
}

export class ParserWatermarks {
  private readonly marks = new Map<string, Mark>();

  constructor(private readonly holdMs: number) {}

  /** A heartbeat of parser `id` saying its records are published through `throughMs`. */
  heard(id: string, throughMs: number, nowMs: number): void {
    this.marks.set(id, { throughMs, heardMs: nowMs });
  }

  /** Parser `id` left (its entry was deleted): it holds nothing more. */
  left(id: string): void {
    this.marks.delete(id);
  }

  /** The lowest watermark of the parsers heard from within holdMs; Infinity when there is none. */
  lowest(nowMs: number): number {
    this.forgetSilent(nowMs);
    let low = Infinity;
    for (const m of this.marks.values()) if (m.throughMs < low) low = m.throughMs;
    return low;
  }

  /** Parsers holding a watermark now: heard from within holdMs (for status). */
  watched(nowMs: number): number {
    this.forgetSilent(nowMs);
    return this.marks.size;
  }

  private forgetSilent(nowMs: number): void {
    for (const [id, m] of this.marks) if (nowMs - m.heardMs > this.holdMs) this.marks.delete(id);
  }
}

/**
 * Watches the parsers' membership bucket into `marks` (undefined: windows wait for no parser) and
 * hands each entry's losses to `onLosses`, kept running: a watch that ends or fails is
 * started again with a backoff, counted as `parser_watch_restarts.<reason>`. Before the first
 * parser has created the bucket (an aggregator started first; its user may not create it), it
 * waits for it quietly, saying so once. It does not gate the service's health: without it,
 * windows close as they did before watermarks, by event time and the wall clock.
 */
/**
 * A parser entry's losses (MemberInfo.losses: what its loss counters grew by since its previous
 * entry), with the entry's time in ns: its creation on the NATS server (ms) and its revision mod
 * 10^6 below that, the same for every watcher and distinct for two entries of one millisecond.
 */
export type ParserLossesSink = (id: string, losses: Record<string, number>, tsNs: bigint) => void;

export function watchParserWatermarks(nc: NatsConnection, bucket: string, marks: ParserWatermarks | undefined, counters: Counters, log: Logger, signal: AbortSignal, onLosses?: ParserLossesSink): SupervisedLoop {
  return new SupervisedLoop(
    async () => {
      const kv = await openBucketOnceCreated(nc, bucket, {
        signal,
        onWaiting: () => log.info({ bucket }, "no parser has created its membership bucket yet: waiting for it, no window waits for a parser meanwhile"),
      });
      const w = await kv.watch({ key: ">" });
      return iterateRun(
        w,
        (e) => {
          // a parser's key is its id (NatsMembership without a key prefix)
          if (e.operation !== "PUT") return void marks?.left(e.key);
          let v: { id?: unknown; publishedThroughMs?: unknown; losses?: unknown };
          try {
            v = e.json();
          } catch {
            return;
          }
          if (typeof v.id !== "string") return;
          // A parser older than this field states nothing: it does not hold windows.
          if (typeof v.publishedThroughMs === "number") marks?.heard(v.id, v.publishedThroughMs, Date.now());
          if (onLosses && v.losses && typeof v.losses === "object") {
            onLosses(v.id, v.losses as Record<string, number>, BigInt(e.created.getTime()) * 1_000_000n + BigInt(e.revision % 1_000_000));
          }
        },
        () => w.stop(),
      );
    },
    { name: "parser_watch", counters, log, signal },
  );
}
