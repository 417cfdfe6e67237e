"""Issue 26 stage (a): PEFT's MULTITASK_PROMPT_TUNING and CPT adapters read as PEFT computes them;
Hugging Face cache layouts (snapshot folders, models--org--name folders) named ``org/name``,
indexed once per adapter, added by ``library add``.

Backbones are tiny random GPT-2s built from a config (nothing is downloaded)."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from core.prompts import read_prompts

peft = pytest.importorskip("peft")
transformers = pytest.importorskip("transformers")


def _gpt2():
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(n_embd=64, n_layer=2, n_head=2, vocab_size=1000, n_positions=128)
    m = transformers.GPT2LMHeadModel(cfg)
    m.config.name_or_path = m.name_or_path = "gpt2"
    return m


@pytest.mark.parametrize("ranks", [1, 2])
def test_mpt_task_prompts_equal_pefts_get_prompt(tmp_path, ranks):
    cfg = peft.MultitaskPromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=10, num_tasks=3,
                                           num_ranks=ranks, prompt_tuning_init="RANDOM")
    model = peft.get_peft_model(_gpt2(), cfg)
    with torch.no_grad():  # factors far from PEFT's init, so that a wrong product shows
        enc = model.prompt_encoder["default"]
        enc.prefix_task_cols.normal_(0, 1.0)
        enc.prefix_task_rows.normal_(0, 1.0)
    model.save_pretrained(str(tmp_path / "mpt"))
    prompts = {p.name: p for p in read_prompts(tmp_path / "mpt")}
    assert sorted(prompts) == ["mpt/shared", "mpt/task0", "mpt/task1", "mpt/task2"]
    assert prompts["mpt/task1"].method == "mpt" and prompts["mpt/task1"].settings["mpt_task_id"] == 1
    loaded = peft.PeftModel.from_pretrained(_gpt2(), str(tmp_path / "mpt"))
    for t in range(3):
        want_trained = model.get_prompt(batch_size=1, task_ids=torch.tensor([t]))[0].detach().numpy()
        want_loaded = loaded.get_prompt(batch_size=1, task_ids=torch.tensor([t]))[0].detach().numpy()
        got = prompts[f"mpt/task{t}"].values
        assert got.shape == (10, 64)
        if ranks == 1:  # one product per element: PEFT's numbers to the bit
            assert np.array_equal(got, want_loaded) and np.array_equal(got, want_trained)
        else:
            np.testing.assert_allclose(got, want_loaded, rtol=1e-5, atol=1e-7)
    # the shared prompt is PEFT's embedding table, without any task's factors
    np.testing.assert_array_equal(prompts["mpt/shared"].values,
                                  loaded.prompt_encoder["default"].embedding.weight.detach().numpy())
    assert not np.allclose(prompts["mpt/task0"].values, prompts["mpt/task1"].values)


def test_mpt_seq2seq_tasks_split_into_encoder_and_decoder(tmp_path):
    from safetensors.numpy import save_file
    import json
    rng = np.random.default_rng(0)
    L, d = 4, 8
    shared = rng.normal(size=(2 * L, d)).astype(np.float32)
    cols, rows = rng.normal(size=(2, 2 * L, 1)).astype(np.float32), rng.normal(size=(2, 1, d)).astype(np.float32)
    (tmp_path / "a").mkdir()
    save_file({"prompt_embeddings": shared, "prefix_task_cols": cols, "prefix_task_rows": rows},
              str(tmp_path / "a" / "adapter_model.safetensors"))
    (tmp_path / "a" / "adapter_config.json").write_text(json.dumps({
        "peft_type": "MULTITASK_PROMPT_TUNING", "task_type": "SEQ_2_SEQ_LM", "num_virtual_tokens": L,
        "num_transformer_submodules": 2, "token_dim": d, "num_tasks": 2, "base_model_name_or_path": "tiny-t5"}))
    got = {p.name: p.values for p in read_prompts(tmp_path / "a")}
    assert "a/task1/decoder" in got and "a/shared/encoder" in got and len(got) == 6
    np.testing.assert_array_equal(got["a/task1/decoder"], (shared * (cols[1] @ rows[1]))[L:])


def test_mpt_with_mismatched_factors_is_one_clear_error(tmp_path):
    from safetensors.numpy import save_file
    import json
    from core.prompts import PromptError
    (tmp_path / "a").mkdir()
    save_file({"prompt_embeddings": np.zeros((4, 8), np.float32), "prefix_task_cols": np.zeros((2, 5, 1), np.float32),
               "prefix_task_rows": np.zeros((2, 1, 8), np.float32)}, str(tmp_path / "a" / "adapter_model.safetensors"))
    (tmp_path / "a" / "adapter_config.json").write_text(json.dumps({
        "peft_type": "MULTITASK_PROMPT_TUNING", "task_type": "CAUSAL_LM", "num_virtual_tokens": 4, "token_dim": 8}))
    with pytest.raises(PromptError, match="prefix_task_cols"):
        read_prompts(tmp_path / "a")


def test_cpt_prompt_equals_pefts_get_prompt(tmp_path):
    cfg = peft.CPTConfig(task_type="CAUSAL_LM", cpt_token_ids=list(range(10)), cpt_mask=[1] * 10,
                         cpt_tokens_type_mask=[1, 1, 1, 2, 2, 2, 3, 3, 4, 4])
    model = peft.get_peft_model(_gpt2(), cfg)
    with torch.no_grad():  # as after training: a delta that PEFT's projection clips
        model.prompt_encoder["default"].delta_embedding.weight.normal_(0, 1.0)
    want = model.get_prompt(batch_size=1)[0].detach().numpy()
    model.save_pretrained(str(tmp_path / "cpt"))
    (p,) = read_prompts(tmp_path / "cpt")
    assert p.method == "cpt" and p.backbone == "gpt2" and p.values.shape == (10, 64)
    np.testing.assert_allclose(p.values, want, rtol=0, atol=1e-6)
    loaded = peft.PeftModel.from_pretrained(_gpt2(), str(tmp_path / "cpt"))
    np.testing.assert_array_equal(p.values, loaded.get_prompt(batch_size=1)[0].detach().numpy())
    # the token embeddings alone (no delta) would be a different prompt: the test can fail
    assert not np.allclose(p.values, model.prompt_encoder["default"].embedding.weight.detach().numpy())


# --------------------------------------------------------------------------- Hugging Face cache layouts

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _as_hf_cache(src: Path, cache: Path, repo_id: str, commit: str = COMMIT) -> Path:
    """Lay ``src``'s files out as huggingface_hub's cache does: blobs named by their sha256, a snapshot
    folder of relative links into blobs/, refs/main naming the commit. Returns the snapshot folder."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snap = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    snap.mkdir(parents=True)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    for f in sorted(src.rglob("*")):
        if f.is_file():
            data = f.read_bytes()
            blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
            blob.write_bytes(data)
            link = snap / f.relative_to(src)
            link.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(os.path.relpath(blob, link.parent), link)
    return snap


def _peft_adapter(folder: Path, base: str = "bigscience/bloom-560m") -> Path:
    from core.prompts import SoftPrompt, write_prompt
    rng = np.random.default_rng(1)
    return write_prompt(SoftPrompt(tensor=rng.normal(size=(8, 64)).astype(np.float32), name="x",
                                   backbone=base), folder)


def test_cache_paths_name_the_hub_model_not_the_commit():
    from core.prompts import model_name, portable_model_name
    snap = f"/root/.cache/huggingface/hub/models--google--flan-t5-base/snapshots/{COMMIT}"
    assert portable_model_name(snap) == "google/flan-t5-base"
    assert portable_model_name("/root/.cache/huggingface/hub/models--google--flan-t5-base") == "google/flan-t5-base"
    assert model_name(snap) == "google/flan-t5-base"
    assert portable_model_name("/some/where/my-model") == "my-model"  # other folders as before


def test_a_cache_snapshot_backbone_names_its_prompts_org_name(tmp_path):
    """A backbone given as a snapshot folder (or its models--org--name folder) loads, and a prompt
    written for it records ``org/name``: it joins the same group as the model's other prompts."""
    import shutil
    from core.backbone import load_backbone, resolve_model_path
    from core.library import index_library
    from core.prompts import SoftPrompt, write_prompt
    model = tmp_path / "model"
    cfg = transformers.BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                  intermediate_size=64, vocab_size=30522, max_position_embeddings=64)
    transformers.AutoModel.from_config(cfg).save_pretrained(model)
    src = Path(resolve_model_path(None))
    for f in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        shutil.copy(src / f, model / f)
    snap = _as_hf_cache(model, tmp_path / "hub", "acme/tiny-bert")
    for given in (snap, snap.parent.parent):  # the snapshot, and the models--acme--tiny-bert folder
        bb = load_backbone(str(given), "cpu")
        assert bb.dim == 32 and Path(bb.path).resolve() == snap.resolve()
    lib = tmp_path / "lib"
    write_prompt(SoftPrompt(tensor=np.ones((4, 32), np.float32), name="a", backbone=bb.name), lib / "a")
    write_prompt(SoftPrompt(tensor=np.zeros((4, 32), np.float32), name="b", backbone="acme/tiny-bert"), lib / "b")
    index = index_library(lib)
    assert index.prompts["a"].backbone == "acme/tiny-bert"
    assert list(index.groups()) == ["acme/tiny-bert"], index.groups()
    assert COMMIT not in (lib / "a" / "adapter_config.json").read_text()


def test_a_cache_folder_is_indexed_once_per_adapter(tmp_path):
    from core.library import index_library
    snap = _as_hf_cache(_peft_adapter(tmp_path / "src" / "adapter"), tmp_path / "hub",
                        "someone/bloom-560m_PROMPT_TUNING_CAUSAL_LM")
    # an older commit of the same adapter, no longer served by refs/main: not a second prompt
    old = snap.parent / ("f" * 40)
    old.mkdir()
    for f in snap.iterdir():
        os.symlink(os.readlink(f), old / f.name)
    for root in (tmp_path / "hub", snap.parent.parent, snap):
        index = index_library(root)
        assert not index.problems, [str(e) for e in index.problems]  # blobs, refs: not problems
        assert list(index.prompts) == ["someone/bloom-560m_PROMPT_TUNING_CAUSAL_LM"], (root, list(index.prompts))
        assert index.prompts["someone/bloom-560m_PROMPT_TUNING_CAUSAL_LM"].backbone == "bigscience/bloom-560m"


def test_library_add_takes_a_snapshot_folder(tmp_path, capsys):
    from core.library import cli
    snap = _as_hf_cache(_peft_adapter(tmp_path / "src" / "adapter"), tmp_path / "hub", "someone/my-prompt")
    dest = tmp_path / "lib"
    assert cli("library", ["add", str(snap), "--dest", str(dest)]) == 0, capsys.readouterr().err
    assert (dest / "my-prompt" / "adapter_model.safetensors").is_file()
    assert not (dest / "my-prompt" / "adapter_model.safetensors").is_symlink()  # the bytes, not a link
    assert cli("library", ["add", str(snap.parent.parent), "--dest", str(tmp_path / "lib2")]) == 0
    assert (tmp_path / "lib2" / "my-prompt" / "adapter_config.json").is_file()
