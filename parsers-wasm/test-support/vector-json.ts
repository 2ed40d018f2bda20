// The JSON form of one vector (vectors.ts reads it), for the decoders' vector generators
// (<proto>/test/gen-vectors.mjs), which build the bytes with their wire builders.

/** A generated step: bytes the client (`c`) or the server (`s`) sent, or a gap of `len` bytes. */
export type GenStep = ["c" | "s", Uint8Array] | ["gap", [string, number]];

const hex = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex");

/**
 * One vector as the JSON vector files hold it. `options.counters` becomes the vector's
 * `counters` (what the plugin's conn_stats must report); the other options stay options.
 */
export function vectorEntry(name: string, steps: GenStep[], records: unknown[], options?: Record<string, unknown>): Record<string, unknown> {
  const { counters, ...opts } = options ?? {};
  return {
    name,
    steps: steps.map(([d, b]) => (d === "gap" ? { gap: b[0], len: b[1] } : d === "c" ? { clientHex: hex(b) } : { serverHex: hex(b) })),
    records,
    ...(Object.keys(opts).length ? { options: opts } : {}),
    ...(counters ? { counters } : {}),
  };
}
