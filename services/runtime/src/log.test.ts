import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const logModule = fileURLToPath(new URL("./log.js", import.meta.url));

/** Logs one line from a fresh process (stderr is a pipe there, not a terminal). */
function logFrom(options: string, env: NodeJS.ProcessEnv = process.env): string {
  const script = `import { createLogger } from ${JSON.stringify(logModule)};
const log = createLogger("parser", ${options});
log.info({ partitions: 3 }, "hello");
log.debug("hidden at info");`;
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8", timeout: 10_000, env });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, "", "logs never go to stdout");
  return r.stderr;
}

describe("createLogger", () => {
  it("colours pretty logs unless NO_COLOR is set", () => {
    const { NO_COLOR: _, TERM: __, ...plain } = process.env;
    assert.match(logFrom(`{ format: "pretty" }`, plain), /\u001b\[/);
    assert.doesNotMatch(logFrom(`{ format: "pretty" }`, { ...plain, NO_COLOR: "1" }), /\u001b\[/);
    assert.match(logFrom(`{ format: "pretty" }`, { ...plain, NO_COLOR: "1" }), /parser: hello/);
  });

  it("writes one JSON object per line to stderr with a component field when not on a terminal", () => {
    const lines = logFrom("{}").trim().split("\n");
    assert.equal(lines.length, 1);
    const line = JSON.parse(lines[0]);
    assert.equal(line.component, "parser");
    assert.equal(line.msg, "hello");
    assert.equal(line.partitions, 3);
    assert.equal(line.level, 30);
  });

  it("prints human-readable lines when asked for pretty output", () => {
    const out = logFrom(`{ format: "pretty" }`);
    assert.match(out, /hello/);
    assert.throws(() => JSON.parse(out.trim().split("\n")[0]));
  });

  it("honours the level", () => {
    const out = logFrom(`{ level: "debug" }`);
    assert.match(out, /hidden at info/);
  });
});
