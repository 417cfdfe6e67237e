"""The Prompt Atlas command line.

    python -m core --help
    python -m core prompts inspect PATH...

Each command lives in the module that owns the concept; a module exposes
``cli(command: str, argv: list[str]) -> int``. Modules are imported lazily so
``--help`` and light commands do not pay for torch.
"""
from __future__ import annotations

import importlib
import sys

# command -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "prompts": ("core.heads.cli", "soft-prompt files: inspect PATH... | eval PROMPT --task T [--preset P]"),
    "library": ("core.userlib", "a folder of prompts: index DIR | add FILE... | tag | rename | delete NAME | recover"),
    "tasks": ("core.tasks", "task registry: list | show T | prepare | add NAME PATH"),
    "train": ("core.training.cli", "train one prompt: scratch | pot | panda"),
    "matrix": ("core.jobs", "a source x target metric matrix as CSV (zs: under the compute ledger)"),
    "project": ("core.projection", "2-D/3-D projection of a prompt library as CSV"),
    "runs": ("core.runs.cli", "run store: list | show ID | cancel ID"),
    "run": ("core.runs.cli", "launch one run from a spec file"),
    "sweep": ("core.runs.cli", "launch a source x target grid from a spec file"),
    "worker": ("core.runs.cli", "execute one stored run (used by launchers)"),
    "rank": ("core.ranking", "rank source prompts for a target task from its data (--target T)"),
    "demo": ("core.demo", "the demo library: build | finalize | estimate"),
    "access": ("core.access", "what a shared server allows: mode, allowed roots, PATH checks"),
    "collection": ("core.collection", "named prompt sets: list | index \"demo,my runs\""),
    "jobs": ("core.jobs", "compute ledger: list | cancel JOB_ID (background jobs, the global cap)"),
}


def usage() -> str:
    lines = ["usage: python -m core COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<9} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "python -m core COMMAND --help for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"error: unknown command {command!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[command][0])
    return int(module.cli(command, rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
