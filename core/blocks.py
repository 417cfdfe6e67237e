"""Large matrices shown as blocks: which prompts a block holds, block means, drill-down, overview.

    python -m core matrix --library DIR --metric e_avg --by-task both      (task x task block means)

Up to FULL_DETAIL_MAX prompts a heatmap shows every cell (value, hover, click). Above that a
page shows blocks instead and sends no per-cell text: a block is a task (every prompt of the
task in the chosen folders) or a cluster (the dendrogram cut into at most MAX_BLOCKS
groups, see :func:`cluster_groups`). A block's value is the mean of its finite cells, never
counting a prompt against itself (that self-similarity says nothing about transfer and would
lift the diagonal blocks by 1/size). Clicking a block shows its prompts' own cells
(:func:`drill`), again at most FULL_DETAIL_MAX per axis. The overview of the whole matrix
(:func:`downsample`) pools contiguous cells into at most OVERVIEW_MAX x OVERVIEW_MAX bins.

Matrices: pandas DataFrames, rows = sources, columns = targets (labels = prompt names, or
target tasks for ``measured``). A Groups mapping is ``{block name: [labels in display order]}``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

FULL_DETAIL_MAX = 300   # prompts per axis shown cell by cell (the demo with its transfers: 241)
MAX_BLOCKS = 60         # blocks per axis at most: <= 3,600 clickable block cells
OVERVIEW_MAX = 200      # bins per axis of the downsampled whole-matrix overview
NO_TASK = "(no task)"

VIEWS = {"task": "blocks by task", "cluster": "blocks by cluster"}

Groups = dict[str, list[str]]


def needs_blocks(shape: tuple[int, int]) -> bool:
    """True when a matrix of this shape is too large to send cell by cell."""
    return max(shape) > FULL_DETAIL_MAX


# ---------------------------------------------------------------- partitions
def task_groups(labels: list[str], task_of: dict[str, str | None]) -> Groups:
    """Labels grouped by task, in order of first appearance.

    task_of: prompt name -> task. A label that is not a prompt (a target task of ``measured``)
    is its own group; prompts without a task share the group ``(no task)``.
    """
    out: Groups = {}
    for lab in labels:
        if lab in task_of:
            g = task_of[lab] or NO_TASK
        else:
            g = lab
        out.setdefault(str(g), []).append(lab)
    return out


def task_view_ok(row_groups: Groups, col_groups: Groups) -> bool:
    """Blocks by task make sense with 2..MAX_BLOCKS tasks on each axis (an axis of at most
    MAX_BLOCKS single labels, e.g. measured's target tasks, is fine as it is)."""
    def fine(g: Groups) -> bool:
        return 2 <= len(g) <= MAX_BLOCKS or (len(g) == 1 and len(next(iter(g.values()))) == 1)
    return fine(row_groups) and fine(col_groups)


def cut_size(Z: np.ndarray, *, max_blocks: int = MAX_BLOCKS, max_size: int = FULL_DETAIL_MAX) -> int:
    """How many clusters to cut a linkage Z [n-1, 4] into: the number with the largest gap in
    merge height below it (where the tree separates best), 2..max_blocks; then more clusters
    while the largest one still holds more than max_size leaves and max_blocks allows."""
    from scipy.cluster.hierarchy import fcluster

    n = Z.shape[0] + 1
    hi = min(max_blocks, n)
    if hi < 2:
        return 1
    h = Z[:, 2]
    # k clusters remain after undoing the top k-1 merges: the gap is h[n-k] - h[n-k-1]
    gaps = {k: float(h[n - k] - (h[n - k - 1] if n - k - 1 >= 0 else 0.0)) for k in range(2, hi + 1)}
    k = max(gaps, key=lambda kk: (gaps[kk], -kk))
    while k < hi and np.bincount(fcluster(Z, k, criterion="maxclust")).max() > max_size:
        k += 1
    return k


def cluster_groups(labels: list[str], Z: np.ndarray, leaves: list[int], *, max_blocks: int = MAX_BLOCKS,
                   max_size: int = FULL_DETAIL_MAX) -> Groups:
    """The dendrogram cut (:func:`cut_size`) as blocks named c01, c02, ... in leaf order.

    labels: in the order Z was computed on; leaves: the dendrogram's leaf order (indices).
    Names depend only on the matrix, so a URL naming a block reopens the same block.
    """
    from scipy.cluster.hierarchy import fcluster

    if len(labels) < 2 or Z is None or len(Z) == 0:
        return {"c01": [labels[i] for i in leaves]} if labels else {}
    k = cut_size(Z, max_blocks=max_blocks, max_size=max_size)
    ids = fcluster(Z, k, criterion="maxclust")
    order: dict[int, str] = {}
    out: Groups = {}
    width = max(2, len(str(k)))
    for i in leaves:
        cid = int(ids[i])
        if cid not in order:
            order[cid] = f"c{len(order) + 1:0{width}d}"
        out.setdefault(order[cid], []).append(labels[i])
    return out


def singletons(labels: list[str]) -> Groups:
    return {str(lab): [lab] for lab in labels}


# ---------------------------------------------------------------- values
@dataclass
class BlockMatrix:
    """Block means and cell counts: mean [R, C] (NaN where a block has no finite cell),
    n [R, C] = finite cells averaged (self-pairs excluded), sizes of row/col blocks."""

    mean: pd.DataFrame
    n: pd.DataFrame
    row_sizes: pd.Series
    col_sizes: pd.Series


def _indicator(groups: Groups, index: pd.Index, axis_name: str) -> np.ndarray:
    """One-hot [blocks, labels] of ``index``: each label in at most one block (a label in none is
    simply not averaged, e.g. a target task's non-scratch prompts in metrics.by_task)."""
    pos = index.get_indexer([lab for labs in groups.values() for lab in labs])
    if (pos < 0).any():
        missing = [lab for labs in groups.values() for lab in labs if lab not in index][:3]
        raise ValueError(f"block {axis_name} label(s) not in the matrix: {missing}")
    H = np.zeros((len(groups), len(index)))
    start = 0
    for b, labs in enumerate(groups.values()):
        H[b, pos[start:start + len(labs)]] = 1.0
        start += len(labs)
    return H


def block_means(matrix: pd.DataFrame, row_groups: Groups, col_groups: Groups, *,
                exclude_self: bool = True) -> BlockMatrix:
    """Mean of each block's finite cells (one-hot matrix products: O(blocks x N^2), no Python loop
    over cells). exclude_self: a cell whose row and column are the same label is left out."""
    X = matrix.to_numpy(dtype=float)
    R = _indicator(row_groups, matrix.index, "row")
    C = _indicator(col_groups, matrix.columns, "column")
    if np.isfinite(X).all():  # the usual case: no masked copy, counts = block sizes
        sums = (R @ X) @ C.T
        counts = np.outer(R.sum(axis=1), C.sum(axis=1))
    else:
        ok = np.isfinite(X)
        sums = (R @ np.where(ok, X, 0.0)) @ C.T
        counts = (R @ ok.astype(float)) @ C.T
    if exclude_self:  # take the self-pairs back out (there are at most N of them)
        same = matrix.columns.get_indexer(matrix.index)
        r = np.nonzero(same >= 0)[0]
        c = same[r]
        v = X[r, c]
        # a label in no block (a partition may cover part of an axis) has no self-pair to remove
        fin = np.isfinite(v) & R[:, r].any(axis=0) & C[:, c].any(axis=0)
        rb, cb = R[:, r].argmax(axis=0), C[:, c].argmax(axis=0)
        np.subtract.at(sums, (rb[fin], cb[fin]), v[fin])
        np.subtract.at(counts, (rb[fin], cb[fin]), 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    rn, cn = list(row_groups), list(col_groups)
    return BlockMatrix(mean=pd.DataFrame(mean, index=rn, columns=cn),
                       n=pd.DataFrame(counts.astype(int), index=rn, columns=cn),
                       row_sizes=pd.Series({k: len(v) for k, v in row_groups.items()}),
                       col_sizes=pd.Series({k: len(v) for k, v in col_groups.items()}))


def drill(matrix: pd.DataFrame, row_groups: Groups, col_groups: Groups, row_block: str, col_block: str, *,
          limit: int = FULL_DETAIL_MAX) -> tuple[pd.DataFrame, tuple[int, int]]:
    """The cells of one block (rows of ``row_block`` x columns of ``col_block``, block order).

    Returns (sub-matrix, (rows in the block, columns in the block)). An axis longer than
    ``limit`` keeps its first ``limit`` labels; the caller says so (the full sizes tell it).
    """
    if row_block not in row_groups or col_block not in col_groups:
        raise KeyError(f"no block ({row_block}, {col_block})")
    rows, cols = row_groups[row_block], col_groups[col_block]
    return matrix.loc[rows[:limit], cols[:limit]], (len(rows), len(cols))


def ordered(groups: Groups, names: list[str]) -> Groups:
    """The same blocks in the order ``names`` gives."""
    return {k: groups[k] for k in names}


# ---------------------------------------------------------------- overview
@dataclass
class Overview:
    """A matrix pooled into bins: values [r, c] = mean of each bin's finite cells;
    row_edges [r + 1] / col_edges [c + 1] = the label positions where each bin starts/ends."""

    values: np.ndarray
    row_edges: np.ndarray
    col_edges: np.ndarray


def _pool_axis(n: int, max_bins: int) -> tuple[int, int]:
    step = max(1, math.ceil(n / max_bins))
    return step, math.ceil(n / step)


def downsample(matrix: pd.DataFrame, max_bins: int = OVERVIEW_MAX) -> Overview:
    """Mean-pool contiguous cells (in the matrix's order) into at most max_bins x max_bins bins."""
    X = matrix.to_numpy(dtype=float)
    n_r, n_c = X.shape
    sr, br = _pool_axis(n_r, max_bins)
    sc, bc = _pool_axis(n_c, max_bins)
    re = np.minimum(np.arange(br + 1) * sr, n_r)
    ce = np.minimum(np.arange(bc + 1) * sc, n_c)

    def pool(A):  # sums over each bin: rows, then columns (two passes, no padded copy)
        return np.add.reduceat(np.add.reduceat(A, re[:-1], axis=0), ce[:-1], axis=1)

    if np.isfinite(X).all():
        tot, cnt = pool(X), np.outer(np.diff(re), np.diff(ce)).astype(float)
    else:
        ok = np.isfinite(X)
        tot, cnt = pool(np.where(ok, X, 0.0)), pool(ok.astype(float))
    with np.errstate(invalid="ignore", divide="ignore"):
        vals = np.where(cnt > 0, tot / np.maximum(cnt, 1), np.nan)
    return Overview(vals, re, ce)


def spans(edges: np.ndarray, groups: Groups) -> list[str]:
    """For each bin [edges[i], edges[i+1]) the block(s) it covers, e.g. 'c03' or 'c03–c04'."""
    bounds = np.cumsum([0] + [len(v) for v in groups.values()])
    names = list(groups)
    out = []
    for a, b in zip(edges[:-1], edges[1:]):
        first = int(np.searchsorted(bounds, a, side="right") - 1)
        last = int(np.searchsorted(bounds, b - 1, side="right") - 1)
        out.append(names[first] if first == last else f"{names[first]}–{names[last]}")
    return out


def overview(matrix: pd.DataFrame, row_groups: Groups, col_groups: Groups, max_bins: int = OVERVIEW_MAX, *,
             exclude_self: bool = True) -> Overview:
    """:func:`downsample` of the matrix in block order (rows and columns as the groups list them).

    exclude_self: as in :func:`block_means`, a prompt against itself is left out (its 1.0 would
    brighten every bin on the diagonal and flatten the colour scale of the rest)."""
    rows = [lab for labs in row_groups.values() for lab in labs]
    cols = [lab for labs in col_groups.values() for lab in labs]
    r, c = matrix.index.get_indexer(rows), matrix.columns.get_indexer(cols)
    X = matrix.to_numpy(dtype=float)[np.ix_(r, c)]  # a copy: safe to blank cells in
    if exclude_self:
        same = pd.Index(cols).get_indexer(rows)
        i = np.nonzero(same >= 0)[0]
        X[i, same[i]] = np.nan
    return downsample(pd.DataFrame(X), max_bins)


# ---------------------------------------------------------------- one view of a large matrix
def family_order(labels: list[str], info: dict[str, tuple]) -> list[str]:
    """Labels sorted by (family, task, name); info: label -> (family, task), '~' when unknown."""
    return sorted(labels, key=lambda n: (*info.get(n, ("~", "~")), n))


def views_for(row_task: Groups, col_task: Groups) -> list[str]:
    """The block views a matrix offers, the default first: by task when :func:`task_view_ok`."""
    return [v for v in VIEWS if v != "task" or task_view_ok(row_task, col_task)]


@dataclass
class BlockView:
    """What a page draws for a large matrix: row / column blocks in display order, their means
    [R, C] (same order), the blocks' own clustering (order = cluster) and the overview."""

    rows: Groups
    cols: Groups
    mean: pd.DataFrame
    clustering: object | None
    overview: Overview


def block_view(matrix: pd.DataFrame, view: str, *, order: str, row_task: Groups, col_task: Groups,
               info: dict[str, tuple] | None = None) -> BlockView:
    """Blocks of ``matrix`` for one view (``task`` | ``cluster``) and order (``cluster`` |
    ``family`` | ``fixed``).

    task: the given task groups (family order: by family then task). cluster: the dendrogram of
    the whole matrix (core.metrics.cluster; its linkage is cached on disk) cut by
    :func:`cluster_groups`; a square matrix gets one partition for both axes (the diagonal
    stays the diagonal); columns that are few (<= MAX_BLOCKS, e.g. measured's target tasks)
    are one block each. Order cluster: the block means are clustered in turn (a dendrogram
    over the blocks).
    """
    from core.metrics.clustering import cluster  # torch-free

    if view not in VIEWS:
        raise ValueError(f"unknown block view {view!r}; known: {', '.join(VIEWS)}")
    if view == "task":
        rg, cg = row_task, col_task
        if order == "family":
            rg = ordered(rg, family_order(list(rg), info or {}))
            cg = ordered(cg, family_order(list(cg), info or {}))
    else:
        cl = cluster(matrix)
        rg = cluster_groups(list(matrix.index), cl.row_linkage, cl.row_leaves)
        if list(matrix.index) == list(matrix.columns):
            cg = rg
        elif len(matrix.columns) <= MAX_BLOCKS or cl.col_linkage is None:
            cg = singletons(cl.cols)
        else:
            cg = cluster_groups(list(matrix.columns), cl.col_linkage, cl.col_leaves)
    bm = block_means(matrix, rg, cg)
    block_cl = None
    if order == "cluster" and min(bm.mean.shape) >= 2:
        block_cl = cluster(bm.mean)
        rg, cg = ordered(rg, block_cl.rows), ordered(cg, block_cl.cols)
    return BlockView(rg, cg, bm.mean.loc[list(rg), list(cg)], block_cl, overview(matrix, rg, cg))
