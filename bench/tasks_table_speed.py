"""The Tasks page's table with a big saved task: summarised at save time vs. parsed on every load.

    .venv/bin/python bench/tasks_table_speed.py            # 200,000 rows
    .venv/bin/python bench/tasks_table_speed.py 1000000    # the issue's 1M-row task

core.task_upload.overview builds the table every Tasks page reads (cached 30 s per server). Before,
it loaded every user task's data to count its rows; now a saved task's registration carries its counts
and mean words (core.tasks.registry.task_summary), written once by save_task. Both are timed here in
one process on one saved task: "parsed" is the old path (the summary ignored), "summary" the new one.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(n: int) -> None:
    home = tempfile.mkdtemp(prefix="atlas-bench-")
    os.environ["ATLAS_HOME"] = home
    from core.task_upload import overview
    from core.tasks import registry
    from core.tasks.types import Split, Task

    words = "a wonderful moving film that I loved and a dull tedious mess".split()
    texts = [" ".join(words[(i + j) % len(words)] for j in range(12)) + f" {i}" for i in range(n)]
    labels = [i % 2 for i in range(n)]
    cut = [int(n * 0.7), int(n * 0.8)]
    t = Task(name="big", family="sentiment", labels=["neg", "pos"], descriptions=["bad", "good"],
             train=Split(texts[:cut[0]], labels[:cut[0]]), validation=Split(texts[cut[0]:cut[1]], labels[cut[0]:cut[1]]),
             test=Split(texts[cut[1]:], labels[cut[1]:]))
    t0 = time.perf_counter()
    registry.save_task(t)
    print(f"save_task of {n:,} rows: {time.perf_counter() - t0:.2f} s (summary written once here)")

    def timed(label: str) -> float:
        t0 = time.perf_counter()
        table = overview(["big"])
        s = time.perf_counter() - t0
        print(f"  {label:8s} {s:8.3f} s   train={int(table.loc[0, 'train']):,}")
        return s

    real = registry.saved_summary
    registry.saved_summary = lambda name: None  # the old path: every load parses the task
    parsed = min(timed("parsed") for _ in range(2))
    registry.saved_summary = real
    summary = min(timed("summary") for _ in range(3))
    print(f"table with a {n:,}-row task: parsed {parsed:.3f} s, summary {summary:.4f} s, "
          f"{parsed / max(summary, 1e-6):.0f}x faster")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)
