"""Hierarchical clustering of a matrix's rows and columns (scipy), its linkages cached on disk by content.

    python -c "import pandas as pd; from core.metrics.clustering import cluster; print(cluster(pd.DataFrame([[1, 0], [0, 1]])).rows)"

Torch-free (numpy, pandas, scipy): the Transferability page's blocks and heatmaps order by it
without importing torch. core.metrics exports Clustering and cluster (M.cluster).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from core.fsutil import atomic_save_npy, load_cached_npy


@dataclass
class Clustering:
    """Leaf orders and dendrogram line coordinates in cell units (leaf i sits at i).

    row_linkage / col_linkage: scipy linkage matrices [n - 1, 4] over the matrix's rows /
    columns in their original order (what :func:`core.blocks.cluster_groups` cuts);
    row_leaves / col_leaves: the leaf order as indices into that original order.
    """

    rows: list[str]
    cols: list[str]
    row_lines: list[tuple[list[float], list[float]]]   # (positions [4], heights [4]) per link
    col_lines: list[tuple[list[float], list[float]]]
    row_linkage: np.ndarray | None = None
    col_linkage: np.ndarray | None = None
    row_leaves: list[int] = field(default_factory=list)
    col_leaves: list[int] = field(default_factory=list)


def _linkage_cached(X: np.ndarray, method: str) -> np.ndarray:
    """scipy linkage of the rows of X [n, k], computed once per content: the linkage matrix is
    kept beside the metric matrices (cache_dir()/metrics/linkage-<sha256 of X>.npy), so a new
    server or session does not pay it again (5 s at N = 3,000 on 2 cores)."""
    from scipy.cluster.hierarchy import linkage

    h = hashlib.sha256(f"{method}|{X.shape}|{X.dtype}".encode())
    h.update(np.ascontiguousarray(X).tobytes())
    try:
        from core.config import cache_dir
        path = cache_dir() / "metrics" / f"linkage-{h.hexdigest()[:24]}.npy"
    except OSError:
        path = None
    if path is not None and path.is_file():
        Z = load_cached_npy(path, (X.shape[0] - 1, 4))
        if Z is not None:
            return Z
    Z = linkage(X, method=method, metric="euclidean")
    if path is not None:
        try:
            atomic_save_npy(path, Z)
        except OSError:
            pass  # a read-only cache must not break the page
    return Z


def _profile_linkage(values: np.ndarray, method: str):
    """(leaf order, dendrogram lines, linkage matrix or None) of the rows of values [n, k]."""
    from scipy.cluster.hierarchy import dendrogram

    X = np.array(values, dtype=float)
    if X.shape[0] < 2:
        return list(range(X.shape[0])), [], None
    col_mean = np.nanmean(np.where(np.isfinite(X), X, np.nan), axis=0) if X.size else X
    col_mean = np.where(np.isfinite(col_mean), col_mean, 0.0)
    X = np.where(np.isfinite(X), X, col_mean[None, :])
    Z = _linkage_cached(X, method)
    dn = dendrogram(Z, no_plot=True)
    lines = [([(x - 5.0) / 10.0 for x in ic], list(dc)) for ic, dc in zip(dn["icoord"], dn["dcoord"])]
    return list(dn["leaves"]), lines, Z


def cluster(matrix: pd.DataFrame, *, method: str = "average") -> Clustering:
    """Hierarchical clustering of rows and columns (scipy linkage on their value profiles).

    When rows and columns are the same prompts, both get one order (from the
    symmetrised matrix), so the diagonal stays the diagonal. Linkages are cached on disk
    by content (:func:`_linkage_cached`).
    """
    M = matrix.to_numpy(dtype=float)
    square = list(matrix.index) == list(matrix.columns)
    if square:
        S = np.where(np.isfinite(M), M, np.nan)
        if not np.array_equal(S, S.T, equal_nan=True):
            S = np.nanmean(np.stack([S, S.T]), axis=0)
        order, lines, Z = _profile_linkage(S, method)
        labels = list(matrix.index)
        return Clustering([labels[i] for i in order], [labels[i] for i in order], lines, lines, Z, Z, order, order)
    r_order, r_lines, rZ = _profile_linkage(M, method)
    c_order, c_lines, cZ = _profile_linkage(M.T, method)
    return Clustering([matrix.index[i] for i in r_order], [matrix.columns[i] for i in c_order], r_lines, c_lines,
                      rZ, cZ, r_order, c_order)
