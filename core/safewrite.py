"""Writes to what the Atlas owns survive a crash at any point and each other: a lock per name, and a
start-up pass that completes or rolls back what an interrupted operation left.

    python -m core library recover        (what every server does once when it starts)

Each change to a library entry (describe, rename, delete, upload) or a task (add) runs under
:func:`locked` — an exclusive ``fcntl`` lock on a file under ``ATLAS_HOME/locks`` named by a hash of
the entry's path — so two of them on one name run one after the other, and the second sees what
the first did (a describe after a delete finds the prompt gone and says so, instead of both
reporting success). Processes share the locks (several servers, the CLI); a lock dies with its
process, so a crash never leaves a name locked.

The steps of an operation are named by hidden siblings of the entry, one operation id (``op``) each:

=======================================  ==================================================================
``.atlas-new-<op>-<name>``               a finished replacement, not yet in place (describe of a plain file)
``.atlas-old-<op>-<name>``               the entry it replaces, kept until the replacement is in place
``.atlas-deleted-<op>-<name>``           an entry being deleted (gone for every reader already)
``.atlas-upload-*``                      a prompt upload being checked (core.library.add_upload)
``ATLAS_HOME/staging/*``                 a task upload being read (the Tasks page)
``tasks/.<name>.*.tmp``                  a task's data being written (core.tasks.save_task)
=======================================  ==================================================================

:func:`recover` reads them: new + old → completed (the new one is renamed into place, the old one
removed); new alone → rolled back (the entry was never moved); old alone → completed when its
replacement is in place, else rolled back (renamed back); deleted → completed; staging and temp
folders → removed; a task data folder no registration points to → removed. Every prompt is then
present exactly once. Each action is logged and returned as one line.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Iterator

from core.config import atlas_home, user_library_dir

log = logging.getLogger(__name__)
HIDDEN = re.compile(r"^\.atlas-(new|old|deleted)-([0-9a-f]{8})-(.+)$")
UPLOAD_PREFIX = ".atlas-upload-"


def new_op() -> str:
    """A fresh operation id: the hidden names of one operation share it."""
    return uuid.uuid4().hex[:8]


def hidden(path: Path, kind: str, op: str) -> Path:
    """The hidden sibling of ``path`` for step ``kind`` (new | old | deleted) of operation ``op``."""
    assert kind in ("new", "old", "deleted"), kind
    return path.parent / f".atlas-{kind}-{op}-{path.name}"


def locks_dir() -> Path:
    return atlas_home() / "locks"


def staging_dir() -> Path:
    """Where uploads are staged while they are read (under ATLAS_HOME, never the system temp folder)."""
    return atlas_home() / "staging"


def _lock_file(path: Path) -> Path:
    key = hashlib.sha256(str(Path(path).absolute()).encode()).hexdigest()[:24]
    return locks_dir() / f"{key}.lock"


@contextlib.contextmanager
def locked(*paths: Path | str) -> Iterator[None]:
    """Hold the exclusive lock of every path (one per name; taken in a fixed order, so two operations
    on overlapping names cannot deadlock). Blocks until they are free."""
    files = sorted({_lock_file(Path(p)) for p in paths})
    locks_dir().mkdir(parents=True, exist_ok=True)
    held = []
    try:
        for f in files:
            fd = os.open(f, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX)
            held.append(fd)
        yield
    finally:
        for fd in reversed(held):
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def busy(path: Path) -> bool:
    """Is ``path``'s lock held (by an operation in flight in some process)? Never waits."""
    f = _lock_file(path)
    if not f.exists():
        return False
    fd = os.open(f, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def remove(path: Path) -> None:
    """Remove a file, link or folder tree (missing: nothing to do)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


# --------------------------------------------------------------------------- start-up recovery
def _recover_folder(root: Path, said: list[str]) -> None:
    ops: dict[tuple[Path, str], dict[str, Path]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        for name in list(dirnames) + filenames:
            m = HIDDEN.match(name)
            if m:
                ops.setdefault((here, m.group(2)), {})[m.group(1)] = here / name
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]  # never inside a hidden entry
    for (here, op), steps in sorted(ops.items()):
        new, old, gone = steps.get("new"), steps.get("old"), steps.get("deleted")
        # each under the lock its operation held: one still running elsewhere (another server, the
        # CLI) finishes first, and what it left is looked at again
        if gone is not None:
            with locked(here / _name(gone)):
                if _there(gone):
                    remove(gone)
                    said.append(f"completed the delete of {_name(gone)} (its hidden copy removed)")
        if new is not None:
            target = here / _name(new)
            with locked(target):
                if _there(new) and old is not None and _there(old) and not _there(target):
                    os.rename(new, target)
                    remove(old)
                    said.append(f"completed the describe of {_name(old)}: now {target.name}")
                elif _there(new):
                    remove(new)
                    said.append(f"rolled back an interrupted change of {target.name} "
                                "(its unfinished replacement removed)")
        if old is not None:
            name = _name(old)
            stem = Path(name).stem
            with locked(here / name, here / stem):
                if not _there(old):
                    continue
                if _there(here / name) or (stem != name and _there(here / stem)):
                    remove(old)
                    said.append(f"completed the describe of {name} (its replaced copy removed)")
                else:
                    os.rename(old, here / name)
                    said.append(f"rolled back an interrupted change of {name} (put back as it was)")


def _there(p: Path) -> bool:
    return p.exists() or p.is_symlink()


def _name(hidden_path: Path) -> str:
    return HIDDEN.match(hidden_path.name).group(3)


def _recover_tasks(folder: Path, said: list[str]) -> None:
    if not folder.is_dir():
        return
    import json

    wanted, sure = set(), True
    for reg in folder.glob("*.json"):
        try:
            spec = json.loads(reg.read_text(encoding="utf-8"))
            wanted.add(spec.get("data") if isinstance(spec, dict) else None)
        except (OSError, ValueError):
            sure = False  # an unreadable registration: keep every data folder (nothing is guessed)
    for p in folder.iterdir():
        if p.is_dir() and p.name.startswith(".") and p.name.endswith(".tmp"):
            remove(p)
            said.append(f"removed an interrupted task write ({p.name})")
        elif sure and p.is_dir() and re.fullmatch(r".+-[0-9a-f]{16}", p.name) and p.name not in wanted:
            remove(p)
            said.append(f"removed task data no registration uses ({p.name})")


def recover() -> list[str]:
    """Complete or roll back what interrupted operations left under ATLAS_HOME; one line per action."""
    said: list[str] = []
    home = atlas_home()
    if not home.is_dir():
        return said
    for p in home.iterdir():  # prompt-upload staging sits beside the library folder
        if p.name.startswith(UPLOAD_PREFIX) and not busy(p):
            remove(p)
            said.append(f"removed the staging of an interrupted upload ({p.name})")
    if staging_dir().is_dir():
        for p in staging_dir().iterdir():
            if busy(p):
                continue
            remove(p)
            said.append(f"removed a task upload's staging ({p.name})")
    lib = user_library_dir()
    if lib.is_dir():
        _recover_folder(lib, said)
    _recover_tasks(home / "tasks", said)  # core.tasks.registry.user_tasks_dir (not imported: one-way arrows)
    for line in said:
        log.warning("recovery: %s", line)
    return said
