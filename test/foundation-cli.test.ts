// The command line: help for every subcommand, one-line errors and non-zero exit codes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { loadCommands } from "@wirescope/cli";
import { OPTIONS } from "@wirescope/runtime";
import { REPO_ROOT, freePort, WIRESCOPE_BIN } from "./support/index.js";

const COMMANDS = await loadCommands();

const run = (env: NodeJS.ProcessEnv, args: string[]) =>
  spawnSync(process.execPath, [WIRESCOPE_BIN, ...args], { cwd: REPO_ROOT, encoding: "utf8", timeout: 30_000, env: { ...process.env, WIRESCOPE_LOG_LEVEL: "error", ...env } });
const wirescope = (...args: string[]) => run({}, args);

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
    [["status", "--bogus"], 2, /^wirescope status: unknown flag --bogus \(see wirescope status --help\)/],
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

test("each service's --help lists its own flags with their variables and defaults", () => {
  const example: Record<string, RegExp> = {
    probe: /^ {2}--source ebpf\|pcap FILE +.*\[WIRESCOPE_PROBE_SOURCE\] \(default: ebpf\)$/m,
    parser: /^ {2}--plugin-dir DIR +.*\[WIRESCOPE_PARSER_PLUGIN_DIR\] \(default: none\)$/m,
    aggregator: /^ {2}--window-ms N +.*\[WIRESCOPE_AGGREGATOR_WINDOW_MS\] \(default: 10000\)$/m,
  };
  for (const c of COMMANDS.filter((c) => c.name in example)) {
    const help = wirescope(c.name, "--help").stdout;
    for (const f of c.flags) {
      const line = help.split("\n").find((l) => l.startsWith(`  --${f.flag} `));
      assert.ok(line, `${c.name} --help lacks --${f.flag}`);
      assert.ok(line.includes(`[${f.env}]`), `${c.name} --${f.flag}: ${line}`);
    }
    assert.match(help, example[c.name]!);
  }
});

test("the real bin refuses an unknown flag before a service starts anything, naming the flag and the command's --help", async () => {
  // a NATS URL nothing listens on: a service that got as far as connecting would log its retries
  const nats = `nats://127.0.0.1:${await freePort()}`;
  // the services check before they start; the other commands' parsers say the same (help.test.ts)
  for (const c of COMMANDS.filter((c) => ["probe", "parser", "aggregator", "tail", "decode"].includes(c.name))) {
    const shared = OPTIONS.some((o) => c.flags.includes(o));
    const r = wirescope(c.name, ...(shared ? ["--nats-url", nats] : []), "--no-such-flag=1");
    assert.equal(r.status, 2, `${c.name}: ${r.stderr}`);
    assert.equal(r.stderr, `wirescope ${c.name}: unknown flag --no-such-flag (see wirescope ${c.name} --help)\n`);
  }
});

test("--flag=value and --flag value, and a service flag's variable, reach the real commands alike", async () => {
  const nats = `nats://127.0.0.1:${await freePort()}`;
  const cases: [string[], string[], NodeJS.ProcessEnv, RegExp][] = [
    [["aggregator", "--window-ms=abc"], ["aggregator", "--window-ms", "abc"], { WIRESCOPE_AGGREGATOR_WINDOW_MS: "abc" }, /--window-ms expects a number, got "abc"/],
    [["probe", "--chunk-bytes=0"], ["probe", "--chunk-bytes", "0"], { WIRESCOPE_PROBE_CHUNK_BYTES: "0" }, /--chunk-bytes: expected an integer in \[1, 16384\]/],
  ];
  for (const [joined, spaced, env, re] of cases) {
    const a = wirescope(...joined, "--nats-url", nats);
    const b = wirescope(...spaced, "--nats-url", nats);
    const e = run(env, [joined[0]!, "--nats-url", nats]);
    for (const r of [a, b, e]) {
      assert.equal(r.status, 2, `${joined.join(" ")}: ${r.stderr}`);
      assert.equal(r.stderr.trimEnd().split("\n").length, 1, r.stderr);
      assert.match(r.stderr, re);
    }
    assert.equal(a.stderr, b.stderr);
    // a value from a variable is named by it
    assert.match(e.stderr, new RegExp(`${Object.keys(env)[0]}="`));
  }
});

test("wirescope completion bash completes in a real bash through complete and compgen", () => {
  const script = `source <("${process.execPath}" "${WIRESCOPE_BIN}" completion bash)
complete -p wirescope
COMP_WORDS=(wirescope aggregator --otlp-e); COMP_CWORD=2; _wirescope; echo "\${COMPREPLY[*]}"
COMP_WORDS=(wirescope parser --plugin-d); COMP_CWORD=2; _wirescope; echo "\${COMPREPLY[*]}"`;
  const r = spawnSync("bash", ["--norc", "--noprofile", "-c", script], { cwd: REPO_ROOT, encoding: "utf8", timeout: 30_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(r.stdout.trim().split("\n"), ["complete -F _wirescope wirescope", "--otlp-endpoint", "--plugin-dir"]);
});

test("NO_COLOR turns the colours of pretty logs off", async () => {
  const nats = `nats://127.0.0.1:${await freePort()}`;
  /** The first log line of a parser with pretty logs (on a pipe: colours by default all the same). */
  const firstLine = (env: NodeJS.ProcessEnv) =>
    new Promise<string>((resolve, reject) => {
      const c = spawn(process.execPath, [WIRESCOPE_BIN, "parser", "--nats-url", nats, "--grpc-port", "0", "--metrics-port", "0", "--log-format", "pretty", "--log-level", "info"], { env, stdio: ["ignore", "ignore", "pipe"] });
      let err = "";
      const timer = setTimeout(() => c.kill("SIGKILL"), 30_000);
      c.stderr.on("data", (d) => {
        err += d;
        if (err.includes("\n")) c.kill("SIGINT");
      });
      c.on("exit", () => {
        clearTimeout(timer);
        if (err.includes("\n")) resolve(err.slice(0, err.indexOf("\n")));
        else reject(new Error(`no log line: ${err}`));
      });
    });
  const { NO_COLOR: _, ...withoutNoColor } = process.env;
  assert.match(await firstLine({ ...withoutNoColor, TERM: "xterm" }), /\x1b\[/);
  assert.doesNotMatch(await firstLine({ ...process.env, NO_COLOR: "1", TERM: "xterm" }), /\x1b\[/);
});
