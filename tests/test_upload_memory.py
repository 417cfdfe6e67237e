"""Uploaded bytes are not kept after they are handled (issue 24, memory).

Streamlit itself holds an uploader's files while the widget shows them (its UploadedFile buffers);
what is ours is anything else: a copy of ``getvalue()`` in session_state, a draft holding the
bytes, a cached reader. After the Tasks and the Library page handle an upload -- taken and refused --
no bytes-like object of the upload's size is reachable from session_state apart from Streamlit's own
UploadedFile buffers. bench/upload_memory.py measures the server RSS this leaves.

    .venv/bin/python -m pytest -q -p no:cacheprovider tests/test_upload_memory.py
"""
from __future__ import annotations

import dataclasses
import io
import os
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent
BIG = 3 * 2**20  # an upload far bigger than anything a page legitimately keeps


@pytest.fixture(autouse=True)
def env(tmp_path, monkeypatch, atlas_home):
    monkeypatch.setenv("ATLAS_DEMO", str(tmp_path / "no-demo"))
    monkeypatch.delenv("ATLAS_LIBRARY", raising=False)


def held_bytes(value, floor: int, seen=None, depth=0, path="") -> list[str]:
    """Paths to bytes/bytearray/memoryview objects of at least ``floor`` bytes reachable from ``value``
    (containers, dataclasses, plain objects); Streamlit's UploadedFile (a BytesIO) is not followed."""
    seen = set() if seen is None else seen
    if id(value) in seen or depth > 8 or isinstance(value, io.IOBase):
        return []
    seen.add(id(value))
    if isinstance(value, (bytes, bytearray, memoryview)):
        return [path] if len(value) >= floor else []
    if isinstance(value, (str, int, float, bool, type(None))):
        return []
    found = []
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, (list, tuple, set, frozenset)):
        items = enumerate(value)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        items = ((f.name, getattr(value, f.name, None)) for f in dataclasses.fields(value))
    elif hasattr(value, "__dict__") and not isinstance(value, type):
        items = vars(value).items()
    else:
        return []
    for k, v in list(items):
        found += held_bytes(v, floor, seen, depth + 1, f"{path}[{k!r}]")
    return found


def session_bytes(at: AppTest, floor: int) -> list[str]:
    return [hit for k in list(at.session_state.keys()) for hit in held_bytes(at.session_state[k], floor, path=k)]


def _csv(n_bytes: int) -> bytes:
    rows, size, i = ["text,label"], 0, 0
    while size < n_bytes:
        line = f"a wonderful moving film number {i} that some people loved and others did not,{'pos' if i % 2 else 'neg'}"
        rows.append(line)
        size += len(line) + 1
        i += 1
    return ("\n".join(rows) + "\n").encode()


def test_held_bytes_finds_a_copy():
    """The probe itself can fail: a getvalue() copy parked in a draft is found, a BytesIO is not."""
    @dataclasses.dataclass
    class Draft:
        data: bytes
    blob = os.urandom(BIG)
    assert held_bytes({"d": [Draft(blob)]}, BIG) == ["['d'][0]['data']"]
    assert held_bytes({"f": io.BytesIO(blob)}, BIG) == []


@pytest.mark.parametrize("name, data", [("reviews.csv", _csv(BIG)), ("broken.parquet", os.urandom(BIG))],
                         ids=["taken", "refused"])
def test_tasks_page_keeps_no_upload_bytes(name, data):
    at = AppTest.from_file(str(ROOT / "pages" / "tasks.py"), default_timeout=180).run()
    at.file_uploader(key="tasks_upload").set_value((name, data, "application/octet-stream")).run()
    assert not at.exception, [e.value for e in at.exception]
    if name.endswith(".csv"):
        assert at.selectbox(key="tasks_text_col").value == "text"  # handled: read, columns guessed
    else:
        assert any("broken.parquet" in e.value for e in at.error)  # handled: refused with its name
    at.run()  # a rerun of the form: still nothing of ours holds the bytes
    assert session_bytes(at, len(data) // 2) == []


@pytest.mark.parametrize("name, data", [("junk.safetensors", os.urandom(BIG))], ids=["refused"])
def test_library_page_keeps_no_upload_bytes(name, data):
    at = AppTest.from_file(str(ROOT / "pages" / "library.py"), default_timeout=180).run()
    at.file_uploader(key="library_upload").set_value((name, data, "application/octet-stream")).run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(name in e.value for e in at.error)  # handled: refused with its name
    at.run()
    assert session_bytes(at, len(data) // 2) == []


@pytest.mark.parametrize("name", ["junk.safetensors", "junk.npy", "junk.zip"])
def test_a_refused_prompt_upload_leaves_no_reference_to_its_bytes(tmp_path, name):
    """The library's read cache kept refused files' PromptErrors with their tracebacks, whose frames held
    add_upload's ``data``: one more copy of every refused upload for the server's life (bench/upload_memory.py:
    the Library uploader at 1.5x a bare Streamlit uploader's RSS growth)."""
    import gc
    import sys

    from core import userlib
    from core.prompts.types import PromptError

    data = os.urandom(BIG)
    before = sys.getrefcount(data)
    said = []
    for _ in range(2):  # the second refusal comes from the read cache
        try:
            userlib.upload(name, data, tmp_path / "library", None)
        except PromptError as e:
            said.append(str(e))
    gc.collect()  # what is left after the page moved on is what the server keeps
    assert len(said) == 2 and all(name in m for m in said)
    assert sys.getrefcount(data) == before
