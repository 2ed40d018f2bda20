// Plugin faults beside the steady workload: a plugin that traps on every 100th connection it
// decodes, and the HTTP/1.1 plugin swapped for a new version while its connections carry load.
// A trap ends one plugin instance and costs only the connections that instance held (counted);
// the workload's own plugin is untouched. A swap serves new connections with the new version
// while open ones finish with the instance they started with: nothing is lost, nothing is counted
// twice, nothing restarts.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import http from "node:http";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { runFault, sumOf, type UpStack } from "./support/fault-stack.js";
import { parserPlugins } from "./parser-support.js";
import { REPO_ROOT, tempDir, waitFor, PLUGINS_DIR } from "./support/index.js";
import { bpfAvailable } from "./probe-support.js";

const run = promisify(execFile);

/** `wirescope plugin add` into the stack's plugin store, as its operator would. */
async function pluginAdd(stack: UpStack, wasm: string, manifest: string): Promise<void> {
  await run(process.execPath, ["bin/wirescope.js", "plugin", "add", wasm, "--manifest", manifest, "--data-dir", stack.dataDir, "--nats-url", stack.natsUrls.join(",")], { cwd: REPO_ROOT, timeout: 60_000 });
}

/** The plugins the stack's parser has loaded, as name@version. */
const loaded = (stack: UpStack) => parserPlugins(`127.0.0.1:${stack.ports.parser}`);

/** A plugin's wasm and a copy of its manifest with `patch` applied, in a fresh folder. */
function pluginCopy(wasm: string, manifest: string, patch: Record<string, unknown>): { wasm: string; manifest: string } {
  const dir = tempDir("wirescope-plugin-fault-");
  const m = { ...(JSON.parse(fs.readFileSync(manifest, "utf8")) as Record<string, unknown>), ...patch };
  const out = { wasm: path.join(dir, path.basename(wasm)), manifest: path.join(dir, "manifest.json") };
  fs.copyFileSync(wasm, out.wasm);
  fs.writeFileSync(out.manifest, JSON.stringify(m));
  return out;
}

/** Influx rows of `red` for a protocol: requests summed by role. */
async function requestsByRole(stack: UpStack, protocol: string): Promise<Record<string, number>> {
  const q = `SELECT sum("requests") FROM "red" WHERE "protocol" = '${protocol}' GROUP BY "role"`;
  const res = await fetch(`${stack.influxUrl}/query?${new URLSearchParams({ q, db: "wirescope" })}`, { signal: AbortSignal.timeout(10_000) });
  const body = (await res.json()) as { results?: { series?: { tags: { role: string }; values: [string, number][] }[] }[] };
  return Object.fromEntries((body.results?.[0]?.series ?? []).map((s) => [s.tags.role, s.values[0]![1]]));
}

test("a plugin that traps on every 100th connection beside the workload: each trap counted, its connections counted, the workload exact", { timeout: 900_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  const CONNS = 1000;
  const fixture = path.join(REPO_ROOT, "parsers-wasm/test-support/fixtures/misbehave/build");
  // a server that reads what it is sent and closes; nothing goes back
  const sink = net.createServer((s) => {
    s.on("error", () => undefined);
    s.on("data", () => undefined);
    s.on("end", () => s.end());
  });
  await new Promise<void>((r) => sink.listen(0, "127.0.0.1", r));
  const sinkPort = (sink.address() as net.AddressInfo).port;
  try {
    await runFault({
      fault: `a plugin trapping on every 100th of ${CONNS} connections`,
      expected: "each trap counted; the trapping plugin's connections recorded or counted dropped; the workload exact",
      extraTracePorts: [sinkPort],
      async act(stack) {
        const p = pluginCopy(path.join(fixture, "misbehave.wasm"), path.join(fixture, "misbehave.json"), { ports: [sinkPort] });
        await pluginAdd(stack, p.wasm, p.manifest);
        await waitFor(async () => (await loaded(stack)).includes("misbehave@1.0.0"), { timeoutMs: 30_000, intervalMs: 500, what: "misbehave loaded by the parser" });
        const t0 = Date.now();
        // 10 at a time; every 100th connection asks the plugin to trap
        for (let i = 0; i < CONNS; i += 10) {
          await Promise.all(
            Array.from({ length: 10 }, (_, k) =>
              new Promise<void>((resolve) => {
                const n = i + k;
                const s = net.connect(sinkPort, "127.0.0.1", () => s.end(n % 100 === 99 ? "MB:TRAP" : `MB:RECconn${n % 100 < 50 ? "a" : "b"}`));
                s.on("error", () => resolve());
                s.on("close", () => resolve());
                s.resume();
              }),
            ),
          );
        }
        const trapsWanted = CONNS / 100;
        await waitFor(async () => ((await stack.counters("parser"))["plugin_traps.misbehave"] ?? 0) >= trapsWanted, { timeoutMs: 60_000, intervalMs: 1000, what: `${trapsWanted} traps counted` });
        return { recoveryMs: Date.now() - t0 };
      },
      async check(stack, r) {
        for (const c of ["probe", "parser", "aggregator"]) assert.equal(stack.restarts(c), 0, `${c} did not crash`);
        const traps = r.parser["plugin_traps.misbehave"] ?? 0;
        // both ends of a trapping connection carry MB:TRAP; the second end is dropped with the
        // instance if the first end's trap ended it, or traps itself
        assert.ok(traps >= CONNS / 100 && traps <= (2 * CONNS) / 100, `traps counted: ${traps}`);
        // every end of the trapping plugin's connections: a record, or counted dropped by a trap
        let byRole: Record<string, number> = {};
        await waitFor(
          async () => {
            byRole = await requestsByRole(stack, "misbehave");
            const c = await stack.counters("parser");
            const dropped = (c["conn_dropped.plugin_trap"] ?? 0) + sumOf(c, /^conn_dropped\.(trap|abort|runaway|stack|memory|bad_output)$/);
            return (byRole.client ?? 0) + (byRole.server ?? 0) + dropped + (c["plugin_traps.misbehave"] ?? 0) >= 2 * CONNS;
          },
          { timeoutMs: 120_000, intervalMs: 2000, what: "every end of the trapping plugin's connections recorded or counted" },
        ).catch(async (e: unknown) => assert.fail(`${String(e)}: records ${JSON.stringify(byRole)}, parser ${JSON.stringify(Object.fromEntries(Object.entries(await stack.counters("parser")).filter(([k]) => /trap|conn_dropped|conn_closed/.test(k))))}`));
        const recorded = (byRole.client ?? 0) + (byRole.server ?? 0);
        assert.ok(recorded <= 2 * (CONNS - CONNS / 100), `no record from a trapping connection, none twice: ${recorded}`);
        assert.ok(recorded >= 2 * CONNS * 0.9, `a trap costs only the connections its instance held: ${recorded} of ${2 * (CONNS - CONNS / 100)} ends recorded`);
      },
    });
  } finally {
    await new Promise<void>((r) => sink.close(() => r()));
  }
});

test("the HTTP/1.1 plugin swapped for a new version under load: new connections on the new version, open ones finish on theirs, exact", { timeout: 900_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  const built = PLUGINS_DIR;
  await runFault({
    fault: "the HTTP/1.1 plugin swapped for a new version under load",
    expected: "exact; no restart",
    async act(stack, app, urlPath) {
      const p = pluginCopy(path.join(built, "http1.wasm"), path.join(built, "http1.json"), { version: "99.0.0" });
      const t0 = Date.now();
      await pluginAdd(stack, p.wasm, p.manifest);
      await waitFor(async () => (await loaded(stack)).includes("http1@99.0.0"), { timeoutMs: 30_000, intervalMs: 200, what: "http1@99.0.0 loaded by the parser" });
      const swapMs = Date.now() - t0;
      // new connections after the swap (Connection: close), decoded by the new version, counted
      // at the server like the keep-alive workload
      for (let i = 0; i < 200; i++) {
        await new Promise<void>((resolve, reject) =>
          http.get({ host: "127.0.0.1", port: app.port, path: urlPath, agent: false, headers: { connection: "close" } }, (res) => res.resume().on("end", resolve)).on("error", reject),
        );
      }
      return { recoveryMs: swapMs, note: `swap loaded in ${swapMs} ms; 200 new connections after it` };
    },
    async check(stack) {
      for (const c of ["probe", "parser", "aggregator"]) assert.equal(stack.restarts(c), 0, `${c} did not restart`);
      assert.ok((await loaded(stack)).includes("http1@99.0.0"));
    },
  });
});
