"""Names holding a control, format, line or paragraph separator character (Unicode Cc, Cf, Zl, Zp)
are refused at every entry — prompt upload, zip member, rename, describe, task add, task upload —
with one line naming the character; nothing is written.

    .venv/bin/python -m pytest -q -p no:cacheprovider tests/test_safe_names.py
"""
from __future__ import annotations

import io
import zipfile

import pytest
import torch

from core.config import user_library_dir
from core.library import add_upload
from core.prompts import PromptError
from core.task_upload import build_task, read_upload
from core.tasks import TaskError, save_task
from core.userlib import EditError, PromptMeta, rename, upload

BAD = [("\u202e", "U+202E RIGHT-TO-LEFT OVERRIDE"), ("\n", "U+000A LINE FEED"), ("\x00", "U+0000 NULL"),
       ("\u200b", "U+200B ZERO WIDTH SPACE"), ("\u2028", "U+2028 LINE SEPARATOR"),
       ("\u2029", "U+2029 PARAGRAPH SEPARATOR"), ("\u200f", "U+200F RIGHT-TO-LEFT MARK")]


def _pt() -> bytes:
    buf = io.BytesIO()
    torch.save(torch.randn(4, 384), buf)
    return buf.getvalue()


def _zip(member: str, data: bytes) -> bytes:
    """A zip with one member; a NUL is patched into the bytes (zipfile's writer cuts a name at NUL)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(member.replace("\x00", "\x01"), data)
    raw = buf.getvalue()
    if "\x00" in member:
        raw = raw.replace(member.replace("\x00", "\x01").encode(), member.encode())
    return raw


def _one_line(msg: str, char: str):
    assert char in msg and "\n" not in msg, msg
    assert not any(c in msg for c, _ in BAD if c != "\n"), repr(msg)  # the character itself is not echoed


@pytest.mark.parametrize("c,char", BAD)
def test_prompt_upload_file_name(c, char):
    lib = user_library_dir()
    with pytest.raises(PromptError) as e:
        add_upload(f"{c}cod.pt", _pt(), lib)
    _one_line(str(e.value), char)
    assert not any(lib.iterdir())


@pytest.mark.parametrize("c,char", BAD)
def test_zip_member_name(c, char):
    lib = user_library_dir()
    with pytest.raises(PromptError) as e:
        add_upload("p.zip", _zip(f"evil{c}name.pt", _pt()), lib)
    _one_line(str(e.value), char)
    assert not any(lib.iterdir())


@pytest.mark.parametrize("c,char", BAD)
def test_rename_and_describe(c, char):
    lib = user_library_dir()
    [p] = upload("plain.pt", _pt(), lib)
    with pytest.raises(EditError) as e:
        rename(p, f"new{c}name")
    _one_line(str(e.value), char)
    for field in ("task", "family", "backbone"):
        with pytest.raises(EditError) as e:
            PromptMeta(**{field: f"x{c}y"})
        _one_line(str(e.value), char)
    assert sorted(x.name for x in lib.iterdir()) == ["plain.pt"]


def _csv() -> bytes:
    rows = ["text,label"] + [f"{'great fun' if i % 2 else 'dull and slow'} {i},{'pos' if i % 2 else 'neg'}"
                             for i in range(30)]
    return ("\n".join(rows) + "\n").encode()


@pytest.mark.parametrize("c,char", BAD)
def test_task_add_and_task_upload(c, char, tmp_path):
    with pytest.raises(TaskError) as e:
        read_upload(f"rev{c}iews.csv", _csv(), tmp_path / "w1")
    _one_line(str(e.value), char)
    with pytest.raises(TaskError) as e:
        read_upload("splits.zip", _zip(f"train{c}.csv", _csv()), tmp_path / "w2")
    _one_line(str(e.value), char)
    up = read_upload("reviews.csv", _csv(), tmp_path / "w3")
    task = build_task(up, "reviews", "text", "label", family=f"senti{c}ment")
    with pytest.raises(TaskError) as e:
        save_task(task)
    _one_line(str(e.value), char)
