"""The soft-prompt type: :class:`SoftPrompt` (an ``[L, d]`` float32 array + metadata) and :class:`PromptError`.

    python -c "from core.prompts import SoftPrompt; print(SoftPrompt([[0.0, 1.0]], name='p'))"

``values`` is numpy (torch-free readers: pages, maps); ``tensor`` is the same numbers as a
torch.Tensor, made on first use. Equality is explicit (:meth:`SoftPrompt.__eq__`): same metadata
and the same numbers; a generated dataclass ``__eq__`` would compare arrays element-wise and raise.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.fsutil import array_hash

# torch is imported only where a torch object is really needed (torch.save files, .tensor):
# reading and indexing a library of safetensors / npy prompts stays torch-free, which keeps
# `import torch` (1-2 s) off the pages' first paint.


def _torch():
    import torch
    return torch


def _is_torch_tensor(obj) -> bool:
    t = sys.modules.get("torch")  # a torch tensor can only exist once torch is imported
    return t is not None and isinstance(obj, t.Tensor)



class PromptError(ValueError):
    """One bad prompt file: ``str(e) == f"{path}: {problem}"``."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self):  # keep it picklable (st.cache_*, multiprocessing)
        return (PromptError, (self.path, self.problem))


@dataclass(eq=False)  # equality is explicit below: a generated __eq__ would compare arrays
class SoftPrompt:
    """A soft prompt ``[L, d]`` (float32, CPU) and what is known about it.

    ``tensor`` is a torch.Tensor (made on first use, sharing memory with ``values``);
    ``values`` is the same numbers as a numpy array, for torch-free readers (pages, maps).
    Either may be passed as ``tensor=`` (torch tensor, numpy array or nested lists).
    """

    tensor: Any
    name: str
    task: str | None = None
    family: str | None = None
    backbone: str | None = None
    method: str | None = None       # scratch | pot | panda | generic | None
    sources: list[str] = field(default_factory=list)
    score: float | None = None
    settings: dict = field(default_factory=dict)
    origin: str | None = None
    fmt: str | None = None          # peft | safetensors | torch | npy

    def __post_init__(self):
        if self.values.ndim != 2:
            raise PromptError(self.origin or self.name,
                              f"expected a 2-D [L, d] tensor, got shape {tuple(self.values.shape)}")
        self.sources = list(self.sources or [])
        self.settings = dict(self.settings or {})

    def __eq__(self, other) -> bool:
        """Same metadata and the same numbers (shape and every value); a SoftPrompt is not hashable."""
        if not isinstance(other, SoftPrompt):
            return NotImplemented
        meta = ("name", "task", "family", "backbone", "method", "sources", "score", "settings", "origin", "fmt")
        return (all(getattr(self, k) == getattr(other, k) for k in meta)
                and self.values.shape == other.values.shape and bool(np.array_equal(self.values, other.values)))

    __hash__ = None  # mutable, compared by content: as the generated dataclass did

    @property
    def L(self) -> int:
        return int(self.values.shape[0])

    @property
    def d(self) -> int:
        return int(self.values.shape[1])

    def content_hash(self) -> str:
        """sha256 over dtype, shape and bytes; first 16 hex digits."""
        return array_hash(self.values, "torch.float32")  # always float32 (the tag kept for stable hashes)

    def metadata(self) -> dict:
        """What atlas.json stores (everything but the tensor)."""
        return {"name": self.name, "task": self.task, "family": self.family, "backbone": self.backbone,
                "method": self.method, "sources": list(self.sources), "score": self.score,
                "settings": self.settings, "L": self.L, "d": self.d, "content_hash": self.content_hash()}


def _get_tensor(self: SoftPrompt):
    t = self.__dict__.get("_tensor")
    if t is None:
        t = self.__dict__["_tensor"] = _torch().from_numpy(self.values)
    return t


def _set_tensor(self: SoftPrompt, value) -> None:
    # a detached float32 copy on the CPU: the prompt never aliases a model parameter
    if _is_torch_tensor(value):
        v = value.detach().to("cpu").float().contiguous().numpy().copy()
    else:
        v = np.array(value, dtype=np.float32, copy=True)
    self.__dict__["values"] = np.ascontiguousarray(v, dtype=np.float32)
    self.__dict__["_tensor"] = None


SoftPrompt.tensor = property(_get_tensor, _set_tensor, doc="the prompt as a torch.Tensor [L, d] float32")
