// Membership over NATS itself: JetStream KV bucket `wirescope-parsers`, one key per replica.
//
//   replica ──put every heartbeatMs──▶ KV wirescope-parsers/<id> = MemberInfo (JSON)
//   replica ◀──watch (all keys)─────── puts (alive), DEL (goodbye)
//   timer: a member not heard from for ttlMs is dead (kill -9 leaves no goodbye)
//
// The bucket's max_age equals the TTL, so a dead replica's key also disappears from the store
// and a replica starting later never sees it as alive. Liveness is judged by the local arrival
// time of heartbeats (MembershipView), so clocks of other machines do not matter, except for the
// initial snapshot where the server's timestamp filters entries older than the TTL.
import type { KV, NatsConnection } from "nats";
import { NatsError, errorMessage, type Logger } from "@wirescope/common";
import { MembershipView, type MemberInfo } from "./membership.js";

export const MEMBERS_BUCKET = "wirescope-parsers";

export interface NatsMembershipOptions {
  heartbeatMs: number;
  ttlMs: number;
  bucket: string;
  /** JetStream replicas of the bucket when this replica creates it. */
  replicas?: number;
}

export class NatsMembership {
  readonly view: MembershipView;
  private kv!: KV;
  private timer: NodeJS.Timeout | undefined;
  private watchStop: (() => void) | undefined;
  private lastPut: Promise<unknown> = Promise.resolve();
  private connected = true;

  constructor(
    private readonly nc: NatsConnection,
    private readonly self: () => MemberInfo,
    private readonly opts: NatsMembershipOptions,
    private readonly log: Logger,
    /** Called with the sorted member ids whenever the set changes. */
    private readonly onChange: (members: string[], died: string[]) => void,
  ) {
    this.view = new MembershipView(self().id, { ttlMs: opts.ttlMs });
  }

  async start(): Promise<void> {
    try {
      this.kv = await this.nc.jetstream().views.kv(this.opts.bucket, { history: 1, ttl: this.opts.ttlMs, replicas: this.opts.replicas ?? 1 });
    } catch (e) {
      throw new NatsError("kv", `cannot open KV bucket ${this.opts.bucket} (is JetStream enabled on nats-server?): ${errorMessage(e)}`, { cause: e });
    }
    await this.heartbeat();
    // Partitions are assigned only once the snapshot of current members is in: a replica
    // starting beside others must not claim every partition for a moment.
    let initialized = false;
    let ready!: () => void;
    const snapshot = new Promise<void>((r) => (ready = r));
    const w = await this.kv.watch({
      key: ">",
      initializedFn: () => {
        initialized = true;
        ready();
      },
    });
    this.watchStop = () => w.stop();
    void (async () => {
      for await (const e of w) {
        const now = performance.now();
        if (e.operation === "PUT") {
          let info: MemberInfo;
          try {
            info = e.json<MemberInfo>();
          } catch {
            continue;
          }
          if (!initialized && Date.now() - e.created.getTime() > this.opts.ttlMs) continue;
          if (this.view.heard(info, now) && initialized) this.changed([]);
        } else if (this.view.left(e.key) && initialized) {
          this.log.info({ member: e.key }, "parser replica left");
          this.changed([]);
        }
      }
    })().catch((e) => this.log.warn({ err: errorMessage(e) }, "membership watch ended"));
    // While our own connection is down we hear no one: judging others dead then would make us
    // claim every partition. Freeze expiry, and give everyone a fresh TTL once we are back.
    void (async () => {
      for await (const st of this.nc.status()) {
        if (st.type === "disconnect") this.connected = false;
        else if (st.type === "reconnect") {
          this.view.touchAll(performance.now());
          this.connected = true;
          void this.heartbeat();
        }
      }
    })().catch(() => undefined);
    this.timer = setInterval(() => {
      void this.heartbeat();
      if (!this.connected) return;
      const dead = this.view.expire(performance.now());
      if (dead.length) {
        this.log.warn({ dead }, "parser replicas stopped heartbeating: taking over their partitions");
        this.changed(dead);
      }
    }, this.opts.heartbeatMs);
    await Promise.race([snapshot, new Promise((r) => setTimeout(r, 5000))]);
    initialized = true;
    this.changed([]);
  }

  /** Writes our own entry now (also called after output progress advances). */
  heartbeat(): Promise<unknown> {
    const info = this.self();
    this.lastPut = this.lastPut
      .then(() => this.kv.put(info.id, JSON.stringify(info)))
      .catch((e) => this.log.debug({ err: errorMessage(e) }, "heartbeat failed"));
    return this.lastPut;
  }

  /** Goodbye: final entry (with final progress), then delete so others rebalance at once. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.watchStop?.();
    if (!this.kv) return;
    await this.heartbeat();
    try {
      await this.kv.delete(this.self().id);
    } catch (e) {
      this.log.debug({ err: errorMessage(e) }, "goodbye failed");
    }
  }

  private changed(died: string[]): void {
    this.onChange(this.view.members(), died);
  }
}
