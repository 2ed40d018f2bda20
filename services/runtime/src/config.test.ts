import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { loadConfig, redactConfig, DEFAULTS, OPTIONS } from "./config.js";
import { redactUrl } from "./redact.js";
import { ConfigError } from "./errors.js";
import { natsConnectionOptions } from "./nats.js";

describe("loadConfig", () => {
  it("gives a NATS client its user's inboxes, or the ones named, or _INBOX without a user", () => {
    const prefix = (argv: string[], env: NodeJS.ProcessEnv = {}) => natsConnectionOptions(loadConfig({ env, argv: ["--data-dir", "/nonexistent", ...argv] }).config.nats, "t").inboxPrefix;
    assert.equal(prefix([]), "_INBOX");
    assert.equal(prefix(["--nats-user", "wirescope-probe"]), "_INBOX.wirescope-probe");
    assert.equal(prefix([], { WIRESCOPE_NATS_USER: "a.b*c" }), "_INBOX.a_b_c", "a user name that cannot be one subject token");
    assert.equal(prefix(["--nats-user", "u", "--nats-inbox-prefix", "_R.u"]), "_R.u");
    for (const bad of ["", "_INBOX.>", "a..b", "a b", "a.*"]) {
      assert.throws(() => loadConfig({ env: {}, argv: ["--nats-inbox-prefix", bad] }), ConfigError, bad);
    }
  });

  it("uses the documented defaults and the component's gRPC port", () => {
    const { config, rest } = loadConfig({ component: "parser", env: {}, argv: [] });
    assert.equal(config.nats.url, "nats://127.0.0.1:4222");
    assert.equal(config.influx.url, "http://127.0.0.1:8086");
    assert.equal(config.influx.database, "wirescope");
    assert.equal(config.partitions, 64);
    assert.deepEqual(config.grpc, { host: "127.0.0.1", port: 7702 });
    assert.equal(config.logLevel, "info");
    assert.ok(config.dataDir.endsWith(".wirescope"));
    assert.deepEqual(rest, []);
  });

  it("lets WIRESCOPE_* env override defaults and flags override env", () => {
    const env = { WIRESCOPE_NATS_URL: "nats://10.0.0.1:4222", WIRESCOPE_PARTITIONS: "16", WIRESCOPE_INFLUX_DB: "envdb", WIRESCOPE_GRPC_HOST: "0.0.0.0" };
    const { config } = loadConfig({ component: "probe", env, argv: ["--partitions", "8", "--influx-db=flagdb"] });
    assert.equal(config.nats.url, "nats://10.0.0.1:4222");
    assert.equal(config.partitions, 8);
    assert.equal(config.influx.database, "flagdb");
    assert.equal(config.grpc.host, "0.0.0.0");
    assert.equal(config.grpc.port, 7701);
  });

  it("returns unknown arguments, in order, for the command to parse", () => {
    const { config, rest } = loadConfig({ env: {}, argv: ["--pcap", "x.pcap", "--grpc-port", "0", "-v", "--", "--partitions", "3"] });
    assert.deepEqual(rest, ["--pcap", "x.pcap", "-v", "--", "--partitions", "3"]);
    assert.equal(config.grpc.port, 0);
    assert.equal(config.partitions, 64);
  });

  it("leaves a command's own shared flags to it (top --node), flag and variable", () => {
    const { config, rest } = loadConfig({ env: { WIRESCOPE_NODE: "from-env" }, argv: ["--node", "n2", "--partitions", "8", "--node=n3"], own: ["node"] });
    assert.deepEqual(rest, ["--node", "n2", "--node=n3"]);
    assert.notEqual(config.node, "from-env");
    assert.notEqual(config.node, "n2");
    assert.equal(config.partitions, 8);
    assert.equal(loadConfig({ env: {}, argv: ["--node", "n2"] }).config.node, "n2");
  });

  it("rejects bad values with a ConfigError naming the option", () => {
    const bad: [string[], NodeJS.ProcessEnv, RegExp][] = [
      [["--partitions", "0"], {}, /partitions/],
      [["--partitions", "12abc"], {}, /partitions/],
      [["--grpc-port", "70000"], {}, /grpc-port/],
      [["--nats-url", "http://x:1"], {}, /nats-url: scheme/],
      [["--influx-url", "not a url"], {}, /influx-url/],
      [["--log-level", "loud"], {}, /log-level/],
      [["--partitions"], {}, /missing value/],
      [[], { WIRESCOPE_PARTITIONS: "-1" }, /WIRESCOPE_PARTITIONS/],
      [["--nats-creds", "/nonexistent/x.creds"], {}, /not found/],
      [[], { WIRESCOPE_NATS_TLS_CA: "/nonexistent/ca.crt" }, /^WIRESCOPE_NATS_TLS_CA="\/nonexistent\/ca.crt": nats-tls-ca: file not found/],
    ];
    for (const [argv, env, re] of bad) {
      assert.throws(() => loadConfig({ argv, env }), (e: unknown) => e instanceof ConfigError && re.test(e.message), `${argv.join(" ")} ${JSON.stringify(env)}`);
    }
  });

  it("checks that every option marked as a file exists, and only those", () => {
    const files = OPTIONS.filter((o) => o.file).map((o) => o.flag);
    assert.deepEqual(files, ["nats-creds", "nats-tls-ca", "nats-tls-cert", "nats-tls-key"]);
    for (const o of OPTIONS) {
      if (!o.file) continue;
      assert.throws(() => loadConfig({ env: {}, argv: [`--${o.flag}`, "/nonexistent/f"] }), (e: unknown) => e instanceof ConfigError && e.code === "missing_file", o.flag);
    }
  });

  it("does not share state between calls (defaults are copied)", () => {
    loadConfig({ env: {}, argv: ["--nats-user", "x"] });
    assert.equal(DEFAULTS.nats.user, undefined);
  });
});

describe("redactConfig", () => {
  it("hides passwords, tokens and URL credentials", () => {
    const { config } = loadConfig({
      env: { WIRESCOPE_NATS_PASSWORD: "p1", WIRESCOPE_NATS_TOKEN: "t1", WIRESCOPE_INFLUX_TOKEN: "t2", WIRESCOPE_INFLUX_PASSWORD: "p2" },
      argv: ["--nats-url", "nats://u:pw@127.0.0.1:4222,nats://sekrit9@127.0.0.2:4222", "--influx-url", "http://a:b@127.0.0.1:8086"],
    });
    const text = JSON.stringify(redactConfig(config));
    for (const secret of ["p1", "t1", "t2", "p2", "pw", "sekrit9", ":b@"]) assert.ok(!text.includes(secret), `${secret} leaked: ${text}`);
    assert.equal(redactUrl("nats://u:pw@h:1"), "nats://u:[REDACTED]@h:1");
  });
});
