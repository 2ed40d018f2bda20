// Readiness from dependencies: a service is SERVING only when every dependency it requires is up.

/** One dependency (e.g. "nats", "influxdb") whose state the service reports. */
export interface Dependency {
  readonly name: string;
  up(): void;
  down(reason: string): void;
  readonly isUp: boolean;
}

export type HealthListener = (serving: boolean) => void;

/** Tracks required dependencies and tells listeners when overall readiness changes. */
export class HealthGate {
  private readonly deps = new Map<string, { up: boolean; reason: string }>();
  private readonly listeners = new Set<HealthListener>();
  private last = false;
  private stopped = false;

  /** Declares a dependency (down until `up()` is called). Calling twice returns the same handle. */
  require(name: string): Dependency {
    if (!this.deps.has(name)) this.deps.set(name, { up: false, reason: "not connected yet" });
    this.emit();
    const state = () => this.deps.get(name)!;
    return {
      name,
      up: () => {
        state().up = true;
        state().reason = "";
        this.emit();
      },
      down: (reason: string) => {
        state().up = false;
        state().reason = reason;
        this.emit();
      },
      get isUp() {
        return state().up;
      },
    };
  }

  /** True when not stopping and every required dependency is up. */
  get serving(): boolean {
    if (this.stopped) return false;
    for (const d of this.deps.values()) if (!d.up) return false;
    return true;
  }

  /** Why the service is not serving, one entry per down dependency. */
  reasons(): string[] {
    const out: string[] = [];
    if (this.stopped) out.push("stopping");
    for (const [name, d] of this.deps) if (!d.up) out.push(`${name}: ${d.reason}`);
    return out;
  }

  /** Marks the service as shutting down: NOT_SERVING from now on. */
  stop(): void {
    this.stopped = true;
    this.emit();
  }

  onChange(listener: HealthListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(): void {
    const now = this.serving;
    if (now === this.last) return;
    this.last = now;
    for (const l of this.listeners) l(now);
  }
}
