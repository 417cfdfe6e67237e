"""Issue 26 stage (a), item 6: a released library is readable and shareable.

Labels without the path every prompt shares (core.labels.short_names), one colour per task from a
categorical palette in a stable order (core.labels.colours), heatmap values only where they fit at
1280 px, launch offered only where the backbone loads, and ``?lib=`` / ``?col=`` kept in every
page's URL (relative to a shared root in viewer mode).

    .venv/bin/python -m pytest -q tests/test_readable_libraries.py
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from core import labels as L

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def released(real_prompts_dir) -> Path:
    """The folder a user opens: ``real-prompts/``, above thunlp's ``task_prompt_emb`` (every name then
    starts ``thunlp-prompt-transferability/task_prompt_emb/``)."""
    return real_prompts_dir.parent.parent


def test_labels_drop_the_shared_path_and_ending(released):
    from core.library import index_library
    index = index_library(released)
    names = index.groups()["roberta-base"]
    assert all(n.startswith("thunlp-prompt-transferability/task_prompt_emb/") for n in names)
    short = L.short_names(names)
    assert sorted(short.values()) == sorted(index.prompts[n].task for n in names)  # IMDB, MNLI, ..., random
    # a label keeps what tells names apart: a shared ending that would merge two names stays
    assert L.short_names(["a/x-long", "a/y-long"]) == {"a/x-long": "x", "a/y-long": "y"}
    assert L.short_names(["lib/p1/adapter", "lib/p2/adapter"]) == {"lib/p1/adapter": "p1", "lib/p2/adapter": "p2"}
    assert L.short_names(["only/one"]) == {"only/one": "only/one"}
    assert L.short_names(["d/same", "d/same2"]) == {"d/same": "same", "d/same2": "same2"}


def test_colours_are_distinct_for_20_values_and_stable(released):
    from core.library import index_library
    tasks = list(index_library(released).table["task"])
    cmap = L.colours(tasks)
    distinct = sorted({t for t in tasks if t})
    assert len(distinct) == 19 and len({cmap[t] for t in distinct}) == 19
    assert cmap["IMDB"] != cmap["random"] and cmap["MNLI"] != cmap["recastner"] and cmap["QQP"] != cmap[
        "tweetevalsentiment"]
    shuffled = tasks[:]
    random.Random(0).shuffle(shuffled)
    assert L.colours(shuffled) == cmap  # the order of a view never changes a colour
    many = [f"t{i:02d}" for i in range(20)]
    assert len(set(L.colours(many).values())) == 20
    assert L.colours(["a", None, "—"])[None] == L.MISSING == L.colours(["a", None, "—"])["—"]


def test_heatmap_values_hidden_above_a_density_and_kept_in_the_hover():
    from pages._transfer_figs import heatmap_figure, values_fit
    rng = np.random.default_rng(0)

    def mat(n):
        names = [f"p{i}" for i in range(n)]
        return pd.DataFrame(rng.uniform(size=(n, n)), index=names, columns=names)

    small = heatmap_figure(mat(6), annotate=True)
    heat = next(t for t in small.data if t.type == "heatmap")
    assert heat.texttemplate and not small.layout.meta["values_hidden"]
    dense = heatmap_figure(mat(30), annotate=True)
    heat = next(t for t in dense.data if t.type == "heatmap")
    assert heat.texttemplate is None and dense.layout.meta["values_hidden"]
    cells = next(t for t in dense.data if t.name == "cells")  # the hover still reads every value
    assert len(cells.text) == 900 and all(len(v) >= 4 for v in cells.text)
    # the rule: 17 values "0.35" (11 px font) fit 520 px without dendrograms; beside dendrograms they do not
    assert values_fit(17, 17, ["0.35"], 11) and not values_fit(17, 17, ["0.35"], 11, dendro=True)
    assert not values_fit(5, 5, ["0.35"], 11, row_px=10)


def test_unavailable_backbone_says_which_model_to_put_in_the_cache():
    from core.backbone import unavailable_reason
    why = unavailable_reason("acme/no-such-model-26")
    assert why and "acme/no-such-model-26" in why and "Hugging Face cache" in why
    assert "models--acme--no-such-model-26" in why
    assert unavailable_reason(None) and "do not say which model" in unavailable_reason(None)
    assert unavailable_reason("sentence-transformers/all-MiniLM-L6-v2") is None  # the bundled MiniLM loads


def _page(tmp_path, monkeypatch, page: str, env: dict, query: dict) -> AppTest:
    monkeypatch.setenv("ATLAS_DEMO", str(tmp_path / "no-demo"))
    monkeypatch.setenv("ATLAS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("ATLAS_LIBRARY", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    at = AppTest.from_file(str(REPO / "pages" / page), default_timeout=120)
    for k, v in query.items():
        at.query_params[k] = v
    return at.run()


def _qp(at, key) -> list[str]:
    v = at.query_params.get(key)
    return [] if v is None else ([v] if isinstance(v, str) else list(v))


def test_transferability_thunlp_reads_short_labels_and_offers_no_launch(tmp_path, monkeypatch, released):
    from core.backbone import unavailable_reason
    if unavailable_reason("roberta-base") is None:
        pytest.skip("roberta-base is in this machine's Hugging Face cache: launches from thunlp's prompts are "
                    "possible here, so the 'no launch' line cannot be checked")
    at = _page(tmp_path, monkeypatch, "transferability.py", {"ATLAS_MODE": "full"},
               {"lib": str(released), "group": "roberta-base", "metric": "e_avg", "target": "IMDB"})
    assert not at.exception, [e.value for e in at.exception]
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    heat = next(t for t in spec["data"] if t["type"] == "heatmap")
    ticks = spec["layout"]["yaxis" + heat.get("yaxis", "y")[1:]]["ticktext"]
    assert "IMDB" in ticks and not any("/" in t or "Prompt" in t for t in ticks), ticks
    frames = [d.value for d in at.dataframe]
    ranked = next(f for f in frames if "source" in f.columns or "source" in getattr(f.index, "names", []))
    assert "run" not in ranked.columns and "launch" not in ranked.columns
    assert not any((ranked.astype(str) == "None").any())
    line = [c.value for c in at.caption if "No run can be launched from these prompts here" in c.value]
    assert line and "roberta-base" in line[0] and "Hugging Face cache" in line[0]
    # sidebar navigation clears the query string: the next run writes the opened folder back
    for k in list(at.query_params.keys()):
        del at.query_params[k]
    at.run()
    assert not at.exception
    assert _qp(at, "lib") == [str(released)] and _qp(at, "group") == ["roberta-base"]


def test_viewer_links_name_the_folder_relative_to_its_shared_root(tmp_path, monkeypatch, released):
    shared_root = released.parent  # e.g. /work/shared: the server shares it
    env = {"ATLAS_MODE": "viewer", "ATLAS_ALLOWED_ROOTS": str(shared_root)}
    at = _page(tmp_path, monkeypatch, "projection.py", env, {"lib": str(released)})
    assert not at.exception, [e.value for e in at.exception]
    want = f"{shared_root.name}/{released.name}"
    assert _qp(at, "lib") == [want], _qp(at, "lib")
    assert not any(str(shared_root) in v for k in at.query_params.keys() for v in _qp(at, k))
    # a new browser opening that link reads the same folder and the same group
    group = at.selectbox(key="proj_group").value
    again = _page(tmp_path, monkeypatch, "projection.py", env, {"lib": want, "group": group})
    assert not again.exception and not again.error, [e.value for e in again.error]
    assert again.selectbox(key="proj_group").value == group
    assert any("46 prompts" in c.value for c in again.caption), [c.value for c in again.caption]


def test_library_table_names_drop_the_shared_folders(tmp_path, monkeypatch, released):
    at = _page(tmp_path, monkeypatch, "library.py", {"ATLAS_MODE": "full"}, {"lib": str(released)})
    assert not at.exception, [e.value for e in at.exception]
    names = next(d.value for d in at.dataframe if "name" in d.value.columns)["name"]
    assert len(names) == 46 and "IMDBPromptRoberta" in set(names)
    assert not any(str(n).startswith("thunlp-prompt-transferability") for n in names)
    assert _qp(at, "lib") == [str(released)]


def test_root_relative_link_values_resolve_under_their_root_and_never_escape(tmp_path, monkeypatch):
    from core.access import PathRefused, resolve
    shared = tmp_path / "shared"
    (shared / "lib" / "inner").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "shared" / "lib")  # a working directory where 'shared/...' does not exist
    acc = resolve("0.0.0.0", env={"ATLAS_MODE": "viewer", "ATLAS_ALLOWED_ROOTS": str(shared),
                                  "ATLAS_HOME": str(tmp_path / "home")})
    assert acc.link_value(shared / "lib" / "inner", typed=str(shared / "lib" / "inner")) == "shared/lib/inner"
    assert acc.check("shared/lib/inner") == (shared / "lib" / "inner").resolve()
    with pytest.raises(PathRefused):
        acc.check("shared/../../etc")
    full = resolve("127.0.0.1", env={"ATLAS_MODE": "full", "ATLAS_HOME": str(tmp_path / "home")})
    assert full.link_value(shared / "lib", typed="~/x") == "~/x"  # full mode: as the user typed it


def test_no_runs_info_offers_a_launch_only_where_one_can_run(tmp_path):
    from core.results import no_runs_reason
    some = pd.DataFrame({"method": ["scratch"], "target": ["t"]})
    can = no_runs_reason(some, "roberta-base", tmp_path / "results.csv")
    assert "Launch runs with these prompts as sources" in can
    cannot = no_runs_reason(some, "roberta-base", tmp_path / "results.csv",
                            cannot_launch="`roberta-base` is not on this machine: put it in the Hugging Face cache")
    assert "Launch runs" not in cannot and "put it in the Hugging Face cache" in cannot
