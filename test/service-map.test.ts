// The service map end to end, with the real stack (`wirescope up --no-demo` on free ports, the
// kernel probe) and processes of our own on loopback: a client process calls a node:http server
// that itself calls another node:http server. Each process must be one node of the map whatever
// its role (the middle one is `wsmid:<its port>` as a client too), every edge names both ends,
// and each call counts once: the edges' request counts equal the servers' own.
// `up` runs in a private /run, so its probe's single-instance lock is its own; every port is free,
// so no machine-wide lock is taken.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { REPO_ROOT, portPicker, stackPorts, stackArgs, privateRun, tempDir, waitFor, influxQuery } from "./support/index.js";
import { bpfAvailable } from "./probe-support.js";

const CALLS = 40;

/** A node process with its comm set to `title` running `code` (ports come in as argv). */
function part(title: string, code: string, ...args: string[]): ChildProcess {
  return spawn(process.execPath, ["--input-type=module", "-e", `process.title = ${JSON.stringify(title)};\n${code}`, "--", ...args], { stdio: ["ignore", "pipe", "inherit"] });
}

// A server that answers every request after calling the backend over a fresh connection (so
// each call is its own connection, and some are seen before their peer's open).
const MID = `
import http from "node:http";
const [port, backend] = process.argv.slice(-2).map(Number);
http.createServer((req, res) => {
  http.get({ host: "127.0.0.1", port: backend, path: "/item", agent: false }, (r) => {
    r.resume();
    r.on("end", () => res.end("ok " + r.statusCode));
  }).on("error", () => { res.statusCode = 502; res.end(); });
}).listen(port, "127.0.0.1", () => console.log("listening"));
`;
const BACKEND = `
import http from "node:http";
const port = Number(process.argv.at(-1));
http.createServer((req, res) => res.end("item")).listen(port, "127.0.0.1", () => console.log("listening"));
`;
// Keep-alive calls, one at a time; stays up afterwards so its connection closes with the test.
const CLIENT = `
import http from "node:http";
const [port, n] = process.argv.slice(-2).map(Number);
const agent = new http.Agent({ keepAlive: true, maxSockets: 2 });
for (let i = 0; i < n; i++) {
  await new Promise((resolve, reject) => http.get({ host: "127.0.0.1", port, path: "/buy", agent }, (r) => { r.resume(); r.on("end", resolve); }).on("error", reject));
}
console.log("done");
setInterval(() => {}, 1000);
`;

function listening(p: ChildProcess, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let out = "";
    p.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      if (/listening|done/.test(out)) resolve();
    });
    p.once("exit", (c) => reject(new Error(`${what} exited (${c})`)));
  });
}

test("every edge names both ends, one name per process, one call counted once", { timeout: 420_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  const pick = portPicker();
  const ports = await stackPorts(1, 1, pick);
  const dataDir = tempDir("wirescope-map-");
  const influxUrl = `http://127.0.0.1:${ports.influx}`;
  // Own process group: SIGINT to the group stops `up` and everything it started. Every
  // connection observed (--sample-fraction 1): this test counts each call once, and on a busy
  // machine the probe's CPU budget would otherwise sample connections and scale their counts
  // (a single keep-alive connection at 2/3 counted 40 calls as 60; docs/probe.md "Overload").
  const up = spawn(
    ...privateRun([process.execPath, "bin/wirescope.js", "up", ...stackArgs(dataDir, ports), "--no-build", "--no-install", "--no-demo", "--no-watch-parent", "--probe-args", "--sample-fraction 1"]),
    { cwd: REPO_ROOT, detached: true, stdio: ["ignore", "pipe", "pipe"] },
  );
  let out = "";
  up.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  up.stderr!.on("data", (d: Buffer) => (out += d.toString()));
  const parts: ChildProcess[] = [];
  try {
    await waitFor(() => /^ready: /m.test(out) || up.exitCode !== null, { timeoutMs: 240_000, intervalMs: 200, what: "`ready` from wirescope up" });
    assert.equal(up.exitCode, null, `up exited early:\n${out}`);
    assert.doesNotMatch(out, /capture is OFF/, out);

    const [mid, backend] = [await pick(), await pick()];
    const b = part("wsback", BACKEND, String(backend));
    parts.push(b);
    await listening(b, "backend");
    const m = part("wsmid", MID, String(mid), String(backend));
    parts.push(m);
    await listening(m, "mid");
    const c = part("wscli", CLIENT, String(mid), String(CALLS));
    parts.push(c);
    await listening(c, "client");

    type Series = { name: string; columns: string[]; tags?: Record<string, string>; values: unknown[][] };
    const rows = async (q: string): Promise<Series[]> => {
      const body = (await influxQuery(influxUrl, q, "wirescope")) as { results: { series?: Series[] }[] };
      return body.results[0]?.series ?? [];
    };
    const mine = (name: string) => name.includes(String(mid)) || name.includes(String(backend)) || name.startsWith("wscli");
    // What the pipeline counted lost or unmatched, and every red series of ours, for a failure.
    const diagnose = async () => {
      const st = spawnSync(process.execPath, ["bin/wirescope.js", "status", "--json", "--data-dir", dataDir, "--nats-url", `nats://127.0.0.1:${ports.nats}`, "--influx-url", influxUrl], { cwd: REPO_ROOT, encoding: "utf8", timeout: 60_000 });
      const counted = (JSON.parse(st.stdout || "[]") as { component: string; counters?: Record<string, number> }[]).map(
        (r) => `${r.component}: ${Object.entries(r.counters ?? {}).filter(([k, v]) => v > 0 && /drop|gap|unresolved|late|shed|miss|lost|full|behind|dup|ambiguous|matched|resolved/.test(k)).map(([k, v]) => `${k}=${v}`).join(" ")}`,
      );
      const red = (await rows("SELECT sum(requests) FROM red GROUP BY service, role")).filter((s) => mine(s.tags!.service!)).map((s) => `${s.tags!.role} ${s.tags!.service}: ${s.values[0]![1]}`);
      return `\n${counted.join("\n")}\nred:\n${red.join("\n")}`;
    };
    let edges = new Map<string, number>();
    let servers = new Map<string, number>();
    // windows are 10 s with 5 s of grace: every call is written within ~20 s
    await waitFor(
      async () => {
        edges = new Map();
        for (const s of await rows("SELECT sum(requests) FROM edges GROUP BY client, server, protocol")) {
          const name = `${s.tags!.client} -> ${s.tags!.server}`;
          if (mine(s.tags!.client!) || mine(s.tags!.server!)) edges.set(`${name}/${s.tags!.protocol}`, Number(s.values[0]![1]));
        }
        servers = new Map();
        for (const s of await rows("SELECT sum(requests) FROM red WHERE role = 'server' GROUP BY service")) {
          if (mine(s.tags!.service!)) servers.set(s.tags!.service!, Number(s.values[0]![1]));
        }
        return [...edges.values()].reduce((a, v) => a + v, 0) >= 2 * CALLS;
      },
      { timeoutMs: 60_000, intervalMs: 1000, what: `${2 * CALLS} calls on the map` },
    ).catch(async (e: unknown) => assert.fail(`${String(e)}: ${JSON.stringify(Object.fromEntries(edges))}${await diagnose()}`));
    const why = await diagnose();
    assert.deepEqual(
      Object.fromEntries(edges),
      { [`wscli -> wsmid:${mid}/http1`]: CALLS, [`wsmid:${mid} -> wsback:${backend}/http1`]: CALLS },
      `one edge per caller/callee pair, both ends named by process, each call once${why}`,
    );
    assert.deepEqual(Object.fromEntries(servers), { [`wsmid:${mid}`]: CALLS, [`wsback:${backend}`]: CALLS }, why);
  } finally {
    for (const p of parts) p.kill("SIGKILL");
    try {
      process.kill(-up.pid!, "SIGINT");
    } catch {}
    // the whole group (up and the stack it started) is gone before the test ends
    await waitFor(
      () => {
        try {
          process.kill(-up.pid!, 0);
          return false;
        } catch {
          return true;
        }
      },
      { timeoutMs: 60_000, intervalMs: 200, what: "wirescope up to stop" },
    );
  }
});
