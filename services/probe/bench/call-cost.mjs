// The measuring loop of the TLS call-cost benches (tls-call-cost.mjs, go-tls-call-cost.mjs): one
// traced workload timed by its own CPU clock with no probe, with the probe's syscall tracepoints
// only (TLS off), and with the TLS uprobes too; alternating, median of `runs`, printed per call.
import { EbpfSource } from "../dist/ebpf-source.js";

/**
 * `once()` runs the workload and returns its CPU seconds for `calls` library calls; `ready(src)`
 * (optional) waits, with the TLS uprobes on, until the workload's code has them.
 */
export async function measureCallCost({ once, calls, runs, what, ready }) {
  const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
  const res = { none: [], tracepoints: [], uprobes: [] };
  for (let r = 0; r < runs; r++) {
    res.none.push(once());
    for (const [name, tls] of [["tracepoints", false], ["uprobes", true]]) {
      const src = new EbpfSource({ tls });
      const ac = new AbortController();
      const done = src.run(() => {}, ac.signal);
      if (tls && ready) await ready(src);
      res[name].push(once());
      if (tls) console.error("tls counters", JSON.stringify(src.stats().tls));
      ac.abort();
      await done;
    }
  }
  const us = (s) => ((s * 1e6) / calls).toFixed(2);
  console.log(`${calls} ${what} calls per run, median of ${runs}: CPU µs per call`);
  for (const k of Object.keys(res)) console.log(`  ${k.padEnd(12)} ${us(median(res[k]))} µs/call  (runs: ${res[k].map(us).join(", ")})`);
  console.log(`  added by the TLS uprobes: ${((median(res.uprobes) - median(res.tracepoints)) * 1e6 / calls).toFixed(2)} µs/call; by the probe in all: ${((median(res.uprobes) - median(res.none)) * 1e6 / calls).toFixed(2)} µs/call`);
}
