// The arguments that put one `wirescope up` stack on free loopback ports with its own data dir,
// so that stacks of several tests (and a developer's own) never collide.
import { freePort } from "@wirescope/common";

export interface StackPorts {
  nats: number;
  influx: number;
  probe: number;
  parser: number;
  aggregator: number;
}

/** Free loopback ports for nats-server, influxd and the three services' control ports. */
export async function stackPorts(): Promise<StackPorts> {
  return { nats: await freePort(), influx: await freePort(), probe: await freePort(), parser: await freePort(), aggregator: await freePort() };
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
