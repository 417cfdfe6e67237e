"""`python -m core prompts ...`: `eval` (a prompt's accuracy on a task through a head) here, the rest in
core.prompts.cli.

    python -m core prompts eval PROMPT --task sent_movie [--preset thunlp-roberta] [--head mlm] [--words no,yes]
    python -m core prompts inspect PATH...

Routed here by core/__main__ so that core.prompts (read by core.tasks and core.training) never imports
the heads, which import both.
"""
from __future__ import annotations

from core.heads.presets import HeadError, preset_for   # torch-free: `prompts inspect` stays light


def cli(command: str, argv: list[str]) -> int:
    if argv[:1] == ["eval"]:
        return cli_eval(argv[1:], f"python -m core {command} eval")
    from core.prompts.cli import cli as prompts_cli
    return prompts_cli(command, argv)


def cli_eval(argv: list[str], prog: str) -> int:
    """``python -m core prompts eval``: one line with the accuracy, the head, the preset and the words."""
    import argparse
    import sys

    from core.heads.evaluate import evaluate_prompt
    from core.heads.presets import PRESETS, HeadKind, Position, Scoring, get_preset, store_preset
    from core.prompts.files import read_prompts
    from core.prompts.types import PromptError

    ap = argparse.ArgumentParser(prog=prog, description="Accuracy of a prompt on a task, read through a head "
                                 "(default: the preset stored with the prompt or implied by its release).")
    ap.add_argument("path", metavar="PROMPT", help="a prompt file or adapter folder")
    ap.add_argument("--task", required=True, help="a prepared task (python -m core tasks list)")
    ap.add_argument("--preset", choices=list(PRESETS), help="the released family's preset")
    ap.add_argument("--head", choices=[h.value for h in HeadKind], help="override the preset's head")
    ap.add_argument("--position", choices=[p.value for p in Position], help="mlm: where the score is read")
    ap.add_argument("--scoring", choices=[s.value for s in Scoring], help="seq2seq/causal: first token or sequence")
    ap.add_argument("--words", help="comma-separated label words for this task, one per label (a verbalizer)")
    ap.add_argument("--part", help="which prompt of a multi-prompt file (e.g. encoder, task0/encoder)")
    ap.add_argument("--split", choices=["test", "validation", "train"], help="default: test, else validation")
    ap.add_argument("--backbone", help="model name or folder (default: the prompt's)")
    ap.add_argument("--limit", type=int, help="score only the first N examples")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--save-preset", action="store_true", help="store the preset used in the prompt's atlas.json")
    args = ap.parse_args(argv)
    try:
        prompts = read_prompts(args.path)
        if args.part:
            prompts = [p for p in prompts if str(p.settings.get("part") or "") == args.part]
            if not prompts:
                raise HeadError(f"{args.path}: no prompt part {args.part!r}")
        prompt = prompts[0]
        preset = get_preset(args.preset) if args.preset else preset_for(prompt)
        verbalizer = dict(preset.verbalizer)
        if args.words:
            verbalizer[args.task] = [w for w in args.words.split(",")]
        preset = preset.with_(head=args.head, position=args.position, scoring=args.scoring, verbalizer=verbalizer)
        if args.head and not args.preset:
            preset = preset.with_(name="custom")
        res = evaluate_prompt(prompt, args.task, preset, split=args.split, backbone=args.backbone,
                              device=args.device, limit=args.limit)
        print(f"{prompt.name}: {res.line()}")
        if args.save_preset:
            print(f"preset stored in {store_preset(prompt, preset)}")
    except HeadError as e:  # name the prompt: the message may be about its model or task
        print(f"error: {args.path}: {e}", file=sys.stderr)
        return 1
    except PromptError as e:  # names its file already
        print(f"error: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # TaskError and the like: one line
        from core.tasks import TaskError
        if isinstance(e, TaskError):
            print(f"error: {e}", file=sys.stderr)
            return 1
        raise
    return 0
