// A source of socket events: the eBPF probe (ebpf-source.ts) or a pcap replay (pcap-source.ts).
// Both hand the same EventBatch to the same publishing path.
import type { EventBatch } from "./events.js";

export interface SourceStats {
  /** Drops by reason since start (kernel ones prefixed "kernel.", user-space ones "user."). */
  drops: Record<string, number>;
  events: number;
  /** Events read but not yet delivered (in the batch being filled or queued for JS). */
  pending?: number;
  bytes: number;
  /** Connections tracked (possibly as last counted: see `stats`). */
  connections: number;
  programs: string[];
  /** TLS plaintext counters (eBPF source with TLS on): tls-libraries.ts and bpf/tls.bpf.h. */
  tls?: Record<string, number>;
}

export interface EventSource {
  readonly kind: "ebpf" | "pcap";
  /** Starts delivering batches to `onBatch`; resolves when the source is exhausted (pcap) or closed. */
  run(onBatch: (b: EventBatch) => void | Promise<void>, signal: AbortSignal): Promise<void>;
  /** `connections` false: `connections` may be the last count (counting can cost a call per connection). */
  stats(connections?: boolean): SourceStats;
}
