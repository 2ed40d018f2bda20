// The test helpers themselves: real servers come up on loopback and are really gone after stop().
import { test } from "node:test";
import assert from "node:assert/strict";
import { startNats, startInflux, pidAlive, influxQuery } from "./support/index.js";
import { tcpReachable } from "@wirescope/runtime";

test("startNats: JetStream server accepts connections and stop() ends its process", { timeout: 30_000 }, async () => {
  const nats = await startNats({ jetstream: true });
  try {
    assert.match(nats.url, /^nats:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(await tcpReachable(nats.host, nats.port), true);
    assert.equal(pidAlive(nats.pid), true);
  } finally {
    await nats.stop();
  }
  assert.equal(pidAlive(nats.pid), false);
  assert.equal(await tcpReachable(nats.host, nats.port), false);
});

test("startInflux: influxd answers InfluxQL on loopback and stop() ends its process", { timeout: 60_000 }, async () => {
  const influx = await startInflux();
  try {
    await influxQuery(influx.url, "CREATE DATABASE t1");
    const body = (await influxQuery(influx.url, "SHOW DATABASES")) as { results: { series: { values: string[][] }[] }[] };
    const names = body.results[0].series[0].values.map((v) => v[0]);
    assert.ok(names.includes("t1"), `databases: ${names.join(",")}`);
  } finally {
    await influx.stop();
  }
  assert.equal(pidAlive(influx.pid), false);
});
