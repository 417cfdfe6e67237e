"""Issue 26 stage (d), first part: T5 backbones train like any encoder (cosine head on the encoder's pooled
features, the prompt in front of the encoder input), packed = unpacked, and the saved prompt loads back.

    .venv/bin/python -m pytest -q tests/test_t5_training.py

A tiny random T5 v1.1 (gated FFN) built from a config at test time with MiniLM's tokenizer; a real
demo task's data (nothing downloaded).
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from core.backbone import load_backbone
from core.prompts import read_prompt
from core.training import TrainConfig, train, train_packed
from core.training.result import save_result
from test_t5_backbone import tiny_t5

TASK = "sent_tweet"


@pytest.fixture(scope="module")
def t5(tmp_path_factory):
    path = tiny_t5(tmp_path_factory.mktemp("t5train"), gated=True, layers=1)
    return str(path), load_backbone(str(path), "cpu")


@pytest.fixture(scope="module")
def task():
    from core.tasks import TaskError, get_task
    try:
        return get_task(TASK)
    except (TaskError, ValueError) as e:
        pytest.skip(f"demo task {TASK} is not prepared ({e}); run `python -m core tasks prepare`")


def _cfgs(path: str):
    g = torch.Generator().manual_seed(3)
    src = [torch.randn(20, 64, generator=g) * 0.5 for _ in range(3)]
    common = dict(task=TASK, backbone=path, steps=4, batch_size=4, train_size=16, val_size=8, test_size=8,
                  eval_every=2, max_length=16, padding="max_length", eval_at_start=False)
    return [TrainConfig(method="scratch", seed=0, name="t5-scratch", **common),
            TrainConfig(method="pot", sources=[src[0]], seed=1, name="t5-pot", **common),
            TrainConfig(method="panda", sources=[src[0]], teacher=src[1], kd_lambda=0.5, seed=2, name="t5-panda",
                        **common),
            TrainConfig(method="attempt", sources=src, seed=3, name="t5-attempt", **common)]


def test_every_method_trains_on_a_t5_and_saves_a_prompt_that_loads_back(t5, task, tmp_path):
    path, bb = t5
    for cfg in _cfgs(path):
        r = train(cfg, backbone=bb, task=task)
        assert tuple(r.prompt.tensor.shape) == (20, 64), cfg.method
        assert not torch.equal(r.prompt.tensor, r.init_prompt), f"{cfg.method} did not train"
        assert 0.0 <= r.test_score <= 1.0
        back = read_prompt(save_result(r, tmp_path / cfg.name))
        assert torch.equal(back.tensor, r.prompt.tensor.float())
        assert back.backbone == Path(path).name  # a local folder is recorded portably, by its name (write_prompt)


def test_t5_packed_equals_unpacked(t5, task):
    path, bb = t5
    cfgs = _cfgs(path)[:2]  # scratch and pot in one forward per step
    solo = [train(c, backbone=bb, task=task) for c in cfgs]
    outs = train_packed(cfgs, backbone=bb, tasks=[task, task])
    for s, o in zip(solo, outs):
        assert o.status == "finished", o.error
        assert (o.result.val_score, o.result.test_score, o.result.best_step) == (s.val_score, s.test_score, s.best_step)
        diff = float((o.result.prompt.tensor - s.prompt.tensor).abs().max())
        assert diff <= 1e-4 * float(s.prompt.tensor.abs().max())
