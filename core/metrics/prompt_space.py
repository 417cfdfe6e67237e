"""Prompt-space metrics (no model needed): e_avg, e_tok, tok_max, e_flat, euclid.

    python -c "import torch; from core.metrics.prompt_space import e_avg; print(e_avg([torch.randn(5, 8) for _ in range(3)]))"

All pairs at once by matrix products: N prompts cost one [N, D] Gram, not N² Python-level
comparisons (bench/metrics_speed.py). :func:`compute_pairs` gives a few sources x targets
without the N x N matrix. Definitions: DESIGN.md §3.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pandas as pd
import torch

from core.metrics.items import _Item, _items, check_one_group
from core.metrics.registry import PROMPT_METRICS, MetricError, get_spec


# --------------------------------------------------------------------------- prompt-space metrics
def _gram_sym(X: torch.Tensor, block: int = 256) -> torch.Tensor:
    """X [n, D] -> X X^T [n, n] float64, computing only the upper block triangle (half the flops)."""
    n = X.shape[0]
    G = torch.empty((n, n), dtype=torch.float64)
    for i in range(0, n, block):
        blk = (X[i:i + block] @ X[i:].T).double()
        G[i:i + block, i:] = blk
        G[i:, i:i + block] = blk.T
    return G


def _cos_from_gram(G: torch.Tensor) -> torch.Tensor:
    norms = G.diagonal().clamp_min(0).sqrt()
    denom = norms[:, None] * norms[None, :]
    return torch.where(denom > 0, G / denom.clamp_min(1e-300), torch.zeros_like(G))


def _cosine(A: torch.Tensor) -> np.ndarray:
    """Row-wise cosine matrix of A [n, k] (float64); a zero row has cosine 0 with everything."""
    A = A.double()
    An = torch.nn.functional.normalize(A, dim=1)
    return (An @ An.T).clamp(-1.0, 1.0).numpy()


def _same_length_blocks(items: list[_Item]) -> dict[int, list[int]]:
    blocks: dict[int, list[int]] = {}
    for i, it in enumerate(items):
        blocks.setdefault(it.tensor.shape[0], []).append(i)
    return blocks


def _stacked(items: list[_Item], chunk: int | None = None):
    """Yield (indices, X [m, L, d] float32) per block of equal L (at most ``chunk`` prompts):
    a few whole-block ops instead of thousands of tiny per-prompt ones (slow, worst on a busy CPU)."""
    for _, idx in _same_length_blocks(items).items():
        step = chunk or len(idx)
        for s in range(0, len(idx), step):
            part = idx[s:s + step]
            yield part, torch.stack([items[i].tensor for i in part])


def e_avg(prompts) -> np.ndarray:
    """cos of the mean tokens. prompts: N tensors [L_i, d] -> [N, N].

    Means as one BLAS matrix-vector product per prompt (P^T · 1/L): no [N, L, d] copy, and
    on a busy CPU a gemv is far cheaper than a threaded reduction; then one [N, d] Gram.
    """
    return _cosine(_mean_tokens(_items(prompts)))


def _mean_tokens(items: list[_Item]) -> torch.Tensor:
    """[n, d] float32: each prompt's mean token (e_avg's feature)."""
    M = torch.empty((len(items), items[0].tensor.shape[1]))
    for i, it in enumerate(items):
        L = it.tensor.shape[0]
        torch.mv(it.tensor.T, torch.full((L,), 1.0 / L), out=M[i])
    return M


def e_tok(prompts) -> np.ndarray:
    """Mean cosine over all token pairs = dot product of the mean *normalised* tokens.

    (1/(L_s L_t)) Σ_i Σ_j u_i·v_j = (mean_i u_i)·(mean_j v_j) with u, v unit rows,
    so one segment mean of normalised tokens per prompt (any L: a weighted sum
    P^T · (1/(L‖p_i‖)), no normalised copy) and one [N, d] Gram replace L_s·L_t
    cosines per pair.
    """
    S = _unit_token_means(_items(prompts)).double()
    return (S @ S.T).clamp(-1.0, 1.0).numpy()


def _unit_token_means(items: list[_Item]) -> torch.Tensor:
    """[n, d] float32: each prompt's mean *normalised* token (e_tok's feature)."""
    S = torch.empty((len(items), items[0].tensor.shape[1]))
    for i, it in enumerate(items):
        P = it.tensor
        w = 1.0 / (torch.linalg.vector_norm(P, dim=1).clamp_min(1e-12) * P.shape[0])
        torch.mv(P.T, w, out=S[i])
    return S


def _flat_pairwise(items: list[_Item], which: str) -> np.ndarray:
    """e_flat / euclid for prompts of equal L (blocks of equal L; NaN across lengths)."""
    n = len(items)
    out = np.full((n, n), np.nan)
    for idx, X in _stacked(items):
        X = X.reshape(len(idx), -1)                                        # [m, L*d] float32
        if which == "e_flat":
            vals = _cos_from_gram(_gram_sym(X)).clamp(-1.0, 1.0)
        else:
            # |a - b|^2 = |a|^2 + |b|^2 - 2ab from the same Gram as e_flat; where that cancels
            # badly (near-duplicates) the pair is recomputed directly below
            G = _gram_sym(X)
            sq = G.diagonal()
            d2 = (sq[:, None] + sq[None, :] - 2 * G).clamp_min(0)
            # near-duplicates: the Gram trick loses precision there; recompute those pairs directly
            close = (d2 < 1e-2 * (sq[:, None] + sq[None, :])).nonzero().tolist()
            for a, b in close:
                if a < b:
                    v = float(torch.linalg.vector_norm((X[a].double() - X[b].double())) ** 2)
                    d2[a, b] = d2[b, a] = v
            d2.fill_diagonal_(0.0)
            vals = 1.0 / (1.0 + d2.sqrt())
        ix = np.asarray(idx)
        out[np.ix_(ix, ix)] = vals.numpy()
    return out


def e_flat(prompts) -> np.ndarray:
    """cos(vec(P_s), vec(P_t)) -> [N, N]; NaN between prompts of different L."""
    return _flat_pairwise(_items(prompts), "e_flat")


def euclid(prompts) -> np.ndarray:
    """1 / (1 + ‖P_s − P_t‖_F) -> [N, N]; NaN between prompts of different L."""
    return _flat_pairwise(_items(prompts), "euclid")


def tok_max(prompts, *, chunk_tokens: int = 4096) -> np.ndarray:
    """Token-wise maximum similarity [N_s, N_t] (Lin et al. 2024); not symmetric.

    out[s, t] = (1/L_t) Σ_j max_i cos(P_s[i], P_t[j]) -- the cosine is e_tok's (unit
    tokens), but each target token keeps only its best-matching source token.
    All tokens are normalised once into U [ΣL, d]; target tokens go in chunks of
    ``chunk_tokens`` rows: C = U_chunk · Uᵀ [rows, ΣL], per-source maxima by one
    ``np.maximum.reduceat`` over the source segments, then a segment mean per target.
    """
    items = _items(prompts)
    lens = np.array([it.tensor.shape[0] for it in items])
    starts = np.concatenate([[0], np.cumsum(lens)[:-1]])
    U = torch.cat([torch.nn.functional.normalize(it.tensor, dim=1, eps=1e-12) for it in items]).double()
    owner = np.repeat(np.arange(len(items)), lens)   # target index of every token row
    sums = np.zeros((len(items), len(items)))         # [N_s, N_t]
    for r0 in range(0, U.shape[0], chunk_tokens):
        C = (U[r0:r0 + chunk_tokens] @ U.T).numpy()   # [rows, ΣL]
        best = np.maximum.reduceat(C, starts, axis=1)  # [rows, N_s]
        np.add.at(sums.T, owner[r0:r0 + chunk_tokens], best)
    return np.clip(sums / lens[None, :], -1.0, 1.0)


PROMPT_FUNCS: dict[str, Callable[[Any], np.ndarray]] = {
    "e_avg": e_avg, "e_tok": e_tok, "e_flat": e_flat, "euclid": euclid, "tok_max": tok_max}


def compute_pairs(metric: str, sources, targets) -> pd.DataFrame:
    """A prompt-space metric for a few sources x targets, without the N x N matrix (a page's
    pair details at N = 1,000 need one value per metric, not a million).

    sources, targets: SoftPrompt-like objects of one backbone group; the result [k_s, k_t] has
    their names as index / columns: k_s x k_t work, not (k_s + k_t)^2 (the validation of a few
    measured sources against every target prompt). Values equal :func:`compute_matrix`'s for
    the same pairs up to float32 rounding (~1e-7: the Gram is blocked differently).
    """
    spec = get_spec(metric)
    if spec.kind != "prompt":
        raise MetricError(f"{metric}: compute_pairs computes prompt-space metrics only "
                          f"({', '.join(PROMPT_METRICS)})")
    sources, targets = list(sources), list(targets)
    if any(getattr(p, "name", None) is None for p in [*sources, *targets]):
        raise MetricError("compute_pairs needs named prompts")
    S, T = _items(sources), _items(targets)
    check_one_group(S + T)
    if metric in ("e_avg", "e_tok"):
        feat = _mean_tokens if metric == "e_avg" else _unit_token_means
        A, B = feat(S).double(), feat(T).double()
        if metric == "e_avg":
            A, B = torch.nn.functional.normalize(A, dim=1), torch.nn.functional.normalize(B, dim=1)
        values = (A @ B.T).clamp(-1.0, 1.0).numpy()
    elif metric == "tok_max":
        values = _tok_max_rect(S, T)
    else:
        values = _flat_rect(S, T, metric)
    return pd.DataFrame(values, index=[p.name for p in sources], columns=[p.name for p in targets], dtype=float)


def _tok_max_rect(S: list[_Item], T: list[_Item]) -> np.ndarray:
    """tok_max of sources x targets: [k_s, k_t], as :func:`tok_max` computes it (directed)."""
    def unit(items):
        return torch.cat([torch.nn.functional.normalize(it.tensor, dim=1, eps=1e-12) for it in items]).double()

    ls = np.array([it.tensor.shape[0] for it in S])
    lt = np.array([it.tensor.shape[0] for it in T])
    C = (unit(T) @ unit(S).T).numpy()                                      # [ΣL_t, ΣL_s]
    best = np.maximum.reduceat(C, np.concatenate([[0], np.cumsum(ls)[:-1]]), axis=1)  # [ΣL_t, k_s]
    sums = np.zeros((len(S), len(T)))
    np.add.at(sums.T, np.repeat(np.arange(len(T)), lt), best)
    return np.clip(sums / lt[None, :], -1.0, 1.0)


def _flat_rect(S: list[_Item], T: list[_Item], which: str) -> np.ndarray:
    """e_flat / euclid of sources x targets (blocks of equal L; NaN across lengths): [k_s, k_t]."""
    out = np.full((len(S), len(T)), np.nan)
    for L, si in _same_length_blocks(S).items():
        ti = _same_length_blocks(T).get(L)
        if not ti:
            continue
        Xs = torch.stack([S[i].tensor for i in si]).reshape(len(si), -1)
        Xt = torch.stack([T[j].tensor for j in ti]).reshape(len(ti), -1)
        G = (Xs @ Xt.T).double()
        ss = (Xs.double() ** 2).sum(1)
        st = (Xt.double() ** 2).sum(1)
        if which == "e_flat":
            denom = ss.sqrt()[:, None] * st.sqrt()[None, :]
            vals = torch.where(denom > 0, G / denom.clamp_min(1e-300), torch.zeros_like(G)).clamp(-1.0, 1.0)
        else:
            d2 = (ss[:, None] + st[None, :] - 2 * G).clamp_min(0)
            # near-duplicates (and a prompt against itself): the Gram trick cancels badly there
            for a, b in (d2 < 1e-2 * (ss[:, None] + st[None, :])).nonzero().tolist():
                d2[a, b] = float(torch.linalg.vector_norm(Xs[a].double() - Xt[b].double()) ** 2)
            vals = 1.0 / (1.0 + d2.sqrt())
        out[np.ix_(np.asarray(si), np.asarray(ti))] = vals.numpy()
    return out

