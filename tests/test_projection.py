"""core.projection: maps keep clusters apart, are seeded, survive tiny groups, cache, CLI.

    .venv/bin/python -m pytest -q tests/test_projection.py

UMAP pays a numba compile (5-25 s) once per process; the UMAP cases share it.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from core import projection as proj
from core.prompts import SoftPrompt, write_prompt

REPO = Path(__file__).resolve().parent.parent
BACKBONE = "sentence-transformers/all-MiniLM-L6-v2"


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    """Each test gets its own disk cache and an empty memory cache."""
    monkeypatch.setenv("ATLAS_CACHE", str(tmp_path / "cache"))
    proj.clear_memory_cache()
    yield tmp_path / "cache"
    proj.clear_memory_cache()


def clusters(n_per=12, L=4, d=384, gap=6.0, seed=0, backbone=BACKBONE):
    """Two tight families of prompts far apart (centroids `gap` apart in every coordinate)."""
    rng = np.random.default_rng(seed)
    out = []
    for fam, centre in (("a", 0.0), ("b", gap)):
        base = centre + rng.normal(0, 1, d)
        for i in range(n_per):
            t = base + 0.3 * rng.normal(0, 1, (L, d))
            # cosine must separate them too: give family b the opposite direction
            t = t if fam == "a" else -t
            out.append(SoftPrompt(tensor=torch.tensor(t, dtype=torch.float32), name=f"{fam}{i:02d}",
                                  task=f"task_{fam}", family=fam, backbone=backbone, method="scratch"))
    return out


def labels_of(projection):
    return projection.meta["family"].to_numpy()


@pytest.mark.parametrize("method", proj.METHODS)
@pytest.mark.parametrize("dims", [2, 3])
def test_two_clusters_stay_separated(method, dims):
    from sklearn.metrics import silhouette_score

    prompts = clusters()
    p = proj.project(prompts, method=method, n_components=dims)
    assert p.method == method and p.coords.shape == (24, dims)
    y = labels_of(p)
    assert silhouette_score(p.coords, y) > 0.5, (method, dims)
    # every point's nearest map neighbour is from its own family
    dist = np.linalg.norm(p.coords[:, None] - p.coords[None], axis=-1)
    np.fill_diagonal(dist, np.inf)
    assert (y[dist.argmin(1)] == y).all()


@pytest.mark.parametrize("method", proj.METHODS)
def test_same_seed_same_coords(method):
    prompts = clusters(n_per=10)
    a = proj.project(prompts, method=method, seed=3, use_cache=False).coords
    b = proj.project(prompts, method=method, seed=3, use_cache=False).coords
    np.testing.assert_array_equal(a, b)
    if method == "umap":  # the seed is really used (t-SNE starts from PCA: seed-free here)
        c = proj.project(prompts, method=method, seed=4, use_cache=False).coords
        assert not np.allclose(a, c)


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("method", proj.METHODS)
def test_few_prompts_fall_back_with_a_message(n, method):
    prompts = clusters(n_per=2)[:n]
    for dims in (2, 3):
        p = proj.project(prompts, method=method, n_components=dims)
        assert p.coords.shape == (n, dims) and np.isfinite(p.coords).all()
        assert p.method == "pca"
        if method != "pca":
            assert any("needs at least 4 points" in note and f"has {n}" in note for note in p.notes), p.notes
        if n == 1:
            assert (p.coords == 0).all()
        if n <= dims:  # fewer informative axes than asked: said so, padded with 0
            assert any("remaining coordinates are 0" in note for note in p.notes)
            assert (p.coords[:, n - 1:] == 0).all()


def test_params_clamped_to_group_size():
    prompts = clusters(n_per=3)  # 6 points
    u = proj.project(prompts, method="umap", n_neighbors=50)
    assert u.params["n_neighbors"] == 5 and any("n_neighbors 50 -> 5" in n for n in u.notes)
    t = proj.project(prompts, method="tsne", perplexity=30)
    assert t.params["perplexity"] < 6 and any("perplexity 30 ->" in n for n in t.notes)
    with pytest.raises(proj.ProjectionError, match="method must be one of"):
        proj.ProjectionConfig(method="mds")
    with pytest.raises(proj.ProjectionError, match="n_components must be 2 or 3"):
        proj.ProjectionConfig(n_components=4)


def test_point_modes_and_flat():
    prompts = clusters(n_per=3, L=4, d=8)
    X, meta, notes = proj.prompt_features(prompts, "token")
    assert X.shape == (24, 8) and meta["prompt"].tolist()[:5] == ["a00"] * 4 + ["a01"]
    assert meta["token"].tolist()[:5] == [0, 1, 2, 3, 0] and meta["name"][1] == "a00#1"
    X, meta, notes = proj.prompt_features(prompts, "prompt", "flat")
    assert X.shape == (6, 32) and not notes
    np.testing.assert_allclose(X[0], prompts[0].tensor.numpy().reshape(-1))
    # unequal L: flattening is impossible, the mean is used and the note says so
    prompts[0] = SoftPrompt(tensor=torch.ones(5, 8), name="long", backbone=BACKBONE)
    X, meta, notes = proj.prompt_features(prompts, "prompt", "flat")
    assert X.shape == (6, 8) and "L = [4, 5]" in notes[0]
    p = proj.project(clusters(n_per=3, L=4, d=8), method="pca", point_mode="token", n_components=3)
    assert p.coords.shape == (24, 3) and "token" in p.table()


def test_one_map_per_backbone():
    mixed = clusters(n_per=2) + clusters(n_per=2, backbone="roberta-base")
    with pytest.raises(proj.ProjectionError, match="one map per backbone group"):
        proj.project(mixed, method="pca")
    wide = clusters(n_per=2, d=16, backbone=None) + clusters(n_per=2, d=8, backbone=None)
    with pytest.raises(proj.ProjectionError, match="different widths"):
        proj.project(wide, method="pca")


def test_cache_memory_then_disk(isolated_cache):
    prompts = clusters(n_per=6)
    first = proj.project(prompts, method="tsne")
    assert first.source == "computed"
    assert list((isolated_cache / "projections").glob("*.npy")), "no disk cache written"
    assert proj.project(prompts, method="tsne").source == "memory"
    proj.clear_memory_cache()
    again = proj.project(prompts, method="tsne")
    assert again.source == "disk"
    np.testing.assert_array_equal(first.coords, again.coords)
    # different parameters or content: a different key, computed afresh
    assert proj.project(prompts, method="tsne", perplexity=3).key != first.key
    prompts[0].tensor = prompts[0].tensor + 1
    assert proj.project(prompts, method="tsne").key != first.key
    # lookup never computes
    assert proj.lookup(prompts, proj.ProjectionConfig(method="tsne", seed=99)) is None


def test_neighbours_in_original_space_and_trustworthiness():
    prompts = clusters()
    p = proj.project(prompts, method="pca")
    nn = proj.nearest_neighbours(p.features, 0, k=5, coords=p.coords)
    assert len(nn) == 5 and 0 not in nn["index"].tolist()
    assert (p.meta["family"].iloc[nn["index"]] == "a").all()
    assert nn["cosine"].is_monotonic_decreasing and (nn["map_rank"] >= 1).all()
    tw = proj.trustworthiness(p.features, p.coords, k=5)
    assert 0.8 < tw <= 1.0  # clusters kept; within a cluster PCA only sees noise
    # a scrambled map is less trustworthy than the real one
    rng = np.random.default_rng(0)
    assert proj.trustworthiness(p.features, rng.normal(size=p.coords.shape), k=5) < tw
    assert proj.trustworthiness(p.features[:2], p.coords[:2], k=5) is None


def test_transfer_pairs_from_prompt_metadata():
    ps = clusters(n_per=2)
    ps[1].method, ps[1].sources = "pot", ["a00"]
    ps[2].method, ps[2].sources = "panda", ["/lib/prompts/a00", "b01.safetensors", "not_here"]
    ps[3].method, ps[3].sources = "scratch", ["a00"]  # not a transfer
    assert proj.transfer_pairs(ps) == [("a00", "a01"), ("a00", "b00"), ("b01", "b00")]
    assert proj.transfer_pairs(ps, methods=("pot",)) == [("a00", "a01")]


def test_precomputed_maps_are_used_only_when_current(tmp_path):
    groups = {BACKBONE: clusters(n_per=5), "roberta-base": clusters(n_per=3, backbone="roberta-base")}
    out = tmp_path / "projections"
    written = proj.precompute_projections(groups, out, methods=("pca", "tsne"), dims=(2, 3))
    assert sorted(p.name for p in written) == ["pca.csv", "pca_3d.csv", "tsne.csv", "tsne_3d.csv"]
    table = pd.read_csv(out / "tsne.csv")
    assert list(table.columns) == ["group", "name", "task", "backbone", "x", "y", "key"]
    assert len(table) == 16 and table["key"].nunique() == 2
    proj.clear_memory_cache()
    for f in (Path(os.environ["ATLAS_CACHE"]) / "projections").glob("*.npy"):
        f.unlink()  # only the precomputed file can answer now
    cfg = proj.ProjectionConfig(method="tsne")
    hit = proj.lookup(groups[BACKBONE], cfg, group=BACKBONE, precomputed_dir=out)
    assert hit is not None and hit.source == "precomputed" and hit.coords.shape == (10, 2)
    np.testing.assert_allclose(hit.coords, table[table.group == BACKBONE][["x", "y"]].to_numpy())
    # a changed prompt (or other parameters) makes the stored map stale: not used
    proj.clear_memory_cache()
    changed = clusters(n_per=5, seed=1)
    assert proj.lookup(changed, cfg, group=BACKBONE, precomputed_dir=out) is None
    assert proj.lookup(groups[BACKBONE], proj.ProjectionConfig(method="tsne", perplexity=2),
                       group=BACKBONE, precomputed_dir=out) is None
    with pytest.raises(FileExistsError, match="tsne.csv: exists"):
        proj.precompute_projections(groups, out, methods=("tsne",), dims=(2,))


def test_warm_umap_then_fast_path():
    seconds = proj.warm_umap()
    assert proj.umap_is_warm() and proj.umap_status()["error"] is None and seconds >= 0
    assert proj.warm_umap() == 0.0  # a second call does nothing


def test_cli_writes_csv(tmp_path):
    lib = tmp_path / "lib"
    for p in clusters(n_per=3):
        write_prompt(p, lib / p.name)
    out = tmp_path / "map.csv"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "core", "project", "--library", str(lib), "--method", "pca",
           "--dims", "3", "--out", str(out)]
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    table = pd.read_csv(out)
    assert list(table.columns) == ["name", "task", "backbone", "group", "x", "y", "z"]
    assert len(table) == 6 and set(table["task"]) == {"task_a", "task_b"}
    # an existing file is never overwritten silently; a missing group is named
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "exists" in r.stderr
    r = subprocess.run(cmd[:-2] + ["--group", "t5-small", "--out", str(tmp_path / "x.csv")], cwd=REPO,
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "no group 't5-small'" in r.stderr and BACKBONE in r.stderr


def test_numpy_pca_matches_scikit_learn():
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(1)
    for n, d, k in ((5, 384, 3), (200, 384, 3), (50, 10, 2)):
        X = rng.normal(size=(n, d))
        np.testing.assert_allclose(proj.pca_scores(X, k), PCA(n_components=k, svd_solver="full").fit_transform(X),
                                   atol=1e-8)


def test_precompute_append_keeps_other_prompt_sets(tmp_path):
    out = tmp_path / "projections"
    small, big = clusters(n_per=3), clusters(n_per=5)
    proj.precompute_projections({BACKBONE: small}, out, methods=("pca",), dims=(2,))
    proj.precompute_projections({BACKBONE: big}, out, methods=("pca",), dims=(2,), append=True)
    proj.precompute_projections({BACKBONE: big}, out, methods=("pca",), dims=(2,), append=True)  # same map: replaced
    table = pd.read_csv(out / "pca.csv")
    assert len(table) == 6 + 10 and table["key"].nunique() == 2
    proj.clear_memory_cache()
    for f in (Path(os.environ["ATLAS_CACHE"]) / "projections").glob("*.npy"):
        f.unlink()
    cfg = proj.ProjectionConfig(method="pca")
    for prompts in (small, big):
        hit = proj.lookup(prompts, cfg, group=BACKBONE, precomputed_dir=out)
        assert hit is not None and hit.source == "precomputed" and len(hit.coords) == len(prompts)
