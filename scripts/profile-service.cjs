// Preload that writes a V8 CPU profile of one kind of Wirescope service process, for profiling a
// service inside the stack `wirescope up` (or the pipeline bench) starts:
//   WIRESCOPE_PROFILE=aggregator WIRESCOPE_PROFILE_DIR=/tmp/prof NODE_OPTIONS="--require $PWD/scripts/profile-service.cjs" \
//     node --expose-gc test/dist/pipeline.bench.js --shapes http1 --rates 20000
// Every node process loads it; only `wirescope <WIRESCOPE_PROFILE>` profiles itself (a comma list,
// e.g. WIRESCOPE_PROFILE=parser,aggregator, profiles each of them) (sampling every
// WIRESCOPE_PROFILE_US µs, default 500) and writes <dir>/<component>-<pid>.cpuprofile when it is
// stopped (SIGTERM, SIGINT) or exits. On a loaded machine the samples follow wall time while the
// thread runs: preemption at syscalls and page faults shows as time there (compare with perf).
// WIRESCOPE_PROFILE_HEAP=1 also samples allocations (every 32 KiB allocated, GC'd objects kept)
// and writes <dir>/<component>-<pid>.heapprofile beside it: what allocates, for the collector's
// share of CPU that the CPU profile shows only as "(garbage collector)".
const component = process.env.WIRESCOPE_PROFILE;
const dir = process.env.WIRESCOPE_PROFILE_DIR;
const me = process.argv[2];
if (component && dir && component.split(",").includes(me)) {
  const inspector = require("node:inspector");
  const fs = require("node:fs");
  const s = new inspector.Session();
  s.connect();
  s.post("Profiler.enable");
  s.post("Profiler.setSamplingInterval", { interval: Number(process.env.WIRESCOPE_PROFILE_US || 500) });
  s.post("Profiler.start");
  const heap = process.env.WIRESCOPE_PROFILE_HEAP === "1";
  if (heap) {
    s.post("HeapProfiler.enable");
    s.post("HeapProfiler.startSampling", { samplingInterval: 32768, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
  }
  let done = false;
  const write = () => {
    if (done) return;
    done = true;
    // The in-process session answers synchronously: written before the process goes on stopping.
    s.post("Profiler.stop", (err, r) => {
      if (!err) fs.writeFileSync(`${dir}/${me}-${process.pid}.cpuprofile`, JSON.stringify(r.profile));
    });
    if (heap)
      s.post("HeapProfiler.stopSampling", (err, r) => {
        if (!err) fs.writeFileSync(`${dir}/${me}-${process.pid}.heapprofile`, JSON.stringify(r.profile));
      });
  };
  process.on("SIGTERM", write);
  process.on("SIGINT", write);
  process.on("exit", write);
}
