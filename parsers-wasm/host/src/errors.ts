import { WirescopeError } from "@wirescope/runtime/errors";

/**
 * Loading or validating a protocol plugin failed. Codes: `not_wasm`, `bad_manifest`, `bad_abi`,
 * `missing_export`, `bad_import`, `memory_cap`, `start_trap`, `unsupported`, `io`.
 */
export class PluginError extends WirescopeError {}
