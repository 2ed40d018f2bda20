#!/usr/bin/env node
// Writes test/vectors/*.json: Kafka requests and responses built byte by byte from the protocol
// guide and the message schemas (https://kafka.apache.org/protocol.html, apache/kafka
// clients/src/main/resources/common/message/*.json), in classic and flexible versions, with the
// records we expect written out by hand. Run after editing: node parsers-wasm/kafka/test/gen-vectors.mjs
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { vectorEntry as vec } from "../../dist/test-support/vector-json.js";

const out = path.join(path.dirname(fileURLToPath(import.meta.url)), "vectors");

// The builders live in wire.ts (shared with the benchmark traffic); this script uses the
// compiled copy, so build first (node scripts/build.mjs --only=ts).
import { W, request, response, recordBatch, legacyMessage } from "../../dist/kafka/test/wire.js";
const ID_ORDERS = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
// never taught by any vector: the map of topic ids is shared by every connection of an instance
const ID_UNSEEN = "5e5e5e5e0000400080001234567890ab";
const ID_EVENTS = "a1b2c3d4e5f647188899aabbccddeeff";
const c = (b) => ["c", b];
const s = (b) => ["s", b];
const attrs = (key, version, corr, extra = {}) => ({ "messaging.system": "kafka", "kafka.api_key": key, "kafka.api_version": version, "kafka.correlation_id": corr, ...extra });

// ---- flexible versions ----
const apiVersionsV3Req = request(18, 3, 1, "cli-1", true, new W(true).str("wirescope-test").str("1.0").tags().buf());
// ApiVersions responses always use response header v0 (no tagged fields), body flexible from v3
const apiVersionsV3Resp = response(1, false, new W(true).i16(0).arr([[0, 0, 9], [1, 0, 13], [18, 0, 3]], (w, [k, a, b]) => w.i16(k).i16(a).i16(b).tags()).i32(0).tags(1).buf());

const metadataV12Req = request(3, 12, 2, "cli-1", true, new W(true).arr([ID_ORDERS], (w) => w.uuid("00000000000000000000000000000000").str("orders").tags()).i8(1).i8(0).tags().buf());
const metadataV12Resp = response(2, true,
  new W(true).i32(0)
    .arr([0], (w) => w.i32(0).str("broker-0").i32(9092).str(null).tags())
    .str("cluster-x").i32(0)
    .arr(["orders"], (w, t) => w.i16(0).str(t).uuid(ID_ORDERS).i8(0)
      .arr([0, 1], (w, p) => w.i16(0).i32(p).i32(0).i32(5).arr([0], (w, n) => w.i32(n)).arr([0], (w, n) => w.i32(n)).arr([], () => {}).tags())
      .i32(-2147483648).tags())
    .tags().buf());

const fetchV13Req = request(1, 13, 3, "consumer-1", true,
  new W(true).i32(-1).i32(500).i32(1).i32(52428800).i8(0).i32(0).i32(-1)
    .arr([ID_ORDERS], (w, id) => w.uuid(id).arr([0], (w, p) => w.i32(p).i32(5).i64(42).i32(-1).i64(-1).i32(1048576).tags()).tags())
    .arr([], () => {}).str("").tags().buf());
const fetchV13Resp = response(3, true,
  new W(true).i32(0).i16(0).i32(77)
    .arr([ID_ORDERS], (w, id) => w.uuid(id).arr([0], (w, p) => w.i32(p).i16(0).i64(100).i64(100).i64(0).arr(null, () => {}).i32(-1).bytes(Buffer.alloc(70, 0x11)).tags()).tags())
    .tags().buf());

const fetchV13UnseenReq = request(1, 13, 3, "consumer-1", true,
  new W(true).i32(-1).i32(500).i32(1).i32(52428800).i8(0).i32(0).i32(-1)
    .arr([ID_UNSEEN], (w, id) => w.uuid(id).arr([0], (w, p) => w.i32(p).i32(5).i64(42).i32(-1).i64(-1).i32(1048576).tags()).tags())
    .arr([], () => {}).str("").tags().buf());
// UNKNOWN_TOPIC_ID (100) for the partition
const fetchV13UnseenResp = response(3, true,
  new W(true).i32(0).i16(0).i32(77)
    .arr([ID_UNSEEN], (w, id) => w.uuid(id).arr([0], (w, p) => w.i32(p).i16(100).i64(-1).i64(-1).i64(-1).arr(null, () => {}).i32(-1).bytes(null).tags()).tags())
    .tags().buf());

// Fetch v17: no replica_id (v15+; replica_state is a tagged field), replica_directory_id tagged
// in each partition (v17), diverging_epoch/current_leader/snapshot_id tagged in response
// partitions, node_endpoints tagged at the end of the response (v16+); forgotten topics by id.
const metadataV12EventsReq = request(3, 12, 40, "cli-2", true, new W(true).arr([ID_EVENTS], (w) => w.uuid("00000000000000000000000000000000").str("events").tags()).i8(0).i8(0).tags().buf());
const metadataV12EventsResp = response(40, true,
  new W(true).i32(0)
    .arr([0], (w) => w.i32(0).str("broker-0").i32(9092).str(null).tags())
    .str("cluster-x").i32(0)
    .arr(["events"], (w, t) => w.i16(0).str(t).uuid(ID_EVENTS).i8(0)
      .arr([0], (w, p) => w.i16(0).i32(p).i32(0).i32(1).arr([0], (w, n) => w.i32(n)).arr([0], (w, n) => w.i32(n)).arr([], () => {}).tags())
      .i32(-2147483648).tags())
    .tags().buf());
const fetchV17Req = request(1, 17, 41, "consumer-2", true,
  new W(true).i32(500).i32(1).i32(52428800).i8(1).i32(0).i32(-1)
    .arr([ID_EVENTS], (w, id) => w.uuid(id).arr([0, 1], (w, p) => w.i32(p).i32(0).i64(7).i32(-1).i64(-1).i32(1048576).tags(1)).tags())
    .arr([ID_UNSEEN], (w, id) => w.uuid(id).arr([3], (w, p) => w.i32(p)).tags())
    .str("rack-a").tags(2).buf());
const fetchV17Resp = response(41, true,
  new W(true).i32(0).i16(0).i32(12)
    .arr([ID_EVENTS], (w, id) => w.uuid(id)
      .arr([[0, 0], [1, 6]], (w, [p, e]) => w.i32(p).i16(e).i64(9).i64(9).i64(0).arr([], () => {}).i32(-1).bytes(p ? null : Buffer.alloc(61, 0x33)).tags(3)).tags())
    .tags(1).buf());
// Produce v11: current_leader tagged in each partition response, node_endpoints tagged at the end
const produceV11Req = request(0, 11, 42, "producer-2", true,
  new W(true).str("tx-1").i16(-1).i32(30000)
    .arr(["events"], (w, t) => w.str(t).arr([0], (w, p) => w.i32(p).bytes(Buffer.alloc(80, 0x44)).tags()).tags()).tags().buf());
const produceV11Resp = response(42, true,
  new W(true).arr(["events"], (w, t) => w.str(t)
    .arr([0], (w, p) => w.i32(p).i16(0).i64(12).i64(-1).i64(0).arr([], () => {}).str(null).tags(1)).tags())
    .i32(0).tags(1).buf());
// Produce v10 with a record error list and an error message (NOT_LEADER_OR_FOLLOWER, 6)
const produceV10Req = request(0, 10, 43, "producer-2", true,
  new W(true).str(null).i16(1).i32(30000)
    .arr(["events"], (w, t) => w.str(t).arr([1], (w, p) => w.i32(p).bytes(Buffer.alloc(80, 0x45)).tags()).tags()).tags().buf());
const produceV10Resp = response(43, true,
  new W(true).arr(["events"], (w, t) => w.str(t)
    .arr([1], (w, p) => w.i32(p).i16(6).i64(-1).i64(-1).i64(-1).arr([0], (w, b) => w.i32(b).str("batch refused").tags()).str("not the leader").tags(1)).tags())
    .i32(0).tags(1).buf());

const fetchV12Req = request(1, 12, 15603, "consumer-console-consumer-8919-1", true,
  new W(true).i32(-1).i32(500).i32(1).i32(52428800).i8(0).i32(0).i32(0)
    .arr(["zqy-test"], (w, t) => w.str(t).arr([0, 1], (w, p) => w.i32(p).i32(0).i64(10).i32(-1).i64(-1).i32(1048576).tags()).tags())
    .arr([], () => {}).str("").tags().buf());
const fetchV12RespErr = response(15603, true,
  new W(true).i32(0).i16(0).i32(12)
    .arr(["zqy-test"], (w, t) => w.str(t)
      .arr([[0, 0], [1, 1]], (w, [p, e]) => w.i32(p).i16(e).i64(10).i64(10).i64(0).arr([], () => {}).i32(-1).bytes(null).tags()).tags())
    .tags().buf());

const produceV9Req = request(0, 9, 4, "producer-1", true,
  new W(true).str(null).i16(-1).i32(30000)
    .arr(["orders", "audit"], (w, t) => w.str(t).arr([0], (w, p) => w.i32(p).bytes(Buffer.alloc(90, 0x22)).tags()).tags()).tags().buf());
const produceV9Resp = response(4, true,
  new W(true).arr(["orders", "audit"], (w, t) => w.str(t).arr([0], (w, p) => w.i32(p).i16(t === "audit" ? 87 : 0).i64(5).i64(-1).i64(0).arr([], () => {}).str(null).tags()).tags()).i32(0).tags().buf());

const listOffsetsV7Req = request(2, 7, 5, "consumer-1", true,
  new W(true).i32(-1).i8(0).arr(["orders"], (w, t) => w.str(t).arr([0, 1], (w, p) => w.i32(p).i32(-1).i64(-2).tags()).tags()).tags().buf());
const listOffsetsV7Resp = response(5, true,
  new W(true).i32(0).arr(["orders"], (w, t) => w.str(t).arr([0, 1], (w, p) => w.i32(p).i16(0).i64(-1).i64(0).i32(5).tags()).tags()).tags().buf());

const findCoordV4Req = request(10, 4, 6, "consumer-1", true, new W(true).i8(0).arr(["billing"], (w, k) => w.str(k)).tags().buf());
const findCoordV4Resp = response(6, true, new W(true).i32(0).arr(["billing"], (w, k) => w.str(k).i32(-1).str("").i32(-1).i16(15).str("The coordinator is not available.").tags()).tags().buf());

const joinV7Req = request(11, 7, 7, "consumer-1", true,
  new W(true).str("billing").i32(45000).i32(300000).str("").str(null).str("consumer").arr(["range"], (w, n) => w.str(n).bytes(Buffer.from("0001000000010006orders00000000", "hex")).tags()).str(null).tags().buf());
const joinV7Resp = response(7, true,
  new W(true).i32(0).i16(0).i32(1).str("consumer").str("range").str("m-1").str("m-1").arr(["m-1"], (w, m) => w.str(m).str(null).bytes(Buffer.from("0001", "hex")).tags()).tags().buf());
const heartbeatV4Req = request(12, 4, 8, "consumer-1", true, new W(true).str("billing").i32(1).str("m-1").str(null).tags().buf());
const heartbeatV4Resp = response(8, true, new W(true).i32(0).i16(27).tags().buf());
const leaveV4Req = request(13, 4, 9, "consumer-1", true, new W(true).str("billing").arr(["m-1"], (w, m) => w.str(m).str(null).tags()).tags().buf());
const leaveV4Resp = response(9, true, new W(true).i32(0).i16(0).arr(["m-1"], (w, m) => w.str(m).str(null).i16(25).tags()).tags().buf());
const syncV5Req = request(14, 5, 10, "consumer-1", true, new W(true).str("billing").i32(1).str("m-1").str(null).str("consumer").str("range").arr([], () => {}).tags().buf());
const syncV5Resp = response(10, true, new W(true).i32(0).i16(0).str("consumer").str("range").bytes(Buffer.from("0001", "hex")).tags().buf());

const offsetCommitV8Req = request(8, 8, 11, "consumer-1", true,
  new W(true).str("billing").i32(1).str("m-1").str(null).arr(["orders"], (w, t) => w.str(t).arr([0], (w, p) => w.i32(p).i64(100).i32(-1).str("").tags()).tags()).tags().buf());
const offsetCommitV8Resp = response(11, true, new W(true).i32(0).arr(["orders"], (w, t) => w.str(t).arr([0], (w, p) => w.i32(p).i16(0).tags()).tags()).tags().buf());
const offsetFetchV8Req = request(9, 8, 12, "consumer-1", true,
  new W(true).arr(["billing"], (w, g) => w.str(g).arr(["orders"], (w, t) => w.str(t).arr([0, 1], (w, p) => w.i32(p)).tags()).tags()).i8(0).tags().buf());
const offsetFetchV8Resp = response(12, true,
  new W(true).i32(0).arr(["billing"], (w, g) => w.str(g).arr(["orders"], (w, t) => w.str(t).arr([0, 1], (w, p) => w.i32(p).i64(100).i32(-1).str("").i16(0).tags()).tags()).i16(16).tags()).tags().buf());

// ---- classic versions (what kafkajs and older clients send) ----
const produceV3Acks0 = request(0, 3, 20, "producer-1", false,
  new W(false).str(null).i16(0).i32(30000).arr(["events"], (w, t) => w.str(t).arr([0], (w, p) => w.i32(p).bytes(Buffer.alloc(61, 0x33)))).buf());
const metadataV1Req = request(3, 1, 21, "producer-1", false, new W(false).arr(null, () => {}).buf()); // null = all topics
const metadataV1Resp = response(21, false,
  new W(false).arr([0], (w) => w.i32(0).str("localhost").i32(9092).str(null)).i32(0)
    .arr([["events", 0], ["private", 29]], (w, [t, e]) => w.i16(e).str(t).i8(0).arr(e ? [] : [0], (w, p) => w.i16(0).i32(p).i32(0).arr([0], (w, n) => w.i32(n)).arr([0], (w, n) => w.i32(n)))).buf());
const apiVersionsV4Unsupported = request(18, 4, 22, "new-client", true, new W(true).str("x").str("9").tags().buf());
// the broker answers an unsupported ApiVersions version in the v0 layout, with error 35
const apiVersionsV0Err = response(22, false, new W(false).i16(35).arr([[18, 0, 3]], (w, [k, a, b]) => w.i16(k).i16(a).i16(b)).buf());
const describeGroupsV5 = request(15, 5, 23, "admin-1", true, new W(true).arr(["billing"], (w, g) => w.str(g)).i8(0).tags().buf());
const describeGroupsV5Resp = response(23, true, new W(true).i32(0).arr([], () => {}).tags().buf());
const controlledShutdownV0 = request(7, 0, 24, undefined, false, new W(false).i32(3).buf()); // request header v0: no client id
const controlledShutdownV0Resp = response(24, false, new W(false).i16(0).arr([], () => {}).buf());

const flexible = [
  vec("ApiVersions v3: flexible request (header v2), response header v0 with a flexible body",
    [c(apiVersionsV3Req), s(apiVersionsV3Resp)],
    [{ operation: "ApiVersions", resource: "", status: 0, error: false, startNs: "1000", durationNs: "1000", attributes: attrs(18, 3, 1, { "messaging.client.id": "cli-1", "kafka.error_code": 0, "kafka.api_versions_count": 3 }) }]),
  vec("Metadata v12 teaches topic ids; Fetch v13 names its topic by id",
    [c(metadataV12Req), s(metadataV12Resp), c(fetchV13Req), s(fetchV13Resp)],
    [
      { operation: "Metadata", resource: "orders", status: 0, attributes: attrs(3, 12, 2, { "kafka.topics": ["orders"], "messaging.destination.name": "orders" }) },
      { operation: "Fetch", resource: "orders", status: 0, attributes: attrs(1, 13, 3, { "kafka.topics": ["orders"], "kafka.topic_ids": null, "messaging.client.id": "consumer-1" }) },
    ]),
  vec("Fetch v13 for a topic id no Metadata named: the id is reported, never a guessed name (UNKNOWN_TOPIC_ID)",
    [c(fetchV13UnseenReq), s(fetchV13UnseenResp)],
    [{ operation: "Fetch", resource: "", status: 100, error: true, attributes: attrs(1, 13, 3, { "kafka.topics": null, "kafka.topic_ids": [ID_UNSEEN] }) }]),
  vec("Fetch v17 (no replica_id, tagged fields everywhere) names its topic from Metadata v12; a forgotten topic is not a topic of the fetch",
    [c(metadataV12EventsReq), s(metadataV12EventsResp), c(fetchV17Req), s(fetchV17Resp)],
    [
      { operation: "Metadata", resource: "events", status: 0, attributes: attrs(3, 12, 40) },
      { operation: "Fetch", resource: "events", status: 6, error: true, attributes: attrs(1, 17, 41, { "kafka.topics": ["events"], "kafka.topic_ids": null, "messaging.client.id": "consumer-2", "kafka.error_code": 6 }) },
    ]),
  vec("Produce v11 (transactional) and Produce v10 with record errors: tagged current_leader and node_endpoints skipped",
    [c(produceV11Req), s(produceV11Resp), c(produceV10Req), s(produceV10Resp)],
    [
      { operation: "Produce", resource: "events", status: 0, error: false, attributes: attrs(0, 11, 42, { "messaging.destination.name": "events" }) },
      { operation: "Produce", resource: "events", status: 6, error: true, attributes: attrs(0, 10, 43, { "kafka.error_code": 6 }) },
    ]),
  vec("Fetch v12 with a partition error (OFFSET_OUT_OF_RANGE)",
    [c(fetchV12Req), s(fetchV12RespErr)],
    [{ operation: "Fetch", resource: "zqy-test", status: 1, error: true, attributes: attrs(1, 12, 15603, { "kafka.error_code": 1, "messaging.client.id": "consumer-console-consumer-8919-1" }) }]),
  vec("Produce v9 to two topics; the second partition fails (87 INVALID_RECORD)",
    [c(produceV9Req), s(produceV9Resp)],
    [{ operation: "Produce", resource: "orders,audit", status: 87, error: true, attributes: attrs(0, 9, 4, { "kafka.topics": ["orders", "audit"], "messaging.destination.name": null }) }]),
  vec("ListOffsets v7", [c(listOffsetsV7Req), s(listOffsetsV7Resp)],
    [{ operation: "ListOffsets", resource: "orders", status: 0, attributes: attrs(2, 7, 5) }]),
  vec("FindCoordinator v4 (batched keys) with COORDINATOR_NOT_AVAILABLE", [c(findCoordV4Req), s(findCoordV4Resp)],
    [{ operation: "FindCoordinator", resource: "", status: 15, error: true, attributes: attrs(10, 4, 6, { "messaging.consumer.group.name": "billing" }) }]),
  vec("group membership: JoinGroup v7, SyncGroup v5, Heartbeat v4 (REBALANCE_IN_PROGRESS), LeaveGroup v4 (member error)",
    [c(joinV7Req), s(joinV7Resp), c(syncV5Req), s(syncV5Resp), c(heartbeatV4Req), s(heartbeatV4Resp), c(leaveV4Req), s(leaveV4Resp)],
    [
      { operation: "JoinGroup", status: 0, attributes: attrs(11, 7, 7, { "messaging.consumer.group.name": "billing" }) },
      { operation: "SyncGroup", status: 0, attributes: attrs(14, 5, 10) },
      { operation: "Heartbeat", status: 27, error: true, attributes: attrs(12, 4, 8) },
      { operation: "LeaveGroup", status: 25, error: true, attributes: attrs(13, 4, 9) },
    ]),
  vec("OffsetCommit v8 and OffsetFetch v8 (groups array, group-level error)",
    [c(offsetCommitV8Req), s(offsetCommitV8Resp), c(offsetFetchV8Req), s(offsetFetchV8Resp)],
    [
      { operation: "OffsetCommit", resource: "orders", status: 0, attributes: attrs(8, 8, 11, { "messaging.consumer.group.name": "billing" }) },
      { operation: "OffsetFetch", resource: "orders", status: 16, error: true, attributes: attrs(9, 8, 12, { "messaging.consumer.group.name": "billing" }) },
    ]),
];

const classic = [
  vec("Produce v3 with acks=0: no response comes, the record is written at once",
    [c(produceV3Acks0), c(metadataV1Req), s(metadataV1Resp)],
    [
      { operation: "Produce", resource: "events", status: null, incomplete: undefined, attributes: attrs(0, 3, 20, { "kafka.no_response": true }) },
      { operation: "Metadata", resource: "events,private", status: 29, error: true, attributes: attrs(3, 1, 21, { "kafka.topics": ["events", "private"] }) },
    ]),
  vec("ApiVersions in a version the broker does not support: v0 layout with UNSUPPORTED_VERSION",
    [c(apiVersionsV4Unsupported), s(apiVersionsV0Err)],
    [{ operation: "ApiVersions", status: 35, error: true, attributes: attrs(18, 4, 22, { "kafka.api_versions_count": 1 }) }]),
  vec("an API without a body decoder still gets its name, version and client id",
    [c(describeGroupsV5), s(describeGroupsV5Resp)],
    [{ operation: "DescribeGroups", status: null, incomplete: undefined, attributes: attrs(15, 5, 23, { "messaging.client.id": "admin-1", "kafka.body_decoded": false }) }]),
  vec("request header v0 (ControlledShutdown v0) has no client id",
    [c(controlledShutdownV0), s(controlledShutdownV0Resp)],
    [{ operation: "ControlledShutdown", attributes: attrs(7, 0, 24, { "messaging.client.id": null }) }],
    { detect: false }),
  vec("pipelined requests answered in order; a request skipped by the broker is incomplete; the last has no answer at close",
    [c(Buffer.concat([listOffsetsV7Req, findCoordV4Req, heartbeatV4Req])), s(Buffer.concat([listOffsetsV7Resp, heartbeatV4Resp]))],
    [
      { operation: "ListOffsets", status: 0, attributes: attrs(2, 7, 5) },
      { operation: "FindCoordinator", status: null, incomplete: true, attributes: attrs(10, 4, 6) },
      { operation: "Heartbeat", status: 27, attributes: attrs(12, 4, 8) },
    ]),
  vec("a gap in a response: the chunk after it is checked against waiting correlation ids",
    [c(listOffsetsV7Req), s(listOffsetsV7Resp.subarray(0, 10)), ["gap", ["server", listOffsetsV7Resp.length - 10]], c(heartbeatV4Req), s(heartbeatV4Resp)],
    [
      { operation: "ListOffsets", status: null, incomplete: true, attributes: attrs(2, 7, 5) },
      { operation: "Heartbeat", status: 27, attributes: attrs(12, 4, 8) },
    ],
    // the response cut by the gap is a message dropped (its rest was the gap: no bytes passed over)
    { modes: ["whole", "split", "bytewise", "truncated"], counters: { drops: 1 } }),
  vec("garbage and lost bytes are counted: a response to no request, a bad size, a chunk that starts no request",
    [
      c(heartbeatV4Req), s(heartbeatV4Resp),
      s(Buffer.from("00000008000003e700000000", "hex")), // correlation id 999: nothing waits for it
      c(Buffer.from("ffffffff0001020304050607", "hex")), // size -1 where a request must start
      ["gap", ["client", 0]],
      c(Buffer.from("hello!!")), // after the gap: not a request header, passed over
      c(listOffsetsV7Req), s(listOffsetsV7Resp),
    ],
    [
      { operation: "Heartbeat", status: 27, attributes: attrs(12, 4, 8) },
      { operation: "ListOffsets", status: 0, attributes: attrs(2, 7, 5) },
    ],
    // one message dropped (the unanswerable response), one framing error (its 12 bytes cleared),
    // 7 bytes passed over after the gap
    { modes: ["whole", "truncated", "gapped"], counters: { errors: 1, drops: 1, bytes_dropped: 19 } }),
];

// a Fetch response far larger than what the decoder buffers (256 KiB): its head is decoded,
// its record batches are counted as they stream by (60 zstd batches of 10 KiB, 7 records each),
// and the next response still pairs. Partition 1's error (after 600 KiB, past the prefix) is read
// by the walk as it streams by.
const bigFetchBatches = Buffer.concat(Array.from({ length: 60 }, (_, k) => recordBatch(7, 4, { payload: 10 * 1024 - 61, baseOffset: 7 * k })));
const bigFetchResp = response(15603, true,
  new W(true).i32(0).i16(0).i32(12)
    .arr(["zqy-test"], (w, t) => w.str(t)
      .arr([[0, 0], [1, 3]], (w, [p, e]) => w.i32(p).i16(e).i64(10).i64(10).i64(0).arr([], () => {}).i32(-1).bytes(p ? null : bigFetchBatches).tags()).tags())
    .tags().buf());
classic.push(vec("a 600 KiB Fetch response: head decoded, every batch counted and the error read past the buffered prefix, the next response pairs",
  [c(fetchV12Req), s(bigFetchResp.subarray(0, 70000)), s(bigFetchResp.subarray(70000, 400000)), s(bigFetchResp.subarray(400000)), c(heartbeatV4Req), s(heartbeatV4Resp)],
  [
    { operation: "Fetch", resource: "zqy-test", status: 3, error: true, startNs: "1000", durationNs: "3000", respBytes: bigFetchResp.length, attributes: attrs(1, 12, 15603, { "kafka.records_counted": null, "messaging.batch.message_count": 420, "kafka.compression": "zstd" }) },
    { operation: "Heartbeat", status: 27, attributes: attrs(12, 4, 8) },
  ],
  { modes: ["whole"] }));

const initPidV4Req = request(22, 4, 30, "txn-producer", true, new W(true).str("txn-1").i32(60000).i64(-1).i16(-1).tags().buf());
const initPidV4Resp = response(30, true, new W(true).i32(0).i16(53).i64(-1).i16(-1).tags().buf());
const createTopicsV5Req = request(19, 5, 31, "admin-1", true,
  new W(true).arr([["orders", 3], ["audit", 1]], (w, [t, n]) => w.str(t).i32(n).i16(1).arr([], () => {}).arr([["retention.ms", "60000"]], (w, [k, v]) => w.str(k).str(v).tags()).tags()).i32(30000).i8(0).tags().buf());
const createTopicsV5Resp = response(31, true,
  new W(true).i32(0).arr([["orders", 0], ["audit", 36]], (w, [t, e]) => w.str(t).i16(e).str(e ? "Topic 'audit' already exists." : null).i32(3).i16(1)
    .arr(e ? null : [["retention.ms", "60000"]], (w, [k, v]) => w.str(k).str(v).i8(0).i8(1).i8(0).tags()).tags()).tags().buf());
const deleteTopicsV6Req = request(20, 6, 32, "admin-1", true, new W(true).arr(["orders"], (w, t) => w.str(t).uuid("00000000000000000000000000000000").tags()).i32(30000).tags().buf());
const deleteTopicsV6Resp = response(32, true, new W(true).i32(0).arr(["orders"], (w, t) => w.str(t).uuid(ID_ORDERS).i16(0).str(null).tags()).tags().buf());
const metadataV0Req = request(3, 0, 33, "old-client", false, new W(false).arr(["logs"], (w, t) => w.str(t)).buf());
const metadataV0Resp = response(33, false, new W(false).arr([0], (w) => w.i32(0).str("localhost").i32(9092)).arr(["logs"], (w, t) => w.i16(3).str(t).arr([], () => {})).buf());
classic.push(
  vec("InitProducerId v4 (flexible) refused with TRANSACTIONAL_ID_AUTHORIZATION_FAILED (53)", [c(initPidV4Req), s(initPidV4Resp)],
    [{ operation: "InitProducerId", status: 53, error: true, attributes: attrs(22, 4, 30) }]),
  vec("CreateTopics v5 with configs; one topic already exists (36)", [c(createTopicsV5Req), s(createTopicsV5Resp)],
    [{ operation: "CreateTopics", resource: "orders,audit", status: 36, error: true, attributes: attrs(19, 5, 31, { "kafka.topics": ["orders", "audit"] }) }]),
  vec("DeleteTopics v6", [c(deleteTopicsV6Req), s(deleteTopicsV6Resp)],
    [{ operation: "DeleteTopics", resource: "orders", status: 0, attributes: attrs(20, 6, 32) }]),
  vec("Metadata v0 for an unknown topic (UNKNOWN_TOPIC_OR_PARTITION)", [c(metadataV0Req), s(metadataV0Resp)],
    [{ operation: "Metadata", resource: "logs", status: 3, error: true, attributes: attrs(3, 0, 33, { "messaging.client.id": "old-client" }) }]),
);

// Non-ASCII client id (over 127 UTF-8 bytes: a two-byte field length) and topic: decoded into
// AssemblyScript strings, so written through the record writer's UTF-16 -> UTF-8 path. That
// path once set the output length from the byte count as if it were an end address, so every
// later write landed at low absolute addresses and corrupted the instance for the connections
// after it (fuzzer traps in conn_new). Fails before the fix with no records.
const wideClient = "prodücer-ünïcode-日本-" + "é".repeat(60);
const metadataV0WideReq = request(3, 0, 34, wideClient, false, new W(false).arr(["zählung-ü"], (w, t) => w.str(t)).buf());
const metadataV0WideResp = response(34, false, new W(false).arr([0], (w) => w.i32(0).str("localhost").i32(9092)).arr(["zählung-ü"], (w, t) => w.i16(3).str(t).arr([], () => {})).buf());
classic.push(
  vec("non-ASCII client id and topic are written as UTF-8 (long client id: two-byte length)", [c(metadataV0WideReq), s(metadataV0WideResp), c(metadataV0Req), s(metadataV0Resp)],
    [
      { operation: "Metadata", resource: "zählung-ü", status: 3, error: true, attributes: attrs(3, 0, 34, { "messaging.client.id": wideClient }) },
      { operation: "Metadata", resource: "logs", status: 3, error: true, attributes: attrs(3, 0, 33, { "messaging.client.id": "old-client" }) },
    ],
    // the detector accepts printable ASCII client ids only (sniff.ts): the plugin is forced here
    { detect: false }),
);

fs.mkdirSync(out, { recursive: true });
const resync = [
  vec("resynchronises after any loss, and from any starting byte: a long-lived client connection",
    [c(produceV9Req), s(produceV9Resp), c(heartbeatV4Req), s(heartbeatV4Resp), c(offsetCommitV8Req), s(offsetCommitV8Resp), c(apiVersionsV3Req), s(apiVersionsV3Resp)],
    [
      { operation: "Produce", resource: "orders,audit", status: 87 },
      { operation: "Heartbeat", status: 27 },
      { operation: "OffsetCommit", resource: "orders", status: 0, startNs: "5000", durationNs: "1000", attributes: attrs(8, 8, 11) },
      { operation: "ApiVersions", resource: "", status: 0, startNs: "7000", durationNs: "1000", attributes: attrs(18, 3, 1) },
    ],
    { resync: { steps: 4, tail: 2 } }),
];

// ---- record batches: counts and codecs from the batch headers (api/records.ts) ----
// Produce v9 (flexible): partition 0 holds a gzip batch of 5 and a zstd batch of 3, partition 1
// an uncompressed batch of 2 → 10 records in 3 batches.
const produceBatchesReq = request(0, 9, 50, "rdkafka", true,
  new W(true).str(null).i16(-1).i32(30000)
    .arr(["orders"], (w, t) => w.str(t).arr([[0, Buffer.concat([recordBatch(5, 1), recordBatch(3, 4)])], [1, recordBatch(2, 0)]], (w, [p, b]) => w.i32(p).bytes(b).tags()).tags())
    .tags().buf());
const produceBatchesResp = response(50, true,
  new W(true).arr(["orders"], (w, t) => w.str(t).arr([0, 1], (w, p) => w.i32(p).i16(0).i64(0).i64(-1).i64(0).arr([], () => {}).str(null).tags()).tags()).i32(0).tags().buf());
// Fetch v11: an lz4 batch of 4, a transaction marker (control batch: not a message) and the
// partial batch a broker may end a response with (not counted, as clients drop it)
const fetchV11Req = request(1, 11, 51, "rdkafka", false,
  new W(false).i32(-1).i32(500).i32(1).i32(52428800).i8(0).i32(0).i32(-1)
    .arr(["orders"], (w, t) => w.str(t).arr([0], (w, p) => w.i32(p).i32(-1).i64(0).i64(-1).i32(1048576))).arr([], () => {}).str("").buf());
const fetchBatches = Buffer.concat([recordBatch(4, 3, { payload: 40 }), recordBatch(1, 0, { control: true, baseOffset: 4 }), recordBatch(6, 4, { baseOffset: 5 }).subarray(0, 50)]);
const fetchV11Resp = response(51, false,
  new W(false).i32(0).i16(0).i32(0)
    .arr(["orders"], (w, t) => w.str(t).arr([0], (w, p) => w.i32(p).i16(0).i64(11).i64(11).i64(0).arr(null, () => {}).i32(-1).bytes(fetchBatches))).buf());
// Produce v2 with a legacy message set (magic 1): two uncompressed messages
const produceV2Req = request(0, 2, 52, "old-producer", false,
  new W(false).i16(1).i32(30000)
    .arr(["logs"], (w, t) => w.str(t).arr([0], (w, p) => w.i32(p).bytes(Buffer.concat([legacyMessage(0, Buffer.from("a")), legacyMessage(0, Buffer.from("b"), 1)])))).buf());
const produceV2Resp = response(52, false, new W(false).arr(["logs"], (w, t) => w.str(t).arr([0], (w, p) => w.i32(p).i16(0).i64(0).i64(-1))).i32(0).buf());
// Fetch v3 with a gzip wrapper message: how many messages it wraps is only known after
// decompressing, so the field is left uncounted
const fetchV3Req = request(1, 3, 53, "old-consumer", false,
  new W(false).i32(-1).i32(500).i32(1).i32(1048576).arr(["logs"], (w, t) => w.str(t).arr([0], (w, p) => w.i32(p).i64(0).i32(1048576))).buf());
const fetchV3Resp = response(53, false,
  new W(false).i32(0).arr(["logs"], (w, t) => w.str(t).arr([0], (w, p) => w.i32(p).i16(0).i64(2).bytes(legacyMessage(1, Buffer.alloc(30, 0x1f), 1)))).buf());
// Produce v9 (flexible, transactional): two topics, tagged fields after every partition, topic
// and the body → 3 + 2 + 4 + 5 = 14 records in 4 batches
const produceTagsReq = request(0, 9, 54, "txn-producer", true,
  new W(true).str("txn-1").i16(-1).i32(30000)
    .arr([["orders", [[0, recordBatch(3, 0)], [1, Buffer.concat([recordBatch(2, 1), recordBatch(4, 1)])]]], ["audit", [[0, recordBatch(5, 4)]]]], (w, [t, parts]) =>
      w.str(t).arr(parts, (w, [p, b]) => w.i32(p).bytes(b).tags(1)).tags(2))
    .tags(1).buf());
const produceTagsResp = response(54, true,
  new W(true).arr([["orders", [0, 1]], ["audit", [0]]], (w, [t, ps]) => w.str(t).arr(ps, (w, p) => w.i32(p).i16(0).i64(0).i64(-1).i64(0).arr([], () => {}).str(null).tags()).tags()).i32(0).tags().buf());
// Fetch v12 (flexible): aborted transactions before the records, tagged fields, two topics →
// 6 + 1 + 8 = 15 records
const fetchTagsReq = request(1, 12, 55, "consumer-1", true,
  new W(true).i32(-1).i32(500).i32(1).i32(52428800).i8(1).i32(0).i32(-1)
    .arr([["orders", [0, 1]], ["audit", [0]]], (w, [t, ps]) => w.str(t).arr(ps, (w, p) => w.i32(p).i32(0).i64(10).i32(-1).i64(-1).i32(1048576).tags()).tags())
    .arr([], () => {}).str("").tags().buf());
const fetchTagsResp = response(55, true,
  new W(true).i32(0).i16(0).i32(9)
    .arr([["orders", [[0, recordBatch(6, 2)], [1, recordBatch(1, 0)]]], ["audit", [[0, recordBatch(8, 3)]]]], (w, [t, parts]) => w.str(t)
      .arr(parts, (w, [p, b]) => w.i32(p).i16(0).i64(20).i64(20).i64(0).arr([[7, 3], [8, 5]], (w, [pid, off]) => w.i64(pid).i64(off).tags(1)).i32(-1).bytes(b).tags(1)).tags(1))
    .tags(1).buf());
// Fetch v13 (topics by id): 9 records
const fetchIdReq = request(1, 13, 56, "consumer-1", true,
  new W(true).i32(-1).i32(500).i32(1).i32(52428800).i8(0).i32(0).i32(-1)
    .arr([ID_UNSEEN], (w, id) => w.uuid(id).arr([0], (w, p) => w.i32(p).i32(5).i64(42).i32(-1).i64(-1).i32(1048576).tags()).tags())
    .arr([], () => {}).str("").tags().buf());
const fetchIdResp = response(56, true,
  new W(true).i32(0).i16(0).i32(77)
    .arr([ID_UNSEEN], (w, id) => w.uuid(id).arr([0], (w, p) => w.i32(p).i16(0).i64(100).i64(100).i64(0).arr(null, () => {}).i32(-1).bytes(Buffer.concat([recordBatch(4, 4), recordBatch(5, 4)])).tags()).tags())
    .tags().buf());
// Produce v7 with acks=0 (no response): written once its last byte has been walked
const produceAcks0Req = request(0, 7, 57, "fire-and-forget", false,
  new W(false).str(null).i16(0).i32(30000).arr(["logs"], (w, t) => w.str(t).arr([0], (w, p) => w.i32(p).bytes(Buffer.concat([recordBatch(3, 0), recordBatch(2, 3)])))).buf());
// a RECORDS length that runs past the message's end: the message does not add up
const fetchOverrunResp = response(51, false,
  new W(false).i32(0).i16(0).i32(0)
    .arr(["orders"], (w, t) => w.str(t).arr([0], (w, p) => w.i32(p).i16(0).i64(11).i64(11).i64(0).arr(null, () => {}).i32(-1).i32(100000).raw(recordBatch(4, 0)))).buf());
const records = [
  vec("Produce v9: records counted from the batch headers of every codec, without decompressing",
    [c(produceBatchesReq), s(produceBatchesResp)],
    [{ operation: "Produce", resource: "orders", status: 0, attributes: attrs(0, 9, 50, { "messaging.batch.message_count": 10, "kafka.compression": "none,gzip,zstd", "kafka.records_counted": null }) }]),
  vec("Fetch v11: a control batch is not a message, a partial batch at the end is not counted",
    [c(fetchV11Req), s(fetchV11Resp)],
    [{ operation: "Fetch", resource: "orders", status: 0, attributes: attrs(1, 11, 51, { "messaging.batch.message_count": 4, "kafka.compression": "none,lz4" }) }]),
  vec("Produce v2: a legacy message set counts its uncompressed messages",
    [c(produceV2Req), s(produceV2Resp)],
    [{ operation: "Produce", resource: "logs", status: 0, attributes: attrs(0, 2, 52, { "messaging.batch.message_count": 2, "kafka.compression": "none" }) }]),
  vec("Fetch v3: a compressed legacy wrapper leaves the records uncounted, never a guess",
    [c(fetchV3Req), s(fetchV3Resp)],
    [{ operation: "Fetch", resource: "logs", status: 0, attributes: attrs(1, 3, 53, { "messaging.batch.message_count": null, "kafka.records_counted": false, "kafka.compression": "gzip" }) }]),
  vec("Fetch v11 without records: zero messages, no batches",
    [c(fetchV11Req), s(response(51, false, new W(false).i32(0).i16(0).i32(0).arr(["orders"], (w, t) => w.str(t).arr([0], (w, p) => w.i32(p).i16(0).i64(11).i64(11).i64(0).arr(null, () => {}).i32(-1).bytes(null))).buf()))],
    [{ operation: "Fetch", resource: "orders", status: 0, attributes: attrs(1, 11, 51, { "messaging.batch.message_count": 0, "kafka.compression": null }) }]),
];

// Produce v9: a whole batch of 3, then one cut short (a request holds whole batches)
const produceCutReq = request(0, 9, 50, "rdkafka", true,
  new W(true).str(null).i16(-1).i32(30000)
    .arr(["orders"], (w, t) => w.str(t).arr([0], (w, p) => w.i32(p).bytes(Buffer.concat([recordBatch(3, 0, { payload: 20 }), recordBatch(5, 0, { baseOffset: 3 }).subarray(0, 70)])).tags()).tags()).tags().buf());
// Fetch v11 whose records are 64 bytes of garbage: no batch's magic byte where one belongs
const fetchGarbageResp = response(51, false,
  new W(false).i32(0).i16(0).i32(0)
    .arr(["orders"], (w, t) => w.str(t).arr([0], (w, p) => w.i32(p).i16(0).i64(11).i64(11).i64(0).arr(null, () => {}).i32(-1).bytes(Buffer.alloc(64, 0x5a)))).buf());
records.push(
  vec("Produce v9 (flexible, transactional): every partition of every topic counted, tagged fields skipped",
    [c(produceTagsReq), s(produceTagsResp)],
    [{ operation: "Produce", resource: "orders,audit", status: 0, attributes: attrs(0, 9, 54, { "messaging.batch.message_count": 14, "kafka.compression": "none,gzip,zstd", "kafka.records_counted": null }) }]),
  vec("Fetch v12 (flexible): aborted transactions and tagged fields before and after the records, two topics",
    [c(fetchTagsReq), s(fetchTagsResp)],
    [{ operation: "Fetch", resource: "orders,audit", status: 0, attributes: attrs(1, 12, 55, { "messaging.batch.message_count": 15, "kafka.compression": "none,snappy,lz4", "kafka.records_counted": null }) }]),
  vec("Fetch v13: topics by id, records counted",
    [c(fetchIdReq), s(fetchIdResp)],
    [{ operation: "Fetch", status: 0, attributes: attrs(1, 13, 56, { "messaging.batch.message_count": 9, "kafka.compression": "zstd", "kafka.topic_ids": [ID_UNSEEN] }) }]),
  vec("Produce v7 acks=0: written when its last byte has been walked, then the next request pairs",
    [c(Buffer.concat([produceAcks0Req, heartbeatV4Req])), s(heartbeatV4Resp)],
    [
      { operation: "Produce", resource: "logs", status: null, attributes: attrs(0, 7, 57, { "kafka.no_response": true, "messaging.batch.message_count": 5, "kafka.compression": "none,lz4" }) },
      { operation: "Heartbeat", status: 27, attributes: attrs(12, 4, 8) },
    ]),
  vec("Produce v9 whose last batch does not fit its RECORDS field: a request holds whole batches, so not counted",
    [c(produceCutReq), s(produceBatchesResp)],
    [{ operation: "Produce", resource: "orders", status: 0, attributes: attrs(0, 9, 50, { "messaging.batch.message_count": null, "kafka.records_counted": false, "kafka.compression": "none" }) }]),
  vec("Fetch v11 whose RECORDS field is garbage (no batch's magic byte): not counted, never 0",
    [c(fetchV11Req), s(fetchGarbageResp)],
    [{ operation: "Fetch", resource: "orders", status: 0, attributes: attrs(1, 11, 51, { "messaging.batch.message_count": null, "kafka.records_counted": false }) }]),
  vec("a RECORDS field longer than its message: not counted, and the next response pairs",
    [c(Buffer.concat([fetchV11Req, heartbeatV4Req])), s(Buffer.concat([fetchOverrunResp, heartbeatV4Resp]))],
    [
      // the body decoder stops at the same length: no status either
      { operation: "Fetch", resource: "orders", status: null, attributes: attrs(1, 11, 51, { "kafka.records_counted": false, "messaging.batch.message_count": null }) },
      { operation: "Heartbeat", status: 27, attributes: attrs(12, 4, 8) },
    ]),
);

const write = (name, v) => fs.writeFileSync(path.join(out, name), JSON.stringify(v, null, 1) + "\n");
write("flexible.json", flexible);
write("classic.json", classic);
write("resync.json", resync);
write("records.json", records);
console.error(`wrote ${flexible.length + classic.length + records.length} vectors to ${path.relative(process.cwd(), out)}`);
