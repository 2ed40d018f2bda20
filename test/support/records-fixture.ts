// Records captured from real traffic (scripts/capture-records.mjs), replayed at another time.
import fs from "node:fs";
import path from "node:path";
import zlib from "node:zlib";
import { fromBinary } from "@bufbuild/protobuf";
import { RecordSchema, type Record as WRecord } from "@wirescope/wire";
import { REPO_ROOT } from "./repo.js";

/** The demo's records (test/fixtures/demo-records.bin.gz). */
export const DEMO_RECORDS = path.join(REPO_ROOT, "test/fixtures/demo-records.bin.gz");

/** The records of a fixture file, in capture order. */
export function readRecordsFixture(file: string): WRecord[] {
  const buf = zlib.gunzipSync(fs.readFileSync(file));
  const out: WRecord[] = [];
  for (let off = 0; off < buf.length; ) {
    const len = buf.readUInt32LE(off);
    out.push(fromBinary(RecordSchema, buf.subarray(off + 4, off + 4 + len)));
    off += 4 + len;
  }
  return out;
}

/** First start and last end of the records, in ns. */
export function recordsSpan(records: readonly WRecord[]): { startNs: bigint; endNs: bigint } {
  let startNs = records[0]!.startNs;
  let endNs = 0n;
  for (const r of records) {
    if (r.startNs < startNs) startNs = r.startNs;
    if (r.startNs + r.durationNs > endNs) endNs = r.startNs + r.durationNs;
  }
  return { startNs, endNs };
}

/**
 * Moves every record by the same amount so that the first one starts at `startMs` plus the
 * capture's offset within its window of `windowMs` (records keep their place in their windows, so
 * windows hold the same records as in the capture).
 */
export function shiftRecords(records: WRecord[], startMs: number, windowMs: number): { shiftNs: bigint; startMs: number; endMs: number } {
  const { startNs, endNs } = recordsSpan(records);
  const w = BigInt(windowMs) * 1_000_000n;
  const target = (BigInt(Math.floor(startMs / windowMs)) * w) + (startNs % w);
  const shiftNs = target - startNs;
  for (const r of records) r.startNs += shiftNs;
  return { shiftNs, startMs: Number((startNs + shiftNs) / 1_000_000n), endMs: Number((endNs + shiftNs) / 1_000_000n) };
}
