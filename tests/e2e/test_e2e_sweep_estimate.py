"""Issue 23, in a browser on a fresh install (empty ATLAS_HOME and an empty ATLAS_CACHE: no finished run, no
calibration): the Tasks page states the sweep's run count and its total before launch (from the timed
calibration it starts as a background job), and a small own-target sweep whose validation split is too
small to trust shows its cell flagged (grey, ⚠) on the Runs page, not as a coloured gain.

    .venv/bin/python -m pytest -q tests/e2e/test_e2e_sweep_estimate.py

Everything is real: upload, ranking (MiniLM), the calibration worker, the sweep's three runs (scratch, PoT,
PANDA; 3 steps each) trained by detached workers. 100 rows give a validation split of 15 (< 10 per class:
every run is flagged by core.evidence.run_flags). Screenshots: estimate_before_launch.png, sweep_flagged.png.
"""
from __future__ import annotations


import pytest

from e2e_harness import check_page, wait_runs_ended

TARGET = "e2e_small"


@pytest.fixture(scope="module")
def server_env(mini_demo, tmp_path_factory):
    return {"ATLAS_DEMO": str(mini_demo), "OMP_NUM_THREADS": "1",
            "ATLAS_CACHE": str(tmp_path_factory.mktemp("fresh_cache"))}


def _csv(path):
    pos = ["an uplifting, generous and joyful film", "a wonderful, hopeful and moving story"]
    neg = ["a bleak, cruel and dishonest failure", "an ugly, boring and shameful mess"]
    rows = ["review,verdict"] + [f"\"{(pos if i % 2 else neg)[i % 4 // 2]} ({i})\",{'good' if i % 2 else 'bad'}"
                                 for i in range(100)]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_total_before_launch_then_a_flagged_cell(browser, tmp_path):
    b = browser
    check_page(b, "tasks", "[data-testid='stExpander']")   # a fresh cache: no demo task is prepared, only the form
    b.click(next(e for e in b.find("[data-testid='stExpander'] summary") if "Add a task" in e.text))
    b.wait_for(".st-key-tasks_upload", timeout=30)
    b.upload(_csv(tmp_path / "small.csv"), key="tasks_upload")
    b.wait_for(".st-key-tasks_text_col", timeout=60)
    b.set_text(TARGET, key="tasks_new_name")
    b.click(b.button("Save task", key="tasks_save"))
    b.wait_for("[data-testid='stAlert']", text=f"Saved task {TARGET}", timeout=60)
    b.wait_for(".st-key-tasks_selected", timeout=60)
    b.click(b.button("Rank sources", key="tasks_rank"))
    b.table_with("source", "zs", "ncc", timeout=180)
    b.set_number(1, key="tasks_top_k")
    b.set_number(3, key="tasks_steps")
    b.set_number(1, key="tasks_scratch_seeds")
    # before launch: 3 runs (scratch + PoT first, then the PANDA student) and, once the calibration job
    # has timed MiniLM here, the total (the job's panel reruns the page when it ends)
    b.wait_until(lambda: "⏱ 3 runs (2 first, then 1 PANDA student once their teachers finish)" in b.page_text(),
                 60, "the run count before launch")
    b.wait_until(lambda: "in all" in b.page_text(), 300, "the total from the timed calibration")
    text = b.page_text()
    assert "from timed calibration" in text, text[-2000:]
    assert not any(b.server.home.glob("runs/*")), "nothing launched yet"
    b.assert_no_exception()
    b.screenshot("estimate_before_launch")

    b.click(b.button("Launch top-1 sweep", key="tasks_launch"))
    b.wait_for("[data-testid='stAlert']", text="Queued sweep", timeout=60)
    from core.runs.store import RunStore
    store = RunStore(b.server.home / "runs.db")
    runs = wait_runs_ended(b.server.home, 900, poll=3)
    assert all(r["status"] == "finished" for r in runs), [(r["run_id"], r["status"], r["error"]) for r in runs]
    flags = store.results_table()["flags"].tolist()
    assert all("validation < 10 examples per class" in f for f in flags), flags

    # the Runs page reruns its live fragment every few seconds: wait for the chart, not for an idle app
    b.driver.get(b.url_for("runs"))
    plot = b.wait_for(".st-key-runs_sweep_measured .js-plotly-plot", timeout=180)[0]
    b.assert_no_exception()
    traces = b.wait_until(lambda: b.driver.execute_script(
        "const gd = arguments[0]; return (gd.data || []).map(t => [t.name || '', JSON.stringify(t.text || '')]);",
        plot), 30, "the sweep heatmap's traces")
    names = [n for n, _ in traces]
    assert "flagged runs" in names, traces                       # the cell is drawn grey ...
    marks = dict(traces).get("evidence marks", "")
    assert "⚠" in marks, traces                                 # ... and marked, not a coloured gain
    # (its heatmap value is left blank: tests/test_runs_page.py reads the figure's z)
    b.assert_no_exception()
    b.screenshot("sweep_flagged")
