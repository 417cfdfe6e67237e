"""Project a group of prompts: computed, or found in a cache or the precomputed files; map quality.

    python -m core project --library DIR --method umap|pca|tsne [--group BACKBONE] [--dims 2|3] --out FILE.csv
"""
from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from core.fsutil import atomic_write_text
from core.projection.cache import (_cache_get, _cache_put, _cache_put_memory, _precomputed_path, load_precomputed,
                                   projection_key)
from core.projection.config import METHODS, Projection, ProjectionConfig, ProjectionError, effective_params
from core.projection.features import _normalise, prompt_features
from core.projection.methods import _run, compute_threads


def project_features(X: np.ndarray, meta: pd.DataFrame, cfg: ProjectionConfig, *,
                     notes: Sequence[str] = (), use_cache: bool = True) -> Projection:
    """Project points X [N, D] (rows described by meta) with cfg. Never raises for small N:
    1-3 points give a PCA/fixed layout and a note saying why."""
    X = np.ascontiguousarray(X, dtype=np.float32)
    if X.ndim != 2 or len(X) == 0:
        raise ProjectionError(f"points must be a non-empty [N, D] array, got shape {X.shape}")
    if not np.isfinite(X).all():
        raise ProjectionError("prompt values contain NaN or inf: cannot project")
    if len(meta) != len(X):
        raise ProjectionError(f"meta has {len(meta)} rows for {len(X)} points")
    n, d = X.shape
    method, params, more = effective_params(cfg, n, d)
    notes = list(notes) + more
    names = meta["name"].astype(str).tolist() if "name" in meta else [str(i) for i in range(n)]
    key = projection_key(X, names, method, params)
    t0 = time.perf_counter()
    Y, source = _cache_get(key) if use_cache else (None, "")
    if Y is None:
        Y = _run(method, X, params)
        source = "computed"
        if use_cache:
            _cache_put(key, Y)
    return Projection(coords=np.asarray(Y, dtype=np.float64), meta=meta.reset_index(drop=True),
                      features=X, config=cfg, method=method, params=params, notes=notes, key=key,
                      seconds=time.perf_counter() - t0, source=source)


def project(prompts: Sequence[Any], cfg: ProjectionConfig | None = None, *, use_cache: bool = True,
            **overrides) -> Projection:
    """Project one backbone group of SoftPrompt-like objects (see prompt_features)."""
    cfg = replace(cfg, **overrides) if cfg is not None else ProjectionConfig(**overrides)
    backbones = {getattr(p, "backbone", None) for p in prompts} - {None, ""}
    if len(backbones) > 1:
        raise ProjectionError(f"one map per backbone group: got prompts of {sorted(backbones)}")
    X, meta, notes = prompt_features(prompts, cfg.point_mode, cfg.reduce)
    return project_features(X, meta, cfg, notes=notes, use_cache=use_cache)


def fallback_config(cfg: ProjectionConfig) -> ProjectionConfig:
    """The instant stand-in while UMAP warms up: PCA with the same points and metric."""
    return replace(cfg, method="pca")


# ---------------------------------------------------------------- neighbours / quality


def nearest_neighbours(X: np.ndarray, i: int, k: int = 5, coords: np.ndarray | None = None
                       ) -> pd.DataFrame:
    """k nearest points to row i by cosine similarity in the ORIGINAL space X [N, D].

    Columns: index, cosine, and (when coords [N, c] are given) map_rank — the neighbour's
    rank by distance from i in the projection (1 = closest), so a large rank shows where
    the map tears a neighbourhood apart."""
    Xn = _normalise(np.asarray(X, dtype=np.float64))
    sims = Xn @ Xn[i]
    sims[i] = -np.inf
    k = max(0, min(k, len(X) - 1))
    order = np.argsort(-sims, kind="stable")[:k]
    out = pd.DataFrame({"index": order, "cosine": sims[order]})
    if coords is not None:
        dist = np.linalg.norm(coords - coords[i], axis=1)
        dist[i] = -np.inf
        ranks = np.empty(len(dist), dtype=int)
        ranks[np.argsort(dist, kind="stable")] = np.arange(len(dist))  # self gets 0
        out["map_rank"] = ranks[order]
    return out


# Below this trustworthiness a map's neighbourhoods are not to be read as the prompts' own: on the demo's
# 15-prompt UMAP (0.72-0.77) the untrained `random` control sat among the sentiment prompts though its
# cosine to everything is ~0.01. 0.80 sits below the demo's full map (241 prompts, k=5: PCA 0.87, UMAP 0.995,
# t-SNE 0.997) and above its 11 sources alone (PCA and UMAP 0.72, t-SNE 0.68): few points, little to trust.
TRUST_MIN = 0.80


def trust_caution(trust: float | None, method: str) -> str | None:
    """One plain sentence when a map's trustworthiness is below TRUST_MIN, else None."""
    if trust is None or trust >= TRUST_MIN:
        return None
    what = "Even this linear map" if method == "pca" else "This map"
    return (f"{what} keeps neighbourhoods poorly (trustworthiness {trust:.2f}, below {TRUST_MIN:.2f}): two points "
            "side by side here may not be similar prompts — check the cosines in the neighbour table below"
            + ("." if method == "pca" else ", or look at PCA, a linear map whose distances do not depend on a fit."))


def trustworthiness(X: np.ndarray, coords: np.ndarray, k: int = 5, metric: str = "cosine",
                    max_points: int = 3000, seed: int = 0) -> float | None:
    """scikit-learn trustworthiness in [0, 1] (1 = every map neighbour is a true neighbour).

    None when there are too few points (it needs k < N/2). Above max_points a seeded subset
    is scored (the measure is O(N^2) in memory)."""
    from sklearn.manifold import trustworthiness as _tw

    n = len(X)
    if n > max_points:
        sel = np.sort(np.random.default_rng(seed).choice(n, max_points, replace=False))
        X, coords, n = X[sel], coords[sel], max_points
    k = min(k, (n - 1) // 2)
    if k < 1:
        return None
    if np.ptp(coords, axis=0).max() == 0:  # every point on one spot: nothing to trust
        return None
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=compute_threads()):  # see compute_threads: BLAS spinning
        return float(_tw(np.asarray(X, dtype=np.float64), coords, n_neighbors=k, metric=metric))


def precompute_projections(prompts_by_group: dict[str, Sequence[Any]], out_dir: Path | str, *,
                           methods: Sequence[str] = METHODS, dims: Sequence[int] = (2, 3),
                           cfg: ProjectionConfig | None = None, overwrite: bool = False,
                           append: bool = False, verbose: bool = False) -> list[Path]:
    """Write out_dir/<method>.csv (2-D) and <method>_3d.csv (3-D): one row per prompt of every
    group with columns group, name, task, backbone, x, y[, z], key. `key` is the projection
    cache key (content + effective parameters), so a reader can tell a stale file from a
    current one (see load_precomputed). Default cfg = the page's defaults, prompt mode.

    append=True keeps the rows already in the files (except maps with the same group and key),
    so several prompt sets of one group can be stored — e.g. the demo's prompts alone and the
    demo's prompts + its transferred prompts (both views the page offers)."""
    out_dir = Path(out_dir)
    base = cfg or ProjectionConfig()
    written = []
    for method in methods:
        for k in dims:
            path = _precomputed_path(out_dir, method, k)
            if path.exists() and not (overwrite or append):
                raise FileExistsError(f"{path}: exists (pass overwrite=True to rebuild it, append=True to add)")
            frames = []
            for group, prompts in prompts_by_group.items():
                if not prompts:
                    continue
                proj = project(prompts, replace(base, method=method, n_components=k, point_mode="prompt"))
                t = proj.table()[["name", "task", "backbone"] + list("xyz"[:k])]
                t.insert(0, "group", group)
                t["key"] = proj.key
                frames.append(t)
                if verbose:
                    print(f"  {method} {k}-D {group}: {len(t)} points ({proj.method}, {proj.seconds:.1f} s)")
            table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
                columns=["group", "name", "task", "backbone", *"xyz"[:k], "key"])
            if append and path.is_file():
                try:
                    old = pd.read_csv(path, dtype={"group": str, "key": str})
                except (OSError, ValueError, pd.errors.ParserError) as exc:
                    raise ProjectionError(f"{path}: cannot append to it ({exc})") from exc
                if list(old.columns) != list(table.columns):
                    raise ProjectionError(f"{path}: columns {list(old.columns)} differ from "
                                          f"{list(table.columns)}; rebuild it with overwrite=True")
                new_maps = set(zip(table["group"], table["key"]))
                keep = [(g, key) not in new_maps for g, key in zip(old["group"], old["key"])]
                table = pd.concat([old[keep], table], ignore_index=True)
            atomic_write_text(path, table.to_csv(index=False))
            written.append(path)
    return written


def lookup(prompts: Sequence[Any], cfg: ProjectionConfig, *, group: str | None = None,
           precomputed_dir: Path | str | None = None) -> Projection | None:
    """The map for exactly these prompts and cfg if it is already known — in the memory or
    disk cache, or in precomputed_dir's file for `group` — else None. Never computes: this
    is the instant path for a page's first paint."""
    t0 = time.perf_counter()
    X, meta, notes = prompt_features(prompts, cfg.point_mode, cfg.reduce)
    method, params, more = effective_params(cfg, *X.shape)
    key = projection_key(X, meta["name"].astype(str).tolist(), method, params)
    Y, source = _cache_get(key)
    if Y is None and precomputed_dir is not None and group is not None and cfg.point_mode == "prompt":
        Y = load_precomputed(precomputed_dir, key, cfg.n_components, method, group)
        if Y is not None and len(Y) == len(X):
            _cache_put_memory(key, Y)
            source = "precomputed"
        else:
            Y = None
    if Y is None:
        return None
    return Projection(coords=Y, meta=meta, features=X, config=cfg, method=method, params=params,
                      notes=notes + more, key=key, seconds=time.perf_counter() - t0, source=source)
