// Test helper for the HTTP decoders: runs captures and byte scripts through the real plugin host
// (the same engine the parser service and `wirescope decode` use) and the built .wasm plugins.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { PluginRegistry, ConnectionEngine, type EngineConnection } from "@wirescope/plugin-host";
import { CaptureStreams, type TcpConnection } from "@wirescope/capture";
import { recordToJson, type RecordJson } from "@wirescope/wire/record-json";

/** parsers-wasm/build, found from this file whether it runs from the source tree or dist/. */
export const WASM_DIR = (() => {
  let d = path.dirname(fileURLToPath(import.meta.url));
  while (!fs.existsSync(path.join(d, "build.mjs")) && path.dirname(d) !== d) d = path.dirname(d);
  return path.join(d, "build");
})();

/** A registry with the built-in plugins from parsers-wasm/build (run the wasm build first). */
export function registry(flags = 1): PluginRegistry {
  const reg = new PluginRegistry();
  const res = reg.loadDir(WASM_DIR, { flags });
  if (res.errors.length) throw new Error(`plugins failed to load: ${res.errors.map((e) => `${e.file}: ${e.error.message}`).join("; ")}`);
  return reg;
}

export interface Decoded {
  records: RecordJson[];
  /** Per connection: the plugin that decoded it (or the reason it was not). */
  conns: { id: number; plugin?: string; state: string; reason?: string }[];
}

/**
 * Decodes every TCP connection of a capture. `portProto` forces a plugin for connections to a
 * port (like `--proto PORT=PROTOCOL`); otherwise detection decides.
 */
export function decodeCapture(file: string, opts: { portProto?: Record<number, string>; flags?: number; reg?: PluginRegistry } = {}): Decoded {
  const engine = new ConnectionEngine(opts.reg ?? registry(opts.flags ?? 1));
  const records: RecordJson[] = [];
  const conns = new Map<TcpConnection, EngineConnection>();
  const take = (c: TcpConnection, recs: Uint8Array[]) => {
    const ec = conns.get(c)!;
    for (const r of recs) {
      const j = recordToJson(r);
      const a = `${c.addrA.includes(":") ? `[${c.addrA}]` : c.addrA}:${c.portA}`;
      const b = `${c.addrB.includes(":") ? `[${c.addrB}]` : c.addrB}:${c.portB}`;
      j.client = ec.flipped ? b : a;
      j.server = ec.flipped ? a : b;
      records.push(j);
    }
  };
  const forced = (c: TcpConnection) => opts.portProto?.[c.portB] ?? opts.portProto?.[c.portA] ?? "";
  CaptureStreams.open(file, {
    open(c) {
      conns.set(c, engine.openConnection({ clientKnown: c.clientKnown, portHint: c.portB, protocol: forced(c) }));
    },
    data(c, dir, bytes, ts) {
      take(c, conns.get(c)!.data(dir, bytes, ts).records);
    },
    gap(c, dir, len, ts) {
      take(c, conns.get(c)!.gap(dir, len, ts).records);
    },
    close(c, _reason, ts) {
      take(c, conns.get(c)!.close(ts).records);
    },
  }).run();
  return {
    records,
    conns: [...conns.entries()].map(([c, ec]) => ({ id: c.id, plugin: ec.plugin?.name, state: ec.state, reason: ec.reason })),
  };
}

/** One step of a byte script: bytes of a direction, a gap, or the end of the connection. */
export type Step = { dir: 0 | 1; data: Uint8Array } | { dir: 0 | 1; gap: number } | { close: true };

/**
 * Feeds a script to one connection forced to `protocol`, splitting every data step into pieces of
 * at most `piece` bytes (0 = whole). Timestamps increase by 1000 ns per piece.
 */
export function decodeScript(steps: Step[], protocol: string, opts: { piece?: number; reg?: PluginRegistry } = {}): RecordJson[] {
  const engine = new ConnectionEngine(opts.reg ?? registry());
  const conn = engine.openConnection({ protocol });
  const out: RecordJson[] = [];
  let ts = 1_000_000n;
  const take = (recs: Uint8Array[]) => recs.forEach((r) => out.push(recordToJson(r)));
  for (const s of steps) {
    if ("close" in s) {
      take(conn.close((ts += 1000n)).records);
    } else if ("gap" in s) {
      take(conn.gap(s.dir, s.gap, (ts += 1000n)).records);
    } else {
      const n = opts.piece || s.data.length;
      for (let i = 0; i < s.data.length; i += n) take(conn.data(s.dir, s.data.subarray(i, i + n), (ts += 1000n)).records);
    }
  }
  if (conn.state !== "decoding" && conn.state !== "closed") throw new Error(`connection ${conn.state}: ${conn.reason ?? ""}`);
  return out;
}
