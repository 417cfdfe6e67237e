"""Issue 25: a run stores both scores (the task's registered kind as the main one, the other beside it),
the Runs page marks runs whose task was deleted, and sweeps run the target checks before launch."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score

from core.tasks import Split, Task, get_task, register_task


def write_csv(path: Path, rows: list) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows(rows)
    return path


def skewed_rows(n_major: int = 594, n_minor: int = 6) -> list:
    """99:1, distinct texts (no duplicates to drop)."""
    return ([(f"the weather report number {i} said it was fine", "maj") for i in range(n_major)]
            + [(f"an angry complaint about order {i} gone missing", "min") for i in range(n_minor)])


def test_a_99_to_1_run_stores_balanced_accuracy_with_accuracy_beside_it(tmp_path, monkeypatch):
    import core.training.loop as loop
    from core.results import score_kinds_text
    from core.runs.spec import RunSpec, validate_spec
    from core.runs.store import RunStore
    from core.runs.worker import Worker

    register_task("skew", write_csv(tmp_path / "skew.csv", skewed_rows()))
    task = get_task("skew")
    assert task.meta["score"] == "balanced_accuracy"           # fixed at registration
    assert task.counts("validation")["min"] >= 1

    seen = []   # every (both scores, predictions, labels) the run computed: val evals, then the test
    real = loop.scores

    def spy(logits, labels):
        out = real(logits, labels)
        seen.append((out, logits.argmax(-1).numpy(), np.asarray(labels)))
        return out

    monkeypatch.setattr(loop, "scores", spy)
    store = RunStore(tmp_path / "runs.db")
    spec = validate_spec(RunSpec(method="scratch", target="skew", device="cpu", params={
        "steps": 4, "batch_size": 8, "train_size": 32, "eval_every": 2, "max_length": 24, "lr": 0.3}))
    store.add_run("r1", spec.to_dict())
    assert Worker("r1", spec, store, tmp_path / "out").run() == "finished"

    row = store.results_table(status=("finished",)).iloc[0]
    assert row["score_kind"] == "balanced_accuracy"
    _, pred, y = seen[-1]                                      # the test split, best checkpoint
    assert len(set(y)) == 2
    assert row["test_score"] == pytest.approx(balanced_accuracy_score(y, pred))
    assert row["test_other"] == pytest.approx(accuracy_score(y, pred))
    vals = seen[:-1]
    best = max(range(len(vals)), key=lambda i: vals[i][0]["balanced_accuracy"])  # first maximum: the kept one
    _, vpred, vy = vals[best]
    assert row["val_score"] == pytest.approx(balanced_accuracy_score(vy, vpred))
    assert row["val_other"] == pytest.approx(accuracy_score(vy, vpred))
    # the tables say which score they show
    assert score_kinds_text(store.results_table(status=("finished",))) == "balanced accuracy"
    from core.runs.display import score_label
    assert score_label(store.get_run("r1")) == "balanced accuracy"


def test_score_kinds_text_names_each_kind_and_defaults_to_accuracy():
    from core.results import score_kinds_text
    assert score_kinds_text(pd.DataFrame({"test_score": [0.5]})) == "accuracy"     # the demo's runs
    mixed = pd.DataFrame({"score_kind": ["accuracy", "balanced_accuracy", "balanced_accuracy", None]})
    assert score_kinds_text(mixed) == "accuracy (2 runs), balanced accuracy (2 runs)"


def test_measured_keeps_score_kind_and_never_pairs_across_kinds():
    from core.metrics.measured import measured
    rows = [dict(run_id="s", method="scratch", source="", target="t", seed=0, test_score=0.8, score_kind="accuracy"),
            dict(run_id="p", method="pot", source="a", target="t", seed=0, test_score=0.6,
                 score_kind="balanced_accuracy")]
    m = measured(pd.DataFrame(rows), method="pot")
    assert m.runs.empty   # a balanced-accuracy run has no accuracy scratch to be divided by
    rows.append(dict(run_id="s2", method="scratch", source="", target="t", seed=0, test_score=0.5,
                     score_kind="balanced_accuracy"))
    m = measured(pd.DataFrame(rows), method="pot")
    assert m.runs["score_kind"].tolist() == ["balanced_accuracy"] and m.runs["gain"].iloc[0] == pytest.approx(0.2)


# --------------------------------------------------------------------------- deleted tasks on the Runs page

def test_runs_of_a_deleted_task_or_of_other_data_are_marked(tmp_path, capsys):
    from core.runs.display import OTHER_DATA, TASK_DELETED, task_state, task_states
    from core.runs.spec import RunSpec, validate_spec
    from core.tasks import cli
    rows = [(f"text {i} is here", "ab"[i % 2]) for i in range(30)]
    register_task("gone", write_csv(tmp_path / "g.csv", rows))
    spec = validate_spec(RunSpec(method="scratch", target="gone", params={"steps": 1})).to_dict()
    run = {"run_id": "r1", "target": "gone", "spec": spec, "last_metrics": {}}
    demo = {"run_id": "r2", "target": "sent_movie", "spec": {}, "last_metrics": {}}
    assert task_states([run, demo]) == {}                      # the live task is the one it trained on
    assert cli("tasks", ["delete", "gone"]) == 0
    assert task_states([run, demo]) == {"r1": TASK_DELETED}
    from core.runs.cli import cli as runs_cli
    from core.runs.store import RunStore
    RunStore().add_run("r1", spec)
    capsys.readouterr()
    assert runs_cli("runs", ["list"]) == 0 and f"[{TASK_DELETED}]" in capsys.readouterr().out
    register_task("gone", write_csv(tmp_path / "g2.csv", rows[:20]))   # same name, other data
    assert task_states([run, demo]) == {"r1": OTHER_DATA}
    # the rule itself: a run without a recorded hash is never called "other data"
    assert task_state({"target": "x", "spec": {}}, {}, {"x": "h1"}) == ""
    assert task_state({"target": "x", "spec": {}, "last_metrics": {"data_hash": "h0"}}, {}, {"x": "h1"}) == OTHER_DATA
    assert task_state({"target": "x", "spec": {"target_data_hash": "h0"}}, {"x": "h0"}, {}) == TASK_DELETED


# --------------------------------------------------------------------------- sweeps check their targets

def _tiny(name: str, val_labels: list[int]) -> Task:
    tr = Split([f"train {i}" for i in range(20)], [i % 2 for i in range(20)])
    return Task(name=name, family=None, labels=["a", "b"], descriptions=["a", "b"], train=tr,
                validation=Split([f"v {i}" for i in range(len(val_labels))], val_labels), test=tr)


def test_grid_sweep_refuses_a_one_class_validation_split_and_warns_on_thin_classes(monkeypatch, tmp_path):
    import core.tasks as T
    from core.runs import queue
    from core.runs.spec import SpecError
    from core.runs.store import RunStore
    from core.runs.sweeps import SweepSpec, target_checks
    fakes = {"onecls": _tiny("onecls", [0] * 10), "thin": _tiny("thin", [0] * 8 + [1, 1])}
    real = T.get_task
    monkeypatch.setattr(T, "get_task", lambda n: fakes[n] if n in fakes else real(n))
    errors, warnings = target_checks(["onecls", "thin", "sent_movie"])
    assert len(errors) == 1 and "'onecls'" in errors[0] and "one class only" in errors[0]
    assert len(warnings) == 1 and warnings[0].startswith("target 'thin':") and "fewer than 5" in warnings[0]
    assert "\n" not in errors[0] + warnings[0]               # one line each
    store = RunStore(tmp_path / "runs.db")
    sw = SweepSpec(sources=["sent_movie-scratch"], targets=["onecls"], methods=["pot"], seeds=[0])
    with pytest.raises(SpecError) as e:
        queue.launch_sweep(sw, store, dispatch=False)
    assert "one class only" in e.value.problems["targets"]
    assert store.list_runs() == []                             # nothing half-launched
