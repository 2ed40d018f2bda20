// The slice of the WebAssembly JS API this package uses (lib "ES2022" without DOM has none).
declare namespace WebAssembly {
  class Module {
    constructor(bytes: Uint8Array);
    static imports(m: Module): { module: string; name: string; kind: string }[];
    static exports(m: Module): { name: string; kind: string }[];
  }
  class Instance {
    constructor(m: Module, imports?: Record<string, Record<string, unknown>>);
    readonly exports: Record<string, unknown>;
  }
  class Memory {
    readonly buffer: ArrayBuffer;
  }
  class RuntimeError extends Error {}
  function validate(bytes: Uint8Array): boolean;
}
