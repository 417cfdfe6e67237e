"""Ranking speed: the 11 demo source prompts for a new 2-class target with 150 validation rows.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/ranking_speed.py

Target: NYT editorial sentences (tests/real_text.py; text no demo task uses), registered in
a temporary ATLAS_HOME; rankings are cached in a temporary ATLAS_CACHE so "cold" is cold.
Prints, in one process: cold rank_sources (backbone load included), cached rank_sources, and
the baseline: the same zs numbers from a per-pair loop of core.training.evaluate calls (backbone
already loaded, so the baseline is not charged for it), and whether the numbers agree.
Budget (issue 16): cold <= 60 s, cached <= 2 s on the 2-core CPU box.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/ranking_speed.py --pair [--repeats=2]

Pair target (issue 25): the same editorial sentences cut into (first half, second half) pairs
and registered as a sentence-pair task, and the same pairs joined into one text as a
single-text task; both ranked cold (own empty caches, backbone already loaded), alternating
order over ``--repeats`` rounds, in one process. Budget: pair <= 1.1x joined (the pair
encoding costs nothing beyond its one extra separator token).
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


def pair_vs_joined(repeats: int = 2) -> int:
    import csv
    import statistics
    from real_text import editorial_csv
    tmp = Path(tempfile.mkdtemp(prefix="rank-pair-bench-"))
    src = editorial_csv(tmp / "editorial.csv", train=64, validation=75, test=40)
    with open(src, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    text_col = next(c for c in rows[0] if c not in ("label", "split"))
    pairs, joined = tmp / "pairs.csv", tmp / "joined.csv"
    with open(pairs, "w", encoding="utf-8", newline="") as fp, open(joined, "w", encoding="utf-8", newline="") as fj:
        wp, wj = csv.writer(fp), csv.writer(fj)
        extra = [c for c in rows[0] if c in ("label", "split")]
        wp.writerow(["sentence1", "sentence2", *extra])
        wj.writerow(["text", *extra])
        for r in rows:
            w = r[text_col].split()
            a, b = " ".join(w[:len(w) // 2]) or w[0], " ".join(w[len(w) // 2:])
            wp.writerow([a, b, *(r[c] for c in extra)])
            wj.writerow([f"{a} {b}", *(r[c] for c in extra)])
    os.environ["ATLAS_HOME"] = str(tmp / "home")
    from core.tasks import get_task, register_task
    register_task("ed_pair", pairs, text_col=["sentence1", "sentence2"])
    register_task("ed_joined", joined)
    import torch
    torch.set_num_threads(os.cpu_count() or 1)
    from core.backbone import load_backbone
    from core.config import demo_dir
    from core.ranking import rank_sources
    lib = [demo_dir() / "prompts"]
    bb = load_backbone(None)  # loaded once, before either timing
    tokens = {}
    for n in ("ed_pair", "ed_joined"):
        va = get_task(n).validation
        texts, texts2 = va.inputs(list(range(min(len(va), 200))))
        tokens[n] = sum(len(x) for x in bb.token_ids(texts, 128, texts2))
    times = {"ed_pair": [], "ed_joined": []}
    for i in range(repeats):
        for name in (("ed_pair", "ed_joined") if i % 2 == 0 else ("ed_joined", "ed_pair")):
            os.environ["ATLAS_CACHE"] = str(tmp / f"cache-{name}-{i}")   # cold each time
            t = time.perf_counter()
            r = rank_sources(name, libraries=lib)
            times[name].append(time.perf_counter() - t)
            assert r.computed == len(r.table)
    tp, tj = statistics.median(times["ed_pair"]), statistics.median(times["ed_joined"])
    t_pair = get_task("ed_pair")
    print(f"pair target: {len(r.table)} sources, {r.n_examples} validation examples, pair={t_pair.is_pair}, "
          f"{torch.get_num_threads()} threads, {repeats} cold rankings each (median)")
    print(f"cold rank_sources, sentence pairs:      {tp:7.2f} s   rounds {[round(x, 1) for x in times['ed_pair']]}")
    print(f"cold rank_sources, same pairs joined:   {tj:7.2f} s   rounds {[round(x, 1) for x in times['ed_joined']]}")
    print(f"validation tokens: pairs {tokens['ed_pair']}, joined {tokens['ed_joined']} "
          f"({tokens['ed_pair'] / tokens['ed_joined']:.3f}x: one more separator per pair)")
    print(f"ratio pair / joined = {tp / tj:.3f}x   (budget 1.10x)")
    return 0


def main() -> int:
    if "--pair" in sys.argv[1:]:
        rep = next((int(a.split("=", 1)[1]) for a in sys.argv[1:] if a.startswith("--repeats=")), 2)
        return pair_vs_joined(rep)
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
