"""The Library detail's own-task accuracy (core.heads through pages/library.py, AppTest): a prompt whose task is
prepared and whose backbone loads gets a button; the click is priced and metered (core.budget) and shows the
accuracy that core.heads.evaluate computes; a viewer above the per-click ceiling is refused; a prompt that
does not say its task says why not.

    .venv/bin/python -m pytest -q -p no:cacheprovider tests/test_heads_page.py
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import transformers
from streamlit.testing.v1 import AppTest

from core.backbone import resolve_model_path
from core.heads import get_preset
from core.heads.evaluate import evaluate_prompt
from core.prompts import read_prompts, write_prompt
from core.prompts.types import SoftPrompt

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "library.py")


@pytest.fixture(scope="module")
def tiny_roberta(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("models") / "roberta-tiny"
    tok = transformers.AutoTokenizer.from_pretrained(resolve_model_path(None))
    transformers.RobertaForMaskedLM(transformers.RobertaConfig(
        vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=200, pad_token_id=tok.pad_token_id, type_vocab_size=1)).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def _library(tmp_path, model: Path, task: str | None) -> Path:
    lib = tmp_path / "lib"
    out = write_prompt(SoftPrompt(tensor=torch.randn(4, 32).numpy(), name="mlm-prompt"), lib / "mlm-prompt",
                       base_model=str(model))
    meta = json.loads((out / "atlas.json").read_text())
    meta.update({"backbone": str(model), "task": task,
                 "settings": {**meta.get("settings", {}), "head": get_preset("thunlp-roberta").to_dict()}})
    (out / "atlas.json").write_text(json.dumps(meta))
    return lib


def _open(monkeypatch, lib: Path) -> AppTest:
    monkeypatch.setenv("ATLAS_DEMO", str(lib.parent / "no-demo"))
    monkeypatch.setenv("ATLAS_LIBRARY", str(lib))
    at = AppTest.from_file(PAGE, default_timeout=300).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _sent_movie_ready():
    from core.tasks import TaskError, get_task
    try:
        get_task("sent_movie")
    except TaskError as e:
        pytest.skip(f"demo task sent_movie is not prepared here: {e}")


def test_own_task_accuracy_button_shows_the_heads_number(tmp_path, monkeypatch, tiny_roberta):
    _sent_movie_ready()
    lib = _library(tmp_path, tiny_roberta, "sent_movie")
    at = _open(monkeypatch, lib)
    assert any("Own-task accuracy" in m.value and "thunlp-roberta" in m.value for m in at.markdown)
    at.button(key="library_own_eval").click().run()
    assert not at.exception, [e.value for e in at.exception]
    shown = [s.value for s in at.success]
    assert shown, ([w.value for w in at.warning], [e.value for e in at.error])
    res = evaluate_prompt(read_prompts(lib / "mlm-prompt")[0], "sent_movie")
    assert f"accuracy {res.accuracy:.4f}" in shown[0] and "preset=thunlp-roberta position=first_prompt" in shown[0]
    assert f"(n={res.n})" in shown[0]
    from core import jobs as J
    rows = [r for r in J.RunStore(str(Path(__import__("os").environ["ATLAS_HOME"]) / "runs.db")).list_jobs()
            if r.get("kind") == "head_eval"]
    assert rows and rows[0]["units"] == res.n  # metered in the compute ledger, like every page computation


def test_viewer_above_the_ceiling_is_refused(tmp_path, monkeypatch, tiny_roberta):
    _sent_movie_ready()
    monkeypatch.setenv("ATLAS_MODE", "viewer")
    monkeypatch.setenv("ATLAS_VIEWER_MAX_S", "1")
    lib = _library(tmp_path, tiny_roberta, "sent_movie")
    at = _open(monkeypatch, lib)
    at.button(key="library_own_eval").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.success
    assert any("per-click limit for viewers" in w.value for w in at.warning)


def test_a_prompt_without_its_task_says_why_not(tmp_path, monkeypatch, tiny_roberta):
    at = _open(monkeypatch, _library(tmp_path, tiny_roberta, None))
    assert any("Not available here" in c.value and "does not say its task" in c.value for c in at.caption)
    with pytest.raises(KeyError):
        at.button(key="library_own_eval")
