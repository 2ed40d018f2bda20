import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { create, equals, fromBinary, isFieldSet, toBinary } from "@bufbuild/protobuf";
import { EndpointSchema, ProcessInfoSchema, RecordSchema, Role, coveredFields } from "@wirescope/wire";
import { everyField } from "@wirescope/wire/test-support/wire";
import { HOST_FIELDS, appendHostFields, encodeHostFields, readHead } from "./record-bytes.js";

function pluginRecord(): Uint8Array {
  return toBinary(
    RecordSchema,
    create(RecordSchema, {
      protocol: "http",
      startNs: 1_700_000_000_123_456_789n,
      durationNs: 5000n,
      operation: "GET",
      resource: "/x",
      status: 200n,
      attributes: { "url.path": { value: { case: "stringValue", value: "/x" } } },
    }),
  );
}

describe("readHead", () => {
  it("reads protocol and start_ns", () => {
    const h = readHead(pluginRecord());
    assert.deepEqual(h, { protocol: "http", startNs: 1_700_000_000_123_456_789n, sensitive: false });
  });

  it("flags attribute keys that host-side redaction must see", () => {
    const mk = (key: string) =>
      toBinary(RecordSchema, create(RecordSchema, { protocol: "x", attributes: { "url.path": { value: { case: "stringValue", value: "/" } }, [key]: { value: { case: "stringValue", value: "v" } } } }));
    for (const k of ["http.request.header.authorization", "db.query.text", "rpc.grpc.request.metadata.x-token", "http.request.body"]) assert.equal(readHead(mk(k))?.sensitive, true, k);
    for (const k of ["http.request.method", "db.system", "messaging.destination.name", "http.request.body.size", "nobody"]) assert.equal(readHead(mk(k))?.sensitive, false, k);
  });

  it("reads the largest start_ns", () => {
    const b = toBinary(RecordSchema, create(RecordSchema, { protocol: "p", startNs: 0xffff_ffff_ffff_ffffn }));
    assert.equal(readHead(b)?.startNs, 0xffff_ffff_ffff_ffffn);
  });

  it("refuses truncated bytes", () => {
    const b = pluginRecord();
    assert.equal(readHead(b.subarray(0, b.length - 3)), undefined);
    assert.equal(readHead(new Uint8Array([0x0a, 0x7f, 1])), undefined);
  });
});

describe("appendHostFields", () => {
  it("produces bytes that decode as one merged Record", () => {
    const suffix = encodeHostFields({
      client: { address: "10.0.0.1", port: 40000, service: "curl", node: "n1" },
      server: {
        address: "10.0.0.2",
        port: 80,
        service: "web",
        node: "n1",
        process: create(ProcessInfoSchema, { pid: 4242, name: "nginx", exe: "/usr/sbin/nginx", cmdline: "nginx -g daemon off;", containerId: "c0ffee", pod: "web-1", namespace: "prod", container: "nginx", workload: "web" }),
      },
      connKey: 12265986792724889601n,
      role: Role.SERVER,
      node: "n1",
    });
    const tls = fromBinary(RecordSchema, appendHostFields(pluginRecord(), encodeHostFields({ connKey: 1n, role: Role.CLIENT, node: "n", tlsLibrary: "openssl" }), 0));
    assert.equal(tls.attributes["tls"]?.value.case, "boolValue");
    assert.equal(tls.attributes["tls"]?.value.value, true);
    assert.equal(tls.attributes["tls.library"]?.value.value, "openssl");
    assert.equal(tls.protocol, "http");
    assert.equal(tls.attributes["url.path"]?.value.value, "/x", "the plugin's attributes are kept");
    // a sampled connection's fraction (field 26) reads back; an unsampled one writes none
    assert.equal(fromBinary(RecordSchema, appendHostFields(pluginRecord(), encodeHostFields({ connKey: 1n, role: Role.CLIENT, node: "n", observedFraction: 0.25 }), 7)).observedFraction, 0.25);
    assert.equal(fromBinary(RecordSchema, appendHostFields(pluginRecord(), encodeHostFields({ connKey: 1n, role: Role.CLIENT, node: "n", observedFraction: 1 }), 7)).observedFraction, 0);
    assert.equal(fromBinary(RecordSchema, appendHostFields(pluginRecord(), suffix, 7)).observedFraction, 0);
    for (const tid of [0, 5, 300, 4_000_000_000]) {
      assert.equal(fromBinary(RecordSchema, appendHostFields(pluginRecord(), suffix, tid)).attributes["tls"], undefined);
      const r = fromBinary(RecordSchema, appendHostFields(pluginRecord(), suffix, tid));
      assert.equal(r.protocol, "http");
      assert.equal(r.status, 200n);
      assert.equal(r.server?.service, "web");
      assert.deepEqual(
        [r.server?.process?.pid, r.server?.process?.name, r.server?.process?.exe, r.server?.process?.cmdline, r.server?.process?.containerId, r.server?.process?.pod, r.server?.process?.namespace, r.server?.process?.container, r.server?.process?.workload],
        [4242, "nginx", "", "", "c0ffee", "web-1", "prod", "nginx", "web"],
        "the process's identity, without exe and command line",
      );
      assert.equal(r.client?.process, undefined);
      assert.equal(r.server?.address, "10.0.0.2");
      assert.equal(r.server?.port, 80);
      assert.equal(r.client?.node, "n1");
      assert.equal(r.client?.port, 40000);
      assert.equal(r.connKey, 12265986792724889601n);
      assert.equal(r.role, Role.SERVER);
      assert.equal(r.tid, tid);
      assert.equal(r.node, "n1");
    }
  });
});

describe("encodeHostFields", () => {
  it("gives each connection bytes of its own: later connections (and a scratch buffer that grows) leave them as they were", () => {
    const ends = (i: number, containerId = "") => ({
      client: { address: "10.0.0.1", port: 40000 + i, service: "curl", node: "n1", process: create(ProcessInfoSchema, { pid: 100 + i, name: "curl", containerId }) },
      server: { address: "10.0.0.2", port: 80, service: "web", node: "n1", process: create(ProcessInfoSchema, { pid: 4242, name: "nginx" }) },
      connKey: BigInt(i + 1),
      role: Role.SERVER,
      node: "n1",
    });
    const first = encodeHostFields(ends(0));
    const copy = Uint8Array.from(first);
    // past every scratch buffer's first size: they grow while `first` is held
    const big = encodeHostFields(ends(1, "x".repeat(5000)));
    const second = encodeHostFields(ends(2));
    assert.deepEqual(first, copy);
    assert.equal(fromBinary(RecordSchema, appendHostFields(pluginRecord(), big, 0)).client!.process!.containerId.length, 5000);
    const r = fromBinary(RecordSchema, appendHostFields(pluginRecord(), second, 0));
    assert.equal(r.client!.port, 40002);
    assert.equal(r.client!.process!.pid, 102);
    assert.equal(fromBinary(RecordSchema, appendHostFields(pluginRecord(), first, 0)).client!.port, 40000);
    assert.notEqual(first.buffer, second.buffer);
  });
});

describe("HOST_FIELDS", () => {
  it("the host writes every field it says, byte for byte as protobuf-es, and no other", () => {
    // every field of proto/ set, a field added there too: the writer must carry it or the bytes differ
    const client = everyField(EndpointSchema);
    const server = everyField(EndpointSchema, { salt: 50 });
    assert.deepEqual(coveredFields(HOST_FIELDS.Endpoint), EndpointSchema.fields.map((f) => f.localName));
    // a record's process is its identity: every field but exe and cmdline
    assert.deepEqual(coveredFields(HOST_FIELDS.ProcessInfo), ProcessInfoSchema.fields.map((f) => f.localName).filter((f) => f !== "exe" && f !== "cmdline"));
    const identity = (e: typeof client) => create(EndpointSchema, { ...e, process: create(ProcessInfoSchema, { ...e.process!, exe: "", cmdline: "" }) });
    assert.ok(client.process!.exe && client.process!.cmdline, "everyField sets exe and cmdline: leaving them out is what is checked");
    const connKey = 2n ** 63n + 22n;
    const suffix = encodeHostFields({ client, server, connKey, role: Role.SERVER, node: "node-é", tlsLibrary: "openssl", observedFraction: 0.25 });
    // protobuf-es's bytes for the same fields, in the order the host writes them
    const pieces = [
      create(RecordSchema, { client: identity(client), server: identity(server), connKey, role: Role.SERVER, node: "node-é" }),
      create(RecordSchema, { attributes: { tls: { value: { case: "boolValue", value: true } } } }),
      create(RecordSchema, { attributes: { "tls.library": { value: { case: "stringValue", value: "openssl" } } } }),
      create(RecordSchema, { observedFraction: 0.25 }),
    ].map((m) => Buffer.from(toBinary(RecordSchema, m)).toString("hex"));
    assert.equal(Buffer.from(suffix).toString("hex"), pieces.join(""));
    // with the tid: the fields set are the ones HOST_FIELDS says the host writes
    const r = fromBinary(RecordSchema, appendHostFields(new Uint8Array(0), suffix, 300));
    assert.ok(equals(EndpointSchema, r.client!, identity(client)) && equals(EndpointSchema, r.server!, identity(server)));
    const written = new Set(coveredFields(HOST_FIELDS.Record));
    for (const f of RecordSchema.fields) assert.equal(isFieldSet(r, f), written.has(f.localName), `Record.${f.localName}: ${HOST_FIELDS.Record[f.localName as keyof typeof HOST_FIELDS.Record]}`);
  });
});
