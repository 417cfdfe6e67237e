"""Where maps are remembered: cache keys, the memory + disk cache, the precomputed maps' files.

    ls .cache/projections/        (one <key>.npy per computed map)

The key (:func:`projection_key`) covers the points' content and names, the method, its
effective parameters and the library versions; the demo's precomputed maps carry it in a
``key`` column, so a stale file is told apart from a current one without recomputing.
"""
from __future__ import annotations

from collections import OrderedDict
from importlib import metadata as _metadata
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from core.fsutil import array_hash, atomic_save_npy, cache_cap_bytes, json_hash, touch, trim_lru

_CACHE_VERSION = 1


def _versions() -> str:
    out = []
    for dist in ("scikit-learn", "umap-learn"):
        try:
            out.append(f"{dist}={_metadata.version(dist)}")
        except _metadata.PackageNotFoundError:
            out.append(f"{dist}=none")
    return ",".join(out)


def features_hash(X: np.ndarray, names: Iterable[str]) -> str:
    """sha256 (first 16 hex) of the point names, shape and float32 bytes: fsutil.array_hash with the
    names (joined by \\x1f) as its tag, the same bytes in the same order as the stored keys."""
    return array_hash(np.ascontiguousarray(X, dtype=np.float32), "\x1f".join(map(str, names)))


def projection_key(X: np.ndarray, names: Iterable[str], method: str, params: dict) -> str:
    """Cache key: content of the points + the method + its effective parameters + versions."""
    return json_hash({"v": _CACHE_VERSION, "x": features_hash(X, names), "method": method,
                      "params": params, "lib": _versions()}, 20)


# ---------------------------------------------------------------- cache

_MEMORY: "OrderedDict[str, np.ndarray]" = OrderedDict()
_MEMORY_MAX = 64


def _disk_dir() -> Path:
    from core.config import cache_dir

    return cache_dir() / "projections"


def _cache_get(key: str) -> tuple[np.ndarray | None, str]:
    if key in _MEMORY:
        _MEMORY.move_to_end(key)
        return _MEMORY[key], "memory"
    path = _disk_dir() / f"{key}.npy"
    if path.is_file():
        try:
            Y = np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            return None, ""  # a damaged cache file is recomputed and replaced
        touch(path)  # least recently used maps go first when the folder is over its cap
        _cache_put_memory(key, Y)
        return Y, "disk"
    return None, ""


def _cache_put_memory(key: str, Y: np.ndarray) -> None:
    _MEMORY[key] = Y
    _MEMORY.move_to_end(key)
    while len(_MEMORY) > _MEMORY_MAX:
        _MEMORY.popitem(last=False)


def _cache_put(key: str, Y: np.ndarray) -> None:
    _cache_put_memory(key, Y)
    try:  # the disk cache is an optimisation: a read-only cache dir must not break maps
        path = atomic_save_npy(_disk_dir() / f"{key}.npy", Y)
        trim_lru(path.parent, cache_cap_bytes(), keep=path)  # ATLAS_CACHE_MAX_MB
    except OSError:
        pass


def clear_memory_cache() -> None:
    _MEMORY.clear()


# ---------------------------------------------------------------- precomputed maps


def _precomputed_path(out_dir: Path, method: str, dims: int) -> Path:
    return Path(out_dir) / (f"{method}.csv" if dims == 2 else f"{method}_{dims}d.csv")


def load_precomputed(out_dir: Path | str, proj_key: str, dims: int, method: str, group: str
                     ) -> np.ndarray | None:
    """coords [N, dims] from a precomputed file when its rows for `group` carry `proj_key`
    (the key of what would be computed now), else None. Rows come back in file order,
    which is the order of the prompts given to precompute_projections."""
    path = _precomputed_path(Path(out_dir), method, dims)
    if not path.is_file():
        return None
    try:
        table = pd.read_csv(path, dtype={"group": str, "key": str})
    except (OSError, ValueError, pd.errors.ParserError):
        return None
    axes = list("xyz"[:dims])
    if not {"group", "key", *axes} <= set(table.columns):
        return None
    rows = table[(table["group"] == group) & (table["key"] == proj_key)]
    if rows.empty:
        return None
    return rows[axes].to_numpy(dtype=np.float64)
