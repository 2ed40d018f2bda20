// What a probe of one node (--netns) costs the processes of other namespaces, against a
// whole-host probe: dd copying 1-byte blocks (one read and one write per byte, none of them on a
// socket) in the host namespace, timed by its own CPU clock (user + system, bash's `times`) with
// no probe, a whole-host probe and a probe of a namespace made for the run; alternating, 5 runs.
// Run as root after `node scripts/build.mjs`: node services/probe/bench/netns-filter-cost.mjs
import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import { NativeProbe } from "../dist/native.js";

const BYTES = 1_000_000;
const RUNS = 5;
const cpuMs = () => {
  const out = spawnSync("bash", ["-c", `dd if=/dev/zero of=/dev/null bs=1 count=${BYTES} 2>/dev/null; times`], { encoding: "utf8" }).stdout.trim().split("\n")[1];
  const [user, sys] = out.split(/\s+/).map((x) => {
    const m = /(\d+)m([\d.]+)s/.exec(x);
    return Number(m[1]) * 60 + Number(m[2]);
  });
  return (user + sys) * 1000;
};
const ns = `ws-cost-${process.pid}`;
execFileSync("ip", ["netns", "add", ns]);
const res = { none: [], host: [], node: [] };
try {
  const ino = fs.statSync(`/var/run/netns/${ns}`).ino;
  for (let r = 0; r < RUNS; r++) {
    for (const mode of Object.keys(res)) {
      const p = mode === "none" ? undefined : new NativeProbe({ netnsIno: mode === "node" ? ino : 0 }, () => true);
      res[mode].push(cpuMs());
      p?.close();
    }
  }
} finally {
  execFileSync("ip", ["netns", "del", ns]);
}
const sorted = (a) => [...a].sort((x, y) => x - y);
for (const [mode, v] of Object.entries(res)) {
  const s = sorted(v);
  console.log(`${mode.padEnd(5)} dd CPU ms: ${v.map((x) => x.toFixed(0)).join(" ")}; per syscall: min ${((s[0] * 1e6) / (2 * BYTES)).toFixed(0)} ns, median ${((s[Math.floor(s.length / 2)] * 1e6) / (2 * BYTES)).toFixed(0)} ns`);
}
