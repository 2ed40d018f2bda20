// The clients the commands talk through: NATS, gRPC, logging, the parser's plugin store. A
// command imports this module when it runs (`await import("../clients.js")`), never when it is
// loaded, so `wirescope --help` and the completion scripts load none of them
// (commands/imports.test.ts).
export { connectNats } from "@wirescope/runtime/nats";
export { checkHealth, createClient, servingStatusName, ServingStatus } from "@wirescope/runtime/grpc";
export { listAnnounced } from "@wirescope/runtime/registry";
export { forgetMembers } from "@wirescope/runtime/membership-nats";
export { silentLogger } from "@wirescope/runtime/log";
export { COMPONENT_SERVICES } from "@wirescope/runtime/service";
export { jetstreamManager } from "@nats-io/jetstream";
export { openPluginStore, storePlugin, validateManifest, LoadedPlugin } from "@wirescope/parser";
