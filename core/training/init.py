"""Where a prompt starts: the scratch init (init text or random vocabulary) or source prompts.

    python -m core train --task sent_tweet --init random_vocab --steps 50     # or --init-text "classify ."

- scratch: the token embeddings of a short task-neutral text repeated/truncated to L (PEFT's
  ``TEXT`` init, default ``","``), or random vocabulary tokens (``init="random_vocab"``, as SPoT).
- pot / a panda student from the source: one source prompt, or the SPoT weighted average
  ``sum_r w_r P_r / sum_r w_r`` of several (``source_weights``, default uniform).
"""
from __future__ import annotations

import math

import torch

from core.backbone import Backbone
from core.training.config import NEUTRAL_TEXT, Init, Method, StudentInit, TrainConfig, TrainError, describe


def load_prompt_tensor(x, dim: int | None = None) -> tuple[torch.Tensor, str]:
    """A prompt given as a path, SoftPrompt or tensor -> ([L, d] float32 CPU, name)."""
    if isinstance(x, torch.Tensor):
        t, name = x, "tensor"
    elif hasattr(x, "tensor"):
        t, name = x.tensor, str(getattr(x, "name", "prompt"))
    else:
        from core.prompts import read_prompt  # lazy: keeps this module's import light
        sp = read_prompt(x, expected_dim=dim)
        t, name = sp.tensor, sp.name
    t = t.detach().to("cpu", torch.float32)
    if t.dim() != 2:
        raise TrainError(f"{describe(x)}: a prompt must be [L, d], got shape {tuple(t.shape)}")
    if dim is not None and t.shape[1] != dim:
        raise TrainError(f"{describe(x)}: prompt has d={t.shape[1]}, the backbone needs d={dim} "
                         "(it was trained on another model)")
    return t, name


def text_init(bb: Backbone, L: int, text: str = NEUTRAL_TEXT) -> torch.Tensor:
    """PEFT TEXT init: embeddings of the text's tokens, repeated / truncated to L -> [L, d]."""
    ids = bb.tokenizer(text, add_special_tokens=False)["input_ids"]
    if not ids:
        raise TrainError(f"init text {text!r} has no tokens")
    ids = (ids * math.ceil(L / len(ids)))[:L]
    with torch.no_grad():
        return bb.embed_ids(torch.tensor([ids])).float()[0].cpu()


def random_vocab_init(bb: Backbone, L: int, seed: int) -> torch.Tensor:
    """Embeddings of L random non-special vocabulary tokens (SPoT-style) -> [L, d]."""
    g = torch.Generator().manual_seed(seed)
    V = bb.word_embeddings.weight.shape[0]
    special = set(bb.tokenizer.all_special_ids or [])
    ids = []
    while len(ids) < L:
        i = int(torch.randint(0, V, (1,), generator=g))
        if i not in special:
            ids.append(i)
    with torch.no_grad():
        return bb.word_embeddings.weight[torch.tensor(ids, device=bb.device)].float().cpu()


def scratch_init(bb: Backbone, cfg: TrainConfig) -> torch.Tensor:
    if cfg.init == Init.random_vocab:
        return random_vocab_init(bb, cfg.prompt_length, cfg.seed)
    return text_init(bb, cfg.prompt_length, cfg.init_text)


def source_prompt(bb: Backbone, cfg: TrainConfig) -> tuple[torch.Tensor, list[str]]:
    """The source prompt: one, or the SPoT weighted average of several (same L)."""
    loaded = [load_prompt_tensor(s, bb.dim) for s in cfg.sources]
    shapes = {tuple(t.shape) for t, _ in loaded}
    if len(shapes) > 1:
        raise TrainError(f"source prompts differ in shape {sorted(shapes)}: averaging needs equal L")
    w = cfg.source_weights or [1.0] * len(loaded)
    total = sum(w)
    avg = sum(wi * t for wi, (t, _) in zip(w, loaded)) / total
    return avg, [n for _, n in loaded]


def initial_prompt(bb: Backbone, cfg: TrainConfig) -> tuple[torch.Tensor, torch.Tensor | None, list[str]]:
    """(the prompt training starts from [L, d], the source prompt [L, d] or None, source names).
    pot and a panda student with student_init "source" start from the source; the rest from scratch."""
    src, names = source_prompt(bb, cfg) if cfg.sources else (None, [])
    from_source = cfg.method == Method.pot or (cfg.method == Method.panda and cfg.student_init == StudentInit.source)
    init = src.clone() if from_source else scratch_init(bb, cfg)
    return init, src, names
