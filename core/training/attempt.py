"""ATTEMPT (Asai et al., EMNLP 2022): an instance-wise mixture of frozen source prompts and a target prompt.

    python -m core train --task sent_product --method attempt --source A --source B --source C

K source prompts ``P_1..P_K`` [L, d] stay frozen; a new target prompt ``P_t`` [L, d] (the run's
trainable prompt, scratch-initialised) and this small attention module train. For every input x:

    x_hat  = maxpool_T( E(x) )                       [B, d]     E: the word embeddings (no positions)
    p_hat  = maxpool_L( P_j ), j = 1..K, t           [K+1, d]   the sources AND the target
    h      = LN( W_up · SiLU( W_down · x_hat ) )     [B, d]     W_down [attn_dim, d], W_up [d, attn_dim]
    a      = softmax_j( p_hat_j · h / T )            [B, K+1]   T = d·e by default
    P(x)   = sum_j a_j P_j  +  P_t                   [B, L, d]  the target is added again after the mixture

Where this follows ATTEMPT's released code (AkariAsai/ATTEMPT, ``attn_method="sub"``) rather than
the paper's prose: the softmax runs over the sources *and* the target prompt, and ``P_t`` is added
once more after the mixture (so with all attention on the target the prompt is ``2·P_t``); the
down/up projections have no bias; the non-linearity is SiLU; LayerNorm (with affine weights) comes
after the up-projection; the temperature scales the dot products (code: ``d_model·exp(1)``);
the down size is 100. One deliberate change: the code max-pools every position of the padded
input, padding included; here padding is masked out, so an example's prompt does not depend on
the batch it is padded with (a packed run then computes what its single twin computes).

Saved (``save_attempt``) as ``attempt.safetensors`` beside the PEFT prompt folder of ``P_t``:
``attn_W_down`` [attn_dim, d], ``attn_W_up`` [d, attn_dim], ``layer_norm_weight`` / ``_bias`` [d],
``sources`` [K, L, d] and ``temperature`` [1], so ``P(x)`` can be recomputed from the folder alone
(:func:`load_attempt`).
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F

from core.training.config import TrainError

ATTEMPT_FILE = "attempt.safetensors"


def instance_prompt(attn: torch.Tensor, sources: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``sum_j a_j P_j + P_t``: attn [B, K+1] (last column: the target), sources [K, L, d],
    target [L, d] -> [B, L, d]."""
    stack = torch.cat([sources.to(target.dtype), target.unsqueeze(0)])  # [K+1, L, d]
    return torch.einsum("bj,jld->bld", attn.to(target.dtype), stack) + target.unsqueeze(0)


class AttemptMixer(torch.nn.Module):
    """The attention module over K frozen sources and the target prompt (the target is passed in:
    it is the run's own trainable prompt, so checkpoints, max-norm and saving treat it as any prompt).

    ``fixed``: an optional [K+1] attention used instead of the computed one (tests, ablations).
    """

    def __init__(self, sources: torch.Tensor, attn_dim: int = 100, temperature: float | None = None):
        super().__init__()
        K, L, d = sources.shape
        self.register_buffer("sources", sources.detach().float().clone())  # frozen: a buffer, never a parameter
        self.attn_W_down = torch.nn.Linear(d, attn_dim, bias=False)
        self.attn_W_up = torch.nn.Linear(attn_dim, d, bias=False)
        self.layer_norm = torch.nn.LayerNorm(d)
        self.temperature = float(temperature) if temperature else d * math.e
        self.fixed: torch.Tensor | None = None

    @property
    def K(self) -> int:
        return int(self.sources.shape[0])

    def attention(self, x_embeds: torch.Tensor, mask: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """x_embeds [B, T, d] (word embeddings), mask [B, T] (1 = text), target [L, d] -> a [B, K+1]."""
        B = x_embeds.shape[0]
        if self.fixed is not None:
            return self.fixed.to(target.device, torch.float32).expand(B, -1)
        x = x_embeds.float().masked_fill(~mask.bool().unsqueeze(-1), float("-inf")).amax(dim=1)  # [B, d]
        h = self.layer_norm(self.attn_W_up(F.silu(self.attn_W_down(x))))  # [B, d]
        stack = torch.cat([self.sources, target.float().unsqueeze(0)])  # [K+1, L, d]
        p_hat = stack.amax(dim=1)  # [K+1, d]
        return torch.softmax(h @ p_hat.T / self.temperature, dim=-1)  # [B, K+1]

    def forward(self, x_embeds: torch.Tensor, mask: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """-> the instance-wise prompts [B, L, d]."""
        return instance_prompt(self.attention(x_embeds, mask, target), self.sources, target)

    def weights(self) -> dict[str, torch.Tensor]:
        """The module's trainable weights as CPU tensors (a checkpoint)."""
        return {k: v.detach().cpu().clone() for k, v in self.state_dict().items() if k != "sources"}

    def load_weights(self, state: dict[str, torch.Tensor]) -> None:
        dev = self.sources.device
        self.load_state_dict({**{k: v.to(dev) for k, v in state.items()}, "sources": self.sources})


class MixedPrompt:
    """A callable prompt for evaluation: (input_ids [B, T], mask [B, T]) -> [B, L, d] (no grad)."""

    def __init__(self, bb, mixer: AttemptMixer, target: torch.Tensor):
        self.bb, self.mixer, self.target = bb, mixer, target

    def __call__(self, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.mixer(self.bb.embed_ids(input_ids), mask.to(self.bb.device), self.target)


def save_attempt(mixer: AttemptMixer, weights: dict[str, torch.Tensor], folder: Path) -> Path:
    """Write attempt.safetensors (the module's checkpoint ``weights``, the sources, T) into ``folder`` (atomic)."""
    from safetensors.torch import save_file
    sd = {"attn_W_down": weights["attn_W_down.weight"], "attn_W_up": weights["attn_W_up.weight"],
          "layer_norm_weight": weights["layer_norm.weight"], "layer_norm_bias": weights["layer_norm.bias"],
          "sources": mixer.sources.detach().cpu(), "temperature": torch.tensor([mixer.temperature])}
    tmp = Path(folder) / f".{ATTEMPT_FILE}.tmp"
    save_file({k: v.float().contiguous() for k, v in sd.items()}, str(tmp))
    os.replace(tmp, Path(folder) / ATTEMPT_FILE)
    return Path(folder) / ATTEMPT_FILE


def load_attempt(folder: Path | str) -> AttemptMixer:
    """An attempt run's folder -> its AttemptMixer (CPU); the target prompt is the folder's PEFT prompt."""
    from safetensors.torch import load_file
    f = Path(folder) / ATTEMPT_FILE
    if not f.is_file():
        raise TrainError(f"{folder}: no {ATTEMPT_FILE} (not an attempt run's folder)")
    try:
        sd = load_file(str(f))
        m = AttemptMixer(sd["sources"], attn_dim=int(sd["attn_W_down"].shape[0]),
                         temperature=float(sd["temperature"][0]))
        m.load_weights({"attn_W_down.weight": sd["attn_W_down"], "attn_W_up.weight": sd["attn_W_up"],
                        "layer_norm.weight": sd["layer_norm_weight"], "layer_norm.bias": sd["layer_norm_bias"]})
    except TrainError:
        raise
    except Exception as e:  # a truncated or foreign file: one line naming it
        raise TrainError(f"{f}: not a readable attempt module ({type(e).__name__})") from None
    return m


def mixer_from_released(rel) -> AttemptMixer:
    """An ATTEMPT output folder read by core.prompts.attempt_dir.open_released -> its AttemptMixer
    (sources in the folder's order, T = d·e as ATTEMPT's code). TrainError when it cannot be
    recomputed (``rel.missing``: no sources beside it, or no layer-norm bias)."""
    if rel.missing:
        raise TrainError(f"{rel.folder}: {rel.missing}")
    sources = torch.stack(list(rel.sources.values()))  # [K, L, d]
    m = AttemptMixer(sources, attn_dim=rel.attn_dim)
    m.load_weights({"attn_W_down.weight": rel.weights["attn_W_down"], "attn_W_up.weight": rel.weights["attn_W_up"],
                    "layer_norm.weight": rel.weights["layer_norm_weight"],
                    "layer_norm.bias": rel.weights["layer_norm_bias"]})
    return m
