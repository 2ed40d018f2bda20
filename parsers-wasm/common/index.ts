// The Wirescope plugin library for AssemblyScript decoders. See README.md for the API.
export { OK, NOT_MINE, BROKEN, LIMIT, SWITCHED, CLIENT, SERVER } from "./status";
export { ByteQueue, DEFAULT_QUEUE_LIMIT } from "./queue";
export { Connection } from "./conn";
export { Rec, MAX_STRING } from "./record";
export { register, redacting, setMaxConnections, DetectFn, FactoryFn } from "./plugin";
export * from "./bytes";
export { normalizeSql } from "./sql";
