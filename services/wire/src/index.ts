// Public surface of @wirescope/wire: the messages generated from proto/ (gen/, never edited), the
// data-plane field table (gen/wire/fields.ts) and the hand-written codecs that read and write it,
// each checked against protobuf-es in tests (docs/wire.md), records as JSON, and the rule that names
// a record's two ends (identity.ts).
export * from "./gen/wirescope/v1/raw_pb.js";
export * from "./gen/wirescope/v1/record_pb.js";
export * from "./gen/wirescope/v1/control_pb.js";
export * from "./gen/grpc/health/v1/health_pb.js";
export * from "./record-json.js";
export * from "./record-batch.js";
export * from "./gen/wire/fields.js";
export * from "./raw-batch-reader.js";
export * from "./coverage.js";
export * from "./writer.js";
export * from "./identity.js";
