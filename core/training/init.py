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


def check_same_kind(refs: list, what: str = "source prompts") -> None:
    """Several prompts used together must share one prompt length and one backbone: one line if not."""
    if len(refs) < 2:
        return
    Ls, bbs = {}, {}
    for r in refs:
        sp = r if hasattr(r, "tensor") else None
        if sp is None and not isinstance(r, torch.Tensor):
            from core.prompts import read_prompt  # lazy
            sp = read_prompt(r)
        t = r if isinstance(r, torch.Tensor) else sp.tensor
        Ls.setdefault(int(t.shape[-2]) if t.dim() >= 2 else -1, describe(r))
        name = getattr(sp, "backbone", None) if sp is not None else None
        if name:
            bbs.setdefault(str(name), describe(r))
    if len(Ls) > 1:
        raise TrainError(f"{what} differ in prompt length ({', '.join(f'L={k}: {v}' for k, v in Ls.items())}); "
                         "use prompts of one length")
    if len(bbs) > 1:
        raise TrainError(f"{what} come from different backbones ({', '.join(bbs)}); use prompts of one backbone")


def source_stack(bb: Backbone, cfg: TrainConfig) -> tuple[torch.Tensor, list[str]]:
    """The K source prompts stacked [K, L, d] and their names (one L and one backbone, else TrainError)."""
    check_same_kind(list(cfg.sources))
    loaded = [load_prompt_tensor(s, bb.dim) for s in cfg.sources]
    shapes = {tuple(t.shape) for t, _ in loaded}
    if len(shapes) > 1:
        raise TrainError(f"source prompts differ in shape {sorted(shapes)}: they need one prompt length")
    return torch.stack([t for t, _ in loaded]), [n for _, n in loaded]


def source_prompt(bb: Backbone, cfg: TrainConfig) -> tuple[torch.Tensor, list[str]]:
    """The source prompt: one, or the SPoT weighted average of several (same L)."""
    stack, names = source_stack(bb, cfg)
    w = cfg.source_weights or [1.0] * len(names)
    total = sum(w)
    avg = sum(wi * t for wi, t in zip(w, stack)) / total
    return avg, names


def initial_prompt(bb: Backbone, cfg: TrainConfig) -> tuple[torch.Tensor, torch.Tensor | None, list[str]]:
    """(the prompt training starts from [L, d], the source prompt [L, d] or None, source names).
    pot and a panda student with student_init "source" start from the source; the rest from scratch
    (attempt's target prompt too: its sources are mixed in per input, core.training.attempt)."""
    if cfg.method == Method.attempt:
        stack, names = source_stack(bb, cfg)
        if stack.shape[1] != cfg.prompt_length:
            raise TrainError(f"attempt: the source prompts have L={stack.shape[1]} but prompt_length is "
                             f"{cfg.prompt_length}; the target prompt must have the sources' length")
        return scratch_init(bb, cfg), None, names
    src, names = source_prompt(bb, cfg) if cfg.sources else (None, [])
    from_source = cfg.method == Method.pot or (cfg.method == Method.panda and cfg.student_init == StudentInit.source)
    init = src.clone() if from_source else scratch_init(bb, cfg)
    return init, src, names
