"""Classification heads on the pooled embedding: a verbalizer (frozen label embeddings) or linear.

    python -c "from core.training.heads import Head; help(Head)"

``verbalizer`` (default): ``logits = cos(pool(x; P), e_c) / tau`` with ``e_c`` the frozen,
prompt-free pooled embedding of each label description -- only the prompt trains;
``linear``: a trainable ``Linear(d, C)`` as well (saved as ``head.safetensors`` beside the prompt).
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from core.backbone import Backbone
from core.training.config import HeadKind, TrainConfig, TrainError


class Head(torch.nn.Module):
    """pooled [B, d] float32 -> logits [B, C]."""

    def __init__(self, kind: str, label_emb: torch.Tensor, tau: float):
        super().__init__()
        self.kind = kind
        self.tau = float(tau)
        # e_c: frozen label-description embeddings, unit norm [C, d]
        self.register_buffer("label_emb", F.normalize(label_emb.float(), dim=-1))
        if kind == HeadKind.linear:
            C, d = label_emb.shape
            self.linear = torch.nn.Linear(d, C)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if self.kind == HeadKind.linear:
            return self.linear(z)
        return F.normalize(z, dim=-1) @ self.label_emb.T / self.tau


def label_embeddings(bb: Backbone, task) -> torch.Tensor:
    """Frozen pooled embedding of each label description (no prompt) [C, d]."""
    descs = list(getattr(task, "descriptions", None) or task.labels)
    return bb.embed_texts(descs)


def head_state(head: Head) -> dict | None:
    """The linear head's weights as CPU tensors (None for a verbalizer: nothing trains)."""
    if head is None or head.kind != HeadKind.linear:   # None: a label-word head (nothing of its own trains)
        return None
    return {k: v.detach().cpu().clone() for k, v in head.linear.state_dict().items()}


def load_head_state(head: Head, state: dict | None) -> None:
    if state is not None and head.kind == HeadKind.linear:
        head.linear.load_state_dict({k: v.to(head.label_emb.device) for k, v in state.items()})


def teacher_linear_head(cfg: TrainConfig, head: Head, bb: Backbone, teacher=None) -> Head:
    """A linear-head teacher needs its own trained head: head.safetensors beside the teacher prompt
    (``teacher``: that prompt, default cfg.teacher)."""
    teacher = cfg.teacher if teacher is None else teacher
    path = None if teacher is None or isinstance(teacher, torch.Tensor) else Path(str(teacher))
    f = path / "head.safetensors" if path is not None and path.is_dir() else None
    if f is None or not f.is_file():
        raise TrainError(f"{teacher}: a panda teacher with head 'linear' needs head.safetensors in the "
                         "teacher's folder (saved by a run with --head linear); or use --head verbalizer")
    from safetensors.torch import load_file
    th = Head(HeadKind.linear, head.label_emb.cpu(), cfg.tau).to(bb.device)
    try:
        th.linear.load_state_dict({k: v.to(bb.device) for k, v in load_file(str(f)).items()})
    except Exception as e:
        raise TrainError(f"{f}: cannot load the teacher head ({e})") from None
    return th
