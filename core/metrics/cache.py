"""Matrices as DataFrames: compute one metric (or read it), cached on disk by content.

    python -m core matrix --library data/demo/prompts --metric e_avg --out e_avg.csv

The disk cache holds at most ``ATLAS_CACHE_MAX_MB`` (default 256 MiB): least recently used
matrices are deleted first (core.fsutil.trim_lru). zs's per-(prompt, task) evaluations that a
background job saves live in the run store (core.jobs), not here.

A matrix's key hashes the metric, its parameters, the backbone and every prompt's (name,
content hash): the disk cache (cache_dir()/metrics/<metric>-<key>.npy) and a library's
precomputed ``<metric>.csv`` + ``index.json`` (the demo's ``matrices/``) are used only while
the key matches. Torch-free at import: the metric functions load when a matrix is computed.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from core.fsutil import (atomic_save_npy, atomic_write_text, cache_cap_bytes, json_hash, load_cached_npy, touch,
                          trim_lru)
from core.metrics.items import _items, check_one_group
from core.metrics.measured import measured
from core.metrics.registry import METRICS, BackboneUnavailable, MetricError, get_spec


CACHE_VERSION = 1  # bump when a metric's numbers change, so old cache files are ignored
RUNTIME_PARAMS = ("counter", "pairs", "progress")  # how a matrix is computed, not what it is: not in its key


def metric_status(metric: str, prompts) -> tuple[bool, str]:
    """Can ``metric`` be computed for these prompts here? -> (ok, message to show when not)."""
    spec = get_spec(metric)
    if spec.kind == "runs":
        return True, ""
    try:
        items = _items(prompts)
        check_one_group(items)
    except MetricError as e:
        return False, str(e)
    if spec.equal_length and len({it.tensor.shape[0] for it in items}) > 1:
        return True, f"{metric} is only defined between prompts of equal length L: other pairs are blank"
    if not spec.needs_backbone:
        return True, ""
    name = items[0].backbone
    if name is None:
        return False, str(BackboneUnavailable(None, metric))
    try:
        from core.backbone import resolve_model_path
        resolve_model_path(name)
    except ImportError as e:
        return False, str(BackboneUnavailable(name, metric, f"core.backbone cannot be imported: {e}"))
    except (ValueError, OSError):
        return False, str(BackboneUnavailable(name, metric))
    return True, ""


def write_matrix_csv(df: pd.DataFrame, path: Path | str) -> Path:
    """Atomic CSV write (index = sources, columns = targets, full float precision)."""
    path = Path(path)
    atomic_write_text(path, df.to_csv(float_format="%.17g"))
    return path


def read_matrix_csv(path: Path | str) -> pd.DataFrame:
    path = Path(path)
    try:
        df = pd.read_csv(path, index_col=0)
    except (OSError, ValueError) as e:
        raise MetricError(f"{path}: cannot read a matrix CSV ({e})") from None
    df.index = df.index.astype(str)
    df.columns = df.columns.astype(str)
    return df.astype(float)


def _backbone_name(spec, backbone, items) -> str | None:
    """The backbone a matrix key names: only model-based metrics depend on one (the given
    name or Backbone, else the prompts' own)."""
    if not spec.needs_backbone:
        return None
    return backbone if isinstance(backbone, str) else getattr(backbone, "name", None) or items[0].backbone


def matrix_key(metric: str, prompts, backbone: str | None = None, **params) -> str:
    """Content hash of a matrix: metric, parameters, backbone and every prompt's (name, content hash)."""
    items = _items(prompts)
    payload = {"v": CACHE_VERSION, "metric": metric, "backbone": backbone,
               "params": {k: params[k] for k in sorted(params)},
               "prompts": [(it.name, it.hash, it.task if METRICS[metric].needs_tasks or metric == "zs" else None)
                           for it in items]}
    return json_hash(payload, 20)


def _cache_file(metric: str, key: str) -> Path:
    """The disk cache of one matrix: its values as .npy (float64 [N, N]); rows and columns are the
    prompts in the order the key lists them. (CSV took 1.4 s to write at N = 1,000, 12 s at 3,000.)"""
    from core.config import cache_dir
    return cache_dir() / "metrics" / f"{metric}-{key}.npy"


def _cached_frame(path: Path, names: list[str]) -> pd.DataFrame | None:
    a = load_cached_npy(path, (len(names), len(names))) if path.is_file() else None
    if a is None:
        return None
    touch(path)  # least recently used files go first when the cache is over its cap
    df = pd.DataFrame(a, index=pd.Index(names, name="source"), columns=pd.Index(names, name="target"))
    return df


def compute_matrix(metric: str, prompts=None, *, results: pd.DataFrame | None = None, backbone=None,
                   cache: bool = True, **params) -> pd.DataFrame:
    """One metric as a DataFrame: index = source names, columns = target names.

    prompts: SoftPrompt-like objects (one backbone group), dict name -> tensor, or tensors.
    ``measured`` takes ``results`` (RESULTS COLUMNS) instead; its columns are target tasks.
    Backbone metrics load the prompts' backbone unless ``backbone`` (object or name) is given
    and raise :class:`BackboneUnavailable` when it cannot be loaded.
    """
    spec = get_spec(metric)
    if spec.kind == "runs":
        if results is None:
            raise MetricError("measured needs a results table (finished runs)")
        return measured(results, **params).mean
    if prompts is None:
        raise MetricError(f"{metric} needs prompts")
    items = _items(prompts)
    check_one_group(items)
    bb_name = _backbone_name(spec, backbone, items)
    key = matrix_key(metric, items, bb_name, **{k: v for k, v in params.items() if k not in RUNTIME_PARAMS})
    path = _cache_file(metric, key)
    names = [it.name for it in items]
    if cache:
        df = _cached_frame(path, names)  # a broken cache file is recomputed and replaced
        if df is not None:
            return df
    df = pd.DataFrame(_values(spec, items, backbone if backbone is not None else bb_name, params),
                      index=names, columns=names, dtype=float)
    df.index.name = "source"
    df.columns.name = "target"
    if cache:
        try:
            atomic_save_npy(path, df.to_numpy(dtype=float))
            trim_lru(path.parent, cache_cap_bytes(), "*-*.npy", keep=path)
        except OSError:
            pass  # a read-only cache must not break the metric
    return df


def _values(spec, items, backbone, params: dict):
    """The metric's [N, N] values (the metric modules load here: torch only when a matrix is computed)."""
    if spec.needs_backbone:
        from core.metrics.activations import BACKBONE_FUNCS
        return BACKBONE_FUNCS[spec.name](items, backbone, **params)
    from core.metrics.prompt_space import PROMPT_FUNCS
    return PROMPT_FUNCS[spec.name](items, **params)


PRECOMPUTED_INDEX = "index.json"


def save_precomputed(metric: str, df: pd.DataFrame, prompts, folder: Path | str, *, backbone=None,
                     **params) -> Path:
    """Write ``folder/<metric>.csv`` and record its matrix key in ``folder/index.json``,
    so a page can use it only while the prompts (content hashes) are unchanged."""
    folder = Path(folder)
    items = _items(prompts)
    spec = get_spec(metric)
    bb_name = _backbone_name(spec, backbone, items)
    path = write_matrix_csv(df, folder / f"{metric}.csv")
    index_path = folder / PRECOMPUTED_INDEX
    index = json.loads(index_path.read_text()) if index_path.is_file() else {}
    index[metric] = {"key": matrix_key(metric, items, bb_name, **params), "file": path.name,
                     "n": len(items), "params": {k: params[k] for k in sorted(params)}}
    atomic_write_text(index_path, json.dumps(index, indent=2, default=str) + "\n")
    return path


def all_from(prompts, folder: Path | str) -> bool:
    """True when every prompt was read from under ``folder`` (resolved, symlinks followed): the committed
    demo's prompts, built together with its matrices, so a precomputed matrix may be matched by names
    (``trust_names``) when it records no key. Prompts without an origin never count."""
    root = Path(folder).resolve()
    try:
        return all(getattr(p, "origin", None) and Path(p.origin).resolve().is_relative_to(root) for p in prompts)
    except (OSError, ValueError):
        return False


def load_precomputed(metric: str, prompts, folder: Path | str, *, backbone=None, trust_names: bool = False,
                     **params) -> pd.DataFrame | None:
    """``folder/<metric>.csv`` when ``folder/index.json`` records the key of exactly these prompts.

    trust_names: with no key recorded for the metric, accept a file whose rows and columns
    cover these prompts' names -- only for a read-only library built together with its
    matrices (the committed demo), where names cannot drift from contents.
    """
    folder = Path(folder)
    items = _items(prompts)
    names = [it.name for it in items]
    entry = {}
    index_path = folder / PRECOMPUTED_INDEX
    if index_path.is_file():
        try:
            entry = json.loads(index_path.read_text()).get(metric) or {}
        except (OSError, ValueError):
            return None
    if entry:
        spec = get_spec(metric)
        bb_name = _backbone_name(spec, backbone, items)
        if entry.get("key") != matrix_key(metric, items, bb_name, **params):
            return None
    elif not trust_names or params:   # names say nothing about how it was computed (e.g. zs's head)
        return None
    path = folder / entry.get("file", f"{metric}.csv")
    if not path.is_file():
        return None
    try:
        df = read_matrix_csv(path)
    except MetricError:
        return None
    if not (set(df.index) >= set(names) and set(df.columns) >= set(names)):
        return None
    return df.loc[names, names]


def cached_matrix(metric: str, prompts, *, backbone=None, precomputed: Path | str | None = None,
                  trust_names: bool = False, **params) -> pd.DataFrame | None:
    """The matrix if it is already known (a precomputed file whose key matches, or the disk
    cache) -- never computes. For pages that must not start slow work unasked."""
    spec = get_spec(metric)
    if spec.kind == "runs":
        return None
    items = _items(prompts)
    try:
        check_one_group(items)
    except MetricError:
        return None
    if precomputed is not None:
        df = load_precomputed(metric, items, precomputed, backbone=backbone, trust_names=trust_names, **params)
        if df is not None:
            return df
    bb_name = _backbone_name(spec, backbone, items)
    path = _cache_file(metric, matrix_key(metric, items, bb_name, **params))
    return _cached_frame(path, [it.name for it in items])


def compute_matrices(metrics: Iterable[str], prompts, **kwargs) -> dict[str, pd.DataFrame | MetricError]:
    """Several metrics at once; a metric that cannot be computed maps to its MetricError."""
    out: dict[str, Any] = {}
    for m in metrics:
        try:
            out[m] = compute_matrix(m, prompts, **kwargs)
        except MetricError as e:
            out[m] = e
    return out

