"""The Definitions page ships the definitions in the product (issue 15, defect 8).

    .venv/bin/python -m pytest -q tests/test_definitions_page.py
"""
from __future__ import annotations

import re

from streamlit.testing.v1 import AppTest

from core import metrics as M
from core.config import REPO_ROOT

DOC = REPO_ROOT / "docs" / "DEFINITIONS.md"


def test_every_metric_and_measure_is_defined_in_the_shipped_file():
    text = DOC.read_text()
    rows = set(re.findall(r"^\| `([a-z_]+)` \|", text, flags=re.M))
    assert set(M.METRICS) <= rows, set(M.METRICS) - rows  # a new metric needs its definition
    assert {"scratch", "pot", "panda", "generic"} <= rows
    for heading in ("## Metrics", "## Methods", "## The noise band", "## Validation measures", "## Collections"):
        assert heading in text
    for measure in ("Spearman ρ", "top-k hit", "regret", "NDCG@k", "regret@k"):
        assert f"| {measure} |" in text


def test_definitions_page_renders_the_file():
    at = AppTest.from_file(str(REPO_ROOT / "pages" / "definitions.py"), default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "📖 Definitions"
    body = "\n".join(m.value for m in at.markdown)
    assert "## The noise band" in body and "`|gain| ≤ noise band`" in body


def test_no_page_cites_design_notes_users_do_not_have():
    for page in sorted((REPO_ROOT / "pages").glob("*.py")):
        assert "DESIGN.md" not in page.read_text(), page.name


def test_transferability_links_to_definitions(tmp_path, monkeypatch):
    monkeypatch.setenv("ATLAS_DEMO", str(tmp_path / "no-demo"))
    at = AppTest.from_file(str(REPO_ROOT / "pages" / "transferability.py"), default_timeout=60).run()
    assert not at.exception
    assert any("[Definitions](/definitions)" in c.value for c in at.caption)
