// Every flag a table-driven command accepts is in its --help with its WIRESCOPE_* variable, and
// `--flag=value` and the variable mean the same as `--flag value` for each of them. Both are derived from the tables, so a flag added to a
// parser without a help row, or a help row its parser does not take, fails here.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { loadConfig, OPTIONS, type FlagSpec } from "@wirescope/runtime";
import { parseProbeArgs } from "@wirescope/probe/options";
import { parseParserArgs } from "@wirescope/parser/options";
import { parseAggregatorArgs } from "@wirescope/aggregator/options";
import { COMMAND_NAMES, loadCommand, loadCommands } from "./index.js";
import { parseTailArgs } from "./tail.js";
import { parseCaptureArgs } from "./capture.js";
import { parseDecodeArgs } from "./decode.js";
import { parseTopArgs } from "./top.js";
import { parseDemoArgs } from "./demo.js";
import { parseStatusArgs } from "./status.js";
import { parsePluginArgs } from "./plugin.js";
import { parseUpArgs } from "./up.js";

const COMMANDS = await loadCommands();

const PARSERS: Record<string, (args: string[], env?: NodeJS.ProcessEnv) => unknown> = {
  probe: parseProbeArgs,
  parser: parseParserArgs,
  aggregator: parseAggregatorArgs,
  tail: parseTailArgs,
  capture: parseCaptureArgs,
  decode: parseDecodeArgs,
  top: parseTopArgs,
  demo: parseDemoArgs,
  status: parseStatusArgs,
  plugin: parsePluginArgs,
  up: parseUpArgs,
};
const shared = (args: string[]) => loadConfig({ argv: args, env: {}, natsAuthFromDataDir: false }).config;

/** What parsing gave: the options, or the error's message. */
function outcome(parse: (args: string[], env?: NodeJS.ProcessEnv) => unknown, args: string[], env: NodeJS.ProcessEnv = {}): { ok?: unknown; error?: string } {
  try {
    return { ok: parse(args, env) };
  } catch (e) {
    return { error: (e as Error).message };
  }
}

describe("command --help", () => {
  it("loads each command by the name it answers to, and nothing for an unknown name", async () => {
    assert.deepEqual(COMMANDS.map((c) => c.name), COMMAND_NAMES);
    for (const name of COMMAND_NAMES) assert.equal((await loadCommand(name))?.name, name);
    assert.equal(await loadCommand("nope"), undefined);
  });

  it("lists every flag of the command's table with its variable and default", () => {
    // every command with flags has its parser checked below
    const tabled = COMMANDS.filter((c) => c.flags.length);
    assert.deepEqual(tabled.map((c) => c.name).sort(), Object.keys(PARSERS).sort());
    for (const c of tabled) {
      for (const f of c.flags) {
        const line = c.usage.split("\n").find((l) => l.startsWith(`  --${f.flag} `) || l === `  --${f.flag}`);
        assert.ok(line, `${c.name} --help lacks --${f.flag}`);
        if (f.env) assert.ok(line.includes(`[${f.env}]`), `${c.name} --${f.flag}: no ${f.env}`);
        if (f.default !== undefined) assert.ok(line.includes("(default: "), `${c.name} --${f.flag}: no default`);
      }
    }
  });

  for (const [name, parse] of Object.entries(PARSERS)) {
    const cmd = COMMANDS.find((c) => c.name === name)!;
    it(`${name}: its parser takes every flag of its table, as --flag=value too`, () => {
      const own: FlagSpec[] = cmd.flags.filter(isOwn);
      assert.ok(own.length > 0);
      for (const f of cmd.flags) {
        // shared options go through loadConfig first; the rest reaches the service's parser
        const p = own.includes(f) ? parse : shared;
        if (!f.value) {
          // alone it may miss a required argument (decode's CAPTURE), but it is known
          assert.doesNotMatch(outcome(p, [`--${f.flag}`]).error ?? "", /unknown|not parsed/i, `${name} --${f.flag}`);
          continue;
        }
        for (const v of ["1", "4096", f.default ?? "x"]) {
          const spaced = outcome(p, [`--${f.flag}`, v]);
          if (spaced.error) assert.doesNotMatch(spaced.error, /unknown|not parsed/i, `${name} --${f.flag} ${v}`);
          assert.deepEqual(outcome(p, [`--${f.flag}=${v}`]), spaced, `${name} --${f.flag}=${v}`);
        }
      }
      assert.equal(outcome(parse, ["--no-such-flag", "1"]).error, `unknown flag --no-such-flag (see wirescope ${name} --help)`);
    });
  }

  // What a command needs besides the flag under test, so that each flag's value is really parsed
  // (not refused for a missing argument, the same way with the variable as with the flag).
  const BASE: Record<string, string[]> = { decode: ["c.pcap"], capture: ["--output", "x.pcapng"] };
  for (const name of Object.keys(PARSERS)) {
    const cmd = COMMANDS.find((c) => c.name === name)!;
    it(`${name}: every flag has its WIRESCOPE_* variable, and the variable means the same as the flag`, () => {
      const parse = PARSERS[name]!;
      for (const f of cmd.flags) {
        assert.match(f.env ?? "", /^WIRESCOPE_[A-Z0-9_]+$/, `${name} --${f.flag} has no variable`);
        const base = (BASE[name] ?? []).includes(`--${f.flag}`) ? [] : BASE[name] ?? [];
        const p = isOwn(f) ? parse : (args: string[], env?: NodeJS.ProcessEnv) => loadConfig({ argv: args, env, natsAuthFromDataDir: false }).config;
        // an empty variable counts as unset (as in a shell), so no empty value here
        for (const v of f.value ? ["1", "4096", f.default || "x"] : ["1"]) {
          const fromFlag = outcome(p, [...base, ...(f.value ? [`--${f.flag}`, v] : [`--${f.flag}`])]);
          const fromEnv = outcome(p, base, { [f.env!]: v });
          if (fromFlag.error) assert.ok(fromEnv.error?.endsWith(fromFlag.error), `${f.env}=${v}: ${fromEnv.error} vs ${fromFlag.error}`);
          else assert.deepEqual(fromEnv, fromFlag, `${f.env}=${v}`);
        }
      }
      // the variables are the service's own: no two rows share one
      const envs = cmd.flags.map((f) => f.env);
      assert.equal(new Set(envs).size, envs.length);
    });
  }
});

/** A flag is the command's own when it is not a row of the shared table (loadConfig leaves it for
 *  the command; top's own --node replaces the shared one). */
function isOwn(f: FlagSpec): boolean {
  return !(OPTIONS as readonly FlagSpec[]).includes(f);
}

describe("--flag=value in the commands with their own parsers", () => {
  it("means the same as --flag value", async () => {
    const { parseTailArgs } = await import("./tail.js");
    const { parseCaptureArgs } = await import("./capture.js");
    const { parseDecodeArgs } = await import("./decode.js");
    const { parseUpArgs } = await import("./up.js");
    const cases: [(a: string[]) => unknown, string[]][] = [
      [parseTailArgs, ["--protocol", "http", "--service", "a", "--format", "table", "--limit", "3"]],
      [parseCaptureArgs, ["--output", "x.pcapng", "--pid", "5", "--port", "80", "--comm", "nginx", "--duration", "2", "--chunk-bytes", "100", "--max-bytes-per-call", "1000"]],
      [parseDecodeArgs, ["c.pcap", "--proto", "8080=http", "--format", "table", "--jobs", "2"]],
      [parseUpArgs, ["--demo-port", "9000", "--probe-port", "7801", "--start-timeout", "1000"]],
    ];
    for (const [parse, spaced] of cases) {
      const joined: string[] = [];
      for (let i = 0; i < spaced.length; i++) joined.push(spaced[i]!.startsWith("--") ? `${spaced[i]}=${spaced[++i]}` : spaced[i]!);
      assert.deepEqual(outcome(parse, joined), outcome(parse, spaced), joined.join(" "));
      assert.equal(outcome(parse, spaced).error, undefined, spaced.join(" "));
    }
  });
});
