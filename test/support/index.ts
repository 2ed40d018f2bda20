// Shared helpers for integration tests (real servers on loopback).
export * from "./repo.js";
export * from "./wirescope.js";
export * from "./servers.js";
export * from "./stack.js";
export * from "./records-fixture.js";
export * from "./dashboards.js";
export * from "./otlp-receiver.js";
export * from "./bench.js";
