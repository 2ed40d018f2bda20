// The command line: help for every subcommand, one-line errors and non-zero exit codes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import path from "node:path";
import { COMMANDS } from "@wirescope/cli";
import { REPO_ROOT, freePort } from "./support/index.js";

const wirescope = (...args: string[]) =>
  spawnSync(process.execPath, [path.join(REPO_ROOT, "bin/wirescope.js"), ...args], { cwd: REPO_ROOT, encoding: "utf8", timeout: 30_000, env: { ...process.env, WIRESCOPE_LOG_LEVEL: "error" } });

test("wirescope --help lists every command", () => {
  const r = wirescope("--help");
  assert.equal(r.status, 0);
  for (const c of COMMANDS) assert.match(r.stdout, new RegExp(`^  ${c.name}\\s+\\S`, "m"));
});

test("every subcommand answers --help with its usage and exit code 0", () => {
  for (const c of COMMANDS) {
    const r = wirescope(c.name, "--help");
    assert.equal(r.status, 0, `${c.name} --help: ${r.stderr}`);
    assert.match(r.stdout, new RegExp(`usage: wirescope ${c.name}`), c.name);
  }
  // the probe's own flags, the overload ones among them
  const probe = wirescope("probe", "--help").stdout;
  for (const flag of ["--cpu-budget", "--sample-fraction", "--conn-budget-bytes", "--ringbuf-bytes"]) assert.match(probe, new RegExp(`^  ${flag} `, "m"), flag);
});

test("unknown commands and bad options fail with one line and a non-zero code", () => {
  const cases: [string[], number, RegExp][] = [
    [["frobnicate"], 2, /^wirescope: unknown command "frobnicate"/],
    [["parser", "--partitions", "0"], 2, /^wirescope parser: partitions: expected an integer/],
    [["status", "--bogus"], 2, /^wirescope status: unknown argument "--bogus"/],
    [["up", "--probe-port", "x"], 2, /^wirescope up: --probe-port: expected an integer/],
    [["up", "--nats-url", "nats://10.1.2.3:4222", "--no-install", "--no-build"], 2, /is not on this machine/],
  ];
  for (const [args, code, re] of cases) {
    const r = wirescope(...args);
    assert.equal(r.status, code, `${args.join(" ")}: ${r.stderr}`);
    assert.equal(r.stderr.trimEnd().split("\n").length, 1, `one line for ${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, re);
  }
});

test("status with nothing running says so and exits 1", async () => {
  const r = wirescope("status", "--nats-url", `nats://127.0.0.1:${await freePort()}`, "--influx-url", `http://127.0.0.1:${await freePort()}`, "--grpc-host", "127.0.0.3", "--timeout", "500");
  assert.equal(r.status, 1);
  assert.match(r.stdout, /^nats\s+.*UNREACHABLE/m);
  assert.match(r.stdout, /^influxdb\s+.*UNREACHABLE/m);
  assert.match(r.stderr, /no service found/);
});
