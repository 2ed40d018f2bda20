import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { PipelineCpu, nodeCpuTicks, processCpuTicks, readPidFile } from "./pipeline-cpu.js";

describe("nodeCpuTicks", () => {
  it("reads idle + iowait and the total of the first eight fields of the cpu line", () => {
    const text = "cpu  100 5 50 800 20 3 2 0 7 0\ncpu0 50 2 25 400 10 1 1 0 0 0\nintr 1\n";
    assert.deepEqual(nodeCpuTicks(text), { idle: 820, total: 980 });
    assert.equal(nodeCpuTicks("intr 1\n"), undefined);
  });
});

describe("processCpuTicks", () => {
  it("counts fields after the last parenthesis, whatever the name holds", () => {
    // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime prio nice threads itreal starttime
    const stat = "42 (a) b (c) d) S 1 42 42 0 -1 4194560 10 0 0 0 250 31 0 0 20 0 3 0 123456 1000 10";
    assert.deepEqual(processCpuTicks(stat), { ticks: 281, start: 123456 });
    assert.equal(processCpuTicks(""), undefined);
  });
});

describe("PipelineCpu", () => {
  it("counts a named process's CPU from the second sample on, and forgets a pid whose process changed", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pipeline-cpu-"));
    const stat = (utime: number, start: number) => `7 (x) S 1 7 7 0 -1 0 0 0 0 0 ${utime} 0 0 0 20 0 1 0 ${start} 0 0`;
    fs.mkdirSync(path.join(dir, "7"));
    fs.writeFileSync(path.join(dir, "stat"), "cpu  0 0 0 100 0 0 0 0\n");
    fs.writeFileSync(path.join(dir, "7", "stat"), stat(100, 5));
    const p = new PipelineCpu(dir);
    assert.equal(p.sample([7]).millicores, 0, "first sight: the baseline");
    fs.writeFileSync(path.join(dir, "7", "stat"), stat(150, 5));
    fs.writeFileSync(path.join(dir, "stat"), "cpu  50 0 0 150 0 0 0 0\n");
    const s = p.sample([7, 7, 8]);
    assert.ok(s.millicores > 0, "50 ticks counted");
    assert.equal(s.processes, 1, "a pid named twice counts once, a missing one not at all");
    assert.equal(s.nodeIdle, 0.5);
    // the pid now names another process (exited, reused): its ticks are not the pipeline's
    fs.writeFileSync(path.join(dir, "7", "stat"), stat(10_000, 99));
    assert.equal(p.sample([7]).millicores, 0);
    fs.rmSync(dir, { recursive: true });
  });

  it("sees a real process burn CPU", async () => {
    const child = spawn(process.execPath, ["-e", "const end = Date.now() + 60_000; while (Date.now() < end) {}"], { stdio: "ignore" });
    try {
      const p = new PipelineCpu();
      p.sample([child.pid!]);
      let total = 0;
      // bounded: the child burns until its CPU shows (a tick is 10 ms of CPU)
      for (let i = 0; i < 200 && total === 0; i++) {
        await new Promise((r) => setTimeout(r, 50));
        total += p.sample([child.pid!]).millicores;
      }
      assert.ok(total > 0);
    } finally {
      child.kill("SIGKILL");
    }
  });
});

describe("readPidFile", () => {
  it("lists the pids of up's pipeline.pids, one per line, and none for a missing file", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pidfile-"));
    try {
      const f = path.join(dir, "pipeline.pids");
      fs.writeFileSync(f, "123\n\n 456 \nnot-a-pid\n0\n99999999999\n");
      assert.deepEqual(readPidFile(f), [123, 456]);
      assert.deepEqual(readPidFile(path.join(dir, "missing")), []);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
