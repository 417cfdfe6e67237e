"""`python -m core prompts inspect PATH... [--dim D]`: one line per prompt (path, format, L, d, backbone, task).

`python -m core prompts eval PROMPT --task T [--preset P] [--head mlm|seq2seq|causal|cosine]`: accuracy on
the task read through a head (core.heads.cli, to which core/__main__ routes `prompts`)."""
from __future__ import annotations

import sys

from core.prompts.files import read_prompts
from core.prompts.types import PromptError, SoftPrompt


def _fmt_row(p: SoftPrompt) -> str:
    return f"{p.origin}\t{p.fmt}\tL={p.L}\td={p.d}\tbackbone={p.backbone or '?'}\ttask={p.task or '?'}"


def cli(command: str, argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog=f"python -m core {command}",
                                     description="Read and validate soft-prompt files.")
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("eval", help="accuracy of a prompt on a task through a head: eval PROMPT --task T [--preset P]",
                   add_help=False)  # listed for --help; core.heads.cli runs it
    ins = sub.add_parser("inspect", help="one line per prompt: path, format, L, d, backbone, task")
    ins.add_argument("paths", nargs="+", metavar="PATH")
    ins.add_argument("--dim", type=int, default=None, help="expected token_dim (the backbone's)")
    args = parser.parse_args(argv)
    from core.prompts.attempt_dir import is_attempt_dir, open_released  # torch: only when the command runs
    failed = 0
    for path in args.paths:
        try:
            if is_attempt_dir(path):  # ATTEMPT's output folder: what it is as a model (core.prompts.attempt_dir)
                print(f"{path}\t{open_released(path).describe()}")
                continue
            for p in read_prompts(path, expected_dim=args.dim):
                print(_fmt_row(p) + (f"\t{p.name}" if p.settings.get("part") else ""))
        except PromptError as e:
            failed += 1
            print(f"error: {e}", file=sys.stderr)
    if failed:
        print(f"{failed} of {len(args.paths)} path(s) failed", file=sys.stderr)
    return 1 if failed else 0
