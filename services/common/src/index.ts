// Public surface of @wirescope/common.
export * from "./gen/wirescope/v1/raw_pb.js";
export * from "./gen/wirescope/v1/record_pb.js";
export * from "./gen/wirescope/v1/control_pb.js";
