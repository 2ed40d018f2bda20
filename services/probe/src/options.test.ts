import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import { parseProbeArgs, PROBE_DEFAULTS, PROBE_NODE_FLAGS } from "./options.js";
import { validateFilter, EMPTY_FILTER } from "./filter.js";

test("parseProbeArgs: defaults, every flag, and clear errors", () => {
  assert.deepEqual(parseProbeArgs([]), { ...PROBE_DEFAULTS, excludePids: [], filter: EMPTY_FILTER });
  const o = parseProbeArgs(["--source", "pcap", "f.pcap", "--replay-speed=2", "--chunk-bytes", "4096", "--max-bytes-per-call", "0",
    "--ringbuf-bytes", "65536", "--exclude-pid", "7", "--allow-port", "80", "--deny-comm", "sshd", "--deny-cgroup", "12", "--mount-tracefs"]);
  assert.equal(o.source, "pcap");
  assert.equal(o.pcapFile, "f.pcap");
  assert.equal(o.replaySpeed, 2);
  assert.equal(o.chunkBytes, 4096);
  assert.equal(o.maxBytesPerCall, 0);
  assert.equal(o.ringbufBytes, 65536);
  assert.deepEqual(o.excludePids, [7]);
  assert.deepEqual(o.filter.allowPorts, [80]);
  assert.deepEqual(o.filter.denyComms, ["sshd"]);
  assert.deepEqual(o.filter.denyCgroups, [12n]);
  assert.equal(o.mountTracefs, true);
  assert.throws(() => parseProbeArgs(["--chunk-bytes", "20000"]), /--chunk-bytes: expected an integer in \[1, 16384\]/);
  assert.throws(() => parseProbeArgs(["--ringbuf-bytes", "100000"]), /power of two/);
  assert.throws(() => parseProbeArgs(["--source", "pcap"]), /--source pcap: missing 1 more argument/);
  assert.throws(() => parseProbeArgs(["--source", "xdp"]), /expected ebpf/);
  assert.throws(() => parseProbeArgs(["--frobnicate"]), /unknown flag --frobnicate \(see wirescope probe --help\)/);
  // the same from the variables, the command line over them
  const e = parseProbeArgs(["--allow-port", "8080"], { WIRESCOPE_PROBE_SOURCE: "pcap f.pcap", WIRESCOPE_PROBE_ALLOW_PORT: "80,443", WIRESCOPE_PROBE_DENY_PORT: "22,23", WIRESCOPE_PROBE_SWEEP_MS: "300" });
  assert.deepEqual([e.source, e.pcapFile, e.filter.allowPorts, e.filter.denyPorts, e.sweepMs], ["pcap", "f.pcap", [8080], [22, 23], 300]);
  assert.throws(() => parseProbeArgs([], { WIRESCOPE_PROBE_CHUNK_BYTES: "0" }), /^ConfigError: WIRESCOPE_PROBE_CHUNK_BYTES="0": --chunk-bytes: expected an integer/);
  // the defaults are not shared between calls
  parseProbeArgs(["--deny-pid", "9"]);
  assert.deepEqual(parseProbeArgs([]).filter.denyPids, []);
});

test("parseProbeArgs: the overload flags (CPU budget, fixed fraction, fairness budgets)", () => {
  assert.equal(PROBE_DEFAULTS.cpuBudgetMillicores, 500);
  assert.equal(parseProbeArgs(["--cpu-budget", "250m"]).cpuBudgetMillicores, 250);
  assert.equal(parseProbeArgs(["--cpu-budget=30%"]).cpuBudgetMillicores, 300);
  assert.equal(parseProbeArgs(["--cpu-budget", "off"]).cpuBudgetMillicores, 0);
  assert.equal(parseProbeArgs(["--sample-fraction", "0.25"]).sampleFraction, 0.25);
  const o = parseProbeArgs(["--conn-budget-bytes", "1024", "--conn-budget-calls", "0", "--proc-budget-bytes", "9", "--shed-ringbuf-pct", "90"]);
  assert.deepEqual([o.connBudgetBytes, o.connBudgetCalls, o.procBudgetBytes, o.shedRingbufPct], [1024, 0, 9, 90]);
  assert.throws(() => parseProbeArgs(["--cpu-budget", "lots"]), /--cpu-budget: expected millicores/);
  assert.throws(() => parseProbeArgs(["--sample-fraction", "0"]), /--sample-fraction: expected a number in \(0, 1\]/);
  assert.throws(() => parseProbeArgs(["--sample-fraction", "1.5"]), /--sample-fraction/);
  assert.throws(() => parseProbeArgs(["--shed-ringbuf-pct", "101"]), /--shed-ringbuf-pct/);
});

test("parseProbeArgs: a node's network namespace, by file or by inode, not both", () => {
  assert.equal(parseProbeArgs(["--netns", "/var/run/netns/node-a"]).netns, "/var/run/netns/node-a");
  assert.equal(parseProbeArgs(["--netns-inode=4026532281"]).netnsInode, 4026532281);
  assert.equal(parseProbeArgs([]).netns, undefined);
  assert.throws(() => parseProbeArgs(["--netns"]), /--netns: missing value/);
  assert.throws(() => parseProbeArgs(["--netns-inode", "x"]), /--netns-inode: expected an integer/);
  assert.throws(() => parseProbeArgs(["--netns", "/var/run/netns/a", "--netns-inode", "5"]), /give one/);
  assert.equal(parseProbeArgs(["--clock-skew-ms", "-20"]).clockSkewMs, -20);
  assert.throws(() => parseProbeArgs(["--clock-skew-ms", "1.5"]), /--clock-skew-ms: expected an integer/);
});

test("validateFilter: pids, ports and process names", () => {
  assert.deepEqual(validateFilter(EMPTY_FILTER), []);
  assert.deepEqual(validateFilter({ ...EMPTY_FILTER, allowPorts: [0, 70000], denyPids: [-1], allowComms: ["a-name-longer-than-15"] }).length, 4);
});

test("PROBE_NODE_FLAGS: the Kubernetes manifest starts the probe with the same node flags", () => {
  const manifest = fs.readFileSync(new URL("../../../deploy/k8s/base/probe.yaml", import.meta.url), "utf8");
  const m = /- name: NODE_OPTIONS\s+value: "([^"]*)"/.exec(manifest);
  assert.equal(m?.[1], PROBE_NODE_FLAGS.join(" "));
});
