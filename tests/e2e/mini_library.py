"""A small demo-shaped library for the browser tests (data/demo layout, seconds to build).

    .venv/bin/python tests/e2e/mini_library.py OUT_DIR      (writes OUT_DIR/prompts, OUT_DIR/results.csv)

Five prompts on the MiniLM backbone (d = 384, L = 8) in three task families, written with
core.prompts.write_prompt, and a results.csv with RESULTS COLUMNS (contract): `scratch`
baselines (3 seeds) and `pot` transfers (1 seed) for every (source, target) pair.

The prompt values are synthetic, with a known structure: each family shares a centroid, so
within-family e_avg is high. The scores are synthetic too and follow that structure (a
within-family source gives the larger gain), so the pages have real tables to rank.
They exercise the UI, not the science: the lead's data/demo/ holds the real numbers.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

TASKS = {  # name -> family (names of the demo tasks, DESIGN.md §6)
    "sent_movie": "sentiment",
    "sent_tweet": "sentiment",
    "party_tweet": "politics",
    "party_speech": "politics",
    "question_type": "question",
}
BACKBONE = "sentence-transformers/all-MiniLM-L6-v2"


def build(out: Path | str, L: int = 8, d: int = 384) -> Path:
    """Write the library into `out` (created); return it."""
    import numpy as np
    import torch

    from core.prompts import SoftPrompt, write_prompt
    from core.results import write_rows

    out = Path(out)
    (out / "prompts").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    families = sorted(set(TASKS.values()))
    centroid = {f: rng.normal(0, 1, d) for f in families}
    scratch = {t: 0.6 + 0.05 * i for i, t in enumerate(TASKS)}
    for task, fam in TASKS.items():
        m = centroid[fam][None, :] + 0.6 * rng.normal(0, 1, (L, d))
        p = SoftPrompt(tensor=torch.tensor(m, dtype=torch.float32), name=task, task=task, family=fam,
                       backbone=BACKBONE, method="scratch", score=round(scratch[task] + 0.1, 4),
                       settings={"steps": 30, "fixture": "tests/e2e/mini_library.py (synthetic)"})
        write_prompt(p, out / "prompts" / task)

    rows, n = [], 0
    for target, tfam in TASKS.items():
        for seed in range(3):
            n += 1
            s = scratch[target] + 0.01 * (seed - 1)
            rows.append(dict(run_id=f"r{n:03d}", sweep_id="e2e", method="scratch", source="", target=target,
                             seed=seed, steps=30, train_size=64, val_score=round(s, 4), test_score=round(s, 4),
                             wall_time_s=1.0, device="cpu", status="finished", prompt_path="", settings="{}"))
        for source, sfam in TASKS.items():
            if source == target:
                continue
            gain = 0.12 if sfam == tfam else -0.02 + 0.01 * (len(source) % 3)
            n += 1
            for seed in range(1):
                s = scratch[target] * (1 + gain)
                rows.append(dict(run_id=f"r{n:03d}", sweep_id="e2e", method="pot", source=source, target=target,
                                 seed=seed, steps=30, train_size=64, val_score=round(s, 4),
                                 test_score=round(s, 4), wall_time_s=1.0, device="cpu", status="finished",
                                 prompt_path="", settings=json.dumps({"lr": 0.03})))
    (out / "manifest.json").write_text(json.dumps(
        {"label": "e2e test fixture: 5 synthetic prompts and synthetic scores (not the real demo)",
         "command": "tests/e2e/mini_library.py"}, indent=2) + "\n")
    write_rows(out / "results.csv", rows)  # the one results writer (core.results)
    return out


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    print(build(sys.argv[1]))
