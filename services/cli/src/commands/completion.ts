// `wirescope completion bash|zsh`: shell completion scripts generated from the command list and
// each command's flag table, so a
// new command or flag completes without editing a script.
import type { Command } from "../command.js";

/** The flags `cmd` completes: those of its table. */
export function completionFlags(cmd: Command): string[] {
  return [...new Set([...cmd.flags.map((f) => `--${f.flag}`), "--help"])];
}

/** The values a flag's placeholder lists (`ndjson|table`, `trim|keep`), if it is such a list. */
export function flagChoices(value: string | undefined): string[] | undefined {
  return value && /^[a-z0-9-]+(\|[a-z0-9-]+)+$/.test(value) ? value.split("|") : undefined;
}

/** `[command, flag, choices]` for every flag whose value is one of a few words. */
function choiceRows(commands: readonly Command[]): [string, string, string[]][] {
  return commands.flatMap((c) => c.flags.flatMap((f) => {
    // a value named LEVEL whose description is the list (fatal|error|...) offers the list too
    const choices = flagChoices(f.value) ?? flagChoices(f.description);
    return choices ? [[c.name, `--${f.flag}`, choices] as [string, string, string[]]] : [];
  }));
}

/**
 * A bash script that completes commands after `wirescope`, flags after a command, a flag's value
 * where it is one of a few words, and a command's words (Command.words) or else file names.
 */
export function bashCompletion(commands: readonly Command[]): string {
  const cases = commands.map((c) => `    ${c.name}) flags="${completionFlags(c).join(" ")}"; words="${(c.words ?? []).join(" ")}" ;;`).join("\n");
  const values = choiceRows(commands).map(([c, f, choices]) => `    "${c} ${f}") COMPREPLY=($(compgen -W "${choices.join(" ")}" -- "$cur")); return ;;`).join("\n");
  return `# wirescope bash completion: source <(wirescope completion bash)
_wirescope() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" prev="\${COMP_WORDS[COMP_CWORD-1]}" flags="" words=""
  if [[ $COMP_CWORD -eq 1 ]]; then
    COMPREPLY=($(compgen -W "${commands.map((c) => c.name).join(" ")} help --help --version" -- "$cur"))
    return
  fi
  case "\${COMP_WORDS[1]} $prev" in
${values}
  esac
  case "\${COMP_WORDS[1]}" in
    help) COMPREPLY=($(compgen -W "${commands.map((c) => c.name).join(" ")}" -- "$cur")); return ;;
${cases}
  esac
  if [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$flags" -- "$cur"))
  elif [[ -n "$words" ]]; then
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
  else
    COMPREPLY=($(compgen -f -- "$cur"))
  fi
}
complete -F _wirescope wirescope
`;
}

/** A zsh script doing the same (`source <(wirescope completion zsh)` after compinit). */
export function zshCompletion(commands: readonly Command[]): string {
  const q = (s: string) => `'${s.replace(/'/g, "'\\''")}'`;
  const cases = commands.map((c) => `    ${c.name}) compadd -- ${completionFlags(c).join(" ")} ;;`).join("\n");
  const values = choiceRows(commands).map(([c, f, choices]) => `    "${c} ${f}") compadd -- ${choices.join(" ")}; return ;;`).join("\n");
  const words = commands.filter((c) => c.words?.length).map((c) => `      ${c.name}) compadd -- ${c.words!.join(" ")} ;;`).join("\n");
  return `#compdef wirescope
# wirescope zsh completion: source <(wirescope completion zsh)
_wirescope() {
  if (( CURRENT == 2 )); then
    local -a cmds
    cmds=(${commands.map((c) => q(`${c.name}:${c.summary.replace(/:/g, "\\:")}`)).join(" ")})
    _describe command cmds
    return
  fi
  case "$words[2] $words[CURRENT-1]" in
${values}
  esac
  if [[ "$words[CURRENT]" != -* ]]; then
    case "$words[2]" in
${words}
      *) _files ;;
    esac
    return
  fi
  case "$words[2]" in
${cases}
  esac
}
compdef _wirescope wirescope
`;
}
