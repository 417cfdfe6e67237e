"""A bad file degrades one element, not a page (AppTest): a corrupt runs.db, a corrupt task data file or
registration, a corrupt demo manifest.json, a corrupt metric cache file; and out-of-range link values
(``?steps=1e400``, ``inf``, ``nan``, negatives) reported like other bad link values. Each shows one
message naming the file (relative: no server path) and what to do; no traceback; the rest still draws.

    .venv/bin/python -m pytest -q -p no:cacheprovider tests/test_bad_files.py
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from apptest import no_exception, open_page
from core.config import REPO_ROOT
from core.prompts import DEFAULT_BACKBONE as MINILM
from core.prompts import SoftPrompt, write_prompt

PAGES = REPO_ROOT / "pages"
GARBAGE = b"\x00\xffthis is not a database\x80" * 64


def texts(at) -> list[str]:
    return [str(e.value) for k in ("markdown", "caption", "error", "warning", "info", "success") for e in getattr(at, k)]


def no_server_path(at, *paths: Path):
    for t in texts(at):
        for p in paths:
            assert str(p) not in t, t


@pytest.fixture
def demo(tmp_path, monkeypatch):
    from test_transferability_page import make_demo
    folder = tmp_path / "demo"
    make_demo(folder)
    monkeypatch.setenv("ATLAS_DEMO", str(folder))
    return folder


def test_corrupt_runs_db_costs_the_users_runs_not_transferability(demo, atlas_home):
    (atlas_home / "runs.db").write_bytes(GARBAGE)
    at = no_exception(open_page(PAGES / "transferability.py"))
    assert at.get("plotly_chart"), "the heatmap still draws (the demo's runs)"
    said = [t for t in texts(at) if "runs.db" in t]
    assert len(said) == 1 and "ATLAS_HOME/runs.db" in said[0] and "Move that file aside" in said[0]
    no_server_path(at, atlas_home)


def test_corrupt_runs_db_on_the_runs_page_is_one_message(tmp_path, monkeypatch, atlas_home):
    monkeypatch.setenv("ATLAS_DEMO", str(tmp_path / "no-demo"))
    (atlas_home / "runs.db").write_bytes(GARBAGE)
    at = no_exception(open_page(PAGES / "runs.py"))
    assert len(at.error) == 1 and "ATLAS_HOME/runs.db" in at.error[0].value and "Move that file aside" in at.error[0].value
    no_server_path(at, atlas_home)


@pytest.mark.parametrize("value", ["1e400", "inf", "-inf", "nan", "-5", "1e30", "2.5"])
@pytest.mark.parametrize("param", ["steps", "train_size", "eval_every"])
def test_out_of_range_link_values_are_reported(value, param, tmp_path, monkeypatch):
    from core.estimate import Regime
    q = {"steps": "40", param: value}
    regime, problems = Regime.from_query(q)
    assert len(problems) == 1 and f"{param}='{value}'" in problems[0], problems
    if param != "steps":
        assert regime is not None and getattr(regime, param) is None  # the form keeps its own value


def test_steps_1e400_on_the_runs_page(tmp_path, monkeypatch):
    monkeypatch.setenv("ATLAS_DEMO", str(tmp_path / "no-demo"))
    lib = tmp_path / "lib"
    write_prompt(SoftPrompt(torch.randn(4, 384), name="src_a", task="sent_movie", backbone=MINILM), lib / "src_a")
    monkeypatch.setenv("ATLAS_LIBRARY", str(lib))
    for q in ({"steps": "1e400"}, {"steps": "40", "train_size": "1e400", "eval_every": "-3"}):
        at = no_exception(open_page(PAGES / "runs.py", target="spam_sms", method="scratch", **q))
        assert any("1e400" in w.value and "not a whole number" in w.value for w in at.warning), texts(at)
        assert at.number_input(key="runs_steps").value == (300 if q["steps"] == "1e400" else 40)


def test_corrupt_demo_manifest_costs_home_its_label(demo):
    from test_home import make_demo as make_home_demo
    make_home_demo(demo)
    (demo / "manifest.json").write_bytes(b"{not json\xff")
    at = no_exception(AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=60).run())
    said = [w.value for w in at.warning if "manifest.json" in w.value]
    assert len(said) == 1 and "make demo" in said[0] and str(demo.parent) not in said[0]
    assert "Finished runs" in [m.label for m in at.metric]  # the rest of Home still draws


def _save_task(name: str):
    from core.task_upload import build_task, read_upload
    from core.tasks import save_task
    rows = ["text,label"] + [f"{'great fun' if i % 2 else 'dull and slow'} {i},{'pos' if i % 2 else 'neg'}"
                             for i in range(40)]
    up = read_upload(f"{name}.csv", ("\n".join(rows) + "\n").encode(), Path(__import__("tempfile").mkdtemp()))
    return save_task(build_task(up, name, "text", "label"))


@pytest.mark.parametrize("how", ["binary", "bad json line", "registration"])
def test_one_corrupt_task_file_costs_one_row_of_the_tasks_page(how, atlas_home, tmp_path, monkeypatch):
    monkeypatch.setenv("ATLAS_DEMO", str(tmp_path / "no-demo"))
    _save_task("good_one")
    reg = _save_task("bad_one")
    data = next(p for p in reg.parent.iterdir() if p.is_dir() and p.name.startswith("bad_one-"))
    if how == "binary":
        (data / "train.jsonl").write_bytes(GARBAGE)
    elif how == "bad json line":
        (data / "validation.jsonl").write_text('{"text": "x", "label": "pos"}\nnot json\n')
    else:
        reg.write_bytes(b"{broken")
    import streamlit as st
    st.cache_data.clear()  # the page caches its table by task names for 30 s: same names as the last case
    at = no_exception(AppTest.from_file(str(PAGES / "tasks.py"), default_timeout=180).run())
    table = next(d.value for d in at.dataframe if "problem" in d.value.columns).set_index("task")
    assert not table.loc["good_one", "problem"] and table.loc["good_one", "train"] > 0
    if how == "registration":  # no registration: the row says why
        problem = table.loc["bad_one", "problem"]
        assert problem and "bad_one.json" in problem and str(atlas_home) not in problem, problem
        return
    # the row comes from the summary saved with the task (its data is not read on a page load); opening
    # the task reads it: one error naming the file, the rest drawn
    at.selectbox(key="tasks_selected").set_value("bad_one").run()
    no_exception(at)
    said = [e.value for e in at.error]
    assert len(said) == 1 and "bad_one-" in said[0] and ".jsonl" in said[0] and str(atlas_home) not in said[0], said
    at.selectbox(key="tasks_selected").set_value("good_one").run()
    assert not no_exception(at).error and any("good_one" in m.value for m in at.markdown)


def test_corrupt_metric_cache_file_is_recomputed(tmp_path, monkeypatch):
    from core import metrics as M
    monkeypatch.setenv("ATLAS_CACHE", str(tmp_path / "cache"))
    prompts = [SoftPrompt(torch.randn(4, 16), name=f"p{i}", backbone=None) for i in range(3)]
    first = M.compute_matrix("e_avg", prompts)
    files = [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert files, "the matrix was cached"
    for f in files:
        f.write_bytes(GARBAGE)
    again = M.compute_matrix("e_avg", prompts)
    assert (again.to_numpy() == first.to_numpy()).all()
