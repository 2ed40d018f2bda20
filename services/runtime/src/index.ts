// Public surface of @wirescope/runtime: what every service runs on. Configuration, logging, errors,
// the NATS and gRPC layers, the service lifecycle (runService), health, counters and metrics, the
// registry, partition hashing and membership.
export * from "./errors.js";
export * from "./log.js";
export * from "./config.js";
export * from "./flags.js";
export * from "./redact.js";
export * from "./counters.js";
export * from "./health.js";
export * from "./service.js";
export * from "./process.js";
export * from "./nats-permissions.js";
export * from "./influx-auth.js";
export * from "./nats.js";
export * from "./grpc.js";
export * from "./registry.js";
export * from "./registry-watch.js";
export * from "./self-identity.js";
export * from "./partition.js";
export * from "./metrics.js";
export * from "./records-stream.js";
export * from "./assign.js";
export * from "./membership.js";
export * from "./membership-nats.js";
export * from "./supervised-loop.js";
export * from "./wake-timer.js";
export * from "./generations.js";
