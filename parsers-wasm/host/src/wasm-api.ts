// The slice of the WebAssembly JS API the host uses. TypeScript's ES2022 lib (no DOM) and
// @types/node 20 do not declare WebAssembly; declaring it globally here would clash with other
// packages' own declarations, so the API is typed locally and taken from globalThis once.

export interface WasmModule {
  readonly __brand?: "WasmModule";
}
export interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
export interface WasmGlobal {
  value: number;
}
export interface WasmInstance {
  readonly exports: Record<string, unknown>;
}
export interface WasmApi {
  Module: {
    new (bytes: Uint8Array): WasmModule;
    imports(m: WasmModule): { module: string; name: string; kind: string }[];
    exports(m: WasmModule): { name: string; kind: string }[];
  };
  Instance: new (m: WasmModule, imports?: Record<string, Record<string, unknown>>) => WasmInstance;
  RuntimeError: new (message?: string) => Error;
  CompileError: new (message?: string) => Error;
  LinkError: new (message?: string) => Error;
  validate(bytes: Uint8Array): boolean;
}

export const Wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;
