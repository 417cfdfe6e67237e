"""Atomic file writes and content hashes: one of each, used by every module that stores files.

    python -c "from core.fsutil import json_hash; print(json_hash({'a': 1}))"

A reader never sees a half-written file: every write goes to a temp file in the
destination's folder (same filesystem) and is renamed into place with os.replace;
a failed or interrupted write removes its temp file and leaves the old file as it was.

The hashes are cache keys of stored artifacts (the demo's precomputed matrices and
maps, the metric/projection/ranking caches): their exact bytes must not change, or
stored artifacts stop matching. tests/test_fsutil.py pins them.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Iterable, Iterator

import numpy as np


# --------------------------------------------------------------------------- atomic writes
@contextlib.contextmanager
def atomic_open(path: Path | str, mode: str = "wb") -> Iterator[IO]:
    """Open a temp file beside ``path`` for writing; on a clean exit it replaces ``path``.

    mode "w" (text: utf-8, "\\n" line ends) or "wb". Parent folders are created.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open: mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        text = {"encoding": "utf-8", "newline": "\n"} if mode == "w" else {}
        with os.fdopen(fd, mode, **text) as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path | str, text: str) -> Path:
    """Write ``text`` (utf-8) to ``path`` atomically."""
    with atomic_open(path, "w") as f:
        f.write(text)
    return Path(path)


def atomic_write_bytes(path: Path | str, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path, "wb") as f:
        f.write(data)
    return Path(path)


def atomic_write_json(path: Path | str, obj: Any, **dumps_kw) -> Path:
    """json.dumps(obj, **dumps_kw) to ``path`` atomically (no trailing newline unless indent is given)."""
    text = json.dumps(obj, **dumps_kw)
    return atomic_write_text(path, text + "\n" if dumps_kw.get("indent") is not None else text)


def atomic_save_npy(path: Path | str, values: np.ndarray) -> Path:
    """np.save(values, allow_pickle=False) to ``path`` atomically."""
    with atomic_open(path, "wb") as f:
        np.save(f, values, allow_pickle=False)
    return Path(path)


def load_cached_npy(path: Path, shape: tuple[int, ...]) -> np.ndarray | None:
    """A cached array of exactly this shape, or None (missing, broken or stale file)."""
    try:
        a = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    return a.astype(float, copy=False) if a.shape == shape else None


# --------------------------------------------------------------------------- cache size caps
CACHE_MAX_MB = 256.0   # per cache folder (metrics, projections); ATLAS_CACHE_MAX_MB overrides


def cache_cap_bytes() -> int:
    """ATLAS_CACHE_MAX_MB (a positive number of MiB) as bytes; a bad value raises ValueError naming it."""
    raw = (os.environ.get("ATLAS_CACHE_MAX_MB") or "").strip()
    if not raw:
        return int(CACHE_MAX_MB * 2**20)
    try:
        mb = float(raw)
        if not (mb > 0 and mb < 1e9):
            raise ValueError
    except ValueError:
        raise ValueError(f"ATLAS_CACHE_MAX_MB={raw!r}: a positive number of MiB, e.g. 256") from None
    return int(mb * 2**20)


def touch(path: Path | str) -> None:
    """Mark a cache file used now (its mtime is its last use: atime is often off on servers)."""
    try:
        os.utime(path)
    except OSError:
        pass


def trim_lru(folder: Path | str, max_bytes: int, pattern: str = "*.npy", keep: Path | str | None = None) -> list[Path]:
    """Delete the least recently used files (oldest mtime first; see :func:`touch`) matching ``pattern``
    in ``folder`` until they total at most ``max_bytes``; ``keep`` (the file just written) is never
    deleted. -> the files deleted. A file another process removed first is skipped."""
    folder = Path(folder)
    files = []
    for p in folder.glob(pattern):
        try:
            st = p.stat()
        except OSError:
            continue
        if p.is_file():
            files.append((st.st_mtime_ns, st.st_size, p))
    total = sum(f[1] for f in files)
    gone = []
    keep = Path(keep) if keep is not None else None
    for _mtime, size, p in sorted(files, key=lambda f: (f[0], str(f[2]))):
        if total <= max_bytes:
            break
        if keep is not None and p == keep:
            continue
        try:
            p.unlink()
        except FileNotFoundError:
            pass
        except OSError:
            continue
        total -= size
        gone.append(p)
    return gone


# --------------------------------------------------------------------------- content hashes
def json_hash(obj: Any, n: int = 16) -> str:
    """First ``n`` hex digits of sha256 over json.dumps(obj, sort_keys=True, default=str).

    sort_keys only reorders dict keys and default=str only applies to what json cannot
    encode, so a list of plain values hashes exactly as json.dumps(obj) did before.
    """
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:n]


def array_hash(values: np.ndarray, dtype_tag: str = "torch.float32", n: int = 16) -> str:
    """First ``n`` hex digits of sha256 over (tag, shape, C-order bytes) of an array.

    The tag is what else the key covers, hashed first: "torch.float32" for prompts (the name
    kept from when prompts were tensors, so stored hashes stay valid), str(t.dtype) for a
    tensor, the point names joined by "\\x1f" for a projection's points (core.projection).
    """
    h = hashlib.sha256()
    h.update(dtype_tag.encode())
    h.update(str(tuple(values.shape)).encode())
    h.update(np.ascontiguousarray(values).tobytes())
    return h.hexdigest()[:n]


def lines_hash(lines: Iterable[str], n: int = 16) -> str:
    """First ``n`` hex digits of sha256 over the utf-8 bytes of ``lines``, in order (each line
    carries its own separator): a key over many records without joining them in memory."""
    h = hashlib.sha256()
    for line in lines:
        h.update(line.encode("utf-8"))
    return h.hexdigest()[:n]


def file_sha256(path: Path | str) -> str:
    """Full sha256 hex of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
