"""Ranking speed: the 11 demo source prompts for a new 2-class target with 150 validation rows.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/ranking_speed.py

Target: NYT editorial sentences (tests/real_text.py; text no demo task uses), registered in
a temporary ATLAS_HOME; rankings are cached in a temporary ATLAS_CACHE so "cold" is cold.
Prints, in one process: cold rank_sources (backbone load included), cached rank_sources, and
the baseline: the same zs numbers from a per-pair loop of core.training.evaluate calls (backbone
already loaded, so the baseline is not charged for it), and whether the numbers agree.
Budget (issue 16): cold <= 60 s, cached <= 2 s on the 2-core CPU box.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def main() -> int:
    from real_text import editorial_csv

    tmp = Path(tempfile.mkdtemp(prefix="rank-bench-"))
    csv_path = editorial_csv(tmp / "editorial.csv", train=64, validation=75, test=40)
    os.environ["ATLAS_HOME"] = str(tmp / "home")
    from core.tasks import get_task, register_task
    register_task("editorial", csv_path, family="sentiment")
    os.environ["ATLAS_CACHE"] = str(tmp / "cache")   # empty: the ranking cache starts cold

    import torch
    torch.set_num_threads(os.cpu_count() or 1)
    from core.config import demo_dir
    from core.ranking import rank_sources
    from core.training import evaluate
    from core.backbone import load_backbone

    lib = [demo_dir() / "prompts"]
    t = time.perf_counter()
    cold = rank_sources("editorial", libraries=lib)
    t_cold = time.perf_counter() - t
    t = time.perf_counter()
    warm = rank_sources("editorial", libraries=lib)
    t_cached = time.perf_counter() - t
    assert warm.computed == 0, "second call should be served from the cache"

    task = get_task("editorial")
    bb = load_backbone(cold.backbone)
    from core.prompts import read_prompt
    t = time.perf_counter()
    loop = {}
    for _, row in cold.table.iterrows():
        p = read_prompt(row["path"])
        loop[row["source"]] = evaluate(p.tensor, task, "validation", bb, limit=cold.n_examples) - cold.majority
    t_loop = time.perf_counter() - t
    diff = max(abs(loop[s] - z) for s, z in zip(cold.table["source"], cold.table["zs"]))
    n = len(cold.table)
    print(f"target editorial: {n} sources, {cold.n_examples} validation examples, {torch.get_num_threads()} threads")
    print(f"cold rank_sources (zs + ncc, backbone load incl.): {t_cold:7.2f} s   (budget 60 s)")
    print(f"cached rank_sources:                               {t_cached:7.2f} s   (budget 2 s)")
    print(f"per-pair loop of evaluate (zs only, bb loaded):    {t_loop:7.2f} s")
    print(f"ratios: cold / loop = {t_cold / t_loop:.2f}x   loop / cached = {t_loop / t_cached:.0f}x")
    print(f"max |zs(rank) - zs(evaluate loop)| = {diff:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
