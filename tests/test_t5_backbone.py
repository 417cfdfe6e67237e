"""Issue 26 stage (b): T5-family encoder-decoders through the forward-only paths.

The prompt goes in front of the encoder input; features are the encoder's, pooled like any encoder's;
ON reads the FFN of a T5 block (v1.1's gated block: the gate's activation); the ranking (zs, ncc)
runs on released thunlp T5 prompts and on a SPoT-style [100, 768] prompt. Backbones are tiny random
T5s built from a T5Config at test time, with the bundled MiniLM's tokenizer (nothing is downloaded).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers

from core.backbone import load_backbone, resolve_model_path


def tiny_t5(folder: Path, d_model: int = 64, gated: bool = False, layers: int = 2) -> Path:
    """A random T5 (v1.0: ReLU FFN; ``gated``: v1.1 / Flan-T5's gated-GELU FFN) saved with MiniLM's tokenizer."""
    torch.manual_seed(0)
    cfg = transformers.T5Config(vocab_size=30522, d_model=d_model, d_kv=16, d_ff=96, num_layers=layers,
                                num_decoder_layers=1, num_heads=4,
                                feed_forward_proj="gated-gelu" if gated else "relu")
    transformers.T5ForConditionalGeneration(cfg).save_pretrained(folder)
    src = Path(resolve_model_path(None))
    for f in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        shutil.copy(src / f, folder / f)
    return folder


@pytest.fixture(scope="module")
def t5_v11(tmp_path_factory) -> Path:
    return tiny_t5(tmp_path_factory.mktemp("t5v11"), gated=True)


def test_t5_prompt_goes_in_front_of_the_encoder_input(tmp_path):
    bb = load_backbone(str(tiny_t5(tmp_path / "t5")), "cpu")
    assert bb.kind == "encoder" and bb.model_type == "t5" and bb.dim == 64 and bb.n_layers == 2
    b = bb.tokenize(["a short text", "a somewhat longer text with padding"])
    P = torch.randn(5, 64)
    got = bb.encode(b["input_ids"], b["attention_mask"], P)
    # the same computation written out: T5's encoder on [prompt; word embeddings], mean over text positions
    enc = transformers.T5EncoderModel.from_pretrained(bb.path).eval()
    emb = enc.get_input_embeddings()(b["input_ids"])
    x = torch.cat([P.unsqueeze(0).expand(2, -1, -1), emb], 1)
    mask = torch.cat([torch.ones(2, 5, dtype=torch.long), b["attention_mask"]], 1)
    with torch.no_grad():
        h = enc(inputs_embeds=x, attention_mask=mask).last_hidden_state
    m = b["attention_mask"].unsqueeze(-1).float()
    want = (h[:, 5:] * m).sum(1) / m.sum(1)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(got, bb.encode(b["input_ids"], b["attention_mask"], None), atol=1e-4)


def test_on_reads_the_gate_activation_of_a_gated_v11_block(t5_v11):
    bb = load_backbone(str(t5_v11), "cpu")
    ffn = bb.model.encoder.block[0].layer[1].DenseReluDense
    assert type(ffn).__name__ == "T5DenseGatedActDense"
    P = torch.randn(6, 64)
    acts = bb.ffn_activations(P)  # [layers, d_ff] at position 0 (the mask slot, thunlp's set-up)
    assert acts.shape == (2, 96)
    # direct: gelu(wi_0 x) of block 0's FFN input at position 0
    seen = {}
    hook = ffn.wi_0.register_forward_hook(lambda m, i, o: seen.setdefault("gate", o))
    try:
        bb.ffn_activations(P)
    finally:
        hook.remove()
    want = ffn.act(seen["gate"])[0, 0].float()
    torch.testing.assert_close(acts[0], want, rtol=1e-5, atol=1e-6)
    # not the product with the linear branch (whose sign no nonlinearity decides)
    from core.metrics import compute_matrix
    names = {f"p{i}": torch.randn(6, 64) for i in range(3)}
    on = compute_matrix("on", names, backbone=bb, cache=False)
    assert on.shape == (3, 3) and np.allclose(np.diag(on.values), 1.0) and np.isfinite(on.values).all()


def test_released_thunlp_t5_prompts_are_ranked_for_a_demo_target(tmp_path, real_prompts_dir):
    from core.library import index_library
    from core.ranking import RankSettings, rank_sources
    bb = load_backbone(str(tiny_t5(tmp_path / "t5small", d_model=512, layers=1)), "cpu")
    index = index_library(real_prompts_dir)
    r = rank_sources("sent_movie", index=index, group="t5-small", bb=bb, use_cache=False,
                     settings=RankSettings(max_examples=16, max_length=32))
    assert len(r.table) == 17 and r.group == "t5-small"
    assert np.isfinite(r.table["zs"]).all() and np.isfinite(r.table["ncc"]).all()
    assert r.table["accuracy"].between(0, 1).all()


def test_spot_style_prompt_ranked_on_a_width_768_t5(tmp_path):
    from core.library import index_library
    from core.prompts import SoftPrompt, write_prompt
    from core.ranking import RankSettings, rank_sources
    rng = np.random.default_rng(0)
    for i, task in enumerate(("mnli", "squad", "record")):  # SPoT's released prompts are [100, 768] on T5-base
        write_prompt(SoftPrompt(tensor=rng.normal(0, 0.5, size=(100, 768)).astype(np.float32), name=task, task=task,
                                backbone="t5-base"), tmp_path / "spot" / task)
    bb = load_backbone(str(tiny_t5(tmp_path / "t5base", d_model=768, layers=1)), "cpu")
    r = rank_sources("spam_sms", index=index_library(tmp_path / "spot"), bb=bb, use_cache=False,
                     settings=RankSettings(max_examples=16, max_length=32))
    assert sorted(r.table["source"]) == ["mnli", "record", "squad"] and r.backbone == "t5-base"
    assert np.isfinite(r.table[["zs", "ncc"]].to_numpy()).all()


def test_t5_loads_from_the_local_hf_cache(tmp_path, monkeypatch):
    import huggingface_hub.constants as hc
    from test_published_prompts import _as_hf_cache
    snap = _as_hf_cache(tiny_t5(tmp_path / "src"), tmp_path / "hub", "acme/tiny-flan-t5")
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path / "hub"))
    bb = load_backbone("acme/tiny-flan-t5", "cpu")
    assert bb.model_type == "t5" and Path(bb.path).resolve() == snap.resolve()


def test_other_encoder_decoders_are_refused_by_name(tmp_path):
    from core.backbone import BackboneError
    cfg = transformers.BartConfig(vocab_size=100, d_model=16, encoder_layers=1, decoder_layers=1,
                                  encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32,
                                  decoder_ffn_dim=32, max_position_embeddings=64)
    transformers.BartModel(cfg).save_pretrained(tmp_path / "bart")
    with pytest.raises(BackboneError, match="T5 family only"):
        load_backbone(str(tmp_path / "bart"), "cpu")


def test_zs_matrix_on_a_t5(tmp_path, t5_v11):
    from core.metrics import compute_matrix
    from core.prompts import SoftPrompt
    bb = load_backbone(str(t5_v11), "cpu")
    g = torch.Generator().manual_seed(1)
    prompts = [SoftPrompt(tensor=torch.randn(4, 64, generator=g), name=f"{t}-p", task=t, backbone="tiny-t5")
               for t in ("sent_movie", "spam_sms")]
    z = compute_matrix("zs", prompts, backbone=bb, cache=False, max_examples=12, use_cache=False)
    assert z.shape == (2, 2) and np.isfinite(z.values).all() and (np.abs(z.values) <= 1).all()


def test_seq2seq_adapter_decoder_half_is_no_source(tmp_path, t5_v11):
    """A PEFT SEQ_2_SEQ_LM adapter gives name/encoder and name/decoder; the ranking reads the encoder, so only
    the encoder half is ranked (the decoder half is listed as skipped, with the reason)."""
    import json
    from safetensors.numpy import save_file
    from core.library import index_library
    from core.ranking import RankSettings, rank_sources
    a = tmp_path / "lib" / "t5_prompt_adapter"
    a.mkdir(parents=True)
    save_file({"prompt_embeddings": np.random.default_rng(0).normal(size=(8, 64)).astype(np.float32)},
              str(a / "adapter_model.safetensors"))
    (a / "adapter_config.json").write_text(json.dumps({
        "peft_type": "PROMPT_TUNING", "task_type": "SEQ_2_SEQ_LM", "num_virtual_tokens": 4,
        "num_transformer_submodules": 2, "token_dim": 64, "base_model_name_or_path": "tiny-t5"}))
    bb = load_backbone(str(t5_v11), "cpu")
    r = rank_sources("spam_sms", index=index_library(tmp_path / "lib"), bb=bb, use_cache=False,
                     settings=RankSettings(max_examples=8, max_length=16))
    assert list(r.table["source"]) == ["t5_prompt_adapter/encoder"]
    assert "decoder half" in r.skipped["t5_prompt_adapter/decoder"]
