"""pages/library.py under AppTest: empty state, the real thunlp library, filters, detail, uploads.

    .venv/bin/python -m pytest tests/test_library_page.py -q

AppTest (streamlit 1.67) supports st.file_uploader, so uploads go through the
page's own code path here; tests/e2e covers a real browser upload.
"""
from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from apptest import open_page

from badinput import make_corpus, tree_digest

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "library.py")


@pytest.fixture(autouse=True)
def no_demo(tmp_path, monkeypatch):
    """The demo library is missing here (it is built later); ATLAS_LIBRARY unset unless a test sets it."""
    monkeypatch.setenv("ATLAS_DEMO", str(tmp_path / "no-demo"))
    monkeypatch.delenv("ATLAS_LIBRARY", raising=False)


def page(**query) -> AppTest:
    return open_page(PAGE, **query)


def table(at):
    return at.dataframe[0].value


def assert_clean(at):
    assert not at.exception, [e.value for e in at.exception]


def test_empty_library_shows_info():
    at = page()
    assert_clean(at)
    assert at.title[0].value.endswith("Library")
    assert any("No prompts" in i.value for i in at.info)
    assert len(at.dataframe) == 0
    assert at.file_uploader(key="library_upload") is not None


def _check_real(at):
    assert_clean(at)
    t = table(at)
    assert len(t) == 46 and t["backbone"].nunique() == 3 and t["task"].notna().all()
    assert [m.value for m in at.metric][:2] == ["46", "3"]
    # the group column only where a group is not its backbone (here each is); the file in the detail view
    assert set(t.columns) >= {"name", "task", "backbone", "L", "d", "norm", "method", "score"}


def test_atlas_library_points_at_real_prompts(real_prompts_dir, monkeypatch):
    monkeypatch.setenv("ATLAS_LIBRARY", str(real_prompts_dir))
    _check_real(page())


def test_query_param_points_at_real_prompts(real_prompts_dir):
    at = page(lib=real_prompts_dir)
    _check_real(at)
    # the linked folder joins the default collections (demo + my library), it does not replace them
    assert at.multiselect(key="library_sources").value == ["demo", "my library", f"folder: {real_prompts_dir.resolve()}"]

    # filters
    at.multiselect(key="library_groups").select("t5-small").run()
    assert_clean(at)
    assert len(table(at)) == 17 and set(table(at)["backbone"]) == {"t5-small"}
    at.multiselect(key="library_tasks").select("SST2").run()
    assert list(table(at)["name"]) == ["SST2PromptT5Small"]

    # detail view: norms, heatmap, nearest within the same group only
    assert at.selectbox(key="library_detail").value == "SST2PromptT5Small"
    assert len(at.get("plotly_chart")) == 2
    nearest = at.dataframe[1].value
    assert len(nearest) == 10 and all(n.endswith("T5Small") for n in nearest["name"])


def test_typed_folder_switches_the_library(real_prompts_dir, tmp_path):
    at = page()
    assert any("No prompts" in i.value for i in at.info)
    at.text_input(key="library_dir_input").input(str(real_prompts_dir)).run()
    _check_real(at)
    assert at.query_params["lib"] == str(real_prompts_dir)  # the URL now links to this folder
    at.text_input(key="library_dir_input").input(str(tmp_path / "nowhere")).run()
    assert_clean(at)
    assert any("Folder not found" in w.value for w in at.warning)


def test_upload_good_then_bad_files(tmp_path, atlas_home, monkeypatch):
    at = page()
    buf = io.BytesIO()
    torch.save(torch.randn(6, 384), buf)
    at.file_uploader(key="library_upload").set_value(("mine.pt", buf.getvalue(), "application/octet-stream")).run()
    assert_clean(at)
    assert any("mine.pt: added" in s.value for s in at.success)
    assert (atlas_home / "library" / "mine.pt").is_file()
    assert list(table(at)["name"]) == ["mine.pt"]

    lib = atlas_home / "library"
    before = tree_digest(lib)
    corpus = make_corpus(tmp_path / "corpus")
    for case in corpus:  # one upload at a time, as a user would
        with monkeypatch.context() as m:
            for k, v in case.env.items():
                m.setenv(k, v)
            at.file_uploader(key="library_upload").set_value((case.filename, case.data, "application/octet-stream"))
            at.run()
        assert_clean(at)
        errors = [e.value for e in at.error]
        assert any(e.startswith(f"{case.filename}: ") and case.expect in e for e in errors), (case.name, errors)
        assert tree_digest(lib) == before, case.name
    assert len(table(at)) == 1
    assert not (tmp_path / "corpus" / "PWNED").exists()


def test_upload_real_world_kinds_through_the_page(tmp_path, atlas_home):
    """Issue 14 through the page's uploader: Finder zips add their adapter only (the second is not
    blocked by the first one's junk); attention weights are refused saying what they look like."""
    import zipfile

    from core.prompts import SoftPrompt, write_prompt
    at = page()
    for name in ("sst2_prompt", "imdb_prompt"):
        src = write_prompt(SoftPrompt(torch.randn(20, 384), name=name, task=name), tmp_path / "src" / name)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            for f in sorted(src.iterdir()):
                z.write(f, f"{name}/{f.name}")
                z.writestr(f"__MACOSX/{name}/._{f.name}", b"\x00\x05\x16\x07Mac OS X")
        at.file_uploader(key="library_upload").set_value((f"{name}.zip", buf.getvalue(), "application/zip")).run()
        assert_clean(at)
        assert any(s.value.startswith(f"{name}.zip: added {name}") for s in at.success), [e.value for e in at.error]
    assert sorted(p.name for p in (atlas_home / "library").iterdir()) == ["imdb_prompt", "sst2_prompt"]
    buf = io.BytesIO()
    torch.save(torch.randn(100, 768), buf)
    at.file_uploader(key="library_upload").set_value(("attn_W_down.pt", buf.getvalue(), "application/octet-stream"))
    at.run()
    assert_clean(at)
    assert any(e.value.startswith("attn_W_down.pt: ") and "attention/projection weights" in e.value for e in at.error)
    t = table(at)
    assert sorted(t["name"]) == ["imdb_prompt", "sst2_prompt"]
    assert "nan" not in {str(v) for v in t["family"]}


def test_no_none_cell_for_a_prompt_with_no_task_family_or_score(tmp_path, monkeypatch):
    """Issue 28: the Library table read "None" for what a plain file does not say (task, family, score)."""
    import numpy as np

    from core import fmt

    lib = tmp_path / "plain"
    lib.mkdir()
    np.save(lib / "bare.npy", np.random.default_rng(0).standard_normal((20, 384)).astype("float32"))
    monkeypatch.setenv("ATLAS_LIBRARY", str(lib))
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    assert not at.exception, [e.value for e in at.exception]
    t = at.dataframe[0].value.set_index("name")
    row = t.loc["bare.npy"]
    assert (row["task"], row["family"]) == (fmt.MISSING_TEXT, fmt.MISSING_TEXT)
    assert not t.isna().any().any(), t[t.isna().any(axis=1)]
    assert "None" not in t.astype(str).to_numpy().ravel().tolist()
