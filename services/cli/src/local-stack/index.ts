// The local stack's launchers: nats-server and influxd as child processes on loopback (servers.ts),
// and the stack's own TLS (tls.ts: a CA and a server certificate; nats-tls.ts: NATS's use of them).
// Used by `wirescope up`, the demo and the integration tests (test/support/servers.ts).
export * from "./servers.js";
export * from "./tls.js";
export * from "./nats-tls.js";
