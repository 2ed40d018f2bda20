// tshark's RESP dissector as the Redis tests' oracle.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";

/** tshark's view (`decode`: its -d / -o options): one entry per RESP message, client requests and server replies in order. */
export function tsharkMessages(file: string, port: number, decode: string[]): { requests: string[][]; replies: { kind: string; error?: string }[] } {
  const r = spawnSync(
    "tshark",
    ["-r", file, ...decode, "-Y", "resp", "-T", "fields", "-E", "separator=/t", "-E", "aggregator=|", "-e", "tcp.dstport", "-e", "resp.array.length", "-e", "resp.bulk_string.value", "-e", "resp.string", "-e", "resp.error", "-e", "resp.integer"],
    { timeout: 60_000 },
  );
  assert.equal(r.status, 0, r.stderr?.toString());
  const requests: string[][] = [];
  const replies: { kind: string; error?: string }[] = [];
  for (const line of r.stdout.toString().split("\n").filter(Boolean)) {
    const [dst, arrays, bulks, strings, errors, ints] = line.split("\t");
    const hex = (h: string) => Buffer.from(h.replace(/:/g, ""), "hex").toString("latin1");
    if (Number(dst) === port) {
      // one request per frame here (redis-cli writes each command on its own, then waits)
      requests.push((bulks ?? "").split("|").filter((x) => x !== "").map(hex));
      continue;
    }
    // A reply spread over several frames (COMMAND DOCS) is shown again, partially, in each of
    // them: the first server frame after a request is its reply, the others are its tail.
    if (replies.length >= requests.length) continue;
    if (errors) replies.push({ kind: "error", error: errors.split("|")[0]!.split(" ")[0] });
    else if (arrays) replies.push({ kind: "array" });
    else if (bulks !== undefined && bulks !== "") replies.push({ kind: "bulk" });
    else if (strings) replies.push({ kind: "simple" });
    else if (ints) replies.push({ kind: "integer" });
    else replies.push({ kind: "bulk" }); // $-1: a null bulk string has no value field
  }
  return { requests, replies };
}

