export { createService } from "./service.js";
export * from "./core/index.js";
export * from "./pipeline.js";
export * from "./options.js";
export { ParserWatermarks, watchParserWatermarks } from "./parser-watermarks.js";
export { InfluxWriter, defaultWriterOptions, type WriterOptions, type WriteOutcome } from "./influx/writer.js";
export { detectInflux, ensureDatabase, authHeaders, type InfluxTarget, type InfluxFlavor } from "./influx/detect.js";
export { V1WriteTransport, mapWritePath } from "./influx/v1-transport.js";
