// Who is in a fleet (parsers, aggregators), as one replica sees it. Pure: the NATS adapter
// (membership-nats.ts) feeds it heartbeats and deletions; this decides liveness.
//
// Liveness uses the time this replica last *received* a heartbeat (its own monotonic clock),
// never timestamps written by other machines, so clock skew between nodes does not matter.

export interface MemberInfo {
  id: string;
  /** gRPC control address, for `wirescope status`. */
  grpc?: string;
  node?: string;
  startedAt?: number;
  /** A parser's watermark: every record it made before this wall-clock time is acknowledged
   *  (aggregators close no quiet window past the lowest; docs/parser.md). */
  publishedThroughMs?: number;
  /**
   * A parser's losses since its previous entry that was written (counter name → how much it grew;
   * only counters that grew): aggregators write each entry's into InfluxDB (`pipeline`,
   * component=parser; docs/parser.md, "Losses in InfluxDB").
   */
  losses?: Record<string, number>;
}

export interface MembershipOptions {
  /** A member not heard from for this long is dead. */
  ttlMs: number;
}

export class MembershipView {
  private readonly seen = new Map<string, { at: number; info: MemberInfo }>();
  /** Last info of members that left or died, for handover accounting (bounded). */
  private readonly departed = new Map<string, MemberInfo>();

  constructor(
    readonly self: string,
    private readonly opts: MembershipOptions,
  ) {}

  /** A heartbeat arrived. Returns true when the member set changed. */
  heard(info: MemberInfo, now: number): boolean {
    const isNew = !this.seen.has(info.id);
    this.seen.set(info.id, { at: now, info });
    this.departed.delete(info.id);
    return isNew;
  }

  /** A member said goodbye (its key was deleted). Returns true when the set changed. */
  left(id: string): boolean {
    const e = this.seen.get(id);
    if (!e) return false;
    this.seen.delete(id);
    this.remember(e.info);
    return true;
  }

  /** Forgets members silent for longer than the TTL. Returns the ids that died. */
  expire(now: number): string[] {
    const dead: string[] = [];
    for (const [id, e] of this.seen) {
      if (id === this.self) continue; // we are alive by definition while running
      if (now - e.at > this.opts.ttlMs) {
        this.seen.delete(id);
        this.remember(e.info);
        dead.push(id);
      }
    }
    return dead;
  }

  /**
   * Restarts every member's clock (after our own connection came back): while we could not
   * hear anyone, their silence says nothing about them.
   */
  touchAll(now: number): void {
    for (const e of this.seen.values()) e.at = now;
  }

  /** Sorted member ids, always including self. */
  members(): string[] {
    const ids = new Set(this.seen.keys());
    ids.add(this.self);
    return [...ids].sort();
  }

  info(id: string): MemberInfo | undefined {
    return this.seen.get(id)?.info ?? this.departed.get(id);
  }

  private remember(info: MemberInfo): void {
    this.departed.set(info.id, info);
    if (this.departed.size > 256) this.departed.delete(this.departed.keys().next().value as string);
  }
}
