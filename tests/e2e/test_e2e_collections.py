"""Issue 15 in a real browser, on the committed demo library (data/demo):

    .venv/bin/python -m pytest -q tests/e2e/test_e2e_collections.py

defect 1  a finished run's prompt (ATLAS_HOME/library/runs) leaves the default Transferability numbers
          alone; choosing `my runs` changes them
defect 4  Library: the prompt box and the detail below it name the same prompt after a task filter
defect 6  "Another prompt folder" adds to the collections
defect 7  a group no run measured: "no runs measured for this group", a metric it can show
defect 8  the Definitions page, linked from Transferability
"""
from __future__ import annotations

import pytest
import torch
from e2e_harness import Browser  # noqa: F401  (fixtures come from conftest)

from core import metrics as M
from core.collection import index as index_collections
from core.config import REPO_ROOT
from core.prompts import SoftPrompt, write_prompt

DEMO = REPO_ROOT / "data" / "demo"
MINILM = "sentence-transformers/all-MiniLM-L6-v2"
PRED = "predicted (e_avg)"
ALERT = "[data-testid='stAlert']"

pytestmark = pytest.mark.skipif(not (DEMO / "results.csv").is_file(), reason=f"demo library not built ({DEMO})")


@pytest.fixture(scope="module")
def server_env():
    return {"ATLAS_DEMO": str(DEMO)}


@pytest.fixture(scope="module")
def home(atlas_server):
    """The server's ATLAS_HOME with one throwaway run prompt and one prompt of no known backbone."""
    h = atlas_server.home
    g = torch.Generator().manual_seed(7)
    write_prompt(SoftPrompt(tensor=torch.randn(20, 384, generator=g), name="sent_tweet-scratch-20steps",
                            task="sent_tweet", family="sentiment", backbone=MINILM, method="scratch"),
                 h / "library" / "runs" / "run-0001" / "sent_tweet-scratch-20steps")
    return h


def demo_e_avg(source: str, target: str) -> float:
    """The demo-only value, computed here without the page: e_avg averaged over the target task's prompts."""
    prompts = list(index_collections(["demo"]).prompts.values())
    return float(M.by_task(M.compute_matrix("e_avg", prompts), prompts).at[source, target])


def value_of(rows, source: str, column: str = PRED) -> float:
    i, j = rows[0].index("source"), rows[0].index(column)
    return float(next(r[j] for r in rows[1:] if len(r) > j and r[i] == source))


def test_a_finished_run_leaves_the_default_numbers_alone(browser, home):
    b = browser
    b.open("transferability", metric="e_avg", target="sent_tweet")
    rows = b.table_with("source", PRED, timeout=90)
    b.assert_no_exception()
    assert "`demo`, `my library` (11 prompts)" in b.page_text() or "demo, my library (11 prompts)" in b.page_text()
    expected = demo_e_avg("sent_product", "sent_tweet")
    assert value_of(rows, "sent_product") == pytest.approx(expected, abs=1e-4)
    assert "sent_tweet-scratch-20steps" not in Browser.column(rows, "source")
    b.screenshot("issue15_default_collections")

    b.open("transferability", metric="e_avg", target="sent_tweet", col="demo,my library,my runs")
    b.wait_for("[data-testid='stCaptionContainer']", text="(12 prompts)", timeout=90)
    rows = b.table_with("source", PRED, timeout=60)
    assert abs(value_of(rows, "sent_product") - expected) > 0.01
    b.screenshot("issue15_with_my_runs")


def test_a_group_no_run_measured_says_so(browser, home):
    g = torch.Generator().manual_seed(3)
    write_prompt(SoftPrompt(tensor=torch.randn(20, 384, generator=g), name="mine", task="mine"),
                 home / "library" / "mine")
    b = browser
    b.open("transferability", group="unknown:d384", metric="measured")
    b.wait_for(ALERT, text="No runs measured for this group (unknown:d384)", timeout=90)
    b.assert_no_exception()
    assert "make demo" not in b.page_text()
    # a group without runs opens on the best-validated metric it can show (core.defaults, issue 28)
    from core.defaults import default_metric
    from core.headline import headline
    want = default_metric(False, lambda m: not M.METRICS[m].needs_backbone, headline(DEMO).metric_scores)[0]
    assert b.selected(key="tr_metric").startswith(want)
    b.wait_for(".st-key-tr_heatmap .js-plotly-plot", timeout=60)
    b.screenshot("issue15_group_without_runs")


def _pick_in_multiselect(b, key: str, text: str) -> None:
    box = b.widget(key=key)
    inp = box.find_element("css selector", "input")
    b.click(inp)
    inp.send_keys(text)
    opt = b.wait_until(lambda: next((o for o in b.find("[role='option']") if o.text.strip().startswith(text)), None),
                       20, f"option {text!r}")
    b.click(opt)
    b.wait_idle(start_wait=0.5)


def test_library_box_and_detail_agree_after_a_task_filter(browser, home):
    b = browser
    b.open("library")
    b.wait_for(".st-key-library_detail", timeout=90)
    b.select("sent_tweet", key="library_detail")
    b.wait_idle(start_wait=0.5)
    b.wait_for("[data-testid='stMarkdownContainer'] strong", text="sent_tweet")
    _pick_in_multiselect(b, "library_tasks", "sent_movie")
    b.wait_until(lambda: "**sent_movie**" in b.page_text() or "sent_movie — task" in b.page_text(), 30,
                 "the detail of a sent_movie prompt")
    assert b.selected(key="library_detail") == "sent_movie"
    b.assert_no_exception()
    b.screenshot("issue15_library_filter")


def test_another_folder_adds_to_the_collections(browser, home, real_prompts_dir):
    b = browser
    b.open("library")
    b.wait_for(".st-key-library_detail", timeout=90)
    b.set_text(str(real_prompts_dir), key="library_dir_input")
    b.wait_until(lambda: len(b.multiselected(key="library_sources")) == 3, 60, "three collections chosen")
    chosen = b.multiselected(key="library_sources")
    assert chosen[0].startswith("demo") and chosen[1].startswith("my library"), chosen
    assert chosen[2] == f"folder: {real_prompts_dir.resolve()}", chosen
    b.wait_for("[data-testid='stMetricValue']", text="58", timeout=60)  # 11 demo + 1 upload + 46 thunlp
    b.screenshot("issue15_another_folder")


def test_definitions_page_is_linked_from_transferability(browser, home):
    b = browser
    b.open("transferability")
    link = b.wait_for("a[href$='/definitions']", timeout=90)[0]
    b.click(link)
    b.wait_for("[data-testid='stHeading']", text="Definitions", timeout=60)
    b.wait_until(lambda: "\nThe noise band\n" in b.page_text() and "\nValidation measures\n" in b.page_text(),
                 60, "the Definitions headings")
    b.wait_until(lambda: "cannot be told apart from seed noise" in b.page_text(), 30, "the noise band's definition")
    assert "DESIGN.md" not in b.page_text()
    b.screenshot("issue15_definitions")


# The screenshot tour of every page (app.py's navigation) at 1280×800 and 1400×1000: test_e2e_tour.py.
