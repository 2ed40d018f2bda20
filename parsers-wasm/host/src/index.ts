// Public surface of the plugin host (docs/plugin-abi.md): load and validate plugins, keep them in
// a registry, and decode connections with the engine.
export { PluginError } from "./errors.js";
export { Plugin, PluginInstance, PluginTrap, validateManifest, ABI_VERSION, ABI_VERSIONS, REQUIRED_EXPORTS, REQUIRED_EXPORTS_V2, DEFAULT_PLUGIN_OPTIONS, type PluginManifest, type PluginOptions, type TrapKind } from "./plugin.js";
export { PluginRegistry, type LoadDirResult } from "./registry.js";
export { ConnectionEngine, EngineConnection, EngineBatch, DEFAULT_ENGINE_OPTIONS, type BatchResultFn, type BatchOptions, type EngineOptions, type OpenOptions, type StepResult, type ConnState, type Dir } from "./engine.js";
export { meterModule, FUEL_SET_EXPORT, FUEL_GET_EXPORT } from "./meter.js";
export { TopicNameDirectory, DEFAULT_TOPIC_NAME_OPTIONS, type TopicNameOptions, type TopicNameCounts } from "./kafka-topic-names.js";
