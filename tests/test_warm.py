"""The start-up warm-up (pages/_warm.py, run by serve.py): it warms what a first visit really reads.

    .venv/bin/python -m pytest -q tests/test_warm.py

The invariant that matters: the library index the warm-up builds is the very cache entry the
Transferability page's first run reads (same collections, same key), so a first visit indexes
nothing. Checked in a fresh interpreter (the warm-up freezes the garbage collector's view of the
process, which must not leak into this test session) with the indexer replaced by one that fails.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "e2e"))


def test_page_imports_reads_module_level_imports_only(tmp_path):
    from pages._warm import page_imports

    (tmp_path / "a.py").write_text(textwrap.dedent("""
        from __future__ import annotations
        import os, json as j
        import streamlit as st
        from core import blocks as B
        from core.config import demo_dir
        from pages._shared import access
        from . import sibling

        def later():
            import torch  # inside a function: not a first-paint import
    """))
    (tmp_path / "b.py").write_text("import pandas as pd\nimport os\n")
    assert page_imports(tmp_path) == ["os", "json", "core", "core.blocks", "core.config", "core.config.demo_dir",
                                      "pandas"]


def test_page_imports_of_the_real_pages_cover_their_heavy_modules():
    from pages._warm import page_imports

    found = page_imports()
    for name in ("pandas", "plotly.graph_objects", "core.blocks", "core.metrics", "core.library"):
        assert name in found, name
    assert not any(n.split(".")[0] in ("streamlit", "pages") for n in found)


def test_a_failing_step_is_skipped_not_fatal(monkeypatch):
    import pages._shared as shared
    from pages import _warm

    def broken():
        raise OSError("disk gone")

    monkeypatch.setattr(shared, "warm_default_library", broken)
    took = _warm.warm(freeze=False)
    assert "imports" in took and "library" not in took and "prompts" not in took


WARM_THEN_VISIT = """
import json, sys
sys.path.insert(0, {repo!r})
from pages._warm import warm
took = warm()
import gc
import pages._shared as shared

def no_indexing(*a, **k):
    raise AssertionError("the first visit indexed the library again")

shared.index_library = no_indexing  # the page's cache miss would call this
from streamlit.testing.v1 import AppTest
at = AppTest.from_file({page!r}, default_timeout=120)
at.query_params["metric"] = "e_avg"
at.run()
print(json.dumps({{"took": took, "torch": "torch" in sys.modules, "blocks": "core.blocks" in sys.modules,
                  "frozen": gc.get_freeze_count(),
                  "exceptions": [e.message for e in at.exception],
                  "captions": [c.value for c in at.caption]}}))
"""


def test_warm_fills_the_cache_the_first_visit_reads(tmp_path):
    from big_library import build

    lib = build(30, tmp_path / "lib")
    env = {**os.environ, "ATLAS_LIBRARY": str(lib), "ATLAS_DEMO": str(tmp_path / "no-demo"),
           "ATLAS_HOME": str(tmp_path / "home"), "ATLAS_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    code = WARM_THEN_VISIT.format(repo=str(REPO), page=str(REPO / "pages" / "transferability.py"))
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["took"]["prompts"] == 30
    assert res["torch"] and res["blocks"] and res["frozen"] > 0
    assert res["exceptions"] == []
    assert any("(30 prompts)" in c for c in res["captions"]), res["captions"]
