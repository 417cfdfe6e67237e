"""core.blocks (block means, cluster cut, drill-down, overview) and the by-task / pair / linkage
helpers of core.metrics that the Transferability page uses above 300 prompts."""
from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from core import blocks as B
from core import metrics as M
from core.config import REPO_ROOT


def sp(name, tensor, task=None, method=None, backbone="bb-a"):
    return SimpleNamespace(name=name, tensor=tensor, backbone=backbone, task=task, method=method, family=None)


def clustered_prompts(n_clusters: int, per: int, d: int = 16, L: int = 3, seed: int = 0, spread: float = 0.05):
    g = torch.Generator().manual_seed(seed)
    out = []
    for c in range(n_clusters):
        centre = torch.randn(d, generator=g)
        for i in range(per):
            out.append(sp(f"k{c:02d}_{i:02d}", centre + spread * torch.randn(L, d, generator=g), task=f"task{c:02d}"))
    return out


# ---- block means -----------------------------------------------------------------------------------
def loop_block_mean(mat: pd.DataFrame, rows: list[str], cols: list[str]) -> float:
    vals = [mat.at[r, c] for r in rows for c in cols if r != c and np.isfinite(mat.at[r, c])]
    return float(np.mean(vals)) if vals else float("nan")


def test_block_means_equal_a_plain_loop_and_skip_self_pairs():
    rng = np.random.default_rng(0)
    names = [f"p{i}" for i in range(9)]
    X = rng.normal(size=(9, 9))
    X[2, 5] = np.nan                      # a missing cell is left out, not counted as 0
    np.fill_diagonal(X, 1.0)
    mat = pd.DataFrame(X, index=names, columns=names)
    groups = {"a": ["p0", "p3", "p1"], "b": ["p2", "p8"], "c": ["p4", "p5", "p6", "p7"]}
    bm = B.block_means(mat, groups, groups)
    assert list(bm.mean.index) == ["a", "b", "c"] and list(bm.mean.columns) == ["a", "b", "c"]
    for r, rl in groups.items():
        for c, cl in groups.items():
            assert bm.mean.at[r, c] == pytest.approx(loop_block_mean(mat, rl, cl)), (r, c)
    assert bm.n.at["a", "a"] == 3 * 3 - 3 and bm.n.at["b", "c"] == 2 * 4 - 1   # self-pairs and the NaN out
    assert bm.row_sizes.to_dict() == {"a": 3, "b": 2, "c": 4}
    # by hand, one block: rows p2,p8 x cols p4..p7 without the NaN at (p2, p5)
    hand = np.mean([X[2, 4], X[2, 6], X[2, 7], X[8, 4], X[8, 5], X[8, 6], X[8, 7]])
    assert bm.mean.at["b", "c"] == pytest.approx(hand)
    # a one-prompt block against itself has nothing but its self-pair: NaN, not 1.0
    single = B.block_means(mat, {"x": ["p0"], "y": names[1:]}, {"x": ["p0"], "y": names[1:]})
    assert np.isnan(single.mean.at["x", "x"]) and single.n.at["x", "x"] == 0
    # every cell finite (the fast path: counts from block sizes, self-pairs taken back out)
    X[2, 5] = 0.25
    full = pd.DataFrame(X, index=names, columns=names)
    fast = B.block_means(full, groups, groups)
    for r, rl in groups.items():
        for c, cl in groups.items():
            assert fast.mean.at[r, c] == pytest.approx(loop_block_mean(full, rl, cl)), (r, c)
    assert fast.n.at["b", "c"] == 2 * 4 and fast.n.at["c", "c"] == 4 * 4 - 4
    with pytest.raises(ValueError, match="not in the matrix"):
        B.block_means(mat, {"a": ["nope"]}, groups)


def test_block_means_of_a_sources_by_tasks_matrix_keep_every_cell():
    """measured: rows = prompts, columns = task names; no label is on both axes."""
    mat = pd.DataFrame([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], index=["a", "b", "c"], columns=["t1", "t2"])
    bm = B.block_means(mat, {"x": ["a", "b"], "y": ["c"]}, B.singletons(["t1", "t2"]))
    assert bm.mean.to_numpy().tolist() == [[2.0, 3.0], [5.0, 6.0]]


# ---- by task, rows and columns -----------------------------------------------------------------------
def test_by_task_rows_and_columns():
    prompts = [sp("A", torch.randn(2, 4), task="ta", method="scratch"), sp("A2", torch.randn(2, 4), task="ta",
               method="pot"), sp("B", torch.randn(2, 4), task="tb"), sp("C", torch.randn(2, 4), task="tb")]
    names = ["A", "A2", "B", "C"]
    mat = pd.DataFrame(np.arange(16.0).reshape(4, 4), index=names, columns=names)
    cols_only = M.by_task(mat, prompts)
    assert cols_only.shape == (4, 2)       # unchanged: rows stay prompts
    both = M.by_task(mat, prompts, rows=True)
    assert list(both.index) == ["ta", "tb"] and list(both.columns) == ["ta", "tb"]
    assert both.index.name == "source" and both.columns.name == "target"
    # target task ta = its scratch prompt A only; source task ta = A and A2 (all methods); no self-pairs
    assert both.at["ta", "ta"] == pytest.approx(mat.at["A2", "A"])              # (A, A) is a self-pair
    assert both.at["tb", "ta"] == pytest.approx(np.mean([mat.at["B", "A"], mat.at["C", "A"]]))
    assert both.at["ta", "tb"] == pytest.approx(np.mean([mat.at[r, c] for r in ("A", "A2") for c in ("B", "C")]))
    assert both.at["tb", "tb"] == pytest.approx(np.mean([mat.at["B", "C"], mat.at["C", "B"]]))


def test_cli_by_task_both(tmp_path):
    from core.prompts import SoftPrompt, write_prompt

    g = torch.Generator().manual_seed(1)
    for task in ("ta", "tb"):
        for i in range(2):
            write_prompt(SoftPrompt(tensor=torch.randn(3, 384, generator=g), name=f"{task}{i}", task=task,
                                    backbone="sentence-transformers/all-MiniLM-L6-v2"), tmp_path / "lib" / f"{task}{i}")
    env = {"ATLAS_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "PATH": "/usr/bin:/bin"}
    base = [sys.executable, "-m", "core", "matrix", "--library", str(tmp_path / "lib"), "--metric", "e_avg"]
    r = subprocess.run(base + ["--by-task", "both"], capture_output=True, text=True, cwd=REPO_ROOT, env=env,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    got = pd.read_csv(pd.io.common.StringIO(r.stdout), index_col=0)
    assert list(got.index) == ["ta", "tb"] and list(got.columns) == ["ta", "tb"]
    r2 = subprocess.run(base + ["--by-task"], capture_output=True, text=True, cwd=REPO_ROOT, env=env, timeout=120)
    assert r2.returncode == 0, r2.stderr
    cols = pd.read_csv(pd.io.common.StringIO(r2.stdout), index_col=0)
    assert cols.shape == (4, 2)
    full = pd.read_csv(pd.io.common.StringIO(subprocess.run(base, capture_output=True, text=True, cwd=REPO_ROOT,
                                                             env=env, timeout=120).stdout), index_col=0)
    assert got.at["ta", "tb"] == pytest.approx(full.loc[["ta0", "ta1"], ["tb0", "tb1"]].to_numpy().mean(), abs=1e-5)
    assert got.at["ta", "ta"] == pytest.approx(full.at["ta0", "ta1"], abs=1e-5)   # no self-pairs


# ---- cluster cut ------------------------------------------------------------------------------------
def test_cluster_cut_finds_the_clusters_and_names_them_in_leaf_order(tmp_path, monkeypatch):
    monkeypatch.setenv("ATLAS_CACHE", str(tmp_path))
    prompts = clustered_prompts(7, 5)
    mat = M.compute_matrix("e_avg", prompts, cache=False)
    cl = M.cluster(mat)
    groups = B.cluster_groups(list(mat.index), cl.row_linkage, cl.row_leaves)
    assert len(groups) == 7 and list(groups) == [f"c{i:02d}" for i in range(1, 8)]
    assert sorted(len(v) for v in groups.values()) == [5] * 7
    assert all(len({n[:3] for n in v}) == 1 for v in groups.values())          # each block = one true cluster
    assert [n for v in groups.values() for n in v] == cl.rows                    # blocks follow the leaf order


def test_cluster_cut_at_most_60_blocks_and_splits_blocks_over_300():
    rng = np.random.default_rng(0)
    from scipy.cluster.hierarchy import dendrogram, linkage

    X = rng.normal(size=(400, 5))                      # no structure: the gap rule alone could pick anything
    Z = linkage(X, "average")
    leaves = dendrogram(Z, no_plot=True)["leaves"]
    g = B.cluster_groups([f"p{i}" for i in range(400)], Z, leaves)
    assert 2 <= len(g) <= B.MAX_BLOCKS
    assert sum(len(v) for v in g.values()) == 400
    # two far-apart clusters of 350 and 50: the best gap says 2, but 350 > 300 forces a finer cut
    X = np.vstack([rng.normal(0, 1, (350, 3)), rng.normal(100, 1, (50, 3))])
    Z = linkage(X, "average")
    g = B.cluster_groups([f"p{i}" for i in range(400)], Z, dendrogram(Z, no_plot=True)["leaves"])
    assert max(len(v) for v in g.values()) <= B.FULL_DETAIL_MAX and len(g) <= B.MAX_BLOCKS
    # 100 well-separated clusters (the natural cut is 100): never more than 60 blocks
    centres = rng.normal(0, 100, (100, 40))
    X = np.vstack([c + rng.normal(0, 0.1, (3, 40)) for c in centres])
    Z = linkage(X, "average")
    g = B.cluster_groups([f"p{i}" for i in range(300)], Z, dendrogram(Z, no_plot=True)["leaves"])
    assert 2 <= len(g) <= B.MAX_BLOCKS and sum(len(v) for v in g.values()) == 300


def test_linkage_is_computed_once_and_kept_on_disk(tmp_path, monkeypatch):
    monkeypatch.setenv("ATLAS_CACHE", str(tmp_path))
    mat = M.compute_matrix("e_avg", clustered_prompts(3, 4), cache=False)
    first = M.cluster(mat)
    files = list((tmp_path / "metrics").glob("linkage-*.npy"))
    assert len(files) == 1                                # square: one linkage for rows and columns
    Z = np.load(files[0])
    np.testing.assert_allclose(Z, first.row_linkage)
    poisoned = Z.copy()
    poisoned[:, 2] = np.arange(len(Z)) + 1.0              # a different (still valid) tree: proves it is read
    np.save(files[0], poisoned)
    np.testing.assert_allclose(M.cluster(mat).row_linkage, poisoned)
    np.save(files[0], np.zeros((2, 2)))                   # wrong shape: recomputed, not used
    np.testing.assert_allclose(M.cluster(mat).row_linkage, Z)


# ---- drill-down, overview, pairs ---------------------------------------------------------------------
def test_drill_and_limit():
    names = [f"p{i}" for i in range(6)]
    mat = pd.DataFrame(np.arange(36.0).reshape(6, 6), index=names, columns=names)
    groups = {"a": ["p4", "p1"], "b": ["p0", "p2", "p3", "p5"]}
    sub, sizes = B.drill(mat, groups, groups, "a", "b")
    assert list(sub.index) == ["p4", "p1"] and list(sub.columns) == ["p0", "p2", "p3", "p5"] and sizes == (2, 4)
    assert sub.at["p1", "p3"] == mat.at["p1", "p3"]
    sub, sizes = B.drill(mat, groups, groups, "b", "b", limit=3)
    assert sub.shape == (3, 3) and sizes == (4, 4)
    with pytest.raises(KeyError):
        B.drill(mat, groups, groups, "a", "zz")


def test_downsample_means_and_spans():
    X = np.arange(7 * 5, dtype=float).reshape(7, 5)
    X[0, 0] = np.nan
    ov = B.downsample(pd.DataFrame(X), max_bins=3)
    assert ov.values.shape == (3, 3)                      # 7 rows -> bins of 3 (3, 3, 1); 5 cols -> bins of 2
    assert list(ov.row_edges) == [0, 3, 6, 7] and list(ov.col_edges) == [0, 2, 4, 5]
    assert ov.values[0, 0] == pytest.approx(np.nanmean(X[0:3, 0:2]))
    assert ov.values[2, 2] == pytest.approx(X[6, 4])
    assert ov.values[1, 1] == pytest.approx(X[3:6, 2:4].mean())
    groups = {"a": ["r0", "r1"], "b": ["r2", "r3", "r4", "r5"], "c": ["r6"]}
    assert B.spans(ov.row_edges, groups) == ["a–b", "b", "c"]
    # in block order: the overview of a matrix whose blocks are not contiguous in its own order
    mat = pd.DataFrame(X[:, :4], index=[f"r{i}" for i in range(7)], columns=["a", "b", "c", "d"])
    cols = {"x": ["d", "a"], "y": ["c", "b"]}
    shuffled = {"c": ["r6"], "a": ["r1", "r0"], "b": ["r5", "r4", "r3", "r2"]}
    ov2 = B.overview(mat, shuffled, cols, max_bins=7)
    np.testing.assert_allclose(ov2.values[0], mat.loc["r6", ["d", "a", "c", "b"]].to_numpy())
    assert ov2.values.shape == (7, 4)
    # a square matrix: self-pairs are left out of the bins, as in the block means
    sq = pd.DataFrame(np.eye(4) + 0.5, index=list("abcd"), columns=list("abcd"))
    g = {"x": ["a", "b"], "y": ["c", "d"]}
    ov3 = B.overview(sq, g, g, max_bins=2)
    np.testing.assert_allclose(ov3.values, [[0.5, 0.5], [0.5, 0.5]])
    np.testing.assert_allclose(B.overview(sq, g, g, max_bins=2, exclude_self=False).values, [[1.0, 0.5], [0.5, 1.0]])


def test_compute_pairs_equal_the_full_matrix():
    prompts = clustered_prompts(3, 3)
    for metric in M.PROMPT_METRICS:
        full = M.compute_matrix(metric, prompts, cache=False)
        pairs = M.compute_pairs(metric, [prompts[4]], [prompts[0], prompts[4], prompts[8]])
        assert list(pairs.index) == ["k01_01"] and list(pairs.columns) == ["k00_00", "k01_01", "k02_02"]
        np.testing.assert_allclose(pairs.to_numpy(), full.loc[pairs.index, pairs.columns].to_numpy(), atol=1e-6)
    # a rectangle: few sources x every target, mixed lengths (NaN across L for e_flat / euclid)
    g = torch.Generator().manual_seed(3)
    mixed = prompts + [sp("short", torch.randn(2, 16, generator=g), task="t")]
    for metric in M.PROMPT_METRICS:
        full = M.compute_matrix(metric, mixed, cache=False)
        rect = M.compute_pairs(metric, [mixed[1], mixed[-1]], mixed)
        assert rect.shape == (2, len(mixed))
        np.testing.assert_allclose(rect.to_numpy(), full.loc[rect.index, rect.columns].to_numpy(), atol=1e-6)
    with pytest.raises(M.MetricError, match="prompt-space"):
        M.compute_pairs("on", prompts[:1], prompts[:1])


def test_task_view_needs_2_to_60_tasks():
    assert B.task_view_ok({"a": ["x"] * 400, "b": ["y"]}, B.singletons([f"t{i}" for i in range(10)]))
    assert not B.task_view_ok({"a": [f"x{i}" for i in range(400)]}, {"a": ["x"]})            # one task
    many = {f"t{i}": [f"p{i}"] for i in range(400)}
    assert not B.task_view_ok(many, many)                                                       # 400 tasks
    groups = B.task_groups(["a", "b", "c", "t9"], {"a": "x", "b": None, "c": "x"})
    assert groups == {"x": ["a", "c"], B.NO_TASK: ["b"], "t9": ["t9"]}


def test_block_view_task_and_cluster(tmp_path, monkeypatch):
    monkeypatch.setenv("ATLAS_CACHE", str(tmp_path))
    prompts = clustered_prompts(6, 5)
    mat = M.compute_matrix("e_avg", prompts, cache=False)
    task_of = {p.name: p.task for p in prompts}
    tg = B.task_groups(list(mat.index), task_of)
    info = {n: (f"fam{int(t[-2:]) % 2}", t) for n, t in task_of.items()} | {t: (f"fam{int(t[-2:]) % 2}", t) for t in tg}
    v = B.block_view(mat, "task", order="family", row_task=tg, col_task=tg, info=info)
    assert list(v.rows) == ["task00", "task02", "task04", "task01", "task03", "task05"] and v.clustering is None
    assert list(v.mean.index) == list(v.rows) and v.mean.shape == (6, 6)
    assert v.mean.at["task02", "task04"] == pytest.approx(B.block_means(mat, tg, tg).mean.at["task02", "task04"])
    c = B.block_view(mat, "cluster", order="cluster", row_task=tg, col_task=tg)
    assert c.rows == c.cols and len(c.rows) == 6 and c.clustering is not None
    assert sorted(sorted(v) for v in c.rows.values()) == sorted(sorted(v) for v in tg.values())
    assert c.overview.values.shape == (30, 30)
    # sources x a few target tasks (measured): rows cut by the dendrogram, one block per column
    rect = mat.iloc[:, :3].copy()
    rect.columns = ["t_a", "t_b", "t_c"]
    r = B.block_view(rect, "cluster", order="fixed", row_task=tg, col_task=B.singletons(list(rect.columns)))
    assert sorted(r.cols) == ["t_a", "t_b", "t_c"] and all(len(v) == 1 for v in r.cols.values())
    assert sum(len(v) for v in r.rows.values()) == 30
    assert B.views_for(tg, tg) == ["task", "cluster"]
    assert B.views_for({"(no task)": list(mat.index)}, {"(no task)": list(mat.index)}) == ["cluster"]
    with pytest.raises(ValueError, match="unknown block view"):
        B.block_view(mat, "family", order="fixed", row_task=tg, col_task=tg)
