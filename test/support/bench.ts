// How a benchmark's entry point runs: its exit code is main's, an error is printed and exits 1, and
// SIGINT / SIGTERM exit at once so that the exit handlers (servers.ts) kill what it started.
export function runBench(main: () => Promise<number>): void {
  for (const sig of ["SIGINT", "SIGTERM"] as const) process.on(sig, () => process.exit(130));
  main().then(
    (code) => process.exit(code),
    (e: unknown) => {
      console.error(e instanceof Error ? e.stack : e);
      process.exit(1);
    },
  );
}
