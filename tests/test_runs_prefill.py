"""Issue 15 defect 2 (remainder), AppTest: a run prefilled from a measured cell on Transferability uses
the regime that cell was measured in, and the Runs form states an estimated duration before launch.

    .venv/bin/python -m pytest tests/test_runs_prefill.py -q
"""
from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pandas as pd
import pytest
import torch
from streamlit.testing.v1 import AppTest

from apptest import no_exception, open_page

from core.prompts import DEFAULT_BACKBONE as MINILM
from core.prompts import SoftPrompt, write_prompt

REPO = Path(__file__).resolve().parent.parent
RUNS, TRANSFER = str(REPO / "pages" / "runs.py"), str(REPO / "pages" / "transferability.py")
TARGET = "spam_sms"


@pytest.fixture(autouse=True)
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("ATLAS_DEMO", str(tmp_path / "no-demo"))
    lib = tmp_path / "lib"
    write_prompt(SoftPrompt(torch.randn(20, 384) * 0.05, name="src_a", task="sent_movie", backbone=MINILM), lib / "src_a")
    monkeypatch.setenv("ATLAS_LIBRARY", str(lib))


def page(path=RUNS, **query) -> AppTest:
    return open_page(path, **query)


clean = no_exception


def test_a_measured_cells_link_prefills_its_regime():
    at = clean(page(target=TARGET, source="src_a", method="panda", steps=150, train_size=128, lr=0.03,
                    eval_every=25, params='{"batch_size": 16, "max_length": 128}'))
    assert at.number_input(key="runs_steps").value == 150  # not the form's 300 on all data
    assert at.number_input(key="runs_train_size").value == 128
    assert at.number_input(key="runs_lr").value == pytest.approx(0.03)
    assert at.number_input(key="runs_eval_every").value == 25
    assert json.loads(at.text_input(key="runs_extra").value) == {"batch_size": 16, "max_length": 128}
    assert any(i.value == "Prefilled in the regime the measured cell was trained in: 150 steps on 128 training "
                          "examples, batch_size 16, max_length 128." for i in at.info)
    # a plain link keeps the defaults; a bad value is named, not guessed
    at = clean(page(target=TARGET, source="src_a", method="pot"))
    assert (at.number_input(key="runs_steps").value, at.number_input(key="runs_train_size").value) == (300, 0)
    at = clean(page(target=TARGET, method="scratch", steps=40, train_size="lots"))
    assert at.number_input(key="runs_steps").value == 40 and at.number_input(key="runs_train_size").value == 0
    assert any("train_size='lots' is not a whole number ≥ 0" in w.value for w in at.warning)


def test_the_form_shows_an_estimated_duration(tmp_path, monkeypatch):
    """Issue 23: before any finished run the form starts a calibration job (priced and metered like any
    computation, never blocking the page), then shows the estimate from it; a finished run then wins."""
    from core import estimate as E
    from core import jobs as J
    from core.runs.store import RunStore
    from core.training import calibrate as C

    monkeypatch.setattr(E, "calibration_path", lambda bb, dev, ml=128: tmp_path / "cal" / f"{dev}-{ml}.json")
    spawned = []
    monkeypatch.setattr(J, "spawn_worker", lambda job_id: spawned.append(job_id) or 0)
    at = clean(page(target=TARGET, method="scratch"))
    at.selectbox(key="runs_device").set_value("cpu").run()
    assert any(c.value.startswith("Estimated duration: timing all-MiniLM-L6-v2 on cpu now") for c in clean(at).caption)
    assert len(spawned) == 1 and RunStore().get_job(spawned[0])["kind"] == "calibrate"
    # the worker's branch, in this process, with the timing faked (the real timing: tests/test_estimate.py)
    monkeypatch.setattr(C, "time_steps", lambda bb, dev, **kw: {"s_per_step": 0.25, "load_s": 5.0, **kw})
    assert J.work(spawned[0]) == "finished"
    at.run()
    assert any(c.value.startswith("Estimated duration: ≈ 80 s per run, from a timed calibration of all-MiniLM-L6-v2 "
                                  "on cpu") for c in clean(at).caption)           # 5 s + 300 × 0.25 s
    assert len(spawned) == 1                                                      # cached: never timed again
    store = RunStore()
    store.add_run("r-a", {"method": "scratch", "target": TARGET, "params": {"steps": 40}, "device": "cpu"})
    store.update_run("r-a", status="finished", step=40, wall_time_s=8.0, device="cpu")
    at.number_input(key="runs_steps").set_value(600).run()
    assert any(c.value.startswith("Estimated duration: ≈ 2.0 min per run (0.2 s/step, median of the last 1 "
                                  "finished run(s) of all-MiniLM-L6-v2 on cpu)") for c in clean(at).caption)


def test_transferability_links_carry_the_measured_regime(tmp_path, monkeypatch):
    """The rank table's launch links (and the Run PANDA link) of a measured cell name its steps/train size."""
    demo = tmp_path / "demo"
    tasks = {"spam_sms": "spam", "sent_tweet": "sentiment"}
    for t, fam in tasks.items():
        write_prompt(SoftPrompt(torch.randn(4, 384), name=t, task=t, family=fam, backbone=MINILM, method="scratch"),
                     demo / "prompts" / t)
    rows = []
    for sd in range(2):
        rows.append(dict(run_id=f"s-{sd}", method="scratch", source="", target="spam_sms", seed=sd, steps=150,
                         train_size=128, test_score=0.6))
        rows.append(dict(run_id=f"p-{sd}", method="pot", source="sent_tweet", target="spam_sms", seed=sd, steps=150,
                         train_size=128, test_score=0.66, settings=json.dumps({"lr": 0.03, "eval_every": 25})))
    df = pd.DataFrame(rows)
    for c in ("sweep_id", "val_score", "wall_time_s", "device", "prompt_path"):
        df[c] = ""
    df["status"] = "finished"
    df.to_csv(demo / "results.csv", index=False)
    monkeypatch.setenv("ATLAS_DEMO", str(demo))
    monkeypatch.delenv("ATLAS_LIBRARY")
    at = clean(page(TRANSFER, target="spam_sms"))
    rank = next(d.value for d in at.dataframe if "run" in d.value.columns)
    link = rank.set_index("source").loc["sent_tweet", "run"]
    q = {k: v[0] for k, v in parse_qs(urlparse(link).query).items()}
    assert q == {"target": "spam_sms", "source": "sent_tweet", "method": "panda", "steps": "150",
                 "train_size": "128", "lr": "0.03", "eval_every": "25"}


def test_a_run_whose_prompt_was_deleted_keeps_its_record(atlas_home):
    """Issue 15 defect 5: deleting a run's prompt from the library leaves the run, its source name and score."""
    from core.runs.store import RunStore
    from core.userlib import delete, find

    out = atlas_home / "library" / "runs" / "r-gone"
    write_prompt(SoftPrompt(torch.randn(20, 384), name="r-gone", task=TARGET, method="pot"), out)
    store = RunStore()
    store.add_run("r-gone", {"method": "pot", "target": TARGET, "source_names": ["src_a"]})
    store.update_run("r-gone", status="finished", prompt_path=str(out), test_score=0.75)
    delete(find("r-gone"))
    at = clean(page())
    assert any(i.value.startswith("Its prompt was deleted from your library") for i in at.info)
    assert any(h.value == "✅ r-gone" for h in at.subheader)
    row = store.results_table().set_index("run_id").loc["r-gone"]
    assert (row["source"], row["test_score"], row["status"]) == ("src_a", 0.75, "finished")


def test_a_prefilled_panda_run_copies_the_cells_method_settings():
    """Issue 23: λ mode, β, teacher and student init of the measured cell are carried, not the form's."""
    from core.estimate import Regime
    q = Regime(150, 128, 0.03, 25, {"batch_size": 16},
               method={"lambda_mode": "metric", "beta": 0.5, "teacher_mode": "pot", "student_init": "random",
                       "metric_value": 0.25}).to_query()
    at = clean(page(target=TARGET, source="src_a", method="panda", **q))
    assert at.radio(key="runs_lambda_mode").value == "metric"          # the cell's, not the form's "fixed"
    assert at.selectbox(key="runs_teacher_mode").value == "pot"
    assert at.number_input(key="runs_metric_value").value == pytest.approx(0.25)
    assert json.loads(at.text_input(key="runs_extra").value) == {"batch_size": 16, "beta": 0.5,
                                                                  "student_init": "random"}
