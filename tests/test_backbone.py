"""core.backbone: offline resolution, prompt injection, pooling, FFN activations.

    .venv/bin/python -m pytest -q tests/test_backbone.py
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from core.backbone import (DEFAULT_BACKBONE, BackboneError, load_backbone, resolve_device,
                           resolve_model_path)


@pytest.fixture(scope="module")
def bb():
    return load_backbone(DEFAULT_BACKBONE, "cpu")


def test_default_and_alias_resolve_to_bundled_minilm():
    p = resolve_model_path(None)
    assert (Path(p) / "config.json").is_file()
    assert resolve_model_path("all-MiniLM-L6-v2") == p == resolve_model_path(DEFAULT_BACKBONE)
    assert resolve_model_path(p) == str(Path(p).resolve())  # a local folder works as is


def test_unknown_model_offline_is_a_clear_error():
    with pytest.raises(BackboneError) as e:
        resolve_model_path("nobody-has/this-model-xyz")
    msg = str(e.value)
    assert "'nobody-has/this-model-xyz' is not available offline" in msg
    assert "pass a local folder" in msg
    assert "Traceback" not in msg and e.value.__cause__ is None  # no hub traceback chained


def test_bad_local_paths(tmp_path):
    f = tmp_path / "weights.bin"
    f.write_bytes(b"x")
    with pytest.raises(BackboneError, match="must be a folder"):
        resolve_model_path(str(f))
    with pytest.raises(BackboneError, match="no config.json"):
        resolve_model_path(str(tmp_path))


def test_device_resolution(monkeypatch):
    monkeypatch.setenv("ATLAS_DEVICE", "cpu")
    assert resolve_device("auto").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(BackboneError, match="CUDA is not available"):
            resolve_device("cuda")


def test_frozen_eval_fp32_on_cpu_and_cached(bb):
    assert bb.dim == 384 and bb.n_layers == 6 and bb.kind == "encoder"
    assert not bb.model.training
    assert not any(p.requires_grad for p in bb.model.parameters())
    assert bb.dtype == torch.float32 and next(bb.model.parameters()).dtype == torch.float32
    assert load_backbone("all-MiniLM-L6-v2", "cpu") is bb


def test_prompt_prepend_extends_mask_and_shapes(bb):
    b = bb.tokenize(["a short one", "a rather longer sentence with more words in it"])
    B, T = b["input_ids"].shape
    L = 7
    p = torch.randn(L, bb.dim) * 0.1
    h, mask = bb.hidden(b["input_ids"], b["attention_mask"], p)
    assert h.shape == (B, L + T, bb.dim) and mask.shape == (B, L + T)
    assert mask[:, :L].eq(1).all() and torch.equal(mask[:, L:], b["attention_mask"])
    z = bb.encode(b["input_ids"], b["attention_mask"], p)
    assert z.shape == (B, bb.dim) and z.dtype == torch.float32
    # a per-example prompt [B, L, d] with identical rows gives the same result
    z2 = bb.encode(b["input_ids"], b["attention_mask"], p.expand(B, -1, -1))
    assert torch.allclose(z, z2, atol=1e-5)
    # the prompt changes the text representation (it acts through attention)
    z0 = bb.encode(b["input_ids"], b["attention_mask"])
    assert not torch.allclose(z, z0, atol=1e-3)
    # pooling over all positions differs from text-only pooling when a prompt is present
    za = bb.encode(b["input_ids"], b["attention_mask"], p, pool="all")
    assert not torch.allclose(z, za, atol=1e-3)
    # and equals it without a prompt
    assert torch.allclose(z0, bb.encode(b["input_ids"], b["attention_mask"], pool="all"), atol=1e-6)


def test_padding_does_not_change_the_pooled_text(bb):
    one = bb.tokenize(["short text"])
    two = bb.tokenize(["short text", "a much much longer text that forces padding on the first one"])
    p = torch.randn(5, bb.dim) * 0.1
    z1 = bb.encode(one["input_ids"], one["attention_mask"], p)
    z2 = bb.encode(two["input_ids"], two["attention_mask"], p)
    assert torch.allclose(z1[0], z2[0], atol=1e-4)


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
def test_ready_4d_mask_matches_the_2d_path(bb, impl):
    """The CUDA path hands the model a 4-D mask (no host sync in transformers' mask code);
    forced on here, it must give what the 2-D mask gives, with and without padding."""
    assert bb.mask4d is False  # CPU keeps the 2-D path
    b = bb.tokenize(["short text", "a much longer text that forces padding on the first one"])
    p = torch.randn(5, bb.dim) * 0.1
    old = bb.model.config._attn_implementation
    try:
        bb.model.config._attn_implementation = impl
        want = bb.encode(b["input_ids"], b["attention_mask"], p)
        want1 = bb.encode(b["input_ids"][1:], b["attention_mask"][1:], p)  # no padding at all
        bb.mask4d = True
        m = bb.model_mask(torch.tensor([[1, 1, 0]]), torch.float32)
        assert m.shape == (1, 1, 1, 3) and (m.dtype == torch.bool) == (impl == "sdpa")
        got = bb.encode(b["input_ids"], b["attention_mask"], p)
        got1 = bb.encode(b["input_ids"][1:], b["attention_mask"][1:], p)
    finally:
        bb.mask4d = False
        bb.model.config._attn_implementation = old
    assert torch.allclose(got, want, atol=1e-5) and torch.allclose(got1, want1, atol=1e-5)


def test_gradient_reaches_the_prompt_only(bb):
    b = bb.tokenize(["gradients flow into the prompt"])
    p = torch.zeros(4, bb.dim, requires_grad=True)
    bb.encode(b["input_ids"], b["attention_mask"], p).pow(2).sum().backward()
    assert p.grad is not None and p.grad.abs().sum() > 0
    assert all(q.grad is None for q in bb.model.parameters())


def test_wrong_prompt_dim_is_a_clear_error(bb):
    b = bb.tokenize(["x"])
    with pytest.raises(BackboneError, match=r"expected \[L, 384\]"):
        bb.encode(b["input_ids"], b["attention_mask"], torch.zeros(3, 768))


def test_embed_texts_keeps_order(bb):
    texts = ["a much longer sentence comes first here", "short"]
    e = bb.embed_texts(texts, batch_size=1)
    assert e.shape == (2, bb.dim)
    assert torch.allclose(e[1], bb.embed_texts(["short"])[0], atol=1e-5)


def test_ffn_activations_shapes_and_mask_slot(bb):
    g = torch.Generator().manual_seed(0)
    p = torch.randn(10, bb.dim, generator=g) * 0.5
    a = bb.ffn_activations(p)
    d_ff = bb.model.config.intermediate_size
    assert a.shape == (6, d_ff) and a.dtype == torch.float32
    assert bb.ffn_activations(torch.stack([p, p])).shape == (2, 6, d_ff)
    # slot 0 holds the mask token: prompt token 0 does not matter, token 1 does
    q = p.clone()
    q[0] += 1.0
    assert torch.allclose(bb.ffn_activations(q), a, atol=1e-5)
    q = p.clone()
    q[1:] = torch.randn(9, bb.dim, generator=g) * 2
    assert (bb.ffn_activations(q) - a).abs().max() > 1e-2
    # on real inputs: one row per text, GELU output (some negatives, mostly small)
    b = bb.tokenize(["one text", "another text"])
    ap = bb.ffn_activations(p, b["input_ids"], b["attention_mask"], position="text_mean")
    assert ap.shape == (2, 6, d_ff)
    assert (a > 0).float().mean() < 0.9


@pytest.mark.parametrize("arch", ["roberta", "mpnet", "deberta-v2", "gpt2"])
def test_other_architectures_tiny_random(arch, tmp_path):
    """Any HF encoder (mean pooling) or decoder-only model (last-token pooling) from a local folder.

    Tiny random-weight models with MiniLM's tokenizer files: offline, fast, and they run the
    same prompt-injection and FFN-hook code paths as the real models.
    """
    import shutil
    import transformers
    src = Path(resolve_model_path(None))
    small = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                 vocab_size=30522, max_position_embeddings=128)
    if arch == "gpt2":
        cfg = transformers.GPT2Config(n_embd=32, n_layer=2, n_head=2, n_inner=64, vocab_size=30522, n_positions=128)
    else:
        cfg = transformers.AutoConfig.for_model(arch, **small)
    transformers.AutoModel.from_config(cfg).save_pretrained(tmp_path)
    for f in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        shutil.copy(src / f, tmp_path / f)
    m = load_backbone(str(tmp_path), "cpu")
    assert m.kind == ("decoder" if arch == "gpt2" else "encoder") and m.dim == 32 and m.n_layers == 2
    b = m.tokenize(["short", "a longer text with padding"])
    p = torch.randn(3, 32)
    z = m.encode(b["input_ids"], b["attention_mask"], p)
    assert z.shape == (2, 32) and torch.isfinite(z).all()
    if arch == "gpt2":  # last-token pooling: the pooled vector is the hidden state of the last real token
        h, _ = m.hidden(b["input_ids"], b["attention_mask"], p)
        last = 3 + int(b["attention_mask"][0].sum()) - 1
        assert torch.allclose(z[0], h[0, last].float(), atol=1e-6)
    assert m.ffn_activations(p).shape[:1] == (2,)
