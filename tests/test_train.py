"""core.training on a real demo task with small budgets (CPU): scratch, pot, panda, saving.

    .venv/bin/python -m pytest -q tests/test_train.py

Runs share a module-scoped backbone and a few module-scoped training runs, so
the file stays around a minute or two on a busy 2-core machine.
"""
from __future__ import annotations

import json

import pytest
import torch

from core.backbone import load_backbone
from core.training import TrainConfig, TrainError, evaluate, save_result, subsample, batch_order, train
from core.training.cli import cli

TASK = "sent_tweet"
# Small but real data: 64 training, 32 validation, 120 test examples (seeded, stratified subsamples).
BASE = dict(task=TASK, steps=12, batch_size=8, train_size=64, val_size=32, test_size=120, eval_every=6, seed=0)
TINY = dict(val_size=16, test_size=16, eval_every=0)  # runs that only check mechanics


@pytest.fixture(scope="module")
def bb():
    return load_backbone(None, "cpu")


@pytest.fixture(scope="module")
def task():
    from core.tasks import TaskError, get_task
    try:
        return get_task(TASK)
    except (TaskError, ValueError) as e:  # printed reason: the demo data is built by `make tasks`
        pytest.skip(f"demo task {TASK} is not prepared ({e}); run `python -m core tasks prepare`")


@pytest.fixture(scope="module")
def scratch(bb, task):
    events = []
    res = train(TrainConfig(method="scratch", eval_at_start=False, **BASE), backbone=bb, task=task,
                callback=events.append)
    return res, events


def test_config_validation_names_the_problem():
    with pytest.raises(TrainError, match="method pot needs at least one source"):
        TrainConfig(method="pot", task=TASK)
    with pytest.raises(TrainError, match="needs --teacher"):
        TrainConfig(method="panda", task=TASK, sources=["x"])
    with pytest.raises(TrainError, match="method 'nope'"):
        TrainConfig(method="nope")
    with pytest.raises(TrainError, match="2 source weights for 1 sources"):
        TrainConfig(method="pot", sources=["a"], source_weights=[1, 2])
    # PANDA code's KD weight: 0.1 * beta / batch_size on a mean-reduced MSE
    assert TrainConfig(method="panda", sources=["a"], teacher="t").effective_lambda() == pytest.approx(0.1 * 0.1 / 16)
    assert TrainConfig(method="panda", sources=["a"], teacher="t", lambda_mode="metric", beta=0.5,
                       metric_value=0.4).effective_lambda() == pytest.approx(0.2)


def test_subsample_and_buckets_are_seeded_and_stratified():
    labels = [0] * 90 + [1] * 10
    a, b = subsample(labels, 20, 3), subsample(labels, 20, 3)
    assert a == b and len(a) == 20 and sum(labels[i] for i in a) == 2  # 10% minority kept
    assert subsample(labels, 20, 4) != a
    lengths = [i % 37 for i in range(800)]
    import numpy as np
    batches = batch_order(lengths, 16, np.random.default_rng(0))
    assert sorted(i for bt in batches for i in bt) == list(range(800))  # an epoch covers every example once
    spread = np.mean([max(lengths[i] for i in bt) - min(lengths[i] for i in bt) for bt in batches])
    rand = batch_order(lengths, 16, np.random.default_rng(0), padding="dynamic")
    spread_rand = np.mean([max(lengths[i] for i in bt) - min(lengths[i] for i in bt) for bt in rand])
    assert spread < spread_rand / 3  # bucketing groups similar lengths


def test_scratch_beats_majority_and_emits_events(scratch, task):
    res, events = scratch
    majority = task.majority_rate("test")
    assert res.test_score > majority + 0.05, (res.test_score, majority)
    assert res.steps == 12 and not res.cancelled and res.best_step in (6, 12)
    prog = [e for e in events if e["kind"] == "progress"]
    evals = [e for e in events if e["kind"] == "eval"]
    assert len(prog) == 12 and [e["step"] for e in evals] == [6, 12]
    m = prog[-1]["metrics"]
    assert set(m) >= {"loss", "ce", "kd", "lr", "examples_per_s", "eta_s"} and m["kd"] == 0.0
    assert prog[1]["metrics"]["lr"] > prog[-1]["metrics"]["lr"]  # decays after warm-up
    assert evals[-1]["metrics"]["best_val_score"] == pytest.approx(res.val_score)
    assert events[-1]["kind"] == "status" and events[-1]["metrics"]["state"] == "finished"
    # the reported test score is the best checkpoint's on the (subsampled) test split
    idx = subsample(list(task.test.labels), 120, 0)
    sub = type(task)(name=task.name, family=task.family, labels=task.labels, descriptions=task.descriptions,
                     train=task.train, validation=task.validation,
                     test=type(task.test)([task.test.texts[i] for i in idx], [task.test.labels[i] for i in idx]))
    assert evaluate(res.prompt.tensor, sub, "test", load_backbone(None, "cpu")) == pytest.approx(res.test_score)


def test_same_seed_same_result(scratch, bb, task):
    res, _ = scratch
    again = train(TrainConfig(method="scratch", eval_at_start=False, **BASE), backbone=bb, task=task)
    assert torch.equal(again.prompt.tensor, res.prompt.tensor)
    assert (again.val_score, again.test_score) == (res.val_score, res.test_score)


def test_pot_starts_from_the_source_and_spot_average(scratch, bb, task):
    src = scratch[0].prompt.tensor
    quick = {**BASE, **TINY, "eval_at_start": False}
    stopped = train(TrainConfig(method="pot", sources=[src], **quick), backbone=bb, task=task,
                    should_stop=lambda: True)
    assert stopped.cancelled and stopped.steps == 0
    assert torch.equal(stopped.init_prompt, src) and torch.equal(stopped.prompt.tensor, src)
    other = torch.randn_like(src)
    avg = train(TrainConfig(method="pot", sources=[src, other], source_weights=[1.0, 3.0], **quick),
                backbone=bb, task=task, should_stop=lambda: True)
    assert torch.allclose(avg.init_prompt, (src + 3 * other) / 4, atol=1e-6)


def test_cancel_stops_after_current_step(bb, task):
    calls = {"n": 0}

    def stop():
        calls["n"] += 1
        return calls["n"] > 3

    res = train(TrainConfig(method="scratch", **{**BASE, **TINY, "steps": 50}), backbone=bb, task=task,
                should_stop=stop)
    assert res.cancelled and res.steps == 3


def test_panda_loss_has_both_parts_and_lambda0_is_scratch(scratch, bb, task):
    scratch_res = scratch[0]
    teacher = scratch_res.prompt.tensor + 0.3 * torch.randn_like(scratch_res.prompt.tensor)
    ev = []
    zero = train(TrainConfig(method="panda", sources=[teacher], teacher=teacher, kd_lambda=0.0,
                             student_init="random", eval_at_start=False, **BASE),
                 backbone=bb, task=task, callback=ev.append)
    # lambda = 0 with the scratch init and seed: exactly the scratch prompt
    assert torch.equal(zero.prompt.tensor, scratch_res.prompt.tensor)
    prog = [e["metrics"] for e in ev if e["kind"] == "progress"]
    assert all(m["kd"] > 0 for m in prog) and all(m["loss"] == pytest.approx(m["ce"]) for m in prog)

    ev = []
    lam = 0.5
    short = {**BASE, **TINY, "steps": 3}
    kd = train(TrainConfig(method="panda", sources=[teacher], teacher=teacher, kd_lambda=lam, **short),
               backbone=bb, task=task, callback=ev.append)
    prog = [e["metrics"] for e in ev if e["kind"] == "progress"]
    assert all(m["ce"] > 0 and m["kd"] > 0 for m in prog)
    assert all(m["loss"] == pytest.approx(m["ce"] + lam * m["kd"], rel=1e-5) for m in prog)
    assert kd.prompt.settings["kd_lambda_effective"] == lam
    # the cached teacher gives the same logits as running the teacher every step
    ev2 = []
    train(TrainConfig(method="panda", sources=[teacher], teacher=teacher, kd_lambda=lam, teacher_every_step=True,
                      **short), backbone=bb, task=task, callback=ev2.append)
    kd1 = [e["metrics"]["kd"] for e in ev if e["kind"] == "progress"]
    kd2 = [e["metrics"]["kd"] for e in ev2 if e["kind"] == "progress"]
    assert kd1 == pytest.approx(kd2, rel=1e-3)


def test_saved_result_loads_via_core_prompts_and_peft(scratch, tmp_path, bb):
    res = scratch[0]
    folder = save_result(res, tmp_path / "p")
    from core.prompts import read_prompt
    sp = read_prompt(folder, expected_dim=bb.dim)
    assert torch.equal(sp.tensor, res.prompt.tensor)
    assert sp.method == "scratch" and sp.task == TASK and sp.score == pytest.approx(res.test_score)
    s = sp.settings
    assert s["seed"] == 0 and s["test_score"] == pytest.approx(res.test_score) and s["versions"]["torch"]
    assert {"wall_time_s", "device", "lr", "steps", "kd_lambda_effective"} <= set(s)
    with pytest.raises(Exception):  # never overwritten silently
        save_result(res, folder)

    from peft import PeftModel
    base = type(bb.model).from_pretrained(bb.path)
    pm = PeftModel.from_pretrained(base, str(folder))
    emb = pm.prompt_encoder["default"].embedding.weight
    assert torch.allclose(emb.detach(), res.prompt.tensor)


def test_linear_head_trains_and_is_saved(bb, task, tmp_path):
    res = train(TrainConfig(method="scratch", head="linear", **{**BASE, **TINY, "steps": 3}),
                backbone=bb, task=task)
    assert res.head_state and res.head_state["weight"].shape == (2, bb.dim)
    folder = save_result(res, tmp_path / "lin")
    assert (folder / "head.safetensors").is_file()


def test_cli_trains_and_saves(tmp_path, capsys, task):
    out = tmp_path / "cli-run"
    rc = cli("train", ["--task", TASK, "--method", "scratch", "--steps", "3", "--train-size", "32",
                       "--val-size", "16", "--test-size", "16", "--eval-every", "0", "--device", "cpu", "--out", str(out), "--json"])
    assert rc == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["steps"] == 3 and 0.0 <= line["test_score"] <= 1.0 and line["saved"] == str(out)
    assert (out / "adapter_config.json").is_file() and (out / "atlas.json").is_file()
    rc = cli("train", ["--task", TASK, "--method", "pot", "--steps", "1"])
    assert rc == 2 and "needs at least one source" in capsys.readouterr().err


def test_progress_events_read_one_step_late_carry_the_same_numbers(scratch, bb, task, monkeypatch):
    """On CUDA progress events are emitted one step late (their losses are read after the next
    step is queued, so the GPU never drains); forced on here, the events, their order around
    evals, and the result are what the immediate path gives."""
    import core.training.loop as T
    res0, ev0 = scratch
    monkeypatch.setattr(T, "defer_progress", lambda bb: True)
    events = []
    res = train(TrainConfig(method="scratch", eval_at_start=False, **BASE), backbone=bb, task=task,
                callback=events.append)
    assert res.test_score == res0.test_score and torch.equal(res.prompt.tensor, res0.prompt.tensor)

    def key(evs):
        return [(e["kind"], e["step"], round(e["metrics"].get("loss", 0.0), 6), e["metrics"].get("val_score"))
                for e in evs]
    assert key(events) == key(ev0)
    # and a cancelled run still emits the progress of its last logged step
    calls = {"n": 0}

    def stop():
        calls["n"] += 1
        return calls["n"] > 3

    events = []
    train(TrainConfig(method="scratch", log_every=1, **{**BASE, **TINY, "steps": 50}), backbone=bb, task=task,
          should_stop=stop, callback=events.append)
    assert [e["step"] for e in events if e["kind"] == "progress"] == [1, 2, 3]
