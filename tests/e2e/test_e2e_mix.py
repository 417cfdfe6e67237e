"""Several sources at once in a browser (issue 27): rank the library's prompts for a target on the
Tasks page -> tick "mix the top 2" -> the plan lists the mixture runs before launch -> launch (tiny
steps) -> every run finishes -> the heatmap's method picker offers attempt -> the Library shows the
attempt run's mean attention over its two sources.

    .venv/bin/python -m pytest -q tests/e2e/test_e2e_mix.py

Everything is real: the ranking scores each source prompt on the target's data (MiniLM), and the
sweep's runs (scratch, PoT and PANDA from each of the two, then attempt, multi-teacher PANDA and
SPoT from both; 3 steps each) are trained by detached worker processes. Screenshots: mix_plan.png,
mix_attention.png.
"""
from __future__ import annotations


import pytest

from e2e_harness import check_page, wait_runs_ended

TARGET = "spam_sms"  # a prepared demo task no prompt of the mini library was trained on


@pytest.fixture(scope="module")
def server_env(mini_demo):
    return {"ATLAS_DEMO": str(mini_demo), "OMP_NUM_THREADS": "1"}


def _options(b, key: str) -> list[str]:
    """Every option a selectbox offers (opened, read, closed with Escape)."""
    from selenium.webdriver.common.keys import Keys
    box = b.widget(key=key)
    inp = box.find_element("css selector", "input")
    b.click(inp)
    opts = b.wait_until(lambda: [o.text.strip() for o in b.find("[role='option']") if o.is_displayed()] or None, 10,
                        f"options of {key}")
    inp.send_keys(Keys.ESCAPE)
    return opts


def test_mix_the_top_two_from_a_ranking(browser):
    b = browser
    check_page(b, "tasks", ".st-key-tasks_selected")
    b.select(TARGET, key="tasks_selected")
    b.click(b.button("Rank sources", key="tasks_rank"))
    rank = b.table_with("source", "zs", "ncc", timeout=240)
    top2 = b.column(rank, "source")[:2]
    b.wait_idle(start_wait=2.0)  # the ranking's rerun settles before the launch form is typed into
    for value, key in ((2, "tasks_top_k"), (3, "tasks_steps"), (32, "tasks_train_size"), (1, "tasks_scratch_seeds")):
        b.set_number(value, key=key)  # retyped when a rerun replaced the input (e2e_harness)
    b.click(b.widget(key="tasks_mix").find_element("css selector", "label"))
    plan = b.wait_for("[data-testid='stCode']", text="mix top-2 (zs)", timeout=60)[0].text
    assert "attempt" in plan and "8 run(s)" in plan, plan  # scratch, 2 pot, 2 panda, attempt, panda, spot
    b.screenshot("mix_plan")
    b.click(b.button("Launch top-2 sweep", key="tasks_launch"))
    b.wait_for("[data-testid='stAlert']", text="Queued sweep", timeout=60)
    b.assert_no_exception()

    runs = wait_runs_ended(b.server.home, 900, poll=2)
    assert all(r["status"] == "finished" for r in runs), [(r["run_id"], r["status"], r["error"]) for r in runs]
    mixed = [r for r in runs if r["source"] == "mix top-2 (zs)"]
    assert sorted(r["method"] for r in mixed) == ["attempt", "panda", "pot"], [(r["method"], r["source"]) for r in runs]
    assert all(r["spec"]["mix"]["members"] == top2 for r in mixed)

    # the heatmap's method picker offers the mixture methods beside pot and panda
    b.open("transferability", metric="measured", col="demo,my runs")  # the sources and the runs
    b.wait_for(".st-key-tr_method", timeout=120)
    assert "attempt" in _options(b, "tr_method")
    b.assert_no_exception()

    # the Library: the attempt run's mean attention over its sources
    b.open("library", col="my runs")
    b.wait_for(".st-key-library_detail", timeout=120)
    attempt_id = next(r["run_id"] for r in mixed if r["method"] == "attempt")  # `my runs` names a prompt by its run
    b.select(attempt_id, key="library_detail")
    att = b.table_with("prompt", "role", "mean attention", timeout=60)
    assert set(b.column(att, "prompt")) == {*top2, "target"}, b.column(att, "prompt")
    b.screenshot("mix_attention")
    b.assert_no_exception()
