"""Library page in a browser, issue 15 defect 5: an upload with its task and backbone, then rename and
delete it from the page; a demo prompt stays locked with its one-line reason.

    .venv/bin/python -m pytest -q tests/e2e/test_e2e_library_edit.py
"""
from __future__ import annotations

import json

import pytest
import torch

from e2e_harness import check_page

ALERT = "[data-testid='stAlert']"
MINILM = "sentence-transformers/all-MiniLM-L6-v2"


@pytest.fixture(scope="module")
def server_env(mini_demo):
    return {"ATLAS_DEMO": str(mini_demo)}


def row(b, name):
    """A row of the Library table as shown: the backbone by its short name; the group column only
    where some group is not its backbone (pages/_shared.library_view), so a missing column means
    the prompt's group is its backbone's."""
    rows = b.table_with("name", "task", "backbone")
    names = b.column(rows, "name")
    if name not in names:
        return None
    i = names.index(name)
    got = {c: b.column(rows, c)[i] for c in ("task", "backbone")}
    got["group"] = b.column(rows, "group")[i] if "group" in rows[0] else "= backbone"
    return got


def open_editor(b):
    """Open the detail view's edit expander (it keeps its state across reruns once open)."""
    if not any(e.is_displayed() for e in b.find(".st-key-library_rename input")):
        summary = next(s for s in b.find("[data-testid='stExpander'] summary")
                       if "Describe, rename or delete" in s.text)
        b.click(summary)
        b.wait_until(lambda: any(e.is_displayed() for e in b.find(".st-key-library_rename input")), 10,
                     "the edit panel")


def test_upload_with_metadata_then_rename_then_delete(browser, tmp_path):
    b = browser
    lib = b.server.home / "library"
    src = tmp_path / "e2e_mine.pt"
    torch.save(torch.randn(20, 384), src)

    check_page(b, "library", "[data-testid='stDataFrame']")
    b.select("sent_tweet", key="upload_task")
    b.select(MINILM, key="upload_backbone")
    b.upload(src, key="library_upload")
    msg = b.wait_for(ALERT, timeout=30, text="e2e_mine.pt: added")[0].text
    assert "task sent_tweet" in msg and f"backbone {MINILM}" in msg, msg
    b.assert_no_exception()
    # the index shows what the user said: task, backbone, and the backbone's group (not unknown:d384)
    got = b.wait_until(lambda: row(b, "e2e_mine"), 20, "e2e_mine in the table")
    assert got == {"task": "sent_tweet", "backbone": MINILM.rsplit("/", 1)[-1], "group": "= backbone"}, got
    assert json.loads((lib / "e2e_mine" / "atlas.json").read_text())["task"] == "sent_tweet"
    b.screenshot("library_upload_with_metadata")

    b.select("e2e_mine", key="library_detail")
    open_editor(b)
    b.set_text("e2e renamed", key="library_rename")
    b.click(b.button("Rename", key="library_rename_button"))
    b.wait_idle(start_wait=1.0)
    b.wait_for(ALERT, timeout=30, text="e2e_mine: renamed to e2e renamed")
    b.assert_no_exception()
    assert b.selected(key="library_detail") == "e2e renamed"  # the detail follows the prompt
    assert (lib / "e2e renamed" / "adapter_config.json").is_file() and not (lib / "e2e_mine").exists()
    b.wait_until(lambda: row(b, "e2e renamed") and not row(b, "e2e_mine"), 20, "the renamed row")
    b.screenshot("library_renamed")

    open_editor(b)
    b.click(b.find(".st-key-library_delete_ok label")[0])
    b.wait_idle(start_wait=1.0)
    b.click(b.button("Delete", key="library_delete_button"))
    b.wait_idle(start_wait=1.0)
    b.wait_for(ALERT, timeout=30, text="e2e renamed: deleted")
    b.assert_no_exception()
    assert [p.name for p in lib.iterdir()] == []
    b.wait_until(lambda: row(b, "e2e renamed") is None, 20, "the deleted row to go")


def test_demo_prompts_are_locked_with_a_reason(browser, mini_demo):
    b = browser
    check_page(b, "library", "[data-testid='stDataFrame']")
    name = sorted(p.name for p in (mini_demo / "prompts").iterdir())[0]
    b.select(name, key="library_detail")
    b.wait_until(lambda: "🔒 Describing, renaming and deleting: off" in b.page_text(), 20, "the lock line")
    assert f"{name} is in the demo, which the Atlas never changes" in b.page_text()
    assert not b.find(".st-key-library_delete_button")
