// One row per command-line flag. The same rows generate `--help`, the shell completions and the
// test that every flag a parser accepts is documented, so a flag cannot land without its help.

/** One command-line flag as `--help` and the completions show it. */
export interface FlagSpec {
  /** The name without its leading dashes. */
  flag: string;
  /** Placeholder of the value (`N`, `URL`, `FILE`); absent for a switch that takes none. */
  value?: string;
  /** The `WIRESCOPE_*` environment variable that sets it too, if any. */
  env?: string;
  /** The default as shown to a person (absent: the flag has none worth stating). */
  default?: string;
  description: string;
}

/** Help lines for `flags`, one per flag: name and value, description, variable and default. */
export function flagsHelp(flags: readonly FlagSpec[]): string {
  const left = flags.map((f) => `--${f.flag}${f.value ? ` ${f.value}` : ""}`);
  const width = Math.min(30, Math.max(0, ...left.map((l) => l.length)));
  return flags
    .map((f, i) => {
      const tail = [f.env && `[${f.env}]`, f.default !== undefined && `(default: ${f.default || "none"})`].filter(Boolean).join(" ");
      return `  ${left[i]!.padEnd(width)}  ${f.description}${tail ? ` ${tail}` : ""}`;
    })
    .join("\n");
}

/**
 * Splits `--name=value` into its flag and inline value; any other argument is its own flag.
 * Every parser here takes both spellings through this one rule.
 */
export function splitFlag(arg: string): [flag: string, inline: string | undefined] {
  const eq = arg.startsWith("--") ? arg.indexOf("=") : -1;
  return eq > 0 ? [arg.slice(0, eq), arg.slice(eq + 1)] : [arg, undefined];
}

/**
 * `--name=value` rewritten as `--name value` for a parser that reads a value from the next
 * argument, so that both spellings work. Arguments after `--` are left alone.
 */
export function expandInline(args: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--") {
      out.push(...args.slice(i));
      break;
    }
    const [flag, inline] = splitFlag(args[i]!);
    out.push(flag);
    if (inline !== undefined) out.push(inline);
  }
  return out;
}

/** The first `--flag` in `args` (before `--`) that `flags` does not list, if any; values are skipped. */
export function unlistedFlag(args: readonly string[], flags: readonly FlagSpec[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--") return undefined;
    const [flag, inline] = splitFlag(args[i]!);
    if (!flag.startsWith("--")) continue;
    const spec = flags.find((f) => `--${f.flag}` === flag);
    if (!spec) return flag;
    if (spec.value && inline === undefined) i++; // its value may itself look like a flag
  }
  return undefined;
}

/** The `options` of node:util `parseArgs` for `flags`: a flag with a value is a string, else a boolean. */
export function parseArgsOptions(flags: readonly FlagSpec[]): Record<string, { type: "string" | "boolean" }> {
  return Object.fromEntries(flags.map((f) => [f.flag, { type: f.value ? "string" : "boolean" }]));
}
