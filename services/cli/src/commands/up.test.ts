import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { loadConfig } from "@wirescope/runtime";
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { checkPorts, controlAddress, exitReason, instanceName, instancePorts, lowerPriority, memlockLimits, MAX_INSTANCES, parseUpArgs, PARSER_PORT_STRIDE, reachFlags, serviceArgs, serviceNodeFlags, UP_FLAGS } from "./up.js";
import { flagsHelp, freePort, GrpcServer, HealthGate, silentLogger } from "@wirescope/runtime";
import { ports as demoPorts } from "../demo/spec.js";

describe("exitReason", () => {
  it("prefers the command's one-line error, then an error-level log message", () => {
    const json = (level: number, msg: string) => JSON.stringify({ level, component: "probe", msg });
    assert.equal(
      exitReason([json(30, "starting"), json(40, "NATS not reachable yet; retrying"), "wirescope probe: eBPF unavailable: another wirescope probe is already running"].join("\n")),
      "eBPF unavailable: another wirescope probe is already running",
    );
    assert.equal(exitReason([json(30, "starting"), JSON.stringify({ level: 50, msg: "load failed", err: { message: "EPERM" } }), json(30, "stopped")].join("\n")), "load failed: EPERM");
    assert.equal(exitReason(`${json(30, "a")}\n${json(30, "b")}\n`), `${json(30, "a")} | ${json(30, "b")}`);
    assert.equal(exitReason(""), "no output");
  });
});

describe("reachFlags", () => {
  const cfg = (argv: string[]) => loadConfig({ argv, env: {}, natsAuthFromDataDir: false }).config;
  it("names what differs from the defaults, so the printed commands reach this stack", () => {
    assert.deepEqual(reachFlags(cfg([]), "nats://127.0.0.1:4222"), []);
    const c = cfg(["--influx-url", "http://127.0.0.1:18086", "--influx-db", "shop", "--data-dir", "/tmp/my stack"]);
    assert.deepEqual(reachFlags(c, "nats://127.0.0.1:14222,nats://127.0.0.1:14223", "/tmp/my stack/nats-tls/ca.pem"), [
      "--nats-url", "nats://127.0.0.1:14222,nats://127.0.0.1:14223",
      "--nats-tls-ca", "'/tmp/my stack/nats-tls/ca.pem'",
      "--influx-url", "http://127.0.0.1:18086",
      "--influx-db", "shop",
      "--data-dir", "'/tmp/my stack'",
    ]);
    assert.deepEqual(reachFlags(cfg(["--data-dir", "/tmp/it's"]), "nats://127.0.0.1:4222"), ["--data-dir", "'/tmp/it'\\''s'"]);
  });
});

describe("memlockLimits", () => {
  it("reads soft and hard RLIMIT_MEMLOCK from /proc/<pid>/limits", () => {
    const text = "Limit                     Soft Limit           Hard Limit           Units\nMax locked memory         8388608              unlimited            bytes\n";
    assert.deepEqual(memlockLimits(text), { soft: 8388608, hard: Infinity });
    assert.equal(memlockLimits("nothing"), undefined);
  });
});

describe("serviceArgs", () => {
  it("runs the probe, parsers and aggregators under node --cpu-prof with --cpu-prof DIR, and keeps their own node flags", () => {
    const o = parseUpArgs(["--cpu-prof", "prof"]);
    assert.equal(o.cpuProfDir, path.resolve("prof"));
    for (const c of ["probe", "parser", "aggregator"] as const) {
      const flags = serviceNodeFlags(c, o);
      assert.deepEqual(flags.slice(-2), ["--cpu-prof", `--cpu-prof-dir=${path.resolve("prof")}`], c);
      assert.deepEqual(flags.slice(0, -2), serviceNodeFlags(c, parseUpArgs([])), `${c} keeps its own flags`);
    }
    assert.ok(!serviceNodeFlags("parser", parseUpArgs([])).includes("--cpu-prof"), "off by default");
    assert.ok(serviceNodeFlags("probe", parseUpArgs([])).length > 0, "the probe has node flags of its own");
  });

  it("gives the aggregator --otlp-endpoint when up has it, and no other service", () => {
    const o = parseUpArgs(["--otlp-endpoint", "http://127.0.0.1:4318", "--aggregator-port", "9000"]);
    assert.deepEqual(serviceArgs("aggregator", o).slice(-2), ["--otlp-endpoint", "http://127.0.0.1:4318"]);
    assert.ok(serviceArgs("aggregator", o).includes("9000"));
    assert.ok(!serviceArgs("parser", o).includes("--otlp-endpoint"));
    assert.ok(!serviceArgs("aggregator", parseUpArgs([])).includes("--otlp-endpoint"), "off by default");
    assert.throws(() => parseUpArgs(["--otlp-endpoint", "collector:4318"]), /http\(s\) URL/);
  });

  it("puts the second and later aggregators on the next ports", () => {
    const o = parseUpArgs(["--aggregators", "3", "--aggregator-port", "9000", "--aggregator-metrics-port", "9100"]);
    assert.equal(o.aggregators, 3);
    const a3 = serviceArgs("aggregator", o, 2);
    assert.equal(a3[a3.indexOf("--grpc-port") + 1], "9002");
    assert.equal(a3[a3.indexOf("--metrics-port") + 1], "9102");
    const off = parseUpArgs(["--aggregators", "2", "--aggregator-metrics-port", "0"]);
    const a2 = serviceArgs("aggregator", off, 1);
    assert.equal(a2[a2.indexOf("--metrics-port") + 1], "0", "metrics stay off");
    assert.throws(() => parseUpArgs(["--aggregators", "0"]), /aggregators/);
  });
});

describe("--parsers N", () => {
  const grpc = (args: string[]) => args[args.indexOf("--grpc-port") + 1];
  const metrics = (args: string[]) => args[args.indexOf("--metrics-port") + 1];

  it("puts replica i on --parser-port + 10·(i-1), metrics likewise, names parser, parser-2, …", () => {
    const o = parseUpArgs(["--parsers", "3", "--parser-port", "9000", "--parser-metrics-port", "9500"]);
    assert.equal(o.parsers, 3);
    assert.deepEqual([0, 1, 2].map((i) => [instanceName("parser", i), grpc(serviceArgs("parser", o, i)), metrics(serviceArgs("parser", o, i))]), [
      ["parser", "9000", "9500"],
      ["parser-2", "9010", "9510"],
      ["parser-3", "9020", "9520"],
    ]);
    assert.equal(parseUpArgs([]).parsers, 1, "one by default");
    assert.equal(metrics(serviceArgs("parser", parseUpArgs(["--parsers", "2", "--parser-metrics-port", "0"]), 1)), "0", "metrics stay off");
    assert.throws(() => parseUpArgs(["--parsers", "0"]), /--parsers: expected an integer in \[1, 8\]/);
    assert.throws(() => parseUpArgs(["--parsers", "9"]), /--parsers/);
  });

  it("a replica whose metrics port is taken loses /metrics alone, the others keep theirs", () => {
    const o = parseUpArgs(["--parsers", "3", "--parser-port", "9000", "--parser-metrics-port", "9500"]);
    o.metricsOff.add("parser-2");
    assert.deepEqual([0, 1, 2].map((i) => [grpc(serviceArgs("parser", o, i)), metrics(serviceArgs("parser", o, i))]), [
      ["9000", "9500"],
      ["9010", "0"],
      ["9020", "9520"],
    ]);
    assert.equal(instancePorts("aggregator", o, 0).metrics, 9703, "another service's instance keeps its port");
  });

  it("with the default ports, no two processes share a port for any allowed count", () => {
    for (let parsers = 1; parsers <= MAX_INSTANCES; parsers++) {
      for (let aggregators = 1; aggregators <= MAX_INSTANCES; aggregators++) {
        const o = parseUpArgs(["--parsers", String(parsers), "--aggregators", String(aggregators)]);
        const used: number[] = [];
        for (const c of ["probe", "parser", "aggregator"] as const) {
          for (let i = 0; i < (c === "parser" ? parsers : c === "aggregator" ? aggregators : 1); i++) used.push(instancePorts(c, o, i).grpc, instancePorts(c, o, i).metrics);
        }
        assert.equal(new Set(used).size, used.length, `--parsers ${parsers} --aggregators ${aggregators}: ${used}`);
        // nats-server and influxd on their defaults too
        checkPorts(o, [{ what: "nats", port: 4222 }, { what: "influxd", port: 8086 }]);
      }
    }
  });

  it("refuses explicit ports that collide, saying which two processes would meet", () => {
    assert.throws(
      () => parseUpArgs(["--parsers", "3", "--aggregators", "8", "--aggregator-port", "7710"]),
      /port 7712 would be both parser-2's gRPC port \(--parser-port 7702 \+ 10\) and aggregator-3's gRPC port \(--aggregator-port 7710 \+ 2\)/,
    );
    assert.throws(() => parseUpArgs(["--parsers", "2", "--parser-metrics-port", "9691"]), /port 9701 would be both .*probe's metrics port .*parser-2's metrics port/);
    assert.throws(() => parseUpArgs(["--probe-port", "9703"]), /port 9703 would be both/);
    assert.throws(() => parseUpArgs(["--parsers", "8", "--parser-port", "65500"]), /parser-5's gRPC port \(--parser-port 65500 \+ 40\) would be 65540, past 65535/);
    assert.throws(() => checkPorts(parseUpArgs(["--parser-port", "4222"]), [{ what: "nats-server's port (--nats-url)", port: 4222 }]), /port 4222 would be both nats-server's port/);
    // the probe's ports are free for others when it does not run, the demo's when it does not
    assert.equal(parseUpArgs(["--no-probe", "--parser-port", "7701"]).ports.parser, 7701);
    assert.throws(() => parseUpArgs(["--parser-port", "17080"]), /the demo's/);
    assert.equal(parseUpArgs(["--no-demo", "--parser-port", "17080"]).ports.parser, 17080);
  });

  it("hands back every port it claimed, and ports picked free later stay apart from them", async () => {
    const o = parseUpArgs(["--parsers", "2", "--aggregators", "2", "--parser-port", "40000", "--aggregator-port", "40100"]);
    const planned = checkPorts(o, [{ what: "nats", port: 40200 }, { what: "influxd", port: 40201 }]);
    for (const p of [40000, 40010, 40100, 40101, 40200, 40201, instancePorts("probe", o, 0).grpc, instancePorts("parser", o, 1).metrics, ...Object.values(demoPorts(o.demoPort))]) assert.ok(planned.has(p), `${p} claimed`);
    const before = new Set(planned);
    const picks: number[] = [];
    for (let i = 0; i < 40; i++) picks.push(await freePort("127.0.0.1", planned));
    assert.equal(new Set(picks).size, picks.length, "no port picked twice");
    for (const p of picks) assert.ok(!before.has(p) && planned.has(p), `${p} apart from the planned ones, then added to them`);
  });

  it("is listed by --help with its default", () => {
    const help = flagsHelp(UP_FLAGS);
    const line = help.split("\n").find((l) => l.trimStart().startsWith("--parsers N"));
    assert.ok(line?.endsWith("(default: 1)"), line);
    assert.equal(PARSER_PORT_STRIDE, 10);
  });
});

describe("controlAddress", () => {
  it("is the address a replica announces in its membership entry, an IPv6 host in brackets", async () => {
    // up deletes a dead replica's entry by this address: it must be the string the replica wrote
    const server = new GrpcServer({ log: silentLogger(), health: new HealthGate() });
    const { port, address } = await server.listen("::1", 0);
    try {
      const o = parseUpArgs(["--no-demo", "--parsers", "2", "--parser-port", String(port - PARSER_PORT_STRIDE)]);
      assert.equal(controlAddress("::1", "parser", o, 1), address);
      assert.equal(address, `[::1]:${port}`);
      assert.equal(controlAddress("127.0.0.1", "parser", o, 0), `127.0.0.1:${port - PARSER_PORT_STRIDE}`);
    } finally {
      await server.stop();
    }
  });
});

describe("the local pipeline's CPU", () => {
  it("gives the probe the pipeline budget and the file of the servers' pids, the user's --probe-args after them", () => {
    const dflt = serviceArgs("probe", parseUpArgs([]), 0, "/d/pipeline.pids");
    assert.deepEqual(dflt.slice(dflt.indexOf("--pipeline-cpu-budget")), ["--pipeline-cpu-budget", "0", "--pipeline-pid-file", "/d/pipeline.pids"], "off by default");
    const probe = serviceArgs("probe", parseUpArgs(["--pipeline-cpu-budget", "500m"]), 0, "/d/pipeline.pids");
    assert.deepEqual(probe.slice(probe.indexOf("--pipeline-cpu-budget")), ["--pipeline-cpu-budget", "500m", "--pipeline-pid-file", "/d/pipeline.pids"]);
    const off = serviceArgs("probe", parseUpArgs(["--pipeline-cpu-budget", "off", "--probe-args", "--pipeline-cpu-budget 200m"]));
    assert.deepEqual(off.slice(off.indexOf("--pipeline-cpu-budget")), ["--pipeline-cpu-budget", "off", "--pipeline-cpu-budget", "200m"]);
    assert.ok(!serviceArgs("parser", parseUpArgs([]), 0, "/d/pipeline.pids").includes("--pipeline-pid-file"));
    assert.throws(() => parseUpArgs(["--pipeline-cpu-budget", "lots"]), /--pipeline-cpu-budget: expected millicores/);
  });

  it("nice 10 by default, 0 to 19 accepted", () => {
    assert.equal(parseUpArgs([]).pipelineNice, 10);
    assert.equal(parseUpArgs(["--pipeline-nice", "0"]).pipelineNice, 0);
    assert.throws(() => parseUpArgs(["--pipeline-nice", "20"]), /--pipeline-nice/);
  });

  it("lowerPriority sets every thread of a running process", async () => {
    // a node process has several threads (V8's, libuv's): each gets the niceness
    const child = spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)"], { stdio: "ignore" });
    try {
      await new Promise((r) => child.once("spawn", r));
      const tids = () => fs.readdirSync(`/proc/${child.pid}/task`);
      const nice = (tid: string) => Number(fs.readFileSync(`/proc/${child.pid}/task/${tid}/stat`, "utf8").split(") ")[1]!.split(" ")[16]);
      assert.ok(lowerPriority(child.pid!, 7) >= 1);
      for (const tid of tids()) assert.equal(nice(tid), 7, `thread ${tid}`);
    } finally {
      child.kill("SIGKILL");
    }
  });
});

