"""Viewers see no server paths (AppTest, ATLAS_MODE=viewer): the Library's "from …" line, the Runs page's
captions and a missing demo name files relative to a shared root or ATLAS_HOME, never the server's path.

    .venv/bin/python -m pytest -q -p no:cacheprovider tests/test_viewer_paths.py
"""
from __future__ import annotations

import torch

from apptest import no_exception, open_page
from core.config import REPO_ROOT
from core.prompts import DEFAULT_BACKBONE as MINILM
from core.prompts import SoftPrompt, write_prompt
from markup_check import page_texts

PAGES = REPO_ROOT / "pages"


def test_viewer_pages_name_no_server_path(tmp_path, monkeypatch, atlas_home):
    monkeypatch.setenv("ATLAS_MODE", "viewer")
    monkeypatch.setenv("ATLAS_DEMO", str(tmp_path / "no-demo"))
    lib = tmp_path / "shared-prompts"
    write_prompt(SoftPrompt(torch.randn(4, 384), name="p1", task="sent_movie", backbone=MINILM), lib / "p1")
    monkeypatch.setenv("ATLAS_LIBRARY", str(lib))
    seen = []
    for page in ("library.py", "runs.py", "transferability.py"):
        at = no_exception(open_page(PAGES / page))
        seen += page_texts(at)
    blob = "\n".join(seen)
    assert "`shared-prompts/p1`" in blob and "library/runs`" in blob  # named relative to a shared root
    for server_path in (str(tmp_path), str(atlas_home)):
        assert server_path not in blob, [t for t in seen if server_path in t]
