// Raw batches nobody heard. Raw batches are core NATS messages: published to a subject no parser
// subscribes to (no parser started yet, as when a node's probe comes up before the parsers of a
// Kubernetes rollout, or a partition without an owner), they are gone, and no parser can count
// them: it never saw the probe's batch_seq before. So each raw batch is published with a reply
// subject naming its partition, batch_seq and served count. No parser answers it; but with
// nothing subscribed to the batch's subject, nats-server answers at once with a 503 (no
// responders) status, and the probe counts the batch and the requests it held.
//
//   probe ──wirescope.raw.<p>, reply <inbox>.unheard.<p>.<seq>.<served>──▶ nats-server
//                                                    no subscriber: 503 ──▶ probe counts
//
// A batch a subscriber received and then lost (a parser's full queue) is the parser's to count
// (raw_drops_sub_queue_full); one lost to a server crash is counted by the next batch's gap.

/** What a no-responders status says of the batch it answers. */
export interface Unheard {
  partition: number;
  seq: number;
  served: number;
}

export class UnheardReplies {
  /** The reply subjects' common prefix (ending in "."). */
  readonly prefix: string;
  constructor(inboxPrefix: string) {
    this.prefix = `${inboxPrefix}.unheard.`;
  }
  /** The subscription that receives the statuses. */
  get subject(): string {
    return `${this.prefix}>`;
  }
  replyOf(b: { partition: number; seq: number; served: number }): string {
    return `${this.prefix}${b.partition}.${b.seq}.${b.served}`;
  }
  /** The batch a message on `subject` with status `code` answers; undefined unless a 503 on one of ours. */
  parse(subject: string, code: number | undefined): Unheard | undefined {
    if (code !== 503 || !subject.startsWith(this.prefix)) return undefined;
    const f = subject.slice(this.prefix.length).split(".");
    if (f.length !== 3 || !f.every((x) => /^\d+$/.test(x))) return undefined;
    return { partition: Number(f[0]), seq: Number(f[1]), served: Number(f[2]) };
  }
}

/**
 * The drops each published batch reported (RawBatch.drops), kept a while by partition and
 * batch_seq. A batch that comes back unheard took its drops with it: they are reported again in a
 * later batch, with the unheard batch itself and the requests it held (`raw_batches_unheard`,
 * `requests_unheard`), so every count reaches a parser once one listens, and InfluxDB through
 * the parser's losses. A heard batch gets no answer: its entry goes after `keepMs`, and at most
 * `max` are kept (a status that comes later than that finds nothing: the drops it carried stay in
 * the probe's own counters only).
 */
export class CarriedDrops {
  private readonly byBatch = new Map<string, { at: number; drops: Map<string, number> }>();
  constructor(
    private readonly keepMs = 30_000,
    private readonly max = 4096,
  ) {}

  /** A batch was published. */
  sent(b: { partition: number; seq: number; drops?: Map<string, number> }, now = Date.now()): void {
    if (!b.drops) return;
    for (const [k, e] of this.byBatch) {
      if (now - e.at < this.keepMs && this.byBatch.size < this.max) break;
      this.byBatch.delete(k);
    }
    this.byBatch.set(`${b.partition}.${b.seq}`, { at: now, drops: b.drops });
  }

  /** The drops to report for the unheard batch `u`: what it carried, and it with its requests. */
  unheard(u: Unheard): Record<string, number> {
    const key = `${u.partition}.${u.seq}`;
    const e = this.byBatch.get(key);
    this.byBatch.delete(key);
    const out: Record<string, number> = e ? Object.fromEntries(e.drops) : {};
    out.raw_batches_unheard = (out.raw_batches_unheard ?? 0) + 1;
    if (u.served) out.requests_unheard = (out.requests_unheard ?? 0) + u.served;
    return out;
  }

  /** Entries kept (tests). */
  get size(): number {
    return this.byBatch.size;
  }
}
