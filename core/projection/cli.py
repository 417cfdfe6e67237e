"""`python -m core project`: a 2-D/3-D map of a prompt library as CSV, one map per backbone group."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from core.fsutil import atomic_write_text
from core.projection.config import METHODS, METRICS, POINT_MODES, REDUCES, ProjectionConfig, ProjectionError
from core.projection.maps import project


def _pick_groups(index: Any, group: str | None) -> dict[str, list]:
    groups = index.groups()
    if group is None:
        return {g: index.group_prompts(g) for g in groups}
    if group in groups:
        return {group: index.group_prompts(group)}
    # a backbone name matches its group key (key = backbone or backbone:d)
    hits = [g for g in groups if g.split(":")[0] == group or g.rsplit(":", 1)[0] == group]
    if not hits:
        raise ProjectionError(f"no group {group!r}; groups: {', '.join(sorted(groups)) or '(none)'}")
    return {g: index.group_prompts(g) for g in hits}


def cli(command: str, argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog=f"python -m core {command}",
                                 description="Project a prompt library to 2-D/3-D, one map per backbone group.")
    ap.add_argument("--library", required=True, action="append",
                    help="folder of prompts (repeatable)")
    ap.add_argument("--method", choices=METHODS, default="umap")
    ap.add_argument("--group", help="backbone group (default: every group, each its own map)")
    ap.add_argument("--dims", type=int, choices=(2, 3), default=2)
    ap.add_argument("--points", choices=POINT_MODES, default="prompt", help="one point per prompt or per token")
    ap.add_argument("--reduce", choices=REDUCES, default="mean", help="prompt mode: mean of tokens or flattened")
    ap.add_argument("--metric", choices=METRICS, default="cosine")
    ap.add_argument("--n-neighbors", type=int, default=15)
    ap.add_argument("--min-dist", type=float, default=0.1)
    ap.add_argument("--perplexity", type=float, default=30.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True, help="CSV to write (name, task, backbone, group, x, y[, z]) (raw values: the product reads it back; unlike the pages' downloads, cells starting with = + - @ are not neutralised for spreadsheets)")
    ap.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    args = ap.parse_args(argv)

    out = Path(args.out)
    if out.exists() and not args.overwrite:
        print(f"error: {out}: exists (pass --overwrite to replace it)", file=sys.stderr)
        return 2
    try:
        cfg = ProjectionConfig(method=args.method, n_components=args.dims, point_mode=args.points,
                               reduce=args.reduce, metric=args.metric, n_neighbors=args.n_neighbors,
                               min_dist=args.min_dist, perplexity=args.perplexity, seed=args.seed)
        from core.library import index_library

        libs = [Path(p) for p in args.library]
        for p in libs:
            if not p.exists():
                raise ProjectionError(f"{p}: no such folder")
        index = index_library(libs if len(libs) > 1 else libs[0])
        for problem in getattr(index, "problems", []):
            print(f"warning: skipped {problem}", file=sys.stderr)
        groups = _pick_groups(index, args.group)
        if not groups:
            raise ProjectionError(f"no readable prompts under {', '.join(map(str, libs))}")
        frames = []
        for g, prompts in groups.items():
            proj = project(prompts, cfg)
            for note in proj.notes:
                print(f"note [{g}]: {note}", file=sys.stderr)
            t = proj.table()
            cols = ["name", "task", "backbone"] + (["prompt", "token"] if args.points == "token" else [])
            t = t[cols + list("xyz"[: args.dims])]
            t.insert(3, "group", g)
            frames.append(t)
            print(f"{g}: {len(t)} points, {proj.method} ({proj.source}, {proj.seconds:.1f} s)", file=sys.stderr)
        table = pd.concat(frames, ignore_index=True)
        atomic_write_text(out, table.to_csv(index=False))
    except (ProjectionError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out} ({len(table)} rows)")
    return 0
