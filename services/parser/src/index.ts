// Public surface of @wirescope/parser.
export { createService } from "./service.js";
export { parseParserArgs, PARSER_FLAGS, DEFAULT_PARSER_OPTIONS, type ParserOptions } from "./options.js";
export { storePlugin, openPluginStore, PLUGIN_BUCKET } from "./plugin-sources.js";
export { validateManifest, LoadedPlugin, PluginError, type PluginManifest } from "./wasm-plugins.js";
