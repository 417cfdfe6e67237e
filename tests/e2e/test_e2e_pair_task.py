"""A sentence-pair target in a browser (issue 25): upload a two-text CSV on the Tasks page -> the
second text column is guessed -> the saved task's preview shows both texts -> rank the library's
prompts for it -> launch the top-1 sweep (tiny steps) -> its runs finish.

    .venv/bin/python -m pytest -q tests/e2e/test_e2e_pair_task.py

Everything is real: the CSV goes through the file input, the ranking encodes the pairs as the
tokenizer's pairs with each source prompt (MiniLM), the sweep's runs (scratch, PoT, PANDA; 3 steps
each) are trained by detached worker processes. Screenshots: pair_uploaded.png, pair_ranking.png.
"""
from __future__ import annotations


import pytest

from e2e_harness import check_page, wait_runs_ended

TARGET = "e2e_rte"


@pytest.fixture(scope="module")
def server_env(mini_demo):
    return {"ATLAS_DEMO": str(mini_demo), "OMP_NUM_THREADS": "1"}


def _csv(path):
    prem = ["The museum opened a new wing for modern sculpture last spring.",
            "Heavy rain flooded the streets of the old town overnight.",
            "The company reported record profits in the third quarter."]
    yes = ["The museum has a new wing.", "The streets were flooded.", "The company made money."]
    no = ["The museum closed down.", "The town had a long drought.", "The company lost money."]
    rows = ["index,sentence1,sentence2,label"] + [
        f"{i},\"{prem[i % 3]} ({i})\",\"{(yes if i % 2 else no)[i % 3]}\",{'entailment' if i % 2 else 'not_entailment'}"
        for i in range(120)]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_pair_upload_rank_and_launch(browser, tmp_path):
    b = browser
    check_page(b, "tasks", ".st-key-tasks_selected")
    b.click(next(e for e in b.find("[data-testid='stExpander'] summary") if "Add a task" in e.text))
    b.wait_for(".st-key-tasks_upload", timeout=30)
    b.upload(_csv(tmp_path / "rte_train.csv"), key="tasks_upload")
    b.wait_for(".st-key-tasks_text_col2", timeout=60)
    assert b.selected(key="tasks_text_col") == "sentence1" and b.selected(key="tasks_text_col2") == "sentence2"
    assert b.selected(key="tasks_label_col") == "label"
    b.set_text(TARGET, key="tasks_new_name")
    b.table_with("label", "description", "train")
    b.screenshot("pair_uploaded")
    b.click(b.button("Save task", key="tasks_save"))
    b.wait_for("[data-testid='stAlert']", text=f"Saved task {TARGET}", timeout=60)
    assert b.selected(key="tasks_selected") == TARGET
    ex = b.table_with("label", "text", "text2", timeout=30)     # the preview shows both texts
    assert all(t in ("The museum has a new wing.", "The streets were flooded.", "The company made money.",
                     "The museum closed down.", "The town had a long drought.", "The company lost money.")
               for t in b.column(ex, "text2")), b.column(ex, "text2")

    b.click(b.button("Rank sources", key="tasks_rank"))
    rank = b.table_with("source", "zs", "ncc", timeout=180)
    sources = b.column(rank, "source")
    assert len(sources) == 5
    b.assert_no_exception()
    b.screenshot("pair_ranking")

    b.set_number(1, key="tasks_top_k")
    b.set_number(3, key="tasks_steps")
    b.set_number(32, key="tasks_train_size")
    b.set_number(1, key="tasks_scratch_seeds")
    b.click(b.button("Launch top-1 sweep", key="tasks_launch"))
    b.wait_for("[data-testid='stAlert']", text="Queued sweep", timeout=60)
    b.assert_no_exception()

    runs = wait_runs_ended(b.server.home, 600, poll=2)
    assert sorted(r["spec"]["method"] for r in runs) == ["panda", "pot", "scratch"], runs
    assert all(r["status"] == "finished" for r in runs), [(r["run_id"], r["status"], r["error"]) for r in runs]
    assert {r["spec"]["target_data_hash"] for r in runs} != {None}
