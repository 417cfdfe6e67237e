"""A run's label-word head: the prompt read through a frozen LM head, as released prompts were trained.

    python -m core train --task sent_movie --backbone roberta-base --lm-head thunlp-roberta --steps 300

With ``TrainConfig.lm_head`` (a preset of core.heads.presets) a run's logits are the label words' scores
[B, C] of core.heads.scorer -- masked-LM (thunlp's position 0, or a mask after the text), seq2seq (first
decoder step, or each word's sequence log-likelihood) or causal (the word as the text's continuation) --
instead of the cosine / linear head on pooled features. The loss is the same cross-entropy over those
scores (PANDA's KD the same MSE between the student's and teacher's scores), evaluation and the test use
the same scores, and the saved prompt records the preset (with its label words) in ``atlas.json``, so
``python -m core prompts eval`` reads it back with the head it was trained with.

The data are encoded once in the LM's own layout (``text_ids``: pairs as pairs, the mask token inserted
for ``mask_after``); token types are read back from the ids (``token_types``).
"""
from __future__ import annotations

from typing import Callable

import torch

from core.backbone import Backbone
from core.heads.presets import HeadError, HeadKind, HeadPreset, Scoring, label_words
from core.heads.scorer import LM, load_lm, pad_ids, scores_from_ids, text_ids, word_token_ids
from core.training.config import TrainConfig, TrainError


class LabelWordHead:
    """Label-word scores of token-id rows with a prompt in front: ids [B, T_i] -> logits [B, C] float32.

    lm: the frozen LM with its head; preset: how it is read; words: one per label (C), with where they
    came from (``word_source``); word_ids: their token ids under the LM's tokenizer.
    """

    def __init__(self, lm: LM, preset: HeadPreset, task):
        self.lm, self.preset, self.task_name = lm, preset, str(getattr(task, "name", "?"))
        try:
            self.words, self.word_source = label_words(preset, task)
            self.word_ids = word_token_ids(lm, self.words, preset)
        except HeadError as e:
            raise TrainError(f"task {getattr(task, 'name', '?')}: {e}") from None
        self.n_classes = len(self.words)

    @classmethod
    def for_run(cls, cfg: TrainConfig, task) -> "LabelWordHead":
        preset = cfg.lm_preset(getattr(task, "name", cfg.task))
        try:
            lm = load_lm(cfg.backbone, preset.head, cfg.device)
        except HeadError as e:
            raise TrainError(str(e)) from None
        return cls(lm, preset, task)

    @property
    def single_read(self) -> bool:
        """The scores are read at one position per row (masked LM, or first-token scoring): rows of
        several runs can share one forward and each take its own words' columns (packed training)."""
        return self.preset.head == HeadKind.mlm or self.preset.scoring == Scoring.first_token

    def encode(self, texts: list[str], texts2: list[str] | None, max_length: int) -> list[list[int]]:
        """Unpadded ids per text in the LM's layout (pairs as pairs; mask token for ``mask_after``)."""
        try:
            return text_ids(self.lm, self.preset, texts, texts2, max_length)[0]
        except HeadError as e:
            raise TrainError(str(e)) from None

    def logits(self, ids: list[list[int]], prompt, word_ids: list[list[int]] | None = None) -> torch.Tensor:
        """ids: B rows (unpadded); prompt: [L, d], [B, L, d], or a callable (input_ids [B, T], mask [B, T])
        -> [B, L, d] (attempt); word_ids: score these words instead of the run's own (a packed step
        scores every run's words at once). -> [B, C] float32, differentiable in the prompt."""
        if callable(prompt) and not isinstance(prompt, torch.Tensor):
            x, m = self.pad(ids)
            prompt = prompt(x, m)
        try:
            return scores_from_ids(self.lm, self.preset, prompt, word_ids or self.word_ids, ids)
        except HeadError as e:
            raise TrainError(str(e)) from None

    def pad(self, ids: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-padded input_ids and mask [B, T] on the LM's device."""
        return pad_ids(self.lm, ids)

    @torch.no_grad()
    def predict(self, ids: list[list[int]], prompt, batch_size: int = 64) -> torch.Tensor:
        """Logits [N, C] float32 CPU in the input order (length-sorted batches inside)."""
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out = torch.empty((len(ids), self.n_classes))
        for s in range(0, len(order), batch_size):
            idx = order[s:s + batch_size]
            out[idx] = self.logits([ids[i] for i in idx], prompt).float().cpu()
        return out

    def record(self) -> dict:
        """What the saved prompt's atlas.json keeps: the preset with this task's words as its verbalizer
        (so the prompt is read back with exactly the words it was trained on)."""
        return self.preset.with_(verbalizer={**self.preset.verbalizer, self.task_name: list(self.words)}).to_dict()


def head_for_prompts(preset_name: str, backbone: str | None, task, d: int, device: str = "auto") -> LabelWordHead:
    """The label-word head that reads source prompts of width ``d`` trained on ``backbone`` on ``task``'s
    labels (zs of the metric matrix, the ranking of a target's sources). TrainError says why not: no
    backbone named, an unknown or cosine preset, a model without that kind of LM head or not here, a
    width that does not fit, a label without a word."""
    from core.heads.presets import get_preset
    if not backbone or str(backbone).startswith("unknown"):
        raise TrainError("these prompts do not say which model they were trained with: a label-word head needs it")
    try:   # an unknown preset, or the cosine one (load_lm: it has no LM head), is one HeadError
        preset = get_preset(preset_name)
        lm = load_lm(backbone, preset.head, device)
    except HeadError as e:
        raise TrainError(str(e)) from None
    if lm.dim != int(d):
        raise TrainError(f"the prompts have d={d} but {backbone!r} has hidden size {lm.dim}")
    return LabelWordHead(lm, preset, task)


def backbone_view(lm: LM) -> Backbone:
    """A Backbone over the LM's own modules (no second copy of the weights): the prompt's init (init
    text, random vocabulary), source prompts' width check and attempt's mixer read its word embeddings."""
    m = lm.model
    base = m.get_encoder() if lm.head == HeadKind.seq2seq else getattr(m, m.base_model_prefix, m)
    kind = "decoder" if lm.head == HeadKind.causal else "encoder"
    return Backbone(name=lm.name, path=lm.path, model=base, tokenizer=lm.tokenizer, dim=lm.dim, device=lm.device,
                    dtype=lm.dtype, kind=kind)


def encoder_for(head: LabelWordHead | None, bb: Backbone, max_length: int) -> Callable:
    """(texts, texts2) -> ids: the run's encoding of a split (the LM's layout, or the backbone's)."""
    if head is not None:
        return lambda texts, texts2: head.encode(texts, texts2, max_length)
    return lambda texts, texts2: bb.token_ids(texts, max_length, texts2)


__all__ = ["LabelWordHead", "backbone_view", "encoder_for", "head_for_prompts"]
