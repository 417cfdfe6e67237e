"""Bring your own target, in a browser: upload a CSV on the Tasks page -> the task appears ->
rank the library's prompts as sources for it -> launch the top-2 sweep (tiny steps) -> the runs
finish -> the measured heatmap on the Transferability page has the new target's column.

    .venv/bin/python -m pytest -q tests/e2e/test_e2e_tasks.py

Everything is real: the CSV goes through the file input, the ranking encodes the target's
validation split with each source prompt (MiniLM), the sweep's five runs (scratch, 2 x PoT,
2 x PANDA; 3 steps each) are trained by detached worker processes. Screenshots:
tasks_uploaded.png, tasks_ranking.png, tasks_launched.png, tasks_measured_heatmap.png,
tasks_ranking_measured.png.
"""
from __future__ import annotations

import time

import pytest

from e2e_harness import check_page

HEATMAP = ".st-key-tr_heatmap .js-plotly-plot"
TARGET = "e2e_reviews"


@pytest.fixture(scope="module")
def server_env(mini_demo):
    return {"ATLAS_DEMO": str(mini_demo), "OMP_NUM_THREADS": "1"}


def _csv(path):
    pos = ["an uplifting, generous and joyful film", "a wonderful, hopeful and moving story",
           "bright, funny and kind from start to end"]
    neg = ["a bleak, cruel and dishonest failure", "an ugly, boring and shameful mess",
           "tedious, stupid and far too long"]
    rows = ["review,verdict"] + [f"\"{(pos if i % 2 else neg)[i % 3]} ({i})\",{'good' if i % 2 else 'bad'}"
                                 for i in range(120)]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_upload_rank_launch_and_measured_column(browser, tmp_path):
    b = browser
    check_page(b, "tasks", ".st-key-tasks_selected")
    b.click(next(e for e in b.find("[data-testid='stExpander'] summary") if "Add a task" in e.text))
    b.wait_for(".st-key-tasks_upload", timeout=30)
    b.upload(_csv(tmp_path / "reviews.csv"), key="tasks_upload")
    b.wait_for(".st-key-tasks_text_col", timeout=60)
    assert b.selected(key="tasks_text_col") == "review" and b.selected(key="tasks_label_col") == "verdict"
    b.set_text(TARGET, key="tasks_new_name")
    b.table_with("label", "description", "train")  # class counts before saving
    b.screenshot("tasks_uploaded")
    b.click(b.button("Save task", key="tasks_save"))
    b.wait_for("[data-testid='stAlert']", text=f"Saved task {TARGET}", timeout=60)
    b.wait_until(lambda: TARGET in b.column(b.table_with("task", "kind", "mean words"), "task"), 30,
                 f"{TARGET} in the tasks table")
    assert b.selected(key="tasks_selected") == TARGET

    b.click(b.button("Rank sources", key="tasks_rank"))
    rank = b.table_with("source", "zs", "ncc", timeout=180)
    sources = b.column(rank, "source")
    assert len(sources) == 5 and b.column(rank, "rank")[:2] == ["1", "2"], rank
    b.assert_no_exception()
    b.screenshot("tasks_ranking")

    b.set_number(2, key="tasks_top_k")
    b.set_number(3, key="tasks_steps")
    b.set_number(32, key="tasks_train_size")
    b.set_number(1, key="tasks_scratch_seeds")
    b.click(b.button("Launch top-2 sweep", key="tasks_launch"))
    b.wait_for("[data-testid='stAlert']", text="Queued sweep", timeout=60)
    b.assert_no_exception()
    b.screenshot("tasks_launched")

    from core.runs.store import RunStore
    store = RunStore(b.server.home / "runs.db")
    runs = store.list_runs()
    assert sorted(r["spec"]["method"] for r in runs) == ["panda", "panda", "pot", "pot", "scratch"], runs
    assert {r["source"] for r in runs if r["source"]} == set(sources[:2])
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        runs = store.list_runs()
        if all(r["status"] in ("finished", "failed", "cancelled") for r in runs):
            break
        time.sleep(2)
    assert all(r["status"] == "finished" for r in runs), [(r["run_id"], r["status"], r["error"]) for r in runs]

    plot = check_page(b, "transferability", HEATMAP, metric="measured")
    pts = b.wait_until(lambda: b.plot_points(plot), 30, "heatmap cell overlay drawn")
    targets = {p["customdata"][1] for p in pts}   # customdata = [source, target, value, ...]
    assert TARGET in targets, targets
    mine = [p["customdata"] for p in pts if p["customdata"][1] == TARGET and p["customdata"][0] in sources[:2]]
    assert len(mine) == 2 and all(c[2] is not None for c in mine), mine  # the two measured PoT cells
    b.screenshot("tasks_measured_heatmap")

    # back on the Tasks page the ranking (now from the cache) shows the measured gain beside it
    check_page(b, "tasks", ".st-key-tasks_selected")
    b.select(TARGET, key="tasks_selected")
    b.click(b.button("Rank sources", key="tasks_rank"))
    rank = b.table_with("source", "zs", "measured", "noise", timeout=60)
    measured = dict(zip(b.column(rank, "source"), b.column(rank, "measured")))
    assert all(measured[s] not in ("", "None") for s in sources[:2]), measured
    b.screenshot("tasks_ranking_measured")
