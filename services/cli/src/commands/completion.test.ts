import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { loadCommands } from "./index.js";
import { bashCompletion, zshCompletion, completionFlags } from "./completion.js";

const COMMANDS = await loadCommands();

/** COMPREPLY after sourcing the script in a real bash and completing `words` (the last is the cursor's). */
function complete(words: string[]): string[] {
  const script = `${bashCompletion(COMMANDS)}
COMP_WORDS=(${words.map((w) => `'${w}'`).join(" ")}); COMP_CWORD=${words.length - 1}
_wirescope
printf '%s\\n' "\${COMPREPLY[@]}"`;
  const r = spawnSync("bash", ["--norc", "--noprofile", "-c", script], { encoding: "utf8", cwd: "/" });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.split("\n").filter(Boolean).sort();
}

describe("bashCompletion", () => {
  it("completes a command after wirescope", () => {
    assert.deepEqual(complete(["wirescope", "ag"]), ["aggregator"]);
    assert.deepEqual(complete(["wirescope", "p"]), ["parser", "plugin", "probe"]);
  });

  it("completes a command's own and shared flags from its table", () => {
    assert.deepEqual(complete(["wirescope", "probe", "--cpu"]), ["--cpu-budget"]);
    assert.deepEqual(complete(["wirescope", "aggregator", "--otlp-e"]), ["--otlp-endpoint"]);
    assert.deepEqual(complete(["wirescope", "parser", "--nats-tls-c"]), ["--nats-tls-ca", "--nats-tls-cert"]);
    // the probe's flags are not the aggregator's
    assert.deepEqual(complete(["wirescope", "aggregator", "--cpu"]), []);
  });

  it("offers every flag of every command", () => {
    for (const c of COMMANDS) assert.deepEqual(complete(["wirescope", c.name, "-"]), completionFlags(c).sort(), c.name);
  });

  it("completes a flag's value where it is one of a few words, and the shells after completion", () => {
    assert.deepEqual(complete(["wirescope", "tail", "--format", ""]), ["ndjson", "table"]);
    assert.deepEqual(complete(["wirescope", "probe", "--http1-bodies", "k"]), ["keep"]);
    assert.deepEqual(complete(["wirescope", "parser", "--log-level", "t"]), ["trace"]);
    assert.deepEqual(complete(["wirescope", "completion", ""]), ["bash", "zsh"]);
    assert.deepEqual(complete(["wirescope", "plugin", "l"]), ["list"]);
  });

  it("registers itself with bash's complete for the wirescope command", () => {
    const r = spawnSync("bash", ["--norc", "--noprofile", "-c", `${bashCompletion(COMMANDS)}\ncomplete -p wirescope`], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), "complete -F _wirescope wirescope");
  });
});

describe("zshCompletion", () => {
  /**
   * What `_wirescope` offers in a real zsh after compinit for `words` (the last is the cursor's):
   * compadd and the helpers it calls print their candidates instead of adding them.
   */
  function zcomplete(words: string[]): string[] {
    const script = `autoload -U compinit && compinit -u -D
${zshCompletion(COMMANDS)}
[[ $_comps[wirescope] == _wirescope ]] || { print -u2 "not registered"; exit 3 }
compadd() { [[ $1 == -- ]] && shift; print -l -- "$@" }
_files() { print -- "<files>" }
_describe() { print -l -- "\${(P)2[@]%%:*}" }
words=(${words.map((w) => `'${w}'`).join(" ")}); CURRENT=${words.length}
_wirescope`;
    const r = spawnSync("zsh", ["-f", "-c", script], { encoding: "utf8", cwd: "/", env: { ...process.env, HOME: "/tmp" } });
    assert.equal(r.status, 0, r.stderr);
    return r.stdout.split("\n").filter(Boolean).sort();
  }

  it("completes commands, a command's flags from its table, and a value's words", () => {
    assert.deepEqual(zcomplete(["wirescope", ""]), COMMANDS.map((c) => c.name).sort());
    assert.deepEqual(zcomplete(["wirescope", "aggregator", "--w"]), completionFlags(COMMANDS.find((c) => c.name === "aggregator")!).sort());
    assert.deepEqual(zcomplete(["wirescope", "decode", "--format", ""]), ["ndjson", "table"]);
    assert.deepEqual(zcomplete(["wirescope", "decode", "cap"]), ["<files>"]);
    assert.deepEqual(zcomplete(["wirescope", "completion", ""]), ["bash", "zsh"]);
  });
});
