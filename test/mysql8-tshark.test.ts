// MySQL 8 protocol features that MariaDB never negotiates (query attributes, caching_sha2_password,
// auth switch, optional result-set metadata, COM_RESET_CONNECTION, COM_CHANGE_USER), checked
// against tshark 4.0 on a synthesized capture: every conversation of the decoder's vector files
// mysql8.json and handshake.json (built from the MySQL protocol documentation by
// parsers-wasm/mysql/test/gen-vectors.mjs) becomes one TCP connection of a pcapng file; tshark's
// dissection (-T json) is the oracle, and our decoder reads the same file through the plugin host
// (as `wirescope decode` does).
//
// Where tshark 4.0 itself cannot decode, the test says so and checks the decoder by the
// documented bytes instead:
// - query attributes with non-string values (integers, NULL): tshark reads every value as a
//   length-encoded string and ignores the NULL bitmap, so it flags the packet malformed and
//   shows no statement;
// - resultset_metadata = NONE: tshark reads the metadata_follows byte ("Extra data") but ignores
//   it, dissecting the rows that follow as column definitions;
// - caching_sha2_password more-data packets (0x01 0x03 / 0x01 0x04 / the public key) are
//   "unknown/invalid response" to tshark, and the client's auth continuation packets are dissected
//   as commands (they have sequence ids above 0: only sequence-0 packets are commands here);
// - a connection whose handshake is not in the capture: tshark does not know that query
//   attributes were negotiated and shows no statement, nor a login whose greeting it missed.
// The compressed protocol's vectors (compression.json) are left out: tshark 4.0 dissects a
// deflated client packet as an unknown command or COM_SLEEP, fails on dynamic-Huffman server
// packets and does not know zstd at all; test/mysql-compress.test.ts compares a live zlib
// connection where tshark can follow it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { PcapngWriter } from "@wirescope/capture";
import { decodeCapture } from "./protocol-support/index.js";
import { REPO_ROOT, tempDir } from "./support/index.js";

const vectorDir = path.join(REPO_ROOT, "parsers-wasm/mysql/test/vectors");

interface VectorStep {
  clientHex?: string;
  serverHex?: string;
}
interface VectorJson {
  name: string;
  steps: VectorStep[];
  /** detect false: a conversation too short for detection without a port (left out here) */
  options?: { detect?: boolean };
}

/** MySQL command bytes by the decoder's operation names (those the vectors send). */
const COMMANDS: Record<number, string> = {
  1: "COM_QUIT",
  2: "COM_INIT_DB",
  3: "COM_QUERY",
  4: "COM_FIELD_LIST",
  14: "COM_PING",
  17: "COM_CHANGE_USER",
  22: "COM_STMT_PREPARE",
  23: "COM_STMT_EXECUTE",
  25: "COM_STMT_CLOSE",
  31: "COM_RESET_CONNECTION",
};

type Json = Record<string, unknown>;

/** One MySQL PDU as tshark dissected it, with its frame facts. */
interface Pdu {
  stream: number;
  frame: number;
  fromServer: boolean;
  malformed: boolean;
  m: Json;
}

function tsharkPdus(file: string): Pdu[] {
  const out = execFileSync("tshark", ["-r", file, "-d", "tcp.port==3306,mysql", "-Y", "mysql", "-T", "json", "--no-duplicate-keys"], {
    maxBuffer: 256 << 20,
    timeout: 120_000,
    stdio: ["ignore", "pipe", "ignore"],
  }).toString();
  const pdus: Pdu[] = [];
  for (const f of JSON.parse(out) as { _source: { layers: Json } }[]) {
    const l = f._source.layers;
    const tcp = l["tcp"] as Json;
    const frame = Number((l["frame"] as Json)["frame.number"]);
    const ms = ([] as Json[]).concat(l["mysql"] as Json | Json[]);
    for (const m of ms) pdus.push({ stream: Number(tcp["tcp.stream"]), frame, fromServer: tcp["tcp.srcport"] === "3306", malformed: "_ws.malformed" in l, m });
  }
  return pdus;
}

/** Values of a field anywhere below `o` (tshark nests them in subtrees and arrays). */
function field(o: unknown, name: string): string[] {
  const r: string[] = [];
  const walk = (x: unknown) => {
    if (Array.isArray(x)) x.forEach(walk);
    else if (x && typeof x === "object") {
      for (const [k, v] of Object.entries(x)) {
        if (k === name) r.push(...([] as unknown[]).concat(v).filter((s): s is string => typeof s === "string"));
        else walk(v);
      }
    }
  };
  walk(o);
  return r;
}

test("mysql 8 features: tshark 4.0 and our decoder agree on a synthesized capture", { timeout: 120_000 }, () => {
  const vectors: VectorJson[] = [
    ...(JSON.parse(fs.readFileSync(path.join(vectorDir, "mysql8.json"), "utf8")) as VectorJson[]),
    // caching_sha2_password and auth switch conversations of the handshake file
    ...(JSON.parse(fs.readFileSync(path.join(vectorDir, "handshake.json"), "utf8")) as VectorJson[]).filter((v) => /caching_sha2|auth switch/.test(v.name) && v.options?.detect !== false),
  ];
  assert.ok(vectors.length >= 12, `vectors: ${vectors.length}`);
  const file = path.join(tempDir("wirescope-mysql8-"), "mysql8.pcapng");
  const w = PcapngWriter.toFile(file);
  let ts = 1_700_000_000_000_000_000n;
  vectors.forEach((v, i) => {
    const c = w.openConnection({ address: "10.0.8.1", port: 41000 + i }, { address: "10.0.8.2", port: 3306 }, (ts += 1_000_000n), { comment: v.name });
    for (const s of v.steps) {
      const hex = s.clientHex ?? s.serverHex;
      assert.ok(hex !== undefined, `${v.name}: only data steps`);
      w.data(c, s.clientHex !== undefined ? 0 : 1, Buffer.from(hex, "hex"), (ts += 1_000_000n));
    }
    w.close(c, (ts += 1_000_000n));
  });
  w.end();

  const pdus = tsharkPdus(file);
  const { records, counters } = decodeCapture(file, { plugins: ["mysql"] });
  assert.equal(Object.keys(counters).filter((k) => k.startsWith("plugin_traps")).length, 0, JSON.stringify(counters));

  let queriesCompared = 0;
  let attrsCompared = 0;
  let tsharkCannot = 0;
  let errorsCompared = 0;
  let columnsCompared = 0;
  let prepCompared = 0;
  vectors.forEach((v, stream) => {
    const where = `stream ${stream} (${v.name})`;
    const mine = records.filter((r) => r.stream === stream);
    const theirs = pdus.filter((p) => p.stream === stream);
    // commands: client PDUs with sequence id 0
    const reqs = theirs.filter((p) => !p.fromServer && p.m["mysql.packet_number"] === "0" && field(p.m, "mysql.command").length > 0);
    const cmds = mine.filter((r) => r.operation !== "LOGIN");
    // without the handshake tshark does not know the capabilities (it shows attribute bytes as text)
    const greeted = theirs.some((p) => "mysql.server_greeting" in p.m);
    assert.deepEqual(
      cmds.map((r) => r.operation),
      reqs.map((p) => COMMANDS[Number(field(p.m, "mysql.command")[0])] ?? `command ${field(p.m, "mysql.command")[0]}`),
      `${where}: commands`,
    );
    reqs.forEach((p, i) => {
      const r = cmds[i]!;
      const text = r.attributes["db.query.text"];
      const q = field(p.m, "mysql.query");
      if (p.malformed || (r.operation === "COM_QUERY" && (!q[0] || !greeted))) {
        // tshark 4.0 could not dissect this request (see the header): the statement we record is
        // SQL text, never bytes of the attribute block
        tsharkCannot++;
        if (text !== undefined) assert.match(String(text), /^[\s(]*[A-Za-z]/, `${where} frame ${p.frame}: statement ${JSON.stringify(text)}`);
        return;
      }
      if (q.length) {
        assert.equal(text, q[0], `${where} frame ${p.frame}: query`);
        queriesCompared++;
      }
      const names = field(p.m, "mysql.query_attr_name").filter((n) => n.length > 0);
      if (field(p.m, "mysql.query_attrs_count").length) {
        assert.deepEqual(r.attributes["mysql.query_attributes"] ?? [], names, `${where} frame ${p.frame}: attribute names`);
        attrsCompared++;
      }
    });
    // errors, in order
    const theirErrors = theirs.filter((p) => p.fromServer).flatMap((p) => field(p.m, "mysql.error_code").map(Number));
    assert.deepEqual(mine.filter((r) => r.error).map((r) => r.status), theirErrors, `${where}: error codes`);
    errorsCompared += theirErrors.length;
    // column counts of result sets, in order (tshark's "Number of fields")
    const theirCols = theirs.filter((p) => p.fromServer && !("mysql.response_code" in p.m)).flatMap((p) => field(p.m, "mysql.num_fields").map(Number));
    const myCols = mine.filter((r) => r.attributes["mysql.response"] === "RESULT_SET").map((r) => r.attributes["mysql.columns"]);
    assert.deepEqual(myCols, theirCols, `${where}: column counts`);
    columnsCompared += theirCols.length;
    // STMT_PREPARE_OK: statement id, parameters, columns
    const theirPrep = theirs.filter((p) => p.fromServer && p.m["mysql.response_code"] === "0x00" && "mysql.stmt_id" in p.m);
    const myPrep = mine.filter((r) => r.attributes["mysql.response"] === "STMT_PREPARE_OK");
    assert.deepEqual(
      myPrep.map((r) => [r.attributes["mysql.stmt_id"], r.attributes["mysql.params"], r.attributes["mysql.columns"]]),
      theirPrep.map((p) => [Number(p.m["mysql.stmt_id"]), Number(p.m["mysql.num_params"]), Number(p.m["mysql.num_fields"])]),
      `${where}: prepared statements`,
    );
    prepCompared += theirPrep.length;
    // the login: user, and the plugin an auth switch asked for
    const login = mine.find((r) => r.operation === "LOGIN");
    const theirUser = theirs.flatMap((p) => field(p.m["mysql.login_request"], "mysql.user"));
    if (login && !greeted) {
      // tshark 4.0 does not dissect a login whose greeting it did not see
      tsharkCannot++;
    } else if (login) {
      assert.equal(login.attributes["db.user"], theirUser[0], `${where}: user`);
      // a real AuthSwitchRequest starts with 0xfe; tshark 4.0 also names caching_sha2's 0x01 0x03 one
      const sw = theirs.filter((p) => p.fromServer && p.m["mysql.response_code"] === "0xfe").flatMap((p) => field(p.m, "mysql.auth_switch_request.name"));
      const change = mine.find((r) => r.operation === "COM_CHANGE_USER");
      if (sw.length && !change) assert.equal(login.attributes["mysql.auth_plugin"], sw.at(-1), `${where}: auth switch plugin`);
      assert.equal(login.attributes["mysql.auth_switch"] === true, sw.length > 0 && !change, `${where}: auth switch seen`);
    } else {
      assert.equal(theirUser.length, 0, `${where}: tshark saw a login we did not`);
    }
  });
  // the comparison covered every feature (a change that made tshark or us see nothing fails here)
  assert.ok(queriesCompared >= 12, `queries compared: ${queriesCompared}`);
  assert.ok(attrsCompared >= 6, `attribute lists compared: ${attrsCompared}`);
  assert.ok(errorsCompared >= 3, `errors compared: ${errorsCompared}`);
  assert.ok(columnsCompared >= 8, `column counts compared: ${columnsCompared}`);
  assert.ok(prepCompared >= 5, `prepared statements compared: ${prepCompared}`);
  assert.ok(tsharkCannot >= 2 && tsharkCannot <= 12, `requests tshark 4.0 cannot dissect: ${tsharkCannot}`);
  console.log(`compared with tshark: ${queriesCompared} statements, ${attrsCompared} attribute lists, ${errorsCompared} errors, ${columnsCompared} column counts, ${prepCompared} prepares; ${tsharkCannot} requests tshark 4.0 cannot dissect`);
});
