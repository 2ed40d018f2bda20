// One row per command-line flag. The same rows generate `--help`, the shell completions, the
// environment variables read and the parser (parseFlags): a flag cannot land without its help,
// and every command takes `--flag value`, `--flag=value` and refuses an unknown flag alike.
import { ConfigError } from "./errors.js";

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
  /** Given more than once, every value counts (its variable holds them comma-separated). */
  repeatable?: boolean;
  /** A one-letter alias (`o` for `-o`). */
  short?: string;
  /**
   * How many more arguments belong to this value (`--source pcap FILE`: 1 after `pcap`); its
   * variable holds them space-separated.
   */
  following?(value: string): number;
}

/** Help lines for `flags`, one per flag: name and value, description, variable and default. */
export function flagsHelp(flags: readonly FlagSpec[]): string {
  const left = flags.map((f) => `--${f.flag}${f.value ? ` ${f.value}` : ""}${f.short ? `, -${f.short}` : ""}`);
  const width = Math.min(30, Math.max(0, ...left.map((l) => l.length)));
  return flags
    .map((f, i) => {
      const tail = [f.env && `[${f.env}]`, f.default !== undefined && `(default: ${f.default || "none"})`].filter(Boolean).join(" ");
      return `  ${left[i]!.padEnd(width)}  ${f.description}${tail ? ` ${tail}` : ""}`;
    })
    .join("\n");
}

/**
 * `flags` with a variable each, named from the flag: `WIRESCOPE_<PREFIX>_<FLAG>` (`--window-ms` of
 * the aggregator is WIRESCOPE_AGGREGATOR_WINDOW_MS). A row that names its own keeps it.
 */
export function withEnv(prefix: string, flags: readonly FlagSpec[]): FlagSpec[] {
  return flags.map((f) => ({ ...f, env: f.env ?? `WIRESCOPE_${prefix.toUpperCase()}_${f.flag.toUpperCase().replace(/-/g, "_")}` }));
}

/** One flag given: on the command line, or by its variable (`env` then names it). */
export interface FlagValue {
  spec: FlagSpec;
  /** `--name`, as errors should call it. */
  flag: string;
  /** The value; "" for a switch. */
  value: string;
  /** The arguments `following` claimed after the value. */
  following: string[];
  /** The variable it came from, when not from the command line. */
  env?: string;
}

export interface ParseFlagsOptions {
  /** The command, named in errors (`see wirescope <command> --help`). */
  command?: string;
  /** Variables of the rows that name one; a flag on the command line wins over its variable. */
  env?: NodeJS.ProcessEnv;
  /** Arguments that are not flags are allowed (else each is an error). */
  positionals?: boolean;
  /** An unlisted flag goes to `rest` with the arguments after it up to the next flag (else an error). */
  passUnknown?: boolean;
}

/** What parseFlags found. */
export class ParsedFlags {
  /** Every flag given, variables first, then the command line in order. */
  readonly given: FlagValue[] = [];
  /** Arguments that are not flags, and all after `--`. */
  readonly positionals: string[] = [];
  /** With `passUnknown`: the arguments not taken, in order (after `--` too). */
  readonly rest: string[] = [];

  /** The last value of `flag` (name without dashes), if given. */
  get(flag: string): string | undefined {
    return this.last(flag)?.value;
  }

  /** The last occurrence of `flag`, if given. */
  last(flag: string): FlagValue | undefined {
    for (let i = this.given.length - 1; i >= 0; i--) if (this.given[i]!.spec.flag === flag) return this.given[i];
    return undefined;
  }

  /** Every value of `flag`, in order. */
  all(flag: string): string[] {
    return this.given.filter((g) => g.spec.flag === flag).map((g) => g.value);
  }

  has(flag: string): boolean {
    return this.last(flag) !== undefined;
  }

  /** Each flag given and its last value, `true` for a switch (the shape of node:util parseArgs' values). */
  values(): Record<string, string | true> {
    return Object.fromEntries(this.given.map((g) => [g.spec.flag, g.spec.value ? g.value : true]));
  }

  /**
   * Calls `fn` for each flag given, in order. An error it throws for a value from a variable is
   * re-thrown naming the variable, so the message points at what to fix (a ConfigError as a new
   * one; any other error, such as a command's usage error, keeps its class and gets the prefix).
   */
  each(fn: (g: FlagValue) => void): void {
    for (const g of this.given) {
      try {
        fn(g);
      } catch (e) {
        if (!g.env) throw e;
        const from = `${g.env}=${JSON.stringify([g.value, ...g.following].join(" "))}`;
        if (e instanceof ConfigError) throw new ConfigError(e.code, `${from}: ${e.message}`, { cause: e });
        if (e instanceof Error) e.message = `${from}: ${e.message}`;
        throw e;
      }
    }
  }
}

const SWITCH_ON = new Set(["1", "true", "yes", "on"]);
const SWITCH_OFF = new Set(["0", "false", "no", "off"]);

/**
 * Parses `args` against the table `flags`: `--name value`, `--name=value`, `-s value`, switches,
 * `--` ending the flags, and the rows' variables from `options.env` under the command line.
 * @throws ConfigError naming the flag and the command's --help: unknown flag, missing value,
 *   a value given to a switch, an argument where none is expected.
 */
export function parseFlags(args: readonly string[], flags: readonly FlagSpec[], options: ParseFlagsOptions): ParsedFlags {
  const out = new ParsedFlags();
  const help = options.command ? ` (see wirescope ${options.command} --help)` : "";
  const byName = new Map<string, FlagSpec>();
  for (const f of flags) {
    byName.set(`--${f.flag}`, f);
    if (f.short) byName.set(`-${f.short}`, f);
  }
  const fromArgs: FlagValue[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === "--") {
      (options.passUnknown ? out.rest : out.positionals).push(...args.slice(options.passUnknown ? i : i + 1));
      break;
    }
    if (!a.startsWith("-") || a === "-" || /^-\d/.test(a)) {
      if (options.passUnknown) out.rest.push(a);
      else if (options.positionals) out.positionals.push(a);
      else throw new ConfigError("unexpected_argument", `unexpected argument "${a}"${help}`);
      continue;
    }
    const eq = a.startsWith("--") ? a.indexOf("=") : -1;
    const name = eq > 0 ? a.slice(0, eq) : a;
    const spec = byName.get(name);
    if (!spec) {
      if (!options.passUnknown) throw new ConfigError("unknown_flag", `unknown flag ${name}${help}`);
      out.rest.push(a);
      continue;
    }
    const flag = `--${spec.flag}`;
    if (!spec.value) {
      if (eq > 0) throw new ConfigError("bad_value", `${flag} takes no value${help}`);
      fromArgs.push({ spec, flag, value: "", following: [] });
      continue;
    }
    // a value may itself look like a flag (--probe-args "--allow-port 8080")
    const value = eq > 0 ? a.slice(eq + 1) : args[++i];
    if (value === undefined) throw new ConfigError("missing_value", `${flag}: missing value (${spec.value})${help}`);
    const n = spec.following?.(value) ?? 0;
    const following = args.slice(i + 1, i + 1 + n);
    if (following.length < n) throw new ConfigError("missing_value", `${flag} ${value}: missing ${n} more argument${n > 1 ? "s" : ""}${help}`);
    i += n;
    fromArgs.push({ spec, flag, value, following });
  }
  const onLine = new Set(fromArgs.map((g) => g.spec));
  for (const spec of flags) {
    const raw = spec.env ? options.env?.[spec.env] : undefined;
    if (raw === undefined || raw === "" || onLine.has(spec)) continue;
    const env = spec.env;
    const flag = `--${spec.flag}`;
    if (!spec.value) {
      if (SWITCH_OFF.has(raw.toLowerCase())) continue;
      if (!SWITCH_ON.has(raw.toLowerCase())) throw new ConfigError("bad_value", `${env}: expected 1 or 0 (true or false) for ${flag}, got "${raw}"`);
      out.given.push({ spec, flag, value: "", following: [], env });
    } else if (spec.following) {
      const [value, ...following] = raw.trim().split(/\s+/);
      out.given.push({ spec, flag, value: value!, following, env });
    } else {
      const values = spec.repeatable ? raw.split(",").map((s) => s.trim()).filter(Boolean) : [raw];
      for (const value of values) out.given.push({ spec, flag, value, following: [], env });
    }
  }
  out.given.push(...fromArgs);
  return out;
}
