"""Every write is recoverable: a describe / rename / delete / upload killed at each of its steps (a real
process, os._exit at the k-th rename / replace / removal), followed by a start-up recovery
(core.safewrite.recover), leaves every prompt present exactly once and no hidden leftover (the child is
forked, so a kill costs no re-import); a delete and a describe of one prompt at the same moment: one
succeeds, the other says the prompt is gone, and the name can be added again.

    .venv/bin/python -m pytest -q -p no:cacheprovider tests/test_crash_recovery.py
"""
from __future__ import annotations

import io
import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from core import safewrite as W
from core.config import atlas_home, user_library_dir
from core.library import index_library
from core.prompts import SoftPrompt, write_prompt
from core.userlib import EditError, PromptMeta, delete, describe, find, upload

def _child(op: str, k: int, new_file: Path) -> int:
    """In a forked child: run ``op`` and die (os._exit: no finally, no except runs) just before its k-th
    step — a rename, a replace of a file outside a hidden replacement, or a removal. Returns the steps
    of a run that is not killed (k=0)."""
    from core import safewrite, userlib
    n = [0]

    def hook(real):
        def f(*a, **kw):
            n[0] += 1
            if n[0] == k:
                os._exit(9)
            return real(*a, **kw)
        return f

    real_replace = os.replace
    counted_replace = hook(real_replace)

    def replace(src, dst, *a, **kw):  # files written inside a hidden replacement are one step with it
        return (real_replace if "/.atlas-" in str(dst) else counted_replace)(src, dst, *a, **kw)

    os.rename, os.replace, safewrite.remove = hook(os.rename), replace, hook(safewrite.remove)
    lib = userlib.user_library_dir()
    if op == "describe":
        userlib.describe(userlib.find("plain.pt"), userlib.PromptMeta(task="sent_tweet"))
    elif op == "describe_peft":
        userlib.describe(userlib.find("folder"), userlib.PromptMeta(task="sent_tweet"))
    elif op == "rename":
        userlib.rename(userlib.find("folder"), "renamed")
    elif op == "rename_plain":
        userlib.rename(userlib.find("plain.pt"), "renamed")
    elif op == "delete":
        userlib.delete(userlib.find("plain.pt"))
    elif op == "upload":
        userlib.upload("new.pt", new_file.read_bytes(), lib, userlib.PromptMeta(task="sent_tweet"))
    return n[0]


def _run(op: str, k: int, new_file: Path) -> tuple[int, int]:
    """(exit code, steps) of ``op`` in a forked process killed before step k (fork: no re-import per run)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 3
        try:
            os.close(r)
            os.write(w, str(_child(op, k, new_file)).encode())
            code = 0
        except BaseException:  # noqa: BLE001
            import traceback
            traceback.print_exc()
        finally:
            os._exit(code)
    os.close(w)
    _, status = os.waitpid(pid, 0)
    out = os.read(r, 64)
    os.close(r)
    return os.waitstatus_to_exitcode(status), int(out or 0)


def _pt(t: torch.Tensor) -> bytes:
    buf = io.BytesIO()
    torch.save(t, buf)
    return buf.getvalue()


@pytest.fixture
def library(tmp_path):
    """plain.pt (a plain file), folder/ (a PEFT adapter), keep.pt (never touched); their values."""
    lib = user_library_dir()
    g = torch.Generator().manual_seed(1)
    vals = {n: torch.randn(4, 384, generator=g) for n in ("plain", "folder", "keep", "new")}
    upload("plain.pt", _pt(vals["plain"]), lib)
    upload("keep.pt", _pt(vals["keep"]), lib)
    write_prompt(SoftPrompt(vals["folder"], name="folder", task="t"), lib / "folder")
    (tmp_path / "new.pt").write_bytes(_pt(vals["new"]))
    template = tmp_path / "template"
    shutil.copytree(atlas_home(), template)
    return template, {k: v.numpy() for k, v in vals.items()}


def _counts(vals: dict) -> dict[str, int]:
    index = index_library(user_library_dir())
    assert not index.problems, [e.problem for e in index.problems]
    return {n: sum(np.array_equal(p.values, v) for p in index.prompts.values()) for n, v in vals.items()}


def _no_leftovers():
    home = atlas_home()
    left = [p for p in home.rglob("*") if p.name.startswith((".atlas-", W.UPLOAD_PREFIX))]
    assert not left, left


@pytest.mark.parametrize("op", ["describe", "describe_peft", "rename", "rename_plain", "delete", "upload"])
def test_a_crash_at_every_step_then_a_start_leaves_every_prompt_once(op, library, tmp_path):
    template, vals = library
    code, events = _run(op, 0, tmp_path / "new.pt")
    assert code == 0 and events >= 1, (code, events)
    for k in range(1, events + 1):
        shutil.rmtree(atlas_home())
        shutil.copytree(template, atlas_home(), dirs_exist_ok=True)  # a cache write may recreate the folder
        code, _ = _run(op, k, tmp_path / "new.pt")
        assert code == 9, (op, k, code)
        said = W.recover()
        counts = _counts(vals)
        for name in ("plain", "folder", "keep"):
            expect = {0, 1} if (op == "delete" and name == "plain") else {1}
            assert counts[name] in expect, (op, k, counts, said)
        assert counts["new"] in ({0, 1} if op == "upload" else {0}), (op, k, counts)
        _no_leftovers()
        # a recovered library takes every operation again (no hidden name blocks one)
        upload("again.pt", _pt(torch.randn(4, 384)), user_library_dir())


def test_recovery_says_what_it_did(library):
    lib = user_library_dir()
    op = W.new_op()
    # a describe killed after both renames' first: the plain file hidden as "old", its adapter as "new"
    os.rename(lib / "plain.pt", W.hidden(lib / "plain.pt", "old", op))
    write_prompt(SoftPrompt(torch.randn(4, 384), name="plain"), W.hidden(lib / "plain", "new", op))
    os.rename(lib / "keep.pt", W.hidden(lib / "keep.pt", "deleted", W.new_op()))
    said = W.recover()
    assert any("completed the describe of plain.pt" in s for s in said)
    assert any("completed the delete of keep.pt" in s for s in said)
    assert (lib / "plain").is_dir() and not (lib / "keep.pt").exists()
    _no_leftovers()


def test_delete_and_describe_at_the_same_moment(library):
    for first in range(3):
        lib = user_library_dir()
        p = find("plain.pt")
        outcome: dict[str, object] = {}
        go = threading.Barrier(2)

        def act(name, fn):
            go.wait()
            try:
                fn()
                outcome[name] = "ok"
            except EditError as e:
                outcome[name] = str(e)

        threads = [threading.Thread(target=act, args=("delete", lambda: delete(p))),
                   threading.Thread(target=act, args=("describe", lambda: describe(p, PromptMeta(task="x"))))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        oks = [k for k, v in outcome.items() if v == "ok"]
        assert len(oks) == 1, outcome  # never both "succeeded"
        other = next(v for k, v in outcome.items() if v != "ok")
        assert "no longer in the library" in other
        _no_leftovers()
        left = sorted(x.name for x in lib.iterdir())
        assert left in (["folder", "keep.pt"], ["folder", "keep.pt", "plain"]), left
        for x in ("plain", "plain.pt"):
            W.remove(lib / x)
        upload("plain.pt", _pt(torch.randn(4, 384)), lib)  # the name can be added again


def test_the_cli_recovers_too(library, capsys):
    from core.__main__ import main as cli_main
    lib = user_library_dir()
    os.rename(lib / "keep.pt", W.hidden(lib / "keep.pt", "old", W.new_op()))  # a describe killed mid-way
    assert cli_main(["library", "recover"]) == 0
    assert "rolled back an interrupted change of keep.pt" in capsys.readouterr().out
    assert (lib / "keep.pt").is_file()
    assert cli_main(["library", "recover"]) == 0 and "nothing to recover" in capsys.readouterr().out
