// Connections still open, by process. A process that exits closes its sockets without close(2)
// calls the probe could see, so when the process cache finds a pid gone, the probe publishes the
// close events itself: the parsers then finish those connections instead of waiting for idle
// eviction.
import type { ConnRecord } from "./events.js";

export class ConnTracker {
  private readonly byPid = new Map<number, Map<bigint, ConnRecord>>();
  private count = 0;

  constructor(private readonly maxConns = 1 << 20) {}

  get size(): number {
    return this.count;
  }

  /** Records an open or close event. */
  note(c: ConnRecord): void {
    let m = this.byPid.get(c.tgid);
    if (c.kind === "open") {
      if (this.count >= this.maxConns) return;
      if (!m) this.byPid.set(c.tgid, (m = new Map()));
      if (!m.has(c.connKey)) this.count++;
      m.set(c.connKey, c);
    } else if (m?.delete(c.connKey)) {
      this.count--;
      if (!m.size) this.byPid.delete(c.tgid);
    }
  }

  /** Close events for every connection of the processes for which `gone(pid)` is true. */
  reap(gone: (pid: number) => boolean, nowMono: bigint): ConnRecord[] {
    const out: ConnRecord[] = [];
    for (const [pid, m] of this.byPid) {
      if (!gone(pid)) continue;
      for (const c of m.values()) out.push({ ...c, kind: "close", tsMono: nowMono, sentBytes: 0n, recvBytes: 0n });
      this.count -= m.size;
      this.byPid.delete(pid);
    }
    return out;
  }
}
