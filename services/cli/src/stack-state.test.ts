import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { pipelinePidsFile, writePipelinePids } from "./stack-state.js";
import type { ChildState } from "./supervisor.js";

describe("writePipelinePids", () => {
  const child = (name: string, component: string, pid?: number): ChildState => ({ name, component, address: "-", log: "-", state: pid ? "running" : "restarting", pid, restarts: 0, exits: 0, sinceMs: 0 });

  it("lists the running nats-server(s) and influxd, one pid per line, rewritten when one is started again", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "stack-state-"));
    try {
      const file = pipelinePidsFile(dir);
      writePipelinePids(dir, [child("nats-server-1", "nats", 10), child("nats-server-2", "nats", 11), child("influxd", "influxdb", 12), child("probe", "probe", 13), child("parser", "parser", 14)]);
      assert.equal(fs.readFileSync(file, "utf8"), "10\n11\n12\n");
      writePipelinePids(dir, [child("nats-server-1", "nats", 10), child("nats-server-2", "nats"), child("influxd", "influxdb", 12)]);
      assert.equal(fs.readFileSync(file, "utf8"), "10\n12\n", "a server being restarted has no pid");
      writePipelinePids(dir, [child("nats-server-1", "nats", 10), child("nats-server-2", "nats", 21), child("influxd", "influxdb", 12)]);
      assert.equal(fs.readFileSync(file, "utf8"), "10\n21\n12\n");
      assert.deepEqual(fs.readdirSync(dir), ["pipeline.pids"], "written through a temporary file, renamed");
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
