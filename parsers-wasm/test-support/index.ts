// Test support for protocol plugins: loading built plugins, the vector harness, a loopback
// capture relay for real client/server traffic, and the fuzzer.
export * from "./plugins.js";
export * from "./vectors.js";
export * from "./relay.js";
export * from "./fuzz.js";
