"""Shared fixtures. Every test runs offline with its own ATLAS_HOME."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

# shared/ beside the repository (main), or beside the worktrees' folder (a worktree in <repo>/../wt/<name>)
REAL_PROMPTS = next((p for p in (base / "shared" / "real-prompts" / "thunlp-prompt-transferability" / "task_prompt_emb"
                                 for base in (REPO.parent, REPO.parent.parent)) if p.is_dir()),
                    REPO.parent / "shared" / "real-prompts" / "thunlp-prompt-transferability" / "task_prompt_emb")


@pytest.fixture(autouse=True)
def atlas_home(tmp_path_factory, monkeypatch):
    """An isolated, empty ATLAS_HOME per test (the demo library stays read-only)."""
    home = tmp_path_factory.mktemp("atlas_home")
    monkeypatch.setenv("ATLAS_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def real_prompts_dir() -> Path:
    """thunlp's 46 published prompts (../shared/real-prompts)."""
    if not REAL_PROMPTS.is_dir():
        pytest.skip(f"real prompts not found at {REAL_PROMPTS} (shared/ missing beside the repo)")
    return REAL_PROMPTS


@pytest.fixture(autouse=True)
def _restore_main_module():
    """AppTest runs a page as ``__main__`` and leaves it in ``sys.modules``; a process pool started
    later with "spawn" (core.demo's workers) would re-import that page in its children, which then
    die (BrokenProcessPool). Put the real ``__main__`` back after every test."""
    main = sys.modules.get("__main__")
    yield
    if main is not None and sys.modules.get("__main__") is not main:
        sys.modules["__main__"] = main
