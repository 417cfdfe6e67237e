"""PANDA's teacher: the frozen backbone with the teacher prompt, its logits cached once.

    python -m core train --task sent_product --method panda --source SRC --teacher POT_PROMPT

``teacher_mode="pot"``: a prompt already PoT-trained on this target, passed as ``teacher``, as
PANDA's code does; ``"source"``: ``--teacher`` if given, else the raw source prompt. The teacher
is frozen and in eval mode, so its logits are computed once per training example and cached
(PANDA costs about what PoT costs); ``teacher_every_step=True`` recomputes them each step, as
PANDA's code does (for the speed benchmark).

Several teachers (``teachers`` = K prompts: PoT runs from K sources, or the K raw sources, with
``teacher_weights`` w, normalised to sum 1): ``KD = sum_k w_k * MSE(z_s, z_t_k)``; the total KD
weight lambda follows the single-teacher rules (TrainConfig.effective_lambda). One teacher with
weight 1 computes exactly today's single-teacher loss.
"""
from __future__ import annotations

from typing import Callable

import torch

from core.backbone import Backbone
from core.training.config import HeadKind, TrainConfig
from core.training.evaluation import predict_logits
from core.training.heads import Head, teacher_linear_head
from core.training.init import load_prompt_tensor


class Teacher:
    """The teacher's logits z_t [B, C] for a batch of training examples."""

    def __init__(self, cfg: TrainConfig, bb: Backbone, head: Head | None, source: torch.Tensor | None,
                 tr_ids: list[list[int]], emit: Callable[[dict], None], *, prompt=None, lmh=None):
        self.bb, self.pool, self.lmh = bb, cfg.pool, lmh
        ref = cfg.teacher if prompt is None else prompt
        tp = load_prompt_tensor(ref, bb.dim)[0] if ref is not None else source
        self.prompt = tp.to(bb.device)  # [L, d]
        self.head = teacher_linear_head(cfg, head, bb, ref) if cfg.head == HeadKind.linear else head
        self.cache = None  # [N_train, C] on the device
        if not cfg.teacher_every_step:
            emit({"kind": "status", "step": 0, "metrics": {"state": "caching_teacher", "n": len(tr_ids)}})
            # a label-word head (lmh): the teacher's label-word scores, as the student's are read
            z = lmh.predict(tr_ids, self.prompt) if lmh is not None else predict_logits(bb, self.head, tr_ids,
                                                                                      self.prompt, cfg.pool)
            self.cache = z.to(bb.device)

    def logits(self, ids: list[list[int]], idx: torch.Tensor, pad_to: int | None) -> torch.Tensor:
        """ids: the batch's token ids (unpadded); idx: their training-set indices [B] (CPU long)."""
        bb = self.bb
        if self.cache is not None:
            return self.cache.index_select(0, bb.to_device(idx))
        if self.lmh is not None:
            with torch.no_grad():
                return self.lmh.logits(ids, self.prompt).float()
        b = bb.pad(ids, pad_to)
        with torch.no_grad():
            z = bb.encode(b["input_ids"], b["attention_mask"], self.prompt, pool=self.pool)
            return self.head(z).float()


def make_teachers(cfg: TrainConfig, bb: Backbone, head: Head | None, source: torch.Tensor | None,
                  tr_ids: list[list[int]], emit: Callable[[dict], None], *, lmh=None) -> list[tuple[float, Teacher]]:
    """PANDA's teachers with their weights [(w_k, Teacher)]: K from ``teachers`` (weights summing to 1),
    or today's single teacher with weight 1. lmh: the run's label-word head (core.training.lmhead), whose
    scores the teachers then give."""
    if not cfg.teachers:
        return [(1.0, Teacher(cfg, bb, head, source, tr_ids, emit, lmh=lmh))]
    from core.training.init import check_same_kind
    check_same_kind(list(cfg.teachers), "teacher prompts")
    return [(w, Teacher(cfg, bb, head, None, tr_ids, emit, prompt=t, lmh=lmh))
            for w, t in zip(cfg.kd_weights(), cfg.teachers)]
