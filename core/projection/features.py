"""Points to project from prompts (one per prompt, flattened, or one per token) and the transfer arrows.

    python -c "from core import projection as p; help(p.prompt_features)"

Prompts of different backbones live in different embedding spaces: one group at a time.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from core.projection.config import POINT_MODES, ProjectionError


def _prompt_values(p) -> Any:
    """A prompt's numbers without importing torch when it has them as numpy (core.prompts)."""
    v = getattr(p, "values", None)
    return v if isinstance(v, np.ndarray) else p.tensor


def _as_array(tensor: Any) -> np.ndarray:
    """A prompt tensor ([L, d] torch or numpy) as float32 numpy."""
    if hasattr(tensor, "detach"):
        tensor = tensor.detach().cpu().float().numpy()
    arr = np.asarray(tensor, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ProjectionError(f"a prompt tensor must be [L, d], got shape {tuple(arr.shape)}")
    return arr


def _meta_row(p: Any) -> dict:
    sources = list(getattr(p, "sources", None) or [])
    return {
        "name": str(p.name),
        "task": getattr(p, "task", None),
        "family": getattr(p, "family", None),
        "backbone": getattr(p, "backbone", None),
        "method": getattr(p, "method", None),
        "source": ", ".join(_source_name(s) for s in sources),
        "score": getattr(p, "score", None),
        "L": int(_as_array(_prompt_values(p)).shape[0]),
    }


def prompt_features(prompts: Sequence[Any], point_mode: str = "prompt", reduce: str = "mean"
                    ) -> tuple[np.ndarray, pd.DataFrame, list[str]]:
    """Points to project.

    prompts: SoftPrompt-like objects (.tensor [L, d], .name, optional metadata), one group.
    Returns X [N, D] float32, meta (one row per point: META_COLUMNS, + prompt/token in token
    mode) and notes. prompt/mean: N = len(prompts), D = d; prompt/flat: D = L*d;
    token: N = sum L, D = d.
    """
    if not prompts:
        raise ProjectionError("no prompts to project")
    arrays = [_as_array(_prompt_values(p)) for p in prompts]
    dims = {a.shape[1] for a in arrays}
    if len(dims) > 1:
        raise ProjectionError(f"prompts of different widths d={sorted(dims)} cannot share a map; "
                              "project one backbone group at a time")
    notes: list[str] = []
    rows = [_meta_row(p) for p in prompts]
    if point_mode == "token":
        X = np.concatenate(arrays, axis=0)
        meta_rows = []
        for row, a in zip(rows, arrays):
            for i in range(a.shape[0]):
                meta_rows.append({**row, "name": f"{row['name']}#{i}", "prompt": row["name"], "token": i})
        return X, pd.DataFrame(meta_rows), notes
    if point_mode != "prompt":
        raise ProjectionError(f"point_mode must be one of {POINT_MODES}, got {point_mode!r}")
    if reduce == "flat":
        lengths = {a.shape[0] for a in arrays}
        if len(lengths) == 1:
            X = np.stack([a.reshape(-1) for a in arrays])
            return X, pd.DataFrame(rows), notes
        notes.append(f"flattened prompts need one prompt length; found L = {sorted(lengths)}: "
                     "using the mean of tokens instead")
    X = np.stack([a.mean(axis=0) for a in arrays])
    return X.astype(np.float32), pd.DataFrame(rows), notes


def _normalise(X: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.where(norms > 0, norms, 1.0)


# ---------------------------------------------------------------- transfer arrows


def _source_name(s: Any) -> str:
    """Sources are stored as names or as prompt paths; a path's folder/file name is the name."""
    s = str(s).rstrip("/\\")
    return Path(s).name if ("/" in s or "\\" in s) else s


def transfer_pairs(prompts: Sequence[Any], methods: Iterable[str] = ("pot", "panda")
                   ) -> list[tuple[str, str]]:
    """(source name, target name) for every prompt made by transfer (method pot/panda) from a
    source that is in the same set. Sources given as paths match by folder/file name or stem."""
    names = {str(p.name) for p in prompts}
    stems = {Path(n).stem: n for n in names}
    methods = set(methods)
    pairs: list[tuple[str, str]] = []
    for p in prompts:
        if getattr(p, "method", None) not in methods:
            continue
        for s in getattr(p, "sources", None) or []:
            src = _source_name(s)
            src = src if src in names else stems.get(Path(src).stem)
            if src and src != p.name and (src, str(p.name)) not in pairs:
                pairs.append((src, str(p.name)))
    return pairs
