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
