// The ABI version 1 exports (docs/plugin-abi.md): the version 2 glue of abi.ts without
// feed_batch and conn_stats, answering abi_version() = 1. For a plugin that must also load in
// hosts that speak only version 1 (and for the host's own test of version 1 plugins):
//
//   export * from "../common/abi-v1";
//
// with `"abi": 1` in its manifest.

export { input_buffer, detect, configure, conn_new, conn_free, feed, conn_tail, gap, close, out_ptr, out_len, out_clear } from "./abi";

export function abi_version(): i32 {
  return 1;
}
