"""2-D / 3-D maps of soft prompts: UMAP, PCA, t-SNE, one backbone group at a time.

    python -m core project --library DIR --method umap|pca|tsne [--group BACKBONE] [--dims 2|3] --out FILE.csv

Points are either one per prompt (`reduce="mean"`: the mean of its L tokens, [d];
`reduce="flat"`: the flattened prompt, [L*d], only when every L matches) or one per
prompt token (`point_mode="token"`, [d] each). Prompts of different backbones live in
different embedding spaces, so a map never mixes groups: callers pass one group.

Cost (measured on the 2-core dev box): `import umap` plus the first fit pays a numba
compile of 5-25 s once per process; after that UMAP on 5,000 x 384 points takes ~2 s.
So UMAP is imported lazily, `warm_umap()` compiles it on a tiny fit (the page runs it
in a background thread), the k-nearest-neighbour graph is computed with scikit-learn
(brute force: no pynndescent compile even above 4,096 points) and results are cached
in memory and on disk (cache_dir()/projections) by content hash + parameters.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
import threading
import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from importlib import metadata as _metadata
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from core.fsutil import atomic_save_npy, atomic_write_text, json_hash

METHODS = ("umap", "pca", "tsne")
POINT_MODES = ("prompt", "token")
REDUCES = ("mean", "flat")
METRICS = ("cosine", "euclidean")
MIN_POINTS = 4  # UMAP / t-SNE need a neighbourhood; below this we fall back to PCA
META_COLUMNS = ("name", "task", "family", "backbone", "method", "source", "score", "L")
_CACHE_VERSION = 1


class ProjectionError(ValueError):
    """Bad input for a projection (message says what and why)."""


@dataclass
class ProjectionConfig:
    """What to project and how. Values outside what n points allow are clamped later
    (see `effective_params`), not here: the same config works for any library size."""

    method: str = "umap"
    n_components: int = 2
    point_mode: str = "prompt"  # prompt | token
    reduce: str = "mean"  # mean | flat (prompt mode only)
    metric: str = "cosine"  # cosine | euclidean (PCA: cosine = rows L2-normalised first)
    n_neighbors: int = 15  # UMAP
    min_dist: float = 0.1  # UMAP
    perplexity: float = 30.0  # t-SNE
    seed: int = 0

    def __post_init__(self):
        self.method = str(self.method).lower()
        if self.method not in METHODS:
            raise ProjectionError(f"method must be one of {METHODS}, got {self.method!r}")
        if int(self.n_components) not in (2, 3):
            raise ProjectionError(f"n_components must be 2 or 3, got {self.n_components!r}")
        self.n_components = int(self.n_components)
        if self.point_mode not in POINT_MODES:
            raise ProjectionError(f"point_mode must be one of {POINT_MODES}, got {self.point_mode!r}")
        if self.reduce not in REDUCES:
            raise ProjectionError(f"reduce must be one of {REDUCES}, got {self.reduce!r}")
        if self.metric not in METRICS:
            raise ProjectionError(f"metric must be one of {METRICS}, got {self.metric!r}")
        if int(self.n_neighbors) < 2:
            raise ProjectionError(f"n_neighbors must be >= 2, got {self.n_neighbors!r}")
        if not 0.0 <= float(self.min_dist) <= 1.0:
            raise ProjectionError(f"min_dist must be in [0, 1], got {self.min_dist!r}")
        if float(self.perplexity) <= 0:
            raise ProjectionError(f"perplexity must be > 0, got {self.perplexity!r}")
        self.n_neighbors, self.min_dist = int(self.n_neighbors), float(self.min_dist)
        self.perplexity, self.seed = float(self.perplexity), int(self.seed)


@dataclass
class Projection:
    """coords [N, n_components] float64, row i = meta row i = features row i.

    method is what actually ran (may differ from config.method after a fallback);
    params are the effective (clamped) parameters; notes say what was changed and why."""

    coords: np.ndarray
    meta: pd.DataFrame
    features: np.ndarray  # [N, D] float32, the original space (neighbours, trustworthiness)
    config: ProjectionConfig
    method: str
    params: dict
    notes: list[str] = field(default_factory=list)
    key: str = ""
    seconds: float = 0.0
    source: str = "computed"  # computed | memory | disk | precomputed

    def table(self) -> pd.DataFrame:
        """meta columns + x, y[, z]."""
        out = self.meta.copy()
        for j, axis in enumerate("xyz"[: self.coords.shape[1]]):
            out[axis] = self.coords[:, j]
        return out


# ---------------------------------------------------------------- features


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


# ---------------------------------------------------------------- parameters


def effective_params(cfg: ProjectionConfig, n: int, d: int) -> tuple[str, dict, list[str]]:
    """(method that will run, its parameters clamped to n points of width d, notes)."""
    notes: list[str] = []
    method = cfg.method
    if method in ("umap", "tsne") and n < MIN_POINTS:
        label = "UMAP" if method == "umap" else "t-SNE"
        notes.append(f"{label} needs at least {MIN_POINTS} points to build neighbourhoods; "
                     f"this group has {n}: showing PCA instead")
        method = "pca"
    params: dict = {"n_components": cfg.n_components, "metric": cfg.metric, "seed": cfg.seed}
    if method == "pca":
        informative = max(0, min(cfg.n_components, n - 1, d))
        if informative < cfg.n_components:
            notes.append(f"{n} point(s) span at most {informative} axis/axes: "
                         "the remaining coordinates are 0")
        params["informative"] = informative
    elif method == "umap":
        k = min(cfg.n_neighbors, n - 1)
        if k != cfg.n_neighbors:
            notes.append(f"n_neighbors {cfg.n_neighbors} -> {k} (only {n} points)")
        params.update(n_neighbors=k, min_dist=cfg.min_dist,
                      # UMAP's own default is 500 epochs up to 10k points; 200 gives the same
                      # picture above ~2k points at 1/3 of the cost (5k points: 6.1 s -> 1.6 s)
                      n_epochs=500 if n <= 2000 else 200,
                      # spectral init needs n > n_components + 1 and is unstable on tiny
                      # graphs (scipy eigsh: "k >= N"); PCA init is fine there
                      init="spectral" if n >= 16 else "pca")
    else:  # tsne
        # scikit-learn requires perplexity < n; ~n/3 keeps the neighbourhood meaningful
        cap = max(1.0, (n - 1) / 3.0)
        perp = min(cfg.perplexity, cap)
        if perp != cfg.perplexity:
            notes.append(f"perplexity {cfg.perplexity:g} -> {perp:g} (only {n} points)")
        # scikit-learn's "auto" rate has a floor of 50, which blows small 3-D maps apart
        # (measured: 24 points in two tight clusters, silhouette 0.02 at 50, 0.86 at 2);
        # below the floor its own rule N / (early_exaggeration * 4) is kept
        params.update(perplexity=perp,
                      learning_rate="auto" if cfg.n_components == 2 else max(n / 48.0, 2.0))
    return method, params, notes


def _versions() -> str:
    out = []
    for dist in ("scikit-learn", "umap-learn"):
        try:
            out.append(f"{dist}={_metadata.version(dist)}")
        except _metadata.PackageNotFoundError:
            out.append(f"{dist}=none")
    return ",".join(out)


def features_hash(X: np.ndarray, names: Iterable[str]) -> str:
    """sha256 (first 16 hex) of the point names, shape and float32 bytes."""
    h = hashlib.sha256()
    h.update("\x1f".join(map(str, names)).encode())
    X = np.ascontiguousarray(X, dtype=np.float32)
    h.update(str(X.shape).encode())
    h.update(X.tobytes())
    return h.hexdigest()[:16]


def projection_key(X: np.ndarray, names: Iterable[str], method: str, params: dict) -> str:
    """Cache key: content of the points + the method + its effective parameters + versions."""
    return json_hash({"v": _CACHE_VERSION, "x": features_hash(X, names), "method": method,
                      "params": params, "lib": _versions()}, 20)


# ---------------------------------------------------------------- UMAP warm-up

_warm_lock = threading.Lock()
_warm_state = {"done": False, "seconds": None, "error": None}


def umap_is_warm() -> bool:
    return bool(_warm_state["done"]) and _warm_state["error"] is None


def umap_status() -> dict:
    """{"done": bool, "seconds": float | None, "error": str | None} of warm_umap in this process."""
    return dict(_warm_state)


def warm_umap() -> float:
    """Import umap and run a tiny fit so numba compiles every function our UMAP path uses.

    Returns the seconds it took (0 if already warm). Thread-safe; a second caller waits for
    the first. Raises what umap raises (e.g. ImportError) — callers show it and use PCA.
    """
    with _warm_lock:
        if _warm_state["done"]:
            if _warm_state["error"]:
                raise RuntimeError(_warm_state["error"])
            return 0.0
        t0 = time.perf_counter()
        try:
            # 8 far-apart clusters of 5: the k-NN graph (k=5, self included) has 8 components,
            # more than 2 x dims, so UMAP's multi-component layout compiles its centroid
            # metric now (1.5-2.5 s of numba on the first clustered library otherwise)
            rng = np.random.default_rng(0)
            X = rng.normal(size=(40, 8)).astype(np.float32)
            X[np.arange(40), np.arange(40) // 5] += 50.0  # apart by cosine and by distance
            for k, metric in ((2, "cosine"), (3, "cosine"), (2, "euclidean")):  # as project() runs it
                _run("umap", X, {"n_components": k, "metric": metric, "seed": 0, "n_neighbors": 5,
                                 "min_dist": 0.1, "n_epochs": 20, "init": "spectral"})
        except Exception as exc:  # noqa: BLE001 — recorded for the page, then re-raised
            _warm_state.update(done=True, error=f"{type(exc).__name__}: {exc}")
            raise
        _warm_state.update(done=True, seconds=time.perf_counter() - t0)
        return _warm_state["seconds"]


# ---------------------------------------------------------------- methods


def _knn(X: np.ndarray, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Exact k-NN graph (self included, as UMAP expects): indices, distances [N, k]."""
    from sklearn.neighbors import NearestNeighbors

    nn = NearestNeighbors(n_neighbors=k, metric=metric, algorithm="brute").fit(X)
    dist, idx = nn.kneighbors(X)
    # put each point first in its own row even with duplicates (UMAP assumes self at 0)
    for i in np.nonzero(idx[:, 0] != np.arange(len(X)))[0]:
        keep = [c for c in range(k) if idx[i, c] != i][: k - 1]
        idx[i] = np.r_[i, idx[i, keep]]
        dist[i] = np.r_[0.0, dist[i, keep]]
    return idx.astype(np.int32), np.maximum(dist, 0).astype(np.float32)


# Expected with our settings (seeded = single-threaded; our own k-NN graph, no transform()).
# Targeted filters, not catch_warnings: that is not thread-safe and the warm-up runs in a thread.
_UMAP_EXPECTED_WARNINGS = (r"n_jobs value .* overridden", r"precomputed_knn\[2\] \(knn_search_index\)",
                           r"n_neighbors is larger than the dataset size",
                           r"Graph is not fully connected")  # separate clusters: laid out per component


def _run_umap(X: np.ndarray, params: dict) -> np.ndarray:
    for message in _UMAP_EXPECTED_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=UserWarning)
    import umap  # lazy: importing it costs seconds

    k = params["n_neighbors"]
    idx, dist = _knn(X, k, params["metric"])
    reducer = umap.UMAP(n_neighbors=k, min_dist=params["min_dist"],
                        n_components=params["n_components"], metric=params["metric"],
                        n_epochs=params["n_epochs"], init=params.get("init", "spectral"),
                        random_state=params["seed"],
                        precomputed_knn=(idx, dist, None), low_memory=True, verbose=False)
    return np.asarray(reducer.fit_transform(X), dtype=np.float64)


def pca_scores(X: np.ndarray, k: int) -> np.ndarray:
    """First k principal-component scores of X [N, D] -> [N, k] (float64).

    The same numbers as sklearn PCA(svd_solver="full").fit_transform (centred SVD, signs by
    sklearn's svd_flip rule: the largest |loading| of each component is positive; the
    tests check the match). Plain numpy because importing sklearn.decomposition costs
    1.4-4 s, and PCA is what the page shows on its first paint while UMAP warms up."""
    Xc = np.asarray(X, dtype=np.float64)
    Xc = Xc - Xc.mean(axis=0)
    U, S, Vt = np.linalg.svd(Xc, full_matrices=False)
    U, S, Vt = U[:, :k], S[:k], Vt[:k]
    signs = np.sign(Vt[np.arange(len(Vt)), np.argmax(np.abs(Vt), axis=1)])
    signs[signs == 0] = 1.0
    return U * (S * signs)


def _run_pca(X: np.ndarray, params: dict) -> np.ndarray:
    n = len(X)
    Y = np.zeros((n, params["n_components"]), dtype=np.float64)
    k = params["informative"]
    if k == 0:
        return Y
    Xp = _normalise(X) if params["metric"] == "cosine" else X
    Y[:, :k] = pca_scores(Xp, k)
    return Y


def _run_tsne(X: np.ndarray, params: dict) -> np.ndarray:
    from sklearn.manifold import TSNE

    tsne = TSNE(n_components=params["n_components"], perplexity=params["perplexity"],
                metric=params["metric"], init="pca", learning_rate=params.get("learning_rate", "auto"),
                random_state=params["seed"])
    return np.asarray(tsne.fit_transform(X), dtype=np.float64)


_RUNNERS = {"umap": _run_umap, "pca": _run_pca, "tsne": _run_tsne}


def compute_threads() -> int:
    """BLAS/OpenMP threads for one projection: env ATLAS_PROJECTION_THREADS, default 1.

    Why 1: on the shared 2-core box, multi-threaded OpenBLAS spin-waits when the cores are
    busy — measured under load 10: PCA of 200 x 384 points 4.2 s with default threads vs
    0.015 s with one; 2,000 points 4.7 s vs 0.22 s. One thread loses at most ~2x when idle."""
    try:
        return max(1, int(os.environ.get("ATLAS_PROJECTION_THREADS", "1")))
    except ValueError:
        return 1


def _run(method: str, X: np.ndarray, params: dict) -> np.ndarray:
    from threadpoolctl import threadpool_limits  # a scikit-learn dependency

    # threadpoolctl only limits the BLAS / OpenMP libraries already loaded, and scipy's
    # OpenBLAS and sklearn's OpenMP load lazily: import them first (measured: t-SNE of 200
    # points in a fresh process took 35 s with them loaded inside the limit, 1 s outside)
    if method == "tsne":
        import sklearn.manifold  # noqa: F401
    elif method == "umap":
        import sklearn.neighbors  # noqa: F401
        import umap  # noqa: F401
    with threadpool_limits(limits=compute_threads()):
        return _RUNNERS[method](X, params)


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
        atomic_save_npy(_disk_dir() / f"{key}.npy", Y)
    except OSError:
        pass


def clear_memory_cache() -> None:
    _MEMORY.clear()


# ---------------------------------------------------------------- main entry


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


# ---------------------------------------------------------------- precomputed maps


def _precomputed_path(out_dir: Path, method: str, dims: int) -> Path:
    return Path(out_dir) / (f"{method}.csv" if dims == 2 else f"{method}_{dims}d.csv")


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


# ---------------------------------------------------------------- CLI


def _pick_groups(index: Any, group: str | None) -> dict[str, list]:
    groups = index.groups()
    if group is None:
        return {g: index.group_prompts(g) for g in groups}
    if group in groups:
        return {group: index.group_prompts(group)}
    # a backbone name matches its group key (key = backbone or backbone:d)
    hits = [g for g in groups if g.split(":")[0] == group or g.rsplit(":", 1)[0] == group]
    if not hits:
        raise ProjectionError(f"no group {group!r}; groups: {', '.join(sorted(groups)) or '(none)'}")
    return {g: index.group_prompts(g) for g in hits}


def cli(command: str, argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog=f"python -m core {command}",
                                 description="Project a prompt library to 2-D/3-D, one map per backbone group.")
    ap.add_argument("--library", required=True, action="append",
                    help="folder of prompts (repeatable)")
    ap.add_argument("--method", choices=METHODS, default="umap")
    ap.add_argument("--group", help="backbone group (default: every group, each its own map)")
    ap.add_argument("--dims", type=int, choices=(2, 3), default=2)
    ap.add_argument("--points", choices=POINT_MODES, default="prompt", help="one point per prompt or per token")
    ap.add_argument("--reduce", choices=REDUCES, default="mean", help="prompt mode: mean of tokens or flattened")
    ap.add_argument("--metric", choices=METRICS, default="cosine")
    ap.add_argument("--n-neighbors", type=int, default=15)
    ap.add_argument("--min-dist", type=float, default=0.1)
    ap.add_argument("--perplexity", type=float, default=30.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True, help="CSV to write (name, task, backbone, group, x, y[, z])")
    ap.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    args = ap.parse_args(argv)

    out = Path(args.out)
    if out.exists() and not args.overwrite:
        print(f"error: {out}: exists (pass --overwrite to replace it)", file=sys.stderr)
        return 2
    try:
        cfg = ProjectionConfig(method=args.method, n_components=args.dims, point_mode=args.points,
                               reduce=args.reduce, metric=args.metric, n_neighbors=args.n_neighbors,
                               min_dist=args.min_dist, perplexity=args.perplexity, seed=args.seed)
        from core.library import index_library

        libs = [Path(p) for p in args.library]
        for p in libs:
            if not p.exists():
                raise ProjectionError(f"{p}: no such folder")
        index = index_library(libs if len(libs) > 1 else libs[0])
        for problem in getattr(index, "problems", []):
            print(f"warning: skipped {problem}", file=sys.stderr)
        groups = _pick_groups(index, args.group)
        if not groups:
            raise ProjectionError(f"no readable prompts under {', '.join(map(str, libs))}")
        frames = []
        for g, prompts in groups.items():
            proj = project(prompts, cfg)
            for note in proj.notes:
                print(f"note [{g}]: {note}", file=sys.stderr)
            t = proj.table()
            cols = ["name", "task", "backbone"] + (["prompt", "token"] if args.points == "token" else [])
            t = t[cols + list("xyz"[: args.dims])]
            t.insert(3, "group", g)
            frames.append(t)
            print(f"{g}: {len(t)} points, {proj.method} ({proj.source}, {proj.seconds:.1f} s)", file=sys.stderr)
        table = pd.concat(frames, ignore_index=True)
        atomic_write_text(out, table.to_csv(index=False))
    except (ProjectionError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out} ({len(table)} rows)")
    return 0
