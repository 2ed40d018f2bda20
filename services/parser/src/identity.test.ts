import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { ConnEventSchema, ConnKind, ProcessInfoSchema, Role } from "@wirescope/wire";
import { endpointsOf, PeerDirectory, refreshEndpoints } from "./identity.js";

/** Lets the test's timeout fire: a synchronous loop runs to its end however long it takes. */
const yieldToTimers = () => new Promise<void>((r) => setImmediate(r));

describe("PeerDirectory and endpoint resolution", () => {
  const ev = (role: Role, local: [string, number], remote: [string, number], pid: number, name: string) =>
    create(ConnEventSchema, { connKey: 1n, kind: ConnKind.OPEN, role, localAddress: local[0], localPort: local[1], remoteAddress: remote[0], remotePort: remote[1], process: { pid, name } });

  it("learns the lowest listening port of a process, whichever accept comes first; a reused pid starts over", () => {
    const d = new PeerDirectory();
    d.learn(ev(Role.SERVER, ["0.0.0.0", 9090], ["10.0.0.1", 50000], 5, "api"), "n1");
    d.learn(ev(Role.SERVER, ["0.0.0.0", 8080], ["10.0.0.1", 50001], 5, "api"), "n1");
    d.learn(ev(Role.SERVER, ["0.0.0.0", 9091], ["10.0.0.1", 50002], 5, "api"), "n1");
    d.learn(ev(Role.CLIENT, ["10.0.0.2", 40000], ["10.0.0.3", 5432], 5, "api"), "n1");
    const api = create(ProcessInfoSchema, { pid: 5, name: "api" });
    assert.equal(d.listenPort(api, "n1"), 8080);
    d.learn(ev(Role.SERVER, ["0.0.0.0", 7000], ["10.0.0.1", 50003], 5, "other"), "n1");
    assert.equal(d.listenPort(api, "n1"), 0);
    assert.equal(d.listenPort(create(ProcessInfoSchema, { pid: 5, name: "other" }), "n1"), 7000);
  });

  it("stays bounded", () => {
    const d = new PeerDirectory(100);
    for (let i = 1; i <= 1000; i++) d.learn(ev(Role.SERVER, ["10.0.0.2", 1000 + i], ["10.0.0.1", 50000], i, "p"), "n1");
    assert.equal(d.listenPort(create(ProcessInfoSchema, { pid: 1, name: "p" }), "n1"), 0, "the oldest are forgotten");
    assert.equal(d.listenPort(create(ProcessInfoSchema, { pid: 1000, name: "p" }), "n1"), 2000);
  });

  it("holds at most max addresses, always the last max/2 learned, and a socket named again stays", () => {
    const d = new PeerDirectory(100);
    const server = ["10.9.9.9", 80] as [string, number];
    for (let i = 1; i <= 1000; i++) {
      d.learn(ev(Role.CLIENT, [`10.0.${i >> 8}.${i & 255}`, 40000], server, 1000 + i, "cli"), "n1");
      // the server's listening address, named again at every accept
      d.learn(ev(Role.SERVER, server, [`10.0.${i >> 8}.${i & 255}`, 40000], 7, "web"), "n1");
      assert.ok(d.size <= 100, `bounded: ${d.size}`);
      for (let back = 0; back < 25 && back < i; back++) {
        const j = i - back;
        assert.equal(d.lookup(`10.0.${j >> 8}.${j & 255}`, 40000, false, "n1")?.process.pid, 1000 + j, `client ${j} found after ${i}`);
      }
      assert.equal(d.lookup("10.9.9.9", 80, true, "n1")?.process.name, "web");
      assert.equal(d.lookup("10.9.9.8", 80, true, "n1")?.process.name, "web", "by its listening port");
    }
    assert.equal(d.lookup("10.0.0.1", 40000, false, "n1"), undefined, "the oldest are forgotten");
  });

  it("learns a million connections to one server in bounded time (no hash chain grows with them)", { timeout: 20_000 }, async () => {
    // Deleting and re-adding the server's address at every accept, and evicting oldest-first,
    // cost ~50 µs a connection once the directory was full (about a minute here); now ~2 µs.
    const d = new PeerDirectory();
    const client = ev(Role.CLIENT, ["", 40000], ["10.9.9.9", 80], 100, "cli");
    const accept = ev(Role.SERVER, ["10.9.9.9", 80], ["", 40000], 200, "web");
    for (let i = 0; i < 1_000_000; i++) {
      client.localAddress = accept.remoteAddress = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
      d.learn(client, "n1");
      d.learn(accept, "n1");
      if (i % 10_000 === 0) await yieldToTimers();
    }
    assert.ok(d.size <= 65536);
    assert.equal(d.lookup("10.15.66.63", 40000, false, "n1")?.process.name, "cli");
    assert.equal(d.lookup("10.9.9.9", 80, true, "n1")?.process.name, "web");
  });

  it("learns a million listening processes in bounded time, the last max/2 always found", { timeout: 20_000 }, async () => {
    // Evicting the oldest process one by one (`keys().next()` on a Map that deletes) cost
    // ~10-34 µs per new listening process once 65,536 were known (about a minute for this loop);
    // now ~1 µs.
    const d = new PeerDirectory();
    const accept = ev(Role.SERVER, ["10.9.9.9", 80], ["10.0.0.1", 40000], 0, "srv");
    const proc = (pid: number) => create(ProcessInfoSchema, { pid, name: "srv" });
    for (let pid = 1; pid <= 1_000_000; pid++) {
      accept.process!.pid = pid;
      d.learn(accept, "n1");
      if (pid % 10_000 === 0) await yieldToTimers();
    }
    for (const pid of [1_000_000, 1_000_000 - 32_767]) assert.equal(d.listenPort(proc(pid), "n1"), 80, `pid ${pid} found`);
    assert.equal(d.listenPort(proc(1), "n1"), 0, "the oldest are forgotten");
  });

  it("resolves what was unknown at creation, and stops looking once nothing can change", () => {
    const d = new PeerDirectory();
    const eps = endpointsOf(ev(Role.CLIENT, ["127.0.0.1", 40000], ["127.0.0.1", 7000], 9, "web"), "n1", d);
    assert.deepEqual([eps.client.service, eps.server.service, eps.pending], ["web", "127.0.0.1:7000", true]);
    assert.equal(refreshEndpoints(eps, "n1", d), false, "nothing new");
    d.learn(ev(Role.SERVER, ["127.0.0.1", 7000], ["127.0.0.1", 40000], 3, "db"), "n1");
    assert.equal(refreshEndpoints(eps, "n1", d), true);
    assert.deepEqual([eps.client.service, eps.server.service, eps.server.node, eps.pending], ["web", "db:7000", "n1", true]);
    d.learn(ev(Role.SERVER, ["127.0.0.1", 17080], ["127.0.0.1", 40001], 9, "web"), "n1");
    assert.equal(refreshEndpoints(eps, "n1", d), true);
    assert.deepEqual([eps.client.service, eps.pending], ["web:17080", false]);
  });

  it("several nodes: a routable address names a process across nodes with its own node; loopback, listening ports and pids only within one", () => {
    const d = new PeerDirectory();
    d.learn(ev(Role.SERVER, ["10.250.0.2", 8080], ["10.250.0.1", 40000], 7, "api"), "node-b");
    d.learn(ev(Role.SERVER, ["127.0.0.1", 7000], ["127.0.0.1", 41000], 8, "cache"), "node-b");
    // a client on node-a calling node-b's server by its address
    const eps = endpointsOf(ev(Role.CLIENT, ["10.250.0.1", 40000], ["10.250.0.2", 8080], 3, "web"), "node-a", d);
    assert.deepEqual([eps.client.service, eps.client.node, eps.server.service, eps.server.node], ["web", "node-a", "api:8080", "node-b"]);
    // node-a's own 127.0.0.1:7000 is not node-b's cache, nor is any port node-b listens on
    const local = endpointsOf(ev(Role.CLIENT, ["127.0.0.1", 42000], ["127.0.0.1", 7000], 4, "web"), "node-a", d);
    assert.deepEqual([local.server.service, local.server.node], ["127.0.0.1:7000", ""]);
    assert.equal(d.lookup("10.9.9.9", 8080, true, "node-a"), undefined, "a listening port is node-b's only");
    assert.equal(d.lookup("10.9.9.9", 8080, true, "node-b")?.process.name, "api");
    // the same pid on another node is another process
    assert.equal(d.listenPort(create(ProcessInfoSchema, { pid: 7, name: "api" }), "node-b"), 8080);
    assert.equal(d.listenPort(create(ProcessInfoSchema, { pid: 7, name: "api" }), "node-a"), 0);
  });
});
