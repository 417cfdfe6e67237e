"""Packed training (core.training.train_packed): K runs in one forward give what they give alone.

    .venv/bin/python -m pytest -q tests/test_packed.py

Real demo tasks, MiniLM on CPU, tiny budgets. Equivalence is up to float summation order
(a packed matmul sums in another order): step events and eval accuracies must match, and
final prompts agree within 1e-4 of the prompt's max-abs value.
"""
from __future__ import annotations

import pytest
import torch

from core.backbone import load_backbone
from core.training import TrainConfig, TrainError, train, train_packed

TARGETS = ("sent_tweet", "sent_movie", "sent_product")
# fixed padding (every row max_length long): the packed forward sees the shapes the single runs see
COMMON = dict(steps=20, batch_size=8, train_size=64, val_size=32, test_size=32, eval_every=10,
              max_length=32, padding="max_length", eval_at_start=False)  # best = a trained prompt


@pytest.fixture(scope="module")
def bb():
    return load_backbone(None, "cpu")


@pytest.fixture(scope="module")
def tasks():
    from core.tasks import TaskError, get_task
    try:
        return {t: get_task(t) for t in TARGETS}
    except (TaskError, ValueError) as e:
        pytest.skip(f"demo tasks {TARGETS} are not prepared ({e}); run `python -m core tasks prepare`")


def _prompts(bb):
    g = torch.Generator().manual_seed(7)
    source = torch.randn(20, bb.dim, generator=g) * 0.3
    teacher = source + 0.2 * torch.randn(20, bb.dim, generator=g)
    return source, teacher


def _three(bb):
    source, teacher = _prompts(bb)
    return [
        TrainConfig(method="scratch", task=TARGETS[0], seed=0, **COMMON),
        TrainConfig(method="pot", task=TARGETS[1], sources=[source], seed=1, lr=0.01, **COMMON),
        TrainConfig(method="panda", task=TARGETS[2], sources=[source], teacher=teacher, kd_lambda=0.5, seed=2,
                    **COMMON),  # cached teacher logits (teacher_every_step=False)
    ]


def _key(events):
    """What must agree: every event's kind, step, state and eval accuracies (losses: below)."""
    return [(e["kind"], e["step"], e["metrics"].get("state"), e["metrics"].get("val_score"),
             e["metrics"].get("best_val_score")) for e in events]


def _losses(events):
    return [e["metrics"][k] for e in events if e["kind"] == "progress" for k in ("loss", "ce", "kd")]


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return float((a - b).abs().max()) <= 1e-4 * float(b.abs().max())


@pytest.fixture(scope="module")
def solo(bb, tasks):
    out = []
    for cfg in _three(bb):
        ev = []
        out.append((train(cfg, backbone=bb, task=tasks[cfg.task], callback=ev.append), ev))
    return out


def test_packed_equals_one_by_one(bb, tasks, solo):
    cfgs = _three(bb)
    evs = [[] for _ in cfgs]
    outs = train_packed(cfgs, callbacks=[e.append for e in evs], backbone=bb, tasks=[tasks[c.task] for c in cfgs])
    assert [o.status for o in outs] == ["finished"] * 3, [o.error for o in outs]
    for (res0, ev0), out, ev in zip(solo, outs, evs):
        res = out.result
        assert _key(ev) == _key(ev0)  # same events in the same order, same eval accuracies
        assert [e["step"] for e in ev if e["kind"] == "progress"] == list(range(1, 21))
        assert _losses(ev) == pytest.approx(_losses(ev0), rel=1e-4, abs=1e-6)
        assert (res.val_score, res.test_score, res.best_step, res.steps) == \
               (res0.val_score, res0.test_score, res0.best_step, res0.steps)
        assert _close(res.prompt.tensor, res0.prompt.tensor)
        assert res.best_step in (10, 20) and not torch.equal(res.prompt.tensor, res.init_prompt)  # it trained
    # the panda run distilled from its cached teacher inside the pack
    assert all(e["metrics"]["kd"] > 0 for e in evs[2] if e["kind"] == "progress")


def test_padding_across_runs_changes_no_result(bb, tasks):
    """Bucketed batches of different lengths (and a different max_length and pooling per run)
    share one forward padded to the longest. The step-1 loss -- the forward with the same
    prompt -- is the single run's to float precision: the padding is invisible. Later steps
    drift by float summation order only, which Adam's m/sqrt(v) scales up for near-zero
    gradients (measured: 2.3e-3 of the prompt's max-abs after 8 steps), so results agree to
    1e-2 there and the eval accuracies are the same."""
    cfgs = [TrainConfig(method="scratch", task=TARGETS[0], seed=3, steps=8, batch_size=8, train_size=48,
                        val_size=24, test_size=24, eval_every=4, max_length=ml) for ml in (16, 48)]
    cfgs.append(TrainConfig(method="scratch", task=TARGETS[1], seed=4, steps=6, batch_size=4, train_size=48,
                            val_size=24, test_size=24, eval_every=0, max_length=64, pool="all"))
    ev_solo = [[] for _ in cfgs]
    solo = [train(c, backbone=bb, task=tasks[c.task], callback=e.append) for c, e in zip(cfgs, ev_solo)]
    ev_pack = [[] for _ in cfgs]
    outs = train_packed(cfgs, backbone=bb, tasks=[tasks[c.task] for c in cfgs], callbacks=[e.append for e in ev_pack])
    for s, o, e0, e1 in zip(solo, outs, ev_solo, ev_pack):
        assert o.status == "finished", o.error
        assert _losses(e1)[:3] == pytest.approx(_losses(e0)[:3], rel=1e-5, abs=1e-7)  # step 1: loss, ce, kd
        assert _key(e1) == _key(e0) and o.result.val_score == s.val_score and o.result.steps == s.steps
        assert _losses(e1) == pytest.approx(_losses(e0), rel=1e-2)
        rel = float((o.result.prompt.tensor - s.prompt.tensor).abs().max() / s.prompt.tensor.abs().max())
        assert rel <= 1e-2, rel


def test_cancel_and_failures_leave_the_pack_alone(bb, tasks, solo):
    """Run 0 finishes (as it does alone); run 1 is cancelled at step 5; run 2's texts are too
    long for the model's positions (the packed step raises, is redone run by run, and only
    run 2 fails); run 3's source prompt is NaN (its loss is not finite: it fails at step 1);
    run 4 has a teacher file that does not exist and run 5 a label outside its classes (both
    fail in their set-up)."""
    cfgs = _three(bb)[:1]
    calls = {"n": 0}

    def stop_at_5():
        calls["n"] += 1
        return calls["n"] > 5

    t1 = tasks[TARGETS[1]]

    def variant(train_texts, train_labels):
        return type(t1)(name=t1.name, family=t1.family, labels=t1.labels, descriptions=t1.descriptions,
                        train=type(t1.train)(train_texts, train_labels), validation=t1.validation, test=t1.test)

    long_task = variant([" ".join([t] * 40) for t in t1.train.texts[:40]], list(t1.train.labels[:40]))
    bad_label = variant(t1.train.texts[:40], list(t1.train.labels[:40]))
    bad_label.train.labels[17] = 9  # slipped past Task's own check
    nan_src = torch.zeros(20, bb.dim)
    nan_src[3, 7] = float("nan")
    cfgs += [
        TrainConfig(method="scratch", task=TARGETS[1], seed=5, **COMMON),
        TrainConfig(method="scratch", task=TARGETS[1], seed=6, **{**COMMON, "train_size": None, "max_length": 600,
                                                                  "val_size": 8}),
        TrainConfig(method="pot", task=TARGETS[2], sources=[nan_src], **COMMON),
        TrainConfig(method="panda", task=TARGETS[2], sources=[nan_src], teacher="/nonexistent/teacher", **COMMON),
        TrainConfig(method="scratch", task=TARGETS[1], **{**COMMON, "train_size": None}),
    ]
    evs = [[] for _ in cfgs]
    outs = train_packed(cfgs, callbacks=[e.append for e in evs],
                        should_stops=[None, stop_at_5, None, None, None, None], backbone=bb,
                        tasks=[tasks[TARGETS[0]], t1, long_task, tasks[TARGETS[2]], tasks[TARGETS[2]], bad_label])
    assert [o.status for o in outs] == ["finished", "cancelled", "failed", "failed", "failed", "failed"], \
        [o.error for o in outs]
    # the survivor is exactly what it is alone
    res0, ev0 = solo[0]
    assert _key(evs[0]) == _key(ev0) and _close(outs[0].result.prompt.tensor, res0.prompt.tensor)
    assert outs[0].result.test_score == res0.test_score
    # cancelled: 5 steps, the best prompt so far with a test score, a 'cancelled' status event
    c = outs[1].result
    assert c.cancelled and c.steps == 5 and 0.0 <= c.test_score <= 1.0
    assert [e["step"] for e in evs[1] if e["kind"] == "progress"] == [1, 2, 3, 4, 5]
    assert evs[1][-1]["metrics"]["state"] == "cancelled"
    # failures: each with its own message and traceback
    assert "exceed the 512 positions" in outs[2].error and "Traceback" in outs[2].error
    assert not [e for e in evs[2] if e["kind"] == "progress"]  # it failed in the first packed step
    assert outs[3].error.startswith("TrainError") and "loss is nan at step 1" in outs[3].error
    assert "/nonexistent/teacher" in outs[4].error and outs[4].result is None
    assert "a training label is 9, outside its 2 classes" in outs[5].error


def test_pack_refuses_runs_that_cannot_share_a_forward(bb, tasks):
    cfgs = [TrainConfig(method="scratch", task=TARGETS[0], **COMMON),
            TrainConfig(method="scratch", task=TARGETS[0], prompt_length=10, **COMMON)]
    with pytest.raises(TrainError, match="cannot share a forward"):
        train_packed(cfgs, backbone=bb, tasks=[tasks[TARGETS[0]]] * 2)
