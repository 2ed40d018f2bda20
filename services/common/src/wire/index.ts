// The data-plane wire contract: field numbers and tags generated from proto/ (gen/wire/fields.ts)
// and the hand-written hot-path codecs that read them, each checked against protobuf-es in tests.
export * from "../gen/wire/fields.js";
export * from "./raw-batch-reader.js";
export * from "./coverage.js";
export * from "./writer.js";
