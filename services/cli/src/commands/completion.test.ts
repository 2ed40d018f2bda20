import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { COMMANDS } from "./index.js";
import { bashCompletion, completionFlags } from "./completion.js";

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
});
