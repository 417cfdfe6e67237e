"""What a metric needs from one prompt, and the backbone groups prompts fall into.

    python -c "from core.metrics import group_key; print(group_key(None, 768))"

Metrics accept SoftPrompt-like objects, a dict name -> tensor, or tensors; :func:`_items` turns
any of them into named [L, d] float32 CPU tensors (unique names: they label rows and columns).
Prompts of different backbones (or d) are different embedding spaces and never compared.

Torch is imported inside :func:`_items` only, so reading names, tasks and groups stays torch-free.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.fsutil import array_hash
from core.metrics.registry import MetricError, MixedBackboneError
from core.prompts.meta import group_key  # noqa: F401  (one definition; re-exported as core.metrics.group_key)


@dataclass
class _Item:
    """What a metric needs from one prompt (SoftPrompt-like objects, tensors, arrays)."""

    name: str
    tensor: "torch.Tensor"          # [L, d] float32 CPU
    task: str | None = None
    family: str | None = None
    backbone: str | None = None
    method: str | None = None
    _hash: str | None = None

    @property
    def hash(self) -> str:
        """sha256 of dtype, shape and bytes (first 16 hex), as SoftPrompt.content_hash; computed once."""
        if self._hash is None:
            self._hash = _content_hash(self.tensor)
        return self._hash


def _content_hash(t: "torch.Tensor") -> str:
    return array_hash(t.numpy(), str(t.dtype))


def _named(prompts) -> list[tuple[str, object]]:
    """(unique name, prompt) for SoftPrompt list / dict name -> prompt|tensor / list of tensors.

    The name is the dict key, else the prompt's ``name``, else ``p<i>``; a repeated name gets
    ``~2``, ``~3``, ... (names label rows and columns). Touches no tensor: torch-free.
    """
    if isinstance(prompts, list) and prompts and all(isinstance(p, _Item) for p in prompts):
        return [(p.name, p) for p in prompts]
    pairs = list(prompts.items()) if isinstance(prompts, dict) else [(None, p) for p in prompts]
    out: list[tuple[str, object]] = []
    seen: dict[str, int] = {}
    for i, (key, p) in enumerate(pairs):
        name = str(key if key is not None else getattr(p, "name", None) or f"p{i}")
        if name in seen:
            seen[name] += 1
            name = f"{name}~{seen[name]}"
        else:
            seen[name] = 1
        out.append((name, p))
    return out


def _items(prompts) -> list[_Item]:
    """SoftPrompt list / dict name -> prompt|tensor / list of tensors -> list of _Item (unique names)."""
    import torch  # here, not at module top: names, tasks and groups are read without torch

    if isinstance(prompts, list) and prompts and all(isinstance(p, _Item) for p in prompts):
        return prompts
    out: list[_Item] = []
    for name, p in _named(prompts):
        t = p.tensor if hasattr(p, "tensor") else p
        t = torch.as_tensor(np.asarray(t) if not isinstance(t, torch.Tensor) else t)
        if t.ndim != 2:
            raise MetricError(f"prompt {name!r}: expected a [L, d] tensor, got shape {tuple(t.shape)}")
        t = t.detach().to("cpu", torch.float32).contiguous()
        out.append(_Item(name=name, tensor=t, task=getattr(p, "task", None), family=getattr(p, "family", None),
                         backbone=getattr(p, "backbone", None), method=getattr(p, "method", None)))
    if not out:
        raise MetricError("no prompts given")
    return out


def split_groups(prompts) -> dict[str, list]:
    """Split prompts by backbone (and d): each group is one embedding space.

    Prompts whose backbone is unknown are never mixed with a named backbone.
    """
    plist = list(prompts.values()) if isinstance(prompts, dict) else list(prompts)

    def bd(p):
        t = p.tensor if hasattr(p, "tensor") else p
        return getattr(p, "backbone", None) or None, int(t.shape[-1])

    dims: dict[str | None, set[int]] = {}
    for p in plist:
        b, d = bd(p)
        dims.setdefault(b, set()).add(d)
    groups: dict[str, list] = {}
    for p in plist:
        b, d = bd(p)
        groups.setdefault(group_key(b, d, with_dim=len(dims[b]) > 1), []).append(p)
    return groups


def check_one_group(prompts) -> str:
    """The single group of ``prompts``; MixedBackboneError when there are several."""
    groups = split_groups(prompts)
    if len(groups) > 1:
        raise MixedBackboneError({g: [getattr(p, "name", "?") for p in ps] for g, ps in groups.items()})
    return next(iter(groups))

