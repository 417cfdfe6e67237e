"""ATTEMPT's released output folders opened as one model (core.prompts.attempt_dir, issue 27).

    .venv/bin/python -m pytest -q tests/test_attempt_released.py
"""
from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from core.prompts.attempt_dir import open_released
from core.prompts.types import PromptError
from core.training.attempt import mixer_from_released
from core.training.config import TrainError

ROOT = Path(__file__).resolve().parents[1]
L, D, R = 6, 32, 8


def _attempt_dir(folder: Path, sources=("sst2", "mnli"), bias=True) -> Path:
    """What ATTEMPT's save_prompts writes (one torch.save per parameter), plus its source files."""
    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(0)
    torch.save(nn.Parameter(torch.randn(L, D, generator=g)), folder / "prefix_embeddings.pt")
    torch.save(torch.randn(R, D, generator=g), folder / "attn_W_down.pt")
    torch.save(torch.randn(D, R, generator=g), folder / "attn_W_up.pt")
    torch.save(torch.randn(D, D, generator=g), folder / "attn_Wa_weights.pt")
    torch.save(torch.rand(D, generator=g) + 0.5, folder / "layer_norm_weight.pt")
    if bias:
        torch.save(torch.randn(D, generator=g) * 0.1, folder / "layer_norm_bias.pt")
    for s in sources:
        torch.save(torch.randn(L, D, generator=g), folder / f"{s}.pt")
    return folder


def test_sources_beside_it_are_named_and_the_mixture_is_atttempts(tmp_path):
    d = _attempt_dir(tmp_path / "out")
    rel = open_released(d)
    assert list(rel.sources) == ["mnli", "sst2"] and rel.missing == "" and rel.attn_dim == R
    assert "sources: mnli, sst2" in rel.describe()
    m = mixer_from_released(rel)
    x = torch.randn(3, 5, D)
    mask = torch.ones(3, 5)
    mask[0, 3:] = 0
    a = m.attention(x, mask, rel.target)
    assert torch.allclose(a.sum(-1), torch.ones(3), atol=1e-6)
    # ATTEMPT's "sub" attention written out from the saved tensors (padding masked out)
    w = {k: torch.load(d / f, weights_only=True) for k, f in (("down", "attn_W_down.pt"), ("up", "attn_W_up.pt"),
                                                               ("g", "layer_norm_weight.pt"), ("b", "layer_norm_bias.pt"))}
    xh = torch.stack([x[0, :3].amax(0), x[1].amax(0), x[2].amax(0)])
    h = nn.functional.layer_norm(nn.functional.silu(xh @ w["down"].T) @ w["up"].T, (D,), w["g"], w["b"])
    stack = torch.stack([torch.load(d / "mnli.pt", weights_only=True), torch.load(d / "sst2.pt", weights_only=True),
                         rel.target])
    expect = torch.softmax(h @ stack.amax(1).T / (D * math.e), -1)
    assert torch.allclose(a, expect, atol=1e-5)
    P = m(x, mask, rel.target)
    assert torch.allclose(P[1], torch.einsum("j,jld->ld", expect[1], stack) + rel.target, atol=1e-5)


def test_without_sources_or_bias_it_says_what_is_missing(tmp_path):
    rel = open_released(_attempt_dir(tmp_path / "a", sources=()))
    assert "no source prompt files" in rel.missing
    with pytest.raises(TrainError, match="no source prompt files"):
        mixer_from_released(rel)
    rel = open_released(_attempt_dir(tmp_path / "b", bias=False))
    assert rel.missing == "no layer_norm_bias.pt beside it" and "layer_norm_bias" not in rel.weights


def test_bad_weights_name_the_file(tmp_path):
    d = _attempt_dir(tmp_path / "c")
    torch.save(torch.randn(R, D + 1), d / "attn_W_down.pt")
    with pytest.raises(PromptError, match="attn_W_up.pt"):
        open_released(d)


def test_cli_inspect_says_what_the_folder_is(tmp_path):
    d = _attempt_dir(tmp_path / "out")
    r = subprocess.run([sys.executable, "-m", "core", "prompts", "inspect", str(d)], capture_output=True, text=True,
                       cwd=ROOT, timeout=120)
    assert "ATTEMPT model: target prompt 6 x 32, attention module r=8; sources: mnli, sst2" in r.stdout, r.stdout + r.stderr


def test_library_detail_opens_the_folder_as_an_attempt_model(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest
    d = _attempt_dir(tmp_path / "attempt_out")
    monkeypatch.setenv("ATLAS_DEMO", str(tmp_path / "no-demo"))
    monkeypatch.setenv("ATLAS_LIBRARY", str(d))
    at = AppTest.from_file(str(ROOT / "pages" / "library.py"), default_timeout=120).run()
    assert not at.exception, [e.value for e in at.exception]
    at.selectbox(key="library_detail").set_value("prefix_embeddings.pt").run()
    assert not at.exception, [e.value for e in at.exception]
    info = " ".join(i.value for i in at.info)
    assert "ATTEMPT model" in info and "sources: mnli, sst2" in info, info
