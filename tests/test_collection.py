"""The collection rules (core.collection): names, folders, defaults, parsing, indexing.

    .venv/bin/python -m pytest -q tests/test_collection.py
"""
from __future__ import annotations

import shutil

import pytest

from core import collection as C
from core.config import demo_dir, user_library_dir

DEMO_PROMPT = demo_dir() / "prompts" / "sent_tweet"


@pytest.fixture
def home_with_upload_and_run(atlas_home):
    if not DEMO_PROMPT.is_dir():
        pytest.skip(f"demo library not built ({DEMO_PROMPT} missing)")
    shutil.copytree(DEMO_PROMPT, user_library_dir() / "uploaded_tweet")
    shutil.copytree(DEMO_PROMPT, C.runs_dir() / "run-1" / "sent_tweet-scratch")
    return atlas_home


def test_builtin_names_and_folders(atlas_home):
    cols = C.builtin()
    assert list(cols) == ["demo", "demo transfers", "my library", "my runs"]
    assert cols["demo"].roots == (demo_dir() / "prompts",)
    assert cols["demo transfers"].roots == (demo_dir() / "transfers",)
    assert cols["my library"].roots[0] == atlas_home / "library"
    assert cols["my library"].exclude == (atlas_home / "library" / "runs",)
    assert cols["my runs"].roots == (atlas_home / "library" / "runs",)


def test_atlas_library_folders_belong_to_my_library(tmp_path, monkeypatch):
    monkeypatch.setenv("ATLAS_LIBRARY", f"{tmp_path / 'a'}:{tmp_path / 'b'}")
    assert C.builtin()["my library"].roots[1:] == (tmp_path / "a", tmp_path / "b")


def test_default_is_demo_and_my_library_plus_opened_folders(tmp_path):
    assert C.default() == ["demo", "my library"]
    assert C.parse(None) == (["demo", "my library"], [])
    assert C.parse("  ") == (["demo", "my library"], [])
    assert C.parse(None, opened=[tmp_path]) == (["demo", "my library", f"folder: {tmp_path}"], [])


def test_parse_keeps_order_drops_duplicates_and_reports_unknown_names():
    assert C.parse("my runs, demo,my runs") == (["my runs", "demo"], [])
    assert C.parse("demo,bogus,my  runs") == (["demo"], ["bogus", "my  runs"])
    assert C.to_param(["demo", "my runs"]) == "demo,my runs"
    assert C.parse(C.to_param(["demo transfers", "my library"]))[0] == ["demo transfers", "my library"]


def test_my_library_never_holds_run_prompts_and_my_runs_holds_only_them(home_with_upload_and_run):
    lib = C.index(["my library"])
    runs = C.index(["my runs"])
    assert list(lib.prompts) == ["uploaded_tweet"]
    assert list(runs.prompts) == ["run-1/sent_tweet-scratch"]
    both = C.index(["my library", "my runs"])
    assert sorted(both.prompts) == ["run-1/sent_tweet-scratch", "uploaded_tweet"]


def test_default_index_has_demo_and_uploads_but_no_run(home_with_upload_and_run):
    names = set(C.index(C.default()).prompts)
    demo = set(C.index(["demo"]).prompts)
    assert demo and demo < names and "uploaded_tweet" in names
    assert not any(n.startswith("run-1") for n in names)
    assert any(n.startswith("run-1") for n in C.index([*C.default(), "my runs"]).prompts)


def test_cli_lists_and_refuses_unknown_names(home_with_upload_and_run, capsys):
    assert C.cli("collection", ["list"]) == 0
    out = capsys.readouterr().out
    assert "my runs" in out and "    1 prompts" in out
    assert C.cli("collection", ["index", "demo,nope"]) == 2
    assert "unknown collection(s) 'nope'" in capsys.readouterr().err
    assert C.cli("collection", ["index", "my runs"]) == 0
    assert "run-1/sent_tweet-scratch" in capsys.readouterr().out
