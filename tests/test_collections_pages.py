"""Collections on the pages (issue 15, defect 1): a finished run's prompt in ATLAS_HOME/library/runs
does not change the demo's similarity analyses unless ``my runs`` is chosen.

    .venv/bin/python -m pytest -q tests/test_collections_pages.py

Runs on the committed demo library (data/demo): its 11 source prompts, results.csv and matrices.
"""
from __future__ import annotations

import pytest
import torch
from streamlit.testing.v1 import AppTest

from core import collection as C
from core.config import REPO_ROOT, demo_dir
from core.headline import load_results
from core.prompts import SoftPrompt, write_prompt

TRANSFER = str(REPO_ROOT / "pages" / "transferability.py")
MINILM = "sentence-transformers/all-MiniLM-L6-v2"
PRED = "predicted (e_avg)"

pytestmark = pytest.mark.skipif(not (demo_dir() / "results.csv").is_file(),
                                reason=f"demo library not built ({demo_dir()}/results.csv missing)")


@pytest.fixture
def finished_run(atlas_home, tmp_path, monkeypatch):
    """A throwaway 20-step scratch prompt for sent_tweet where core.runs puts a finished run's prompt."""
    monkeypatch.setenv("ATLAS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("ATLAS_LIBRARY", raising=False)
    g = torch.Generator().manual_seed(7)
    write_prompt(SoftPrompt(tensor=torch.randn(20, 384, generator=g), name="sent_tweet-scratch-20steps",
                            task="sent_tweet", family="sentiment", backbone=MINILM, method="scratch"),
                 C.runs_dir() / "run-0001" / "sent_tweet-scratch-20steps")
    return C.runs_dir() / "run-0001"


def transfer(**query) -> AppTest:
    at = AppTest.from_file(TRANSFER, default_timeout=180)
    for k, v in {"metric": "e_avg", "target": "sent_tweet", **query}.items():
        at.query_params[k] = v
    return at.run()


def frame(at, column: str):
    """The page's table that has ``column`` (AppTest exposes no dataframe keys)."""
    assert not at.exception, [e.value for e in at.exception]
    found = [d.value for d in at.dataframe if column in d.value.columns]
    assert found, f"no table with {column!r}: {[list(d.value.columns) for d in at.dataframe]}"
    return found[0]


def ranking(at):
    return frame(at, PRED).set_index("source")


def test_a_finished_runs_prompt_does_not_change_the_default_numbers_until_my_runs_is_chosen(finished_run, tmp_path,
                                                                                                 monkeypatch):
    # the numbers with no run at all (the run folder moved away)
    away = tmp_path / "away"
    finished_run.rename(away)
    clean = transfer()
    before = ranking(clean)
    n_valid = len(frame(clean, "mean_rho"))
    away.rename(finished_run)

    default = transfer()
    rank = ranking(default)
    assert default.multiselect(key="library_sources").value == ["demo", "my library"]
    assert any("Prompts from `demo`, `my library` (11 prompts)" in c.value for c in default.caption)
    assert rank.loc["sent_product", PRED] == pytest.approx(before.loc["sent_product", PRED], abs=1e-12)
    assert rank.loc["generic", PRED] == pytest.approx(before.loc["generic", PRED], abs=1e-12)
    assert "sent_tweet-scratch-20steps" not in rank.index
    assert len(frame(default, "mean_rho")) == n_valid  # no metric lost

    # choosing `my runs` (in the link) averages the run's prompt into the sent_tweet column
    with_runs = transfer(col="demo,my library,my runs")
    rank_r = ranking(with_runs)
    assert with_runs.multiselect(key="library_sources").value == ["demo", "my library", "my runs"]
    assert any("(12 prompts)" in c.value for c in with_runs.caption)
    assert abs(rank_r.loc["sent_product", PRED] - before.loc["sent_product", PRED]) > 0.01

    # and changing the choice on the page says what changed and writes it into the URL
    default.multiselect(key="library_sources").select("my runs").run()
    assert not default.exception
    assert default.query_params["col"] in ("demo,my library,my runs", ["demo,my library,my runs"])
    assert any("Prompt set changed: added `my runs` (+1 prompt)" in i.value for i in default.info)
    assert ranking(default).loc["sent_product", PRED] == pytest.approx(rank_r.loc["sent_product", PRED], abs=1e-12)


def test_an_unknown_collection_in_the_link_is_reported(finished_run):
    at = transfer(col="demo,bogus")
    assert not at.exception
    assert at.multiselect(key="library_sources").value == ["demo"]
    assert any("collection(s) that do not exist here: 'bogus'" in w.value for w in at.warning)


def test_home_names_the_demo_collection_and_agrees_with_transferability_on_it(finished_run):
    """Home's headline comes from `demo`; Transferability on `demo` gives the same metric validation,
    and a finished run of the user's changes neither."""
    home = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=180).run()  # Home is the default page
    assert not home.exception, [e.value for e in home.exception]
    assert any("These numbers come from the **`demo` collection**: the demo's 11 source prompts" in m.value
               for m in home.markdown)
    best = next(m for m in home.metric if m.label.startswith("Best predictor: "))
    metric = best.label.removeprefix("Best predictor: ")
    vt = frame(transfer(col="demo"), "mean_rho").set_index("metric")
    assert best.value == f"ρ = {vt.loc[metric, 'mean_rho']:.2f}"
    assert vt["mean_rho"].idxmax() == metric  # the same best predictor


def test_another_prompt_folder_adds_to_the_collections(finished_run, real_prompts_dir):
    """Defect 6: typing a folder adds it to the chosen collections; demo and my library stay."""
    at = AppTest.from_file(str(REPO_ROOT / "pages" / "library.py"), default_timeout=180).run()
    assert at.multiselect(key="library_sources").value == ["demo", "my library"]
    assert [m.value for m in at.metric][0] == "11"
    at.text_input(key="library_dir_input").input(str(real_prompts_dir)).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.multiselect(key="library_sources").value == ["demo", "my library", f"folder: {real_prompts_dir.resolve()}"]
    assert [m.value for m in at.metric][0] == "57"  # 11 demo + 46 thunlp
    assert at.query_params["lib"] in (str(real_prompts_dir), [str(real_prompts_dir)])


def test_a_group_without_runs_says_so_and_shows_a_metric_it_can(finished_run):
    """Defect 7: an uploaded d=384 prompt of no known backbone is alone in unknown:d384; no run measured it."""
    g = torch.Generator().manual_seed(3)
    write_prompt(SoftPrompt(tensor=torch.randn(20, 384, generator=g), name="mine", task="mine"),
                 C.builtin()[C.LIBRARY].roots[0] / "mine")
    at = transfer(group="unknown:d384", metric="measured")
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="tr_group").value == "unknown:d384"
    # the group's default metric (core.defaults, issue 28): the best-validated one it can show, not plain e_avg
    from core import metrics as M
    from core.defaults import default_metric
    from core.headline import headline
    want = default_metric(False, lambda m: not M.METRICS[m].needs_backbone, headline().metric_scores)[0]
    assert at.selectbox(key="tr_metric").value == want
    infos = [i.value for i in at.info]
    n_runs = len(load_results())  # the demo's finished runs (701 in the committed demo)
    assert any(i.startswith(f"No runs measured for this group (`unknown:d384`): the {n_runs} finished runs")
               for i in infos)
    assert not any("make demo" in i or "not built" in i for i in infos)
    assert at.get("plotly_chart"), f"the {want} heatmap of the group is drawn"


def test_no_launch_link_for_a_target_that_cannot_be_trained(finished_run):
    """Defect 2: `generic` is offered as a target task (a prompt's task) but is no dataset: no link, a reason."""
    rank = frame(transfer(target="generic"), "cannot run").set_index("source")
    assert "run" not in rank.columns  # no launch column of blanks ("None" on every row)
    assert rank["cannot run"].str.startswith("`generic` is not a registered task here").all()


def test_a_link_naming_a_prompt_opens_its_task_and_what_cannot_be_used_is_reported(finished_run):
    """Defect 3: Projection used to put a transfer's prompt name where a task is expected; the page dropped it."""
    at = transfer(target="panda-question_type-to-spam_sms-s0", col="demo,demo transfers")
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="tr_target").value == "spam_sms"
    at = transfer(target="nosuchtask,sent_movie", metric="bogus", group="nogroup")
    assert at.selectbox(key="tr_target").value == "sent_movie"
    warnings = [w.value for w in at.warning]
    assert any("target(s) `nosuchtask` are not target tasks" in w for w in warnings), warnings
    assert any("Not understood in the link, left out: metric='bogus'" in w for w in warnings), warnings
    assert any("The link's group `nogroup` is not in the chosen collections" in w for w in warnings), warnings
