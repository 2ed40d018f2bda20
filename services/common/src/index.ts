// Public surface of @wirescope/common.
export * from "./gen/wirescope/v1/raw_pb.js";
export * from "./gen/wirescope/v1/record_pb.js";
export * from "./gen/wirescope/v1/control_pb.js";
export * from "./errors.js";
export * from "./log.js";
export * from "./config.js";
export * from "./counters.js";
export * from "./health.js";
export * from "./service.js";
export * from "./process.js";
export * from "./local-stack.js";
export * from "./nats.js";
export * from "./grpc.js";
export * from "./registry.js";
export * from "./gen/grpc/health/v1/health_pb.js";
export * from "./plugin-host/index.js";
export * from "./record-json.js";
