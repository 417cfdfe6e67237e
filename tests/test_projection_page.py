"""The Projection page renders (AppTest) on a small demo library and on thunlp's real prompts.

    .venv/bin/python -m pytest -q tests/test_projection_page.py

A page run happens in this process, so UMAP's warm-up thread compiles here once.
"""
from __future__ import annotations

import json
from urllib.parse import parse_qs, urlparse
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from core import projection as proj
from core.projection import methods as proj_methods
from core.prompts import SoftPrompt, write_prompt

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "projection.py")
BACKBONE = "sentence-transformers/all-MiniLM-L6-v2"
TASKS = {"sent_movie": "sentiment", "sent_tweet": "sentiment", "sent_product": "sentiment",
         "party_tweet": "politics", "party_speech": "politics", "party_parliament": "politics"}


def build_demo(root: Path, *, precompute: bool) -> list[SoftPrompt]:
    """root/prompts: 6 scratch prompts in two families + 2 pot transfers (with sources)."""
    rng = np.random.default_rng(0)
    centre = {f: rng.normal(0, 1, 384) for f in set(TASKS.values())}
    prompts = []
    for task, fam in TASKS.items():
        t = centre[fam] + 0.5 * rng.normal(0, 1, (8, 384))
        prompts.append(SoftPrompt(tensor=torch.tensor(t, dtype=torch.float32), name=task, task=task,
                                  family=fam, backbone=BACKBONE, method="scratch", score=0.8))
    for src, tgt in (("sent_movie", "sent_tweet"), ("party_speech", "party_tweet")):
        t = prompts[list(TASKS).index(src)].tensor + 0.2 * torch.randn(8, 384, generator=torch.Generator().manual_seed(1))
        prompts.append(SoftPrompt(tensor=t, name=f"pot__{src}__{tgt}", task=tgt, family=TASKS[tgt],
                                  backbone=BACKBONE, method="pot", sources=[src], score=0.85))
    for p in prompts:
        write_prompt(p, root / "prompts" / p.name)
    if precompute:
        from core.library import index_library

        index = index_library(root / "prompts")
        proj.precompute_projections({g: index.group_prompts(g) for g in index.groups()}, root / "projections",
                                    methods=("umap",), dims=(2,))
    return prompts


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("ATLAS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("ATLAS_LIBRARY", raising=False)
    proj.clear_memory_cache()
    yield tmp_path
    proj.clear_memory_cache()


def run_page(**query) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=180)
    for k, v in query.items():
        at.query_params[k] = v
    return at.run()


def chart_spec(at: AppTest) -> str:
    """The plotly figure JSON the page sent."""
    return at.get("plotly_chart")[0].proto.spec


def no_exception(at: AppTest):
    assert not at.exception, [e.message for e in at.exception]


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def test_empty_library_says_what_to_do(env, monkeypatch):
    monkeypatch.setenv("ATLAS_DEMO", str(env / "no_demo"))
    at = run_page()
    no_exception(at)
    assert "No prompts to map yet" in texts(at.info)


def test_demo_library_uses_the_precomputed_umap_map(env, monkeypatch):
    demo = env / "demo"
    build_demo(demo, precompute=True)
    proj.clear_memory_cache()
    for f in (env / "cache" / "projections").glob("*.npy"):
        f.unlink()  # only the precomputed CSV can give UMAP instantly now
    monkeypatch.setenv("ATLAS_DEMO", str(demo))
    t0 = time.perf_counter()
    at = run_page()
    elapsed = time.perf_counter() - t0
    no_exception(at)
    print(f"demo page run (precomputed UMAP): {elapsed:.2f} s")
    captions = texts(at.caption)
    assert "8 points · precomputed" in captions, captions
    assert "2 transfer arrows" in captions
    arrows = [t for t in json.loads(chart_spec(at))["data"] if t.get("name") == "transfer (source → target)"]
    assert len(arrows) == 1 and arrows[0]["marker"]["symbol"] == "arrow" and len(arrows[0]["x"]) == 2 * 4
    assert "warming up" not in texts(at.info)
    assert at.query_params["method"] == "umap" and at.query_params["group"] == BACKBONE
    # the neighbour table is computed in the original space: a family mate comes first
    nn = at.dataframe[-1].value
    assert at.selectbox(key="proj_focus").value == "party_parliament"
    assert nn.iloc[0]["family"] == "politics" and nn.iloc[0]["cosine"] > 0.5
    # search highlights and focuses the one match; the URL remembers it
    at.text_input(key="proj_find").input("sent_prod").run()
    no_exception(at)
    assert at.selectbox(key="proj_focus").value == "sent_product"
    assert at.query_params["highlight"] == "sent_prod"
    assert "search hits circled" in texts(at.caption)


def test_umap_not_warm_shows_pca_without_blocking(env, monkeypatch):
    demo = env / "demo"
    build_demo(demo, precompute=False)
    monkeypatch.setenv("ATLAS_DEMO", str(demo))
    monkeypatch.setattr(proj, "umap_is_warm", lambda: False)
    monkeypatch.setattr(proj, "umap_status", lambda: {"done": False, "seconds": None, "error": None})
    calls = []
    # the runner table itself: patching a module name would not reach what project() calls
    monkeypatch.setitem(proj_methods._RUNNERS, "umap", lambda X, params: calls.append(1) or np.zeros((len(X), 2)))
    at = run_page()
    no_exception(at)
    assert "UMAP is warming up" in texts(at.info)
    assert not calls, "the page ran UMAP while it was not warm"
    assert "PCA of 8 prompts" in chart_spec(at)
    assert "8 points · computed" in texts(at.caption)


@pytest.mark.parametrize("query", [dict(method="pca", dims="3"), dict(method="tsne")])
def test_other_methods_dims_and_token_points(env, monkeypatch, query):
    demo = env / "demo"
    build_demo(demo, precompute=False)
    monkeypatch.setenv("ATLAS_DEMO", str(demo))
    at = run_page(**query)
    no_exception(at)
    assert at.segmented_control(key="proj_method").value == query["method"]
    at.radio(key="proj_points").set_value("token").run()
    no_exception(at)
    assert "64 points" in texts(at.caption)  # 8 prompts x 8 tokens
    focus = at.selectbox(key="proj_focus")
    assert len(focus.options) == 64 and all("#" in o for o in focus.options)


def test_real_thunlp_prompts(env, monkeypatch, real_prompts_dir):
    monkeypatch.setenv("ATLAS_DEMO", str(env / "no_demo"))
    monkeypatch.setenv("ATLAS_LIBRARY", str(real_prompts_dir))
    at = run_page(method="pca")
    no_exception(at)
    group = at.selectbox(key="proj_group")
    assert len(group.options) == 3  # bert, roberta, t5: three maps, never mixed
    for option in group.options:
        at.selectbox(key="proj_group").select(option).run()
        no_exception(at)
        assert at.selectbox(key="proj_focus").value in at.selectbox(key="proj_focus").options
    at.segmented_control(key="proj_method").set_value("tsne").run()
    no_exception(at)
    assert any("perplexity 30 ->" in c for c in (str(x.value) for x in at.caption))


def test_selection_gives_a_table_a_heatmap_link_and_neighbours(env, monkeypatch):
    demo = env / "demo"
    build_demo(demo, precompute=False)
    monkeypatch.setenv("ATLAS_DEMO", str(demo))
    at = run_page(method="pca")
    no_exception(at)
    # what plotly sends for a lasso over two points (one named by customdata, one by trace + index)
    spec_traces = json.loads(chart_spec(at))["data"]
    second = spec_traces[1]["customdata"][0][0]
    at.session_state["proj_chart"] = {"selection": {
        "points": [{"curve_number": 0, "point_index": 0, "customdata": ["sent_movie"]},
                   {"curve_number": 1, "point_index": 0}], "box": [], "lasso": [], "point_indices": [0]}}
    at.run()
    no_exception(at)
    assert "Selected: 2 points (enlarged on the map, the rest faded)" in texts(at.subheader)
    selected = at.dataframe[0].value
    assert set(selected["name"]) == {"sent_movie", second}
    link = texts(at.markdown)  # outside app.py's navigation the page link is a plain URL
    assert "/transferability?group=sentence-transformers%2Fall-MiniLM-L6-v2&target=" in link
    # the link carries the selected prompts' *tasks* (what the Transferability page takes) and the collections
    q = parse_qs(urlparse(link[link.index("(/transferability?") + 1:].split(")")[0]).query)
    assert set(q["target"][0].split(",")) <= set(at.dataframe[0].value["task"]) and "sent_movie" in q["target"][0]
    assert q["col"][0].split(",")[0] == "demo"
    # a click on one point focuses the neighbour table on it
    at.session_state["proj_chart"] = {"selection": {
        "points": [{"curve_number": 0, "point_index": 0, "customdata": ["sent_tweet"]}],
        "box": [], "lasso": [], "point_indices": [0]}}
    at.run()
    no_exception(at)
    assert at.selectbox(key="proj_focus").value == "sent_tweet"
    nn = at.dataframe[-1].value
    assert set(nn["name"].iloc[:3]) == {"sent_movie", "sent_product", "pot__sent_movie__sent_tweet"}


def test_two_prompts_fall_back_with_a_note(env, monkeypatch):
    demo = env / "demo"
    for p in build_demo(env / "full", precompute=False)[:2]:
        write_prompt(p, demo / "prompts" / p.name)
    monkeypatch.setenv("ATLAS_DEMO", str(demo))
    at = run_page(method="tsne")
    no_exception(at)
    assert "t-SNE needs at least 4 points to build neighbourhoods; this group has 2: showing PCA instead" in texts(at.caption)
    assert "PCA of 2 prompts" in chart_spec(at)
    assert at.metric[1].value == "n/a"  # trustworthiness needs more points; said, not crashed


def test_demo_transfers_folder_joins_the_map_with_arrows(env, monkeypatch):
    demo = env / "demo"
    build_demo(demo, precompute=False)
    (demo / "transfers").mkdir()
    for p in (demo / "prompts").glob("pot__*"):
        p.rename(demo / "transfers" / p.name)  # the demo's layout: runs' prompts beside the library
    monkeypatch.setenv("ATLAS_DEMO", str(demo))
    at = run_page(method="pca")
    no_exception(at)
    assert at.checkbox(key="proj_with_transfers").value is True
    assert "8 points" in texts(at.caption) and "2 transfer arrows" in texts(at.caption)
    assert at.selectbox(key="proj_symbol").value == "method"  # scratch vs pot at a glance
    at.checkbox(key="proj_with_transfers").uncheck().run()
    no_exception(at)
    assert "6 points" in texts(at.caption) and "transfer arrow" not in texts(at.caption)


def test_a_map_below_the_trust_threshold_says_so_and_switches_to_pca_in_one_click(env, monkeypatch):
    """Issue 28: a small-sample map misled quietly (trustworthiness shown, no caution, no way out)."""
    lib = env / "demo" / "prompts"
    rng = np.random.default_rng(3)
    for i in range(15):  # no structure at all: no map of it can be trusted
        write_prompt(SoftPrompt(tensor=torch.tensor(rng.normal(0, 1, (8, 384)), dtype=torch.float32), name=f"p{i:02d}",
                                task="sent_movie", backbone=BACKBONE, method="scratch"), lib / f"p{i:02d}")
    monkeypatch.setenv("ATLAS_DEMO", str(env / "demo"))
    at = run_page(method="tsne")
    no_exception(at)
    caution = [w.value for w in at.warning if "keeps neighbourhoods poorly" in w.value]
    assert len(caution) == 1 and f"below {proj.TRUST_MIN:.2f}" in caution[0] and "PCA" in caution[0], caution
    at.button(key="proj_to_pca").click().run()
    no_exception(at)
    assert at.query_params["method"] == "pca" and json.loads(chart_spec(at))["layout"]["title"]["text"].startswith("PCA")
    assert not any(b.key == "proj_to_pca" for b in at.button)  # already PCA: no switch offered


def test_trust_caution_rule():
    assert proj.trust_caution(None, "umap") is None and proj.trust_caution(proj.TRUST_MIN, "umap") is None
    assert "look at PCA" in proj.trust_caution(0.74, "umap")
    assert proj.trust_caution(0.72, "pca").startswith("Even this linear map")
