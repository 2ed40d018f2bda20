// The parsers' watermarks, for closing quiet windows (docs/aggregator.md, "When a window closes").
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
import { Kvm } from "@nats-io/kv";
import { type Counters, type Logger, SupervisedLoop, iterateRun } from "@wirescope/runtime";

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
    let low = Infinity;
    for (const [id, m] of this.marks) {
      if (nowMs - m.heardMs > this.holdMs) this.marks.delete(id);
      else if (m.throughMs < low) low = m.throughMs;
    }
    return low;
  }

  /** Parsers holding a watermark now (for status). */
  get size(): number {
    return this.marks.size;
  }
}

/**
 * Watches the parsers' membership bucket into `marks`, kept running (the bucket may not exist
 * before the first parser starts: the watch is tried again with a backoff, counted as
 * `parser_watch_restarts.<reason>`). It does not gate the service's health: without it, quiet
 * windows close by the wall clock as before.
 */
export function watchParserWatermarks(nc: NatsConnection, bucket: string, marks: ParserWatermarks, counters: Counters, log: Logger, signal: AbortSignal): SupervisedLoop {
  return new SupervisedLoop(
    async () => {
      const kv = await new Kvm(nc).open(bucket);
      await kv.status(); // throws while the bucket does not exist yet
      const w = await kv.watch({ key: ">" });
      return iterateRun(
        w,
        (e) => {
          // a parser's key is its id (NatsMembership without a key prefix)
          if (e.operation !== "PUT") return void marks.left(e.key);
          let v: { id?: unknown; publishedThroughMs?: unknown };
          try {
            v = e.json();
          } catch {
            return;
          }
          // A parser older than this field states nothing: it does not hold windows.
          if (typeof v.id === "string" && typeof v.publishedThroughMs === "number") marks.heard(v.id, v.publishedThroughMs, Date.now());
        },
        () => w.stop(),
      );
    },
    { name: "parser_watch", counters, log, signal },
  );
}
