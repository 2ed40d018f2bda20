// Placeholder until the aggregator lands: connects to NATS (via the runtime) and checks that
// InfluxDB answers /ping, so health is real. Replace freely; keep exporting `createService`.
import type { CreateService } from "@wirescope/common";

export const createService: CreateService = async (ctx) => {
  const influx = ctx.health.require("influxdb");
  return {
    async run(signal) {
      while (!signal.aborted) {
        try {
          const res = await fetch(new URL("/ping", ctx.config.influx.url), { signal: AbortSignal.any([signal, AbortSignal.timeout(2000)]) });
          if (res.ok || res.status === 204) influx.up();
          else influx.down(`ping: HTTP ${res.status}`);
        } catch (e) {
          if (!signal.aborted) influx.down(`ping: ${(e as Error).message}`);
        }
        await sleep(influx.isUp ? 5000 : 500, signal);
      }
    },
  };
};

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      resolve();
    }
  });
}
