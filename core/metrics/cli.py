"""`python -m core matrix`: a source x target metric matrix of a prompt library as CSV.

    python -m core matrix --library DIR --metric e_avg [--group BACKBONE] --out FILE.csv
    python -m core matrix --library DIR --metric zs --head thunlp-roberta   # zs read as the prompts were trained
    python -m core matrix --list
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from core.metrics.cache import compute_matrix, write_matrix_csv
from core.metrics.measured import measured
from core.metrics.registry import METRICS, MetricError, zs_heads, zs_params
from core.metrics.validation import by_task
from core.results import ResultsError, read_finished


def _parser(command: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"python -m core {command}",
                                     description="A source x target metric matrix of a prompt library as CSV "
                                                 "(rows and columns = prompt names; measured: columns = tasks).")
    parser.add_argument("--library", action="append", default=[], metavar="DIR",
                        help="prompt folder (repeatable)")
    parser.add_argument("--metric", choices=list(METRICS), help="which metric")
    parser.add_argument("--group", default=None, help="backbone group (needed when the library has several)")
    parser.add_argument("--results", default=None, help="results CSV for measured (default: LIBRARY/../results.csv)")
    parser.add_argument("--method", default=None, help="measured: transfer method (pot, panda)")
    parser.add_argument("--by-task", nargs="?", const="targets", choices=["targets", "both"], default=None,
                        help="targets (the default when given alone): columns = target tasks (mean over a task's "
                             "prompts, scratch prompts preferred); both: rows = source tasks too (a prompt is never "
                             "averaged against itself)")
    parser.add_argument("--marks", action="store_true",
                        help="measured: core.evidence's mark per cell (evidence, inside noise, self-transfer, target "
                             "not measurable, ...) instead of the gain: the marks the pages draw")
    parser.add_argument("--out", default=None, help="output CSV (default: stdout) (raw values: the product reads it back; unlike the pages' downloads, cells starting with = + - @ are not neutralised for spreadsheets)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    parser.add_argument("--head", default=None, choices=zs_heads(), metavar="HEAD",
                        help="zs only: read each source through this head -- cosine (default: pooled features "
                             "against the label descriptions) or a label-word preset (" + ", ".join(zs_heads()[1:])
                             + "), the LM's own head as released prompts were trained")
    parser.add_argument("--no-cache", action="store_true", help="recompute instead of reading cache_dir()/metrics")
    parser.add_argument("--list", action="store_true", help="list the metrics and exit")
    return parser


def _print_list() -> None:
    for m in METRICS.values():
        flags = ", ".join(f for f, on_ in [("needs backbone", m.needs_backbone), ("our reading", m.our_reading),
                                             ("asymmetric", not m.symmetric)] if on_)
        print(f"{m.name:<10} {m.label}{f'  [{flags}]' if flags else ''}\n{'':<11}{m.description}")


def cli(command: str, argv: list[str], zs_context=None) -> int:
    """``zs_context(prompts, use_saved) -> context manager yielding zs keyword arguments`` (``pairs``,
    ``progress``): what ``python -m core matrix`` passes (core.jobs.cli_zs: the ledger's per-(prompt, task)
    pair store under the global compute cap). Without it zs keeps its own cache file (library use)."""
    parser = _parser(command)
    args = parser.parse_args(argv)
    if args.list:
        _print_list()
        return 0
    if not args.metric:
        parser.error("--metric is required (or --list)")
    if args.out and Path(args.out).exists() and not args.overwrite:
        print(f"error: {args.out}: already exists (pass --overwrite to replace it)", file=sys.stderr)
        return 2
    try:
        df = _cli_matrix(args, zs_context)
    except (MetricError, ResultsError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.out:
        write_matrix_csv(df, args.out)
        print(f"wrote {args.out}: {df.shape[0]} sources x {df.shape[1]} targets", file=sys.stderr)
    else:
        sys.stdout.write(df.to_csv(float_format="%.6g"))
    return 0


def _cli_matrix(args, zs_context=None) -> pd.DataFrame:
    if args.metric == "measured":
        path = Path(args.results) if args.results else (Path(args.library[0]).parent / "results.csv"
                                                         if args.library else None)
        if path is None or not path.is_file():
            raise MetricError(f"{path}: no results CSV (pass --results FILE)")
        if args.marks:
            from core.evidence import evidence
            tasks = {}
            for d in args.library:  # a source named by its prompt: its task from the prompt's atlas.json
                for meta in sorted(Path(d).glob("*/atlas.json")):
                    info = json.loads(meta.read_text(encoding="utf-8"))
                    tasks[info.get("name", meta.parent.name)] = info.get("task") or meta.parent.name
            return evidence(read_finished(path), method=args.method or "pot", prompt_tasks=tasks).marks
        return measured(read_finished(path), method=args.method).mean
    if args.head is not None and args.metric != "zs":
        raise MetricError(f"--head reads zs through a head; {args.metric} has none (drop --head)")
    params = zs_params(args.head) if args.metric == "zs" else {}
    prompts = _group_prompts(args)
    if args.metric == "zs" and zs_context is not None:
        with zs_context(prompts, use_saved=not args.no_cache, head=params.get("head")) as kw:
            df = compute_matrix(args.metric, prompts, cache=not args.no_cache, **kw, **params)
    else:
        df = compute_matrix(args.metric, prompts, cache=not args.no_cache, **params)
    return by_task(df, prompts, rows=args.by_task == "both") if args.by_task else df


def _group_prompts(args) -> list:
    """The prompts of the one backbone group --library/--group name (an error says which groups exist)."""
    if not args.library:
        raise MetricError("--library DIR is required")
    for d in args.library:
        if not Path(d).exists():
            raise MetricError(f"{d}: no such folder")
    from core.library import index_library

    index = index_library([Path(d) for d in args.library] if len(args.library) > 1 else Path(args.library[0]))
    for p in index.problems:
        print(f"warning: skipped {p}", file=sys.stderr)
    groups = index.groups()
    if not groups:
        raise MetricError(f"{', '.join(args.library)}: no prompts found")
    if args.group is None:
        if len(groups) > 1:
            raise MetricError("the library holds several backbone groups, which are never compared: "
                              + ", ".join(f"{g} ({len(n)})" for g, n in groups.items()) + "; pick one with --group")
        group = next(iter(groups))
    else:
        group = args.group
        if group not in groups:
            raise MetricError(f"no backbone group {group!r}; groups: {', '.join(groups)}")
    return index.group_prompts(group)
