// Plugin registration: a plugin's entry file calls register() once at top level with its
// detector and its connection factory. Kept apart from abi.ts so that the entry file's
// `export * from "../common/abi"` exports only the ABI functions.

import { Connection } from "./conn";

/** Confidence 0..100 that `len` bytes at `ptr`, the first of direction `dir`, are this protocol. */
export type DetectFn = (dir: i32, ptr: usize, len: i32) => i32;
/** Makes the state object of a new connection. */
export type FactoryFn = () => Connection;

function noDetect(dir: i32, ptr: usize, len: i32): i32 {
  return 0;
}
function noFactory(): Connection {
  return new Connection();
}

let detectFn: DetectFn = noDetect;
let factoryFn: FactoryFn = noFactory;
let redactFlag: bool = false;
let maxConns: i32 = 1 << 16;

/** Registers the plugin's detector and connection factory. */
export function register(detect: DetectFn, factory: FactoryFn): void {
  detectFn = detect;
  factoryFn = factory;
}

/** Most connections one instance holds at once (conn_new answers 0 beyond). */
export function setMaxConnections(n: i32): void {
  maxConns = n;
}

/** True when the host asked for redaction (configure bit 0): mask literals, drop credentials. */
export function redacting(): bool {
  return redactFlag;
}

// ---- for abi.ts ----
export function _detect(dir: i32, ptr: usize, len: i32): i32 {
  return detectFn(dir, ptr, len);
}
export function _create(): Connection {
  return factoryFn();
}
export function _setRedact(b: bool): void {
  redactFlag = b;
}
export function _maxConns(): i32 {
  return maxConns;
}
