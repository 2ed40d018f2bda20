import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { flagsHelp, parseFlags, withEnv, type FlagSpec } from "./flags.js";
import { ConfigError } from "./errors.js";

const TABLE: FlagSpec[] = withEnv("demo", [
  { flag: "size", value: "N", default: "1", description: "a number" },
  { flag: "verbose", description: "a switch" },
  { flag: "port", value: "N", repeatable: true, description: "repeatable" },
  { flag: "output", short: "o", value: "FILE", description: "with a short name" },
  { flag: "source", value: "ebpf|pcap FILE", description: "takes one more after pcap", following: (v) => (v === "pcap" ? 1 : 0) },
]);

/** The flags given as [flag, value, following, env] tuples, or the error message. */
function given(args: string[], env: NodeJS.ProcessEnv = {}, positionals = false): unknown {
  try {
    const p = parseFlags(args, TABLE, { command: "demo", env, positionals });
    return { given: p.given.map((g) => [g.flag, g.value, g.following, g.env]), positionals: p.positionals };
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    return e.message;
  }
}

describe("parseFlags", () => {
  it("takes --flag=value as --flag value", () => {
    for (const [spaced, joined] of [
      [["--size", "3"], ["--size=3"]],
      [["--size", "--x"], ["--size=--x"]],
      [["--port", "1", "--port", "2"], ["--port=1", "--port=2"]],
      [["--source", "pcap", "f.pcap"], ["--source=pcap", "f.pcap"]],
      [["--size", ""], ["--size="]],
    ]) {
      assert.deepEqual(given(joined!), given(spaced!), joined!.join(" "));
    }
    assert.deepEqual(given(["--size=a=b"]), { given: [["--size", "a=b", [], undefined]], positionals: [] });
  });

  it("refuses an unknown flag, naming it and the command's --help", () => {
    assert.equal(given(["--size", "1", "--bogus", "2"]), "unknown flag --bogus (see wirescope demo --help)");
    assert.equal(given(["--bogus=2"]), "unknown flag --bogus (see wirescope demo --help)");
    assert.equal(given(["-x"]), "unknown flag -x (see wirescope demo --help)");
  });

  it("says what is missing or out of place", () => {
    assert.equal(given(["--size"]), "--size: missing value (N) (see wirescope demo --help)");
    assert.equal(given(["--source", "pcap"]), "--source pcap: missing 1 more argument (see wirescope demo --help)");
    assert.equal(given(["--verbose=1"]), "--verbose takes no value (see wirescope demo --help)");
    assert.equal(given(["stray"]), 'unexpected argument "stray" (see wirescope demo --help)');
  });

  it("takes short names, positionals where allowed, and everything after -- as positional", () => {
    assert.deepEqual(given(["-o", "x", "a", "--", "--size", "-"], {}, true), { given: [["--output", "x", [], undefined]], positionals: ["a", "--size", "-"] });
    assert.deepEqual(given(["-", "-5"], {}, true), { given: [], positionals: ["-", "-5"] });
  });

  it("reads each row's variable under the command line", () => {
    assert.deepEqual(given([], { WIRESCOPE_DEMO_SIZE: "7", WIRESCOPE_DEMO_VERBOSE: "true" }), {
      given: [
        ["--size", "7", [], "WIRESCOPE_DEMO_SIZE"],
        ["--verbose", "", [], "WIRESCOPE_DEMO_VERBOSE"],
      ],
      positionals: [],
    });
    // the command line wins; an empty or off variable is not given
    assert.deepEqual(given(["--size", "2"], { WIRESCOPE_DEMO_SIZE: "7", WIRESCOPE_DEMO_VERBOSE: "0", WIRESCOPE_DEMO_OUTPUT: "" }), { given: [["--size", "2", [], undefined]], positionals: [] });
    // a repeatable flag's variable holds a comma list, `following` a space-separated one
    assert.deepEqual(given([], { WIRESCOPE_DEMO_PORT: "80, 443", WIRESCOPE_DEMO_SOURCE: "pcap f.pcap" }), {
      given: [
        ["--port", "80", [], "WIRESCOPE_DEMO_PORT"],
        ["--port", "443", [], "WIRESCOPE_DEMO_PORT"],
        ["--source", "pcap", ["f.pcap"], "WIRESCOPE_DEMO_SOURCE"],
      ],
      positionals: [],
    });
    assert.match(String(given([], { WIRESCOPE_DEMO_VERBOSE: "maybe" })), /^WIRESCOPE_DEMO_VERBOSE: expected 1 or 0/);
  });

  it("names the variable when a value from it is refused", () => {
    const p = parseFlags([], TABLE, { command: "demo", env: { WIRESCOPE_DEMO_SIZE: "x" } });
    assert.throws(
      () =>
        p.each(() => {
          throw new ConfigError("bad_value", "--size: expected a number");
        }),
      { message: 'WIRESCOPE_DEMO_SIZE="x": --size: expected a number' },
    );
    // another class (a command's usage error) keeps its class, so its exit code stays the same
    class UsageLike extends Error {}
    assert.throws(
      () =>
        p.each(() => {
          throw new UsageLike("--size: expected a number");
        }),
      (e: unknown) => e instanceof UsageLike && e.message === 'WIRESCOPE_DEMO_SIZE="x": --size: expected a number',
    );
  });

  it("passes unlisted arguments on in order with passUnknown", () => {
    const p = parseFlags(["--own", "1", "--size=2", "word", "--", "--size", "3"], TABLE, { passUnknown: true });
    assert.deepEqual(p.rest, ["--own", "1", "word", "--", "--size", "3"]);
    assert.equal(p.get("size"), "2");
  });

  it("gives the last value, every value and parseArgs-shaped values", () => {
    const p = parseFlags(["--port", "1", "--verbose", "--port", "2"], TABLE, { command: "demo" });
    assert.equal(p.get("port"), "2");
    assert.deepEqual(p.all("port"), ["1", "2"]);
    assert.deepEqual(p.values(), { port: "2", verbose: true });
    assert.equal(p.has("size"), false);
  });
});

describe("flagsHelp", () => {
  it("shows each flag with its value, short name, variable and default", () => {
    const help = flagsHelp(TABLE);
    assert.match(help, /^ {2}--size N +a number \[WIRESCOPE_DEMO_SIZE\] \(default: 1\)$/m);
    assert.match(help, /^ {2}--output FILE, -o +with a short name \[WIRESCOPE_DEMO_OUTPUT\]$/m);
    assert.match(help, /^ {2}--verbose +a switch \[WIRESCOPE_DEMO_VERBOSE\]$/m);
  });
});
