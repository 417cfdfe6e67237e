"""``python -m core train``: train one soft prompt, or print a task's baselines.

    python -m core train --task sent_tweet --method scratch --steps 300 --train-size 200
    python -m core train --task sent_product --method pot --source workspace/library/sent_tweet-scratch-s0
    python -m core train --task sent_product --method panda --source SRC --teacher POT_PROMPT
    python -m core train --task sent_movie --baselines        # majority / no prompt / logistic probe

Every TrainConfig field is a flag, generated from the field (name with dashes, type, choices,
default, help); the flags that are not fields are in :data:`OTHER_FLAGS`.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import MISSING, fields
from enum import Enum
from pathlib import Path

from core.training.config import TrainConfig, TrainError, unwrap_optional, field_types

# what the command does with a run, beside the run's settings: (flag, argparse keywords)
OTHER_FLAGS = (
    ("--out", dict(default=None, help="output folder (default: ATLAS_HOME/library/NAME)")),
    ("--no-save", dict(action="store_true", help="train and report, save nothing")),
    ("--overwrite", dict(action="store_true", help="replace an existing output folder")),
    ("--json", dict(action="store_true", help="print the result as one JSON line")),
    ("--baselines", dict(action="store_true",
                         help="only print majority / no-prompt / logistic-probe accuracy for the task")),
)


def flag_of(name: str) -> str:
    """The CLI flag of a TrainConfig field (``prompt_length`` -> ``--prompt-length``)."""
    meta = TrainConfig.__dataclass_fields__[name].metadata
    return meta.get("flag") or "--" + name.replace("_", "-")


def _argument(name: str, hint, meta, default) -> dict:
    """argparse keywords for one field, from its type: a choice, a flag pair, a list, a number."""
    base, _ = unwrap_optional(hint)
    kw = dict(dest=name, help=meta.get("help", ""), default=default)
    if meta.get("required"):
        kw.update(required=True, default=None)
    if "metavar" in meta:
        kw["metavar"] = meta["metavar"]
    if isinstance(base, type) and issubclass(base, Enum):
        kw.update(choices=[m.value for m in base], default=_plain(default))
    elif base is bool:
        kw["action"] = argparse.BooleanOptionalAction  # --compile / --no-compile
    elif base is list:  # repeated flag: --source A --source B
        kw.update(action="append", default=None)
    elif getattr(base, "__origin__", None) is list:  # one flag, several values: --source-weights 1 3
        kw.update(nargs="+", type=base.__args__[0])
    elif base in (int, float):
        kw["type"] = base
    return kw


def _plain(v):
    return v.value if isinstance(v, Enum) else v


def parser() -> argparse.ArgumentParser:
    """One flag per TrainConfig field, plus :data:`OTHER_FLAGS`."""
    p = argparse.ArgumentParser(prog="python -m core train",
                                description="Train one soft prompt: scratch | pot | panda.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    hints = field_types()
    for f in fields(TrainConfig):
        default = f.default_factory() if f.default is MISSING else f.default
        p.add_argument(flag_of(f.name), **_argument(f.name, hints[f.name], f.metadata, default))
    for flag, kw in OTHER_FLAGS:
        p.add_argument(flag, **kw)
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The parsed flags -> a validated TrainConfig (TrainError names a bad value)."""
    return TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)})


def to_argv(cfg: TrainConfig) -> list[str]:
    """The flags that rebuild ``cfg`` (fields at their default are left out; prompts must be paths)."""
    out: list[str] = []
    defaults = TrainConfig()
    for f in fields(TrainConfig):
        v, flag = getattr(cfg, f.name), flag_of(f.name)
        if v == getattr(defaults, f.name) and not f.metadata.get("required"):
            continue
        if isinstance(v, bool):
            out.append(flag if v else "--no-" + flag[2:])
        elif f.name in ("sources", "teachers"):
            for s in v:
                out += [flag, str(s)]
        elif isinstance(v, list):
            out += [flag, *map(str, v)]
        else:
            out += [flag, str(_plain(v))]
    return out


def cli(command: str, argv: list[str]) -> int:
    args = parser().parse_args(argv)
    try:
        if args.baselines:
            return _baselines(args)
        return _train(config_from_args(args), args)
    except (TrainError, ValueError, FileNotFoundError) as e:  # BackboneError and TaskError are ValueErrors
        print(f"error: {e}", file=sys.stderr)
        return 2


def _baselines(args) -> int:
    from core.backbone import load_backbone
    from core.tasks import get_task
    from core.training.evaluation import zero_shot_scores
    task = get_task(args.task)
    bb = load_backbone(args.backbone, args.device, compile=args.compile)
    s = zero_shot_scores(task, bb, probe=True, train_size=args.train_size)
    print(json.dumps({"task": task.name, **{k: round(v, 4) for k, v in s.items()}}))
    return 0


def _train(cfg: TrainConfig, args) -> int:
    from core.backbone import load_backbone
    from core.tasks import get_task
    from core.training.evaluation import majority_rate
    from core.training.loop import train
    from core.training.result import save_result
    task = get_task(cfg.task)
    # a label-word head loads the model with its LM head itself (core.training.lmhead): no second copy
    bb = None if cfg.lm_head else load_backbone(cfg.backbone, cfg.device, compile=cfg.compile)
    res = train(cfg, callback=_print_event, backbone=bb, task=task, progress=not args.json)
    out = None
    if not args.no_save:
        from core.config import user_library_dir
        out = save_result(res, Path(args.out) if args.out else user_library_dir() / res.prompt.name,
                          overwrite=args.overwrite)
    summary = {"task": task.name, "method": str(cfg.method), "val_score": round(res.val_score, 4),
               "test_score": round(res.test_score, 4), "init_val_score": res.init_val_score,
               "majority": round(majority_rate(task), 4), "best_step": res.best_step, "steps": res.steps,
               "wall_time_s": round(res.wall_time_s, 1), "device": res.device,
               "kd_lambda": cfg.effective_lambda(), "saved": str(out) if out else None}
    if args.json:
        print(json.dumps(summary))
    else:
        for k, v in summary.items():
            print(f"{k:>14}: {v}")
    return 0


def _print_event(ev: dict) -> None:
    from tqdm import tqdm
    if ev["kind"] == "eval":
        tqdm.write(f"step {ev['step']:>5}  val_score {ev['metrics']['val_score']:.4f}  "
                   f"best {ev['metrics']['best_val_score']:.4f}")
    elif ev["kind"] == "status" and ev["metrics"].get("state") == "caching_teacher":
        tqdm.write(f"caching teacher logits for {ev['metrics']['n']} examples")
