"""A timed calibration: how fast this device trains a soft prompt on a backbone, before any run has.

    python -c "from core.estimate import calibrate; print(calibrate(None, 'cpu'))"   # times it and caches it

core.estimate prices a run from the finished runs of its backbone on its device; before the first one
it asks for this: the backbone loaded on the device, then ``steps`` prompt-tuning steps (forward,
cosine head, cross-entropy, backward, AdamW on the prompt) of a batch of ``batch_size`` random texts
of ``max_length`` tokens behind ``prompt_length`` prompt tokens. One untimed warm-up step first (the
allocator, lazy kernels); the timed steps are the pure step rate, so the estimate built on it says
evaluations are not included. Texts at full ``max_length`` make it an upper bound per step for data
with shorter texts (length-bucketed batches pad less).
"""
from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from core.backbone import load_backbone


def time_steps(backbone: str | None, device: str, *, max_length: int = 128, batch_size: int = 16,
               prompt_length: int = 20, steps: int = 3) -> dict:
    """{"s_per_step", "load_s", "steps", "batch_size", "max_length", "prompt_length"} measured here.

    load_s: wall time of load_backbone (0 when this process had it loaded already: then the estimate
    under-counts a fresh worker's load, which is seconds for the backbones this product trains)."""
    t0 = time.perf_counter()
    bb = load_backbone(backbone, device)
    load_s = time.perf_counter() - t0
    g = torch.Generator().manual_seed(0)
    vocab = int(bb.word_embeddings.num_embeddings)
    # random token ids [B, T] (no special tokens needed: the step's cost does not depend on which ids)
    ids = [torch.randint(1000 if vocab > 2000 else 1, vocab, (max_length,), generator=g).tolist()
           for _ in range(batch_size)]
    b = bb.pad(ids, max_length)
    if bb.max_positions:  # a model with fewer positions truncates the run's texts the same way
        max_length = max(1, min(max_length, bb.max_positions - prompt_length))
        b = bb.pad(ids, max_length)
    d = bb.word_embeddings.embedding_dim
    w = bb.word_embeddings.weight
    prompt = torch.nn.Parameter((torch.randn(prompt_length, d, generator=g) * 0.02).to(device=w.device, dtype=w.dtype))
    pool = "last" if bb.kind == "decoder" else "text"
    label_emb = F.normalize(torch.randn(2, d, generator=g), dim=-1).to(bb.word_embeddings.weight.device)
    y = torch.randint(0, 2, (batch_size,), generator=g).to(label_emb.device)
    opt = torch.optim.AdamW([prompt], lr=0.3)

    def step():
        z = bb.encode(b["input_ids"], b["attention_mask"], prompt, pool=pool)  # [B, d]
        logits = F.normalize(z.float(), dim=-1) @ label_emb.T / 0.07               # [B, 2]
        F.cross_entropy(logits, y).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if bb.device.type == "cuda":
            torch.cuda.synchronize()

    step()  # warm-up, untimed
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    s_per_step = (time.perf_counter() - t0) / steps
    return {"s_per_step": s_per_step, "load_s": load_s, "steps": steps, "batch_size": batch_size,
            "max_length": max_length, "prompt_length": prompt_length}
