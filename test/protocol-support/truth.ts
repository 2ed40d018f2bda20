// Reading the truth files beside the shared captures (../shared/captures/<proto>/*.truth.json):
// what tshark 4.0 decoded in each capture, one entry per request/response pair.
import fs from "node:fs";
import path from "node:path";
import { SHARED_CAPTURES } from "@wirescope/capture/test-support/pcap";

export interface Truth {
  capture: string;
  tshark_command: string;
  capture_facts: { tcp_streams: Record<string, { endpoints: string[]; client?: string; server?: string; syn_seen: boolean }> };
  transactions: Record<string, unknown>[];
}

/** Every `<capture>.truth.json` of one protocol folder, with the capture's path. */
export function truths(proto: string): { file: string; truth: Truth }[] {
  const dir = path.join(SHARED_CAPTURES, proto);
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith(".truth.json"))
    .sort()
    .map((f) => ({ file: path.join(dir, f.slice(0, -".truth.json".length)), truth: JSON.parse(fs.readFileSync(path.join(dir, f), "utf8")) as Truth }));
}

/** The server port of a capture: the `-d tcp.port==N` of its tshark command, or the known server end. */
export function serverPort(t: Truth, fallback: number): number {
  const m = /tcp\.port==(\d+)/.exec(t.tshark_command);
  if (m) return Number(m[1]);
  for (const s of Object.values(t.capture_facts.tcp_streams)) if (s.server) return Number(s.server.split(":").pop());
  return fallback;
}

/**
 * The truth's tcp.stream of a decoded record, matched by its endpoints (our reassembler does not
 * number connections that never carry payload, tshark does).
 */
export function truthStream(t: Truth, r: { client: string; server: string }): number {
  for (const [id, s] of Object.entries(t.capture_facts.tcp_streams)) {
    if (s.endpoints.includes(r.client) && s.endpoints.includes(r.server)) return Number(id);
  }
  return -1;
}
