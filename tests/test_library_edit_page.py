"""pages/library.py under AppTest: task/family/backbone on upload and in the detail view; rename, delete;
read-only in viewer mode and for folders the Atlas does not own (rules: core/userlib.py).

    .venv/bin/python -m pytest tests/test_library_edit_page.py -q
"""
from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from apptest import no_exception, open_page

from badinput import tree_digest
from core.prompts import DEFAULT_BACKBONE as MINILM
from core.prompts import SoftPrompt, write_prompt

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "library.py")


@pytest.fixture(autouse=True)
def no_demo(tmp_path, monkeypatch):
    monkeypatch.setenv("ATLAS_DEMO", str(tmp_path / "no-demo"))
    monkeypatch.delenv("ATLAS_LIBRARY", raising=False)


def page(**query) -> AppTest:
    return open_page(PAGE, **query)


ok = no_exception


def _pt(shape) -> bytes:
    buf = io.BytesIO()
    torch.save(torch.randn(*shape), buf)
    return buf.getvalue()


def _row(at, name):
    return at.dataframe[0].value.set_index("name").loc[name]


def test_upload_with_task_family_backbone(atlas_home):
    at = page()
    at.selectbox(key="upload_task").set_value("sent_tweet")
    at.selectbox(key="upload_backbone").set_value(MINILM).run()
    ok(at)
    at.file_uploader(key="library_upload").set_value(("tweet.pt", _pt((20, 384)), "application/octet-stream")).run()
    ok(at)
    assert any(s.value.startswith("tweet.pt: added tweet to your library") and "task sent_tweet" in s.value
               and "family sentiment" in s.value for s in at.success), [e.value for e in at.error]
    row = _row(at, "tweet")
    # the family follows the registered task; the group follows the backbone (not unknown:d384)
    # the table shows the backbone's short name, and a group column only where a group is not its backbone
    assert (row["task"], row["family"], row["backbone"]) == ("sent_tweet", "sentiment", MINILM.rsplit("/", 1)[-1])
    assert row.get("group", "= backbone") in ("= backbone", MINILM)
    assert json.loads((atlas_home / "library" / "tweet" / "atlas.json").read_text())["task"] == "sent_tweet"


def test_upload_of_a_width_no_backbone_has(atlas_home):
    at = page()
    at.selectbox(key="upload_backbone").set_value(MINILM).run()
    lib = atlas_home / "library"
    at.file_uploader(key="library_upload").set_value(("wide.pt", _pt((20, 500)), "application/octet-stream")).run()
    ok(at)
    assert [e.value for e in at.error] == [f"wide.pt: backbone {MINILM} has width 384, the prompt's is 500; "
                                           "choose a backbone of width 500 or 'unknown'"]
    assert not lib.exists() or tree_digest(lib) == {}
    at.selectbox(key="upload_backbone").set_value(None).run()
    at.file_uploader(key="library_upload").set_value(("wide2.pt", _pt((20, 500)), "application/octet-stream")).run()
    ok(at)
    assert _row(at, "wide2.pt")["group"] == "unknown:d500"


def test_describe_rename_delete_from_the_detail_view(atlas_home):
    lib = atlas_home / "library"
    lib.mkdir()
    torch.save(torch.randn(5, 384), lib / "loose.pt")
    at = page()
    assert at.selectbox(key="library_detail").value == "loose.pt"
    assert at.selectbox(key="library_edit_backbone").value == "unknown"
    assert at.selectbox(key="library_edit_backbone").options == [MINILM, "unknown"]
    at.selectbox(key="library_edit_task").set_value("spam_sms")
    at.selectbox(key="library_edit_family").set_value("spam")
    at.selectbox(key="library_edit_backbone").set_value(MINILM)
    next(b for b in at.button if b.label == "Save description").click().run()
    ok(at)
    assert any(s.value == "loose.pt: described; now loose" for s in at.success), [e.value for e in at.error]
    assert at.selectbox(key="library_detail").value == "loose"  # the detail stays on the same prompt
    row = _row(at, "loose")
    assert (row["task"], row["family"]) == ("spam_sms", "spam")
    assert row.get("group", "= backbone") in ("= backbone", MINILM)
    # the fields show this prompt's stored values
    assert at.selectbox(key="library_edit_task").value == "spam_sms"

    at.text_input(key="library_rename").input("spam v1").run()
    at.button(key="library_rename_button").click().run()
    ok(at)
    assert any(s.value == "loose: renamed to spam v1" for s in at.success)
    assert list(at.dataframe[0].value["name"]) == ["spam v1"] and (lib / "spam v1" / "atlas.json").is_file()
    at.text_input(key="library_rename").input("../up").run()
    at.button(key="library_rename_button").click().run()
    assert any("a name is at most 100 letters" in e.value for e in at.error)

    assert at.button(key="library_delete_button").disabled  # not before the box is ticked
    at.checkbox(key="library_delete_ok").check().run()
    at.button(key="library_delete_button").click().run()
    ok(at)
    assert not (lib / "spam v1").exists() and [p.name for p in lib.iterdir()] == []
    assert any("No prompts" in i.value for i in at.info)


def test_viewer_mode_and_opened_folders_are_read_only(tmp_path, atlas_home, monkeypatch):
    lib = atlas_home / "library"
    write_prompt(SoftPrompt(torch.randn(4, 384), name="mine"), lib / "mine")
    opened = tmp_path / "opened"
    write_prompt(SoftPrompt(torch.randn(4, 384), name="theirs"), opened / "theirs")

    at = page(lib=opened)
    at.selectbox(key="library_detail").set_value("theirs").run()
    ok(at)
    assert any(c.value.startswith("🔒 Describing, renaming and deleting: off — theirs is in a folder you opened")
               for c in at.caption)
    assert len([b for b in at.button if b.key == "library_delete_button"]) == 0

    monkeypatch.setenv("ATLAS_MODE", "viewer")
    monkeypatch.setenv("ATLAS_ALLOWED_ROOTS", str(tmp_path))
    at = page()
    ok(at)
    assert at.selectbox(key="library_detail").value == "mine"
    assert any(c.value.startswith("🔒 Describing, renaming and deleting prompts: off") for c in at.caption)
    assert len([b for b in at.button if b.key in ("library_delete_button", "library_rename_button")]) == 0


def test_a_lone_prompt_hints_at_its_width_and_inherits_the_family_from_the_detail_view(atlas_home):
    """Issue 28: a plain [20, 384] file said only "No other prompt in this backbone group"; described
    with a task and no family, it got no family; its atlas.json must name it by its final name."""
    lib = atlas_home / "library"
    lib.mkdir()
    torch.save(torch.randn(20, 384), lib / "my_review_prompt.pt")
    at = page()
    ok(at)
    hint = " ".join(i.value for i in at.info)
    assert "No other prompt in `unknown:d384`" in hint and f"`{MINILM}` (bundled)" in hint, hint
    at.selectbox(key="library_edit_task").set_value("spam_sms")
    at.selectbox(key="library_edit_backbone").set_value(MINILM)
    next(b for b in at.button if b.label == "Save description").click().run()
    ok(at)
    row = _row(at, "my_review_prompt")
    assert (row["task"], row["family"]) == ("spam_sms", "spam")
    assert json.loads((lib / "my_review_prompt" / "atlas.json").read_text())["name"] == "my_review_prompt"
