"""Training a prompt through a label-word head (issue 26 stage d, first part): scratch or PoT, cross-entropy
over the labels' scores -- the scores core.heads.scorer computes for evaluation, so a prompt is trained
and evaluated the same way.

    python -c "from core.heads.train import HeadTrainConfig, train_with_head; help(train_with_head)"

What is here: one prompt, one task, a frozen LM with its head (mlm / seq2seq / causal, from a preset),
AdamW on the prompt alone, random batches of the train split, the prompt saved as a PEFT adapter folder
with the preset in its atlas.json (so ``prompts eval`` reads it back with the head it was trained with).
What is not (yet): the run store, checkpoints on validation, PANDA, packed runs and Ray -- those go
through core.training's loop, which trains through the cosine / linear head on pooled features.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from core.heads.presets import HeadError, HeadKind, HeadPreset, get_preset, label_words
from core.heads.scorer import label_scores, load_lm, word_token_ids


class HeadMethod(StrEnum):
    scratch = "scratch"   # PEFT's TEXT init: the embeddings of init_text repeated to L
    pot = "pot"           # start from a source prompt (its encoder half for a seq2seq adapter)


@dataclass
class HeadTrainConfig:
    task: str
    backbone: str
    preset: str | HeadPreset = "mlm-default"
    method: HeadMethod = HeadMethod.scratch
    source: str | None = None        # pot: a prompt file or adapter folder
    L: int = 20                      # scratch: virtual tokens (pot: the source's L)
    init_text: str = ","
    steps: int = 100
    lr: float = 0.03
    batch_size: int = 16
    max_length: int = 128
    seed: int = 0
    device: str = "auto"

    def __post_init__(self):
        try:
            self.method = HeadMethod(self.method)
        except ValueError:
            raise HeadError(f"method {self.method!r}: use one of {', '.join(m.value for m in HeadMethod)}") from None
        if isinstance(self.preset, str):
            self.preset = get_preset(self.preset)
        if self.preset.head == HeadKind.cosine:
            raise HeadError("preset 'cosine' trains through core.training (python -m core train), not a label-word head")
        if self.method == HeadMethod.pot and not self.source:
            raise HeadError("method 'pot' needs source: the prompt to start from")
        for name in ("L", "steps", "batch_size", "max_length"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise HeadError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise HeadError(f"lr must be a positive number, got {self.lr!r}")


@dataclass
class HeadTrainResult:
    prompt: torch.Tensor                 # [L, d] float32 CPU
    losses: list[float]                  # training loss per step
    words: list[str]
    preset: HeadPreset
    sources: list[str] = field(default_factory=list)
    saved: Path | None = None


def _start(cfg: HeadTrainConfig, lm) -> tuple[torch.Tensor, list[str]]:
    if cfg.method == HeadMethod.pot:
        from core.prompts.files import read_prompts
        parts = [p for p in read_prompts(cfg.source) if not str(p.settings.get("part") or "").endswith("decoder")]
        src = parts[0]   # a seq2seq adapter's decoder half is never a PoT start
        t = torch.as_tensor(src.values, dtype=torch.float32)
        if t.shape[1] != lm.dim:
            raise HeadError(f"{cfg.source}: d={t.shape[1]} does not fit {cfg.backbone} (d={lm.dim})")
        return t.clone(), [src.name]
    ids = lm.tokenizer(cfg.init_text, add_special_tokens=False)["input_ids"]
    if not ids:
        raise HeadError(f"init text {cfg.init_text!r} has no tokens")
    ids = (ids * math.ceil(cfg.L / len(ids)))[:cfg.L]
    with torch.no_grad():
        return lm.embed(torch.tensor(ids)).float().cpu(), []


def train_with_head(cfg: HeadTrainConfig, task=None, out: Path | str | None = None) -> HeadTrainResult:
    """Train a prompt for ``cfg.steps`` steps: loss = cross-entropy(label_scores [B, C], labels [B]).
    ``task``: a Task (default: core.tasks.get_task(cfg.task)); ``out``: write the prompt there as an
    adapter folder whose atlas.json holds the preset, task, backbone and method."""
    if task is None:
        from core.tasks import get_task
        task = get_task(cfg.task)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    lm = load_lm(cfg.backbone, cfg.preset.head, cfg.device)
    words, _source = label_words(cfg.preset, task)
    wids = word_token_ids(lm, words, cfg.preset)
    start, sources = _start(cfg, lm)
    P = torch.nn.Parameter(start.to(lm.device))
    opt = torch.optim.AdamW([P], lr=cfg.lr, weight_decay=0.0)
    sp = task.train
    if not len(sp):
        raise HeadError(f"task {task.name}: the train split has no examples")
    losses = []
    for _ in range(cfg.steps):
        idx = rng.choice(len(sp), size=min(cfg.batch_size, len(sp)), replace=False).tolist()
        texts, texts2 = sp.inputs(idx)
        scores = label_scores(lm, cfg.preset, P, wids, texts, texts2, max_length=cfg.max_length)   # [B, C]
        loss = F.cross_entropy(scores, torch.tensor([sp.labels[i] for i in idx], device=lm.device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        if not math.isfinite(losses[-1]):
            raise HeadError(f"training loss became {losses[-1]} at step {len(losses)}: lower lr")
    res = HeadTrainResult(P.detach().float().cpu(), losses, words, cfg.preset, sources)
    if out is not None:
        from core.prompts.files import write_prompt
        from core.prompts.types import SoftPrompt
        settings = {"head": cfg.preset.to_dict(), "steps": cfg.steps, "lr": cfg.lr, "seed": cfg.seed,
                    "final_train_loss": losses[-1], "label_words": words}
        sp_out = SoftPrompt(tensor=res.prompt.numpy(), name=Path(out).name, task=task.name,
                            family=getattr(task, "family", None), backbone=cfg.backbone, method=cfg.method.value,
                            sources=sources, settings=settings)
        res.saved = write_prompt(sp_out, out, base_model=cfg.backbone)
    return res


__all__ = ["HeadMethod", "HeadTrainConfig", "HeadTrainResult", "train_with_head"]
