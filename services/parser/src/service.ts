// Placeholder until the parser lands: only the runtime's NATS connection decides its health.
// Replace freely; keep exporting `createService`.
import type { CreateService } from "@wirescope/common";

export const createService: CreateService = async (ctx) => {
  ctx.warnings.add("placeholder parser: no data is processed yet");
  return {
    async run(signal) {
      await ctx.nats();
      if (!signal.aborted) await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
    },
  };
};
