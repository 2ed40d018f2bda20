// `wirescope completion bash|zsh`: shell completion scripts generated from the command list and
// each command's flag table, so a
// new command or flag completes without editing a script.
import type { Command } from "../command.js";

/** The flags `cmd` completes: those of its table. */
export function completionFlags(cmd: Command): string[] {
  return [...new Set([...cmd.flags.map((f) => `--${f.flag}`), "--help"])];
}

/** A bash script that completes commands after `wirescope` and flags after a command. */
export function bashCompletion(commands: readonly Command[]): string {
  const cases = commands.map((c) => `    ${c.name}) flags="${completionFlags(c).join(" ")}" ;;`).join("\n");
  return `# wirescope bash completion: source <(wirescope completion bash)
_wirescope() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" flags=""
  if [[ $COMP_CWORD -eq 1 ]]; then
    COMPREPLY=($(compgen -W "${commands.map((c) => c.name).join(" ")} help --help --version" -- "$cur"))
    return
  fi
  case "\${COMP_WORDS[1]}" in
${cases}
    help) COMPREPLY=($(compgen -W "${commands.map((c) => c.name).join(" ")}" -- "$cur")); return ;;
  esac
  if [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$flags" -- "$cur"))
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
  return `#compdef wirescope
# wirescope zsh completion: source <(wirescope completion zsh)
_wirescope() {
  if (( CURRENT == 2 )); then
    local -a cmds
    cmds=(${commands.map((c) => q(`${c.name}:${c.summary.replace(/:/g, "\\:")}`)).join(" ")})
    _describe command cmds
    return
  fi
  if [[ "$words[CURRENT]" != -* ]]; then _files; return; fi
  case "$words[2]" in
${cases}
  esac
}
compdef _wirescope wirescope
`;
}
