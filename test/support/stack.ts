// The arguments that put one `wirescope up` stack on free loopback ports with its own data dir,
// so that stacks of several tests (and a developer's own) never collide.
import net from "node:net";
import { tempDir } from "./servers.js";

export interface StackPorts {
  nats: number;
  influx: number;
  probe: number;
  parser: number;
  aggregator: number;
}

/**
 * Picks free loopback ports: each pick is a port (or a run of `n`, `stride` apart) none of whose
 * ports an earlier pick of the same picker holds. A port is free only while it is checked, so the
 * kernel may hand the same one out twice: a stack's nats-server once got the port its aggregator
 * run had, and `up` refused the clash.
 */
export function portPicker(): (n?: number, stride?: number) => Promise<number> {
  const taken = new Set<number>();
  return (n = 1, stride = 1) => freePortRun(n, stride, taken);
}

/**
 * Free loopback ports for nats-server, influxd and the three services' control ports, all
 * distinct (`pick`: the picker further ports of the test are taken from). With `aggregators` > 1
 * the aggregator's port is followed by that many free ones (`up --aggregators N` gives instance i
 * the port + i - 1); with `parsers` > 1 the parser's port + 10, + 20 … are free too
 * (`up --parsers N` gives replica i the port + 10·(i-1)).
 */
export async function stackPorts(aggregators = 1, parsers = 1, pick = portPicker()): Promise<StackPorts> {
  const parser = await pick(parsers, 10);
  return { nats: await pick(), influx: await pick(), probe: await pick(), parser, aggregator: await pick(aggregators) };
}

/**
 * A loopback port p with p+stride … p+(n-1)·stride free too (held while checked, then released);
 * with `avoid`, none of the run is in it, and the run is added to it (as `freePort(host, avoid)`).
 */
export async function freePortRun(n: number, stride = 1, avoid?: Set<number>): Promise<number> {
  const bind = (port: number) =>
    new Promise<net.Server | undefined>((resolve) => {
      if (avoid?.has(port)) return resolve(undefined);
      const s = net.createServer();
      s.once("error", () => resolve(undefined));
      s.listen(port, "127.0.0.1", () => resolve(s));
    });
  for (let attempt = 0; attempt < 50; attempt++) {
    const held: net.Server[] = [];
    const first = await bind(0);
    if (!first) continue;
    held.push(first);
    const port = (first.address() as net.AddressInfo).port;
    if (avoid?.has(port)) {
      await new Promise((r) => first.close(r));
      continue;
    }
    for (let i = 1; i < n; i++) {
      const s = await bind(port + i * stride);
      if (!s) break;
      held.push(s);
    }
    await Promise.all(held.map((s) => new Promise((r) => s.close(r))));
    if (held.length === n) {
      for (let i = 0; i < n; i++) avoid?.add(port + i * stride);
      return port;
    }
  }
  throw new Error(`no run of ${n} free loopback ports${avoid ? " apart from those picked before" : ""}`);
}

/** `wirescope up` flags for a stack on `ports` keeping its state in `dataDir`; callers append their own. */
export function stackArgs(dataDir: string, ports: StackPorts): string[] {
  return [
    "--data-dir", dataDir,
    "--nats-url", `nats://127.0.0.1:${ports.nats}`,
    "--influx-url", `http://127.0.0.1:${ports.influx}`,
    "--probe-port", String(ports.probe),
    "--parser-port", String(ports.parser),
    "--aggregator-port", String(ports.aggregator),
  ];
}

/** Stops a detached `wirescope up` and its stack: SIGINT to its process group, then SIGKILL to
 * whatever is left once it exited or `graceMs` passed. */
export async function stopUp(up: { pid?: number }, exited: Promise<unknown>, graceMs = 60_000): Promise<void> {
  const signal = (s: NodeJS.Signals) => {
    try {
      process.kill(-up.pid!, s);
    } catch {
      // gone
    }
  };
  signal("SIGINT");
  await Promise.race([exited, new Promise((r) => setTimeout(r, graceMs).unref())]);
  signal("SIGKILL");
}

/**
 * `argv` as root in a mount namespace of its own whose /run is a fresh temporary directory: the
 * probe's single-instance lock (/run/wirescope-probe.lock) is then this run's alone, whatever
 * other probe runs on the machine, so a stack with a probe needs no machine-wide lock. unshare
 * and sh exec in place: the pid spawned is argv's. `unmountTracefs`: tracefs is unmounted in the
 * namespace (the probe has to mount it). Returns spawn's command and arguments.
 */
export function privateRun(argv: readonly string[], opts: { unmountTracefs?: boolean } = {}): [string, string[]] {
  const script = `${opts.unmountTracefs ? "umount /sys/kernel/tracing && " : ""}mount --bind "$0" /run && exec "$@"`;
  return ["unshare", ["--mount", "--propagation", "private", "--", "sh", "-c", script, tempDir("wirescope-run-"), ...argv]];
}
