// Detection scores remembered per plugin. `detect` is stateless (docs/plugin-abi.md): the same
// plugin gives the same bytes of the same direction the same score. Connections of one client
// usually begin with the same bytes (the same first request, the same handshake), so a host that
// sees many short connections asks each plugin once per distinct opening instead of once per
// connection. Only answers are remembered: a call that trapped is not.

/** Slots per plugin (direct-mapped by hash: a new opening replaces the one in its slot). */
const SLOTS = 256;
/** Windows longer than this are not remembered (at most SLOTS × this many bytes per plugin). */
export const DETECT_MEMO_MAX_BYTES = 1024;

export class DetectMemo {
  private readonly dirs = new Int8Array(SLOTS).fill(-1);
  private readonly scores = new Int32Array(SLOTS);
  private readonly keys: (Uint8Array | undefined)[] = new Array<Uint8Array | undefined>(SLOTS);

  /** The score remembered for these bytes of direction `dir`, or -1. */
  get(dir: number, bytes: Uint8Array): number {
    if (bytes.length > DETECT_MEMO_MAX_BYTES) return -1;
    const s = slot(dir, bytes);
    const k = this.keys[s];
    if (k === undefined || this.dirs[s] !== dir || k.length !== bytes.length) return -1;
    for (let i = 0; i < k.length; i++) if (k[i] !== bytes[i]) return -1;
    return this.scores[s]!;
  }

  /** Remembers `score` for these bytes (copied: the caller's window may grow in place). */
  set(dir: number, bytes: Uint8Array, score: number): void {
    if (bytes.length > DETECT_MEMO_MAX_BYTES) return;
    const s = slot(dir, bytes);
    this.keys[s] = Uint8Array.from(bytes);
    this.dirs[s] = dir;
    this.scores[s] = score;
  }
}

/** FNV-1a of the direction and the bytes, folded to a slot. */
function slot(dir: number, b: Uint8Array): number {
  let h = 0x811c9dc5 ^ dir;
  for (let i = 0; i < b.length; i++) h = Math.imul(h ^ b[i]!, 0x01000193);
  return (h ^ (h >>> 16)) & (SLOTS - 1);
}
