"""The projection methods: UMAP (with its numba warm-up), PCA in plain numpy, t-SNE.

    python -c "from core import projection as p; print(p.warm_umap(), 's to warm UMAP')"

`import umap` plus the first fit pays a numba compile of 5-25 s once per process, so UMAP is
imported lazily and :func:`warm_umap` compiles it on a tiny fit (the page runs it in a thread);
the k-nearest-neighbour graph comes from scikit-learn (brute force: no pynndescent compile).
BLAS threads are limited (compute_threads: spin-waiting on a busy 2-core box).
"""
from __future__ import annotations

import os
import threading
import time
import warnings

import numpy as np

from core.projection.features import _normalise

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
