"""The Tasks page's table with a big saved task: summarised at save time vs. parsed on every load.

    .venv/bin/python bench/tasks_table_speed.py                   # 200,000 rows
    .venv/bin/python bench/tasks_table_speed.py --rows 1000000    # the issue's 1M-row task

core.task_upload.overview builds the table every Tasks page reads (cached 30 s per server). Before,
it loaded every user task's data to count its rows; now a saved task's registration carries its counts
and mean words (core.tasks.registry.task_summary), written once by save_task. Both are timed here in
one process on one saved task: "parsed" is the old path (the summary ignored), "summary" the new one.
Then the same for a whole Tasks page load (an AppTest run of pages/tasks.py, its 30-s table cache
cleared before each load, so every load is a first visitor's).
"""
from __future__ import annotations

import argparse
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

    # the page a visitor opens: AppTest of pages/tasks.py (app.py runs on the first run only: a warm-up)
    import streamlit as st
    from streamlit.testing.v1 import AppTest
    page = str(Path(__file__).resolve().parent.parent / "pages" / "tasks.py")

    def load(label: str) -> float:
        st.cache_data.clear()  # a first visitor: the table cache (30 s) is empty
        at = AppTest.from_file(page, default_timeout=600)
        t0 = time.perf_counter()
        at.run()
        s = time.perf_counter() - t0
        assert not at.exception, [e.value for e in at.exception]
        print(f"  page {label:8s} {s:8.3f} s")
        return s

    load("warm-up")
    registry.saved_summary = lambda name: None
    page_parsed = min(load("parsed") for _ in range(2))
    registry.saved_summary = real
    page_summary = min(load("summary") for _ in range(3))
    print(f"Tasks page load with a {n:,}-row task: parsed {page_parsed:.3f} s, summary {page_summary:.3f} s, "
          f"{page_parsed / max(page_summary, 1e-6):.1f}x faster")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=200_000, help="rows of the saved task (the issue's: 1000000)")
    main(ap.parse_args().rows)
