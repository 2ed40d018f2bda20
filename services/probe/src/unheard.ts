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
