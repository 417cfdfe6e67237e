"""Transferability metrics: source x target matrices over a prompt library.

    python -m core matrix --library DIR --metric e_avg [--group BACKBONE] --out FILE.csv
    python -m core matrix --list

Definitions are in ../shared/DESIGN.md §3. Every metric gives a matrix with
rows = source prompts and columns = target prompts (``measured``: columns =
target tasks); higher always means "predicted to transfer better".

- prompt space (no model needed): ``e_avg``, ``e_tok``, ``tok_max``, ``e_flat``, ``euclid``;
  all pairs at once by matrix products: N prompts cost one [N, D] Gram, not N²
  Python-level comparisons.
- activations (need the prompts' backbone): ``on`` (prompt alone, one forward
  per prompt, batched), ``on_probe`` and ``panda_sim`` (a shared probe set of
  k examples from every task, one batched forward per prompt, all pairs by one
  matrix product; ``panda_sim`` also has a target-faithful mode for small N).
- ``zs``: each source prompt evaluated zero-shot on each target task's
  validation split (forwards only) minus that split's majority rate.
- ``measured``: from finished runs (RESULTS COLUMNS of the contract).

Prompts of different backbones live in different embedding spaces and are
never compared (:class:`MixedBackboneError`). Matrices are cached on disk
under ``cache_dir()/metrics`` keyed by the prompts' content hashes.
"""
from __future__ import annotations

import argparse
import json
import sys
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import pandas as pd
import torch

from core.clustering import Clustering, cluster  # noqa: F401  (torch-free; re-exported: M.cluster)
from core.fsutil import array_hash, atomic_save_npy, atomic_write_text, json_hash, load_cached_npy

__all__ = [
    "MetricError", "BackboneUnavailable", "MixedBackboneError", "MetricSpec", "METRICS",
    "PROMPT_METRICS", "BACKBONE_METRICS", "compute_matrix", "compute_matrices", "compute_pairs", "metric_status",
    "e_avg", "e_tok", "tok_max", "e_flat", "euclid", "on", "on_probe", "panda_sim", "zs",
    "Measured", "measured", "by_task", "validate", "validation_table",
    "ndcg_at_k", "regret_at_k", "validate_retrieval", "retrieval_table", "cluster", "Clustering",
    "group_key", "split_groups", "check_one_group", "cached_matrix", "save_precomputed", "load_precomputed",
    "cli",
]

CACHE_VERSION = 1  # bump when a metric's numbers change, so old cache files are ignored


# --------------------------------------------------------------------------- errors
class MetricError(ValueError):
    """A metric that cannot be computed for these inputs; the message says why."""


class BackboneUnavailable(MetricError):
    """The metric needs the prompts' frozen model, which cannot be loaded here."""

    def __init__(self, backbone: str | None, metric: str, reason: str = ""):
        self.backbone = backbone
        self.metric = metric
        self.reason = reason
        what = backbone or "(unknown: the prompts do not name their backbone)"
        msg = f"{metric} needs backbone {what}, not available offline"
        super().__init__(msg + (f" ({reason})" if reason else ""))


class MixedBackboneError(MetricError):
    """Prompts of several backbone groups were passed together."""

    def __init__(self, groups: dict[str, list[str]]):
        self.groups = groups
        parts = ", ".join(f"{g} ({len(n)} prompts)" for g, n in groups.items())
        super().__init__(
            f"cannot compare prompts of different backbones: {parts}. A prompt's vectors live in its own "
            "model's embedding space, so a similarity between a RoBERTa prompt and a BERT prompt means "
            "nothing; compute one matrix per backbone group")


# --------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class MetricSpec:
    """What a metric needs and how to read it."""

    name: str
    label: str
    description: str
    source: str
    needs_backbone: bool = False
    needs_tasks: bool = False     # task data (probe set, validation split)
    symmetric: bool = True
    our_reading: bool = False     # our own reading/variant: the UI must say so
    equal_length: bool = False    # only defined between prompts of the same L
    kind: str = "prompt"          # prompt | activation | eval | runs


METRICS: dict[str, MetricSpec] = {m.name: m for m in [
    MetricSpec("e_avg", "E_avg (cosine of mean tokens)",
               "cos(mean_i P_s[i], mean_j P_t[j])", "SPoT (Vu et al. 2022) §3.2"),
    MetricSpec("e_tok", "E_tok (mean token-pair cosine)",
               "(1/(L_s L_t)) Σ_i Σ_j cos(P_s[i], P_t[j])", "SPoT §3.2; thunlp CosineSimilarity_per_token"),
    MetricSpec("e_flat", "E_flat (cosine of flattened prompts)",
               "cos(vec(P_s), vec(P_t)); equal L only", "thunlp Prompt-Transferability 1.0",
               equal_length=True),
    MetricSpec("euclid", "Euclidean similarity",
               "1 / (1 + ‖P_s − P_t‖_F); equal L only", "thunlp Prompt-Transferability 1.0",
               equal_length=True),
    MetricSpec("on", "ON (overlap of activated neurons)",
               "cosine of the binarised FFN activations (> 0), every layer, prompt alone, first position",
               "Su et al. 2022", needs_backbone=True, kind="activation"),
    MetricSpec("on_probe", "ON on a probe set (ours)",
               "ON's activations on a shared probe set of real inputs (k per task), concatenated",
               "our variant of Su et al. 2022", needs_backbone=True, needs_tasks=True, our_reading=True,
               kind="activation"),
    MetricSpec("panda_sim", "PANDA similarity (our reading)",
               "mean_x cos(h(x; P_s), h(x; P_t)), h = pooled final hidden state, x = shared probe set",
               "our reading of PANDA (Zhong et al. 2022): the paper gives no formula", needs_backbone=True,
               needs_tasks=True, our_reading=True, kind="activation"),
    MetricSpec("zs", "Zero-shot transfer (ours)",
               "accuracy of the source prompt on the target's validation split (verbalizer head, target's "
               "label descriptions) minus the target's majority-class rate",
               "ours", needs_backbone=True, needs_tasks=True, symmetric=False, our_reading=True, kind="eval"),
    MetricSpec("measured", "Measured transfer (relative gain over scratch)",
               "mean over seeds of (score[transfer, s, t, seed] − score[scratch, t, seed]) / score[scratch, t, seed]",
               "PANDA, SPoT, Su et al.", symmetric=False, kind="runs"),
]}
# token-wise maximum similarity (Lin et al. 2024), registered right after e_tok
METRICS = {k: v for name, spec in METRICS.items() for k, v in (
    [(name, spec)] + ([("tok_max", MetricSpec(
        "tok_max", "Token-wise max similarity",
        "(1/L_t) Σ_j max_i cos(P_s[i], P_t[j]): for each target token the cosine (as in e_tok) of its "
        "most similar source token, averaged over target tokens",
        "Lin et al. 2024, Exploring the Effectiveness and Consistency of Task Selection in "
        "Intermediate-Task Transfer Learning", symmetric=False))] if name == "e_tok" else []))}
PROMPT_METRICS = [n for n, m in METRICS.items() if m.kind == "prompt"]
BACKBONE_METRICS = [n for n, m in METRICS.items() if m.needs_backbone]


def get_spec(metric: str) -> MetricSpec:
    if metric not in METRICS:
        raise MetricError(f"unknown metric {metric!r}; known: {', '.join(METRICS)}")
    return METRICS[metric]


# --------------------------------------------------------------------------- prompts in
@dataclass
class _Item:
    """What a metric needs from one prompt (SoftPrompt-like objects, tensors, arrays)."""

    name: str
    tensor: torch.Tensor            # [L, d] float32 CPU
    task: str | None = None
    family: str | None = None
    backbone: str | None = None
    method: str | None = None
    _hash: str | None = None

    @property
    def hash(self) -> str:
        """sha256 of dtype, shape and bytes (first 16 hex), as SoftPrompt.content_hash; computed once."""
        if self._hash is None:
            self._hash = _content_hash(self.tensor)
        return self._hash


def _content_hash(t: torch.Tensor) -> str:
    return array_hash(t.numpy(), str(t.dtype))


def _items(prompts) -> list[_Item]:
    """SoftPrompt list / dict name -> prompt|tensor / list of tensors -> list of _Item (unique names)."""
    if isinstance(prompts, list) and prompts and all(isinstance(p, _Item) for p in prompts):
        return prompts
    if isinstance(prompts, dict):
        pairs = list(prompts.items())
    else:
        pairs = [(None, p) for p in prompts]
    out: list[_Item] = []
    seen: dict[str, int] = {}
    for i, (key, p) in enumerate(pairs):
        t = p.tensor if hasattr(p, "tensor") else p
        t = torch.as_tensor(np.asarray(t) if not isinstance(t, torch.Tensor) else t)
        if t.ndim != 2:
            raise MetricError(f"prompt {key or getattr(p, 'name', i)!r}: expected a [L, d] tensor, "
                              f"got shape {tuple(t.shape)}")
        t = t.detach().to("cpu", torch.float32).contiguous()
        name = str(key if key is not None else getattr(p, "name", None) or f"p{i}")
        if name in seen:  # names label rows and columns: keep them unique
            seen[name] += 1
            name = f"{name}~{seen[name]}"
        else:
            seen[name] = 1
        out.append(_Item(name=name, tensor=t, task=getattr(p, "task", None), family=getattr(p, "family", None),
                         backbone=getattr(p, "backbone", None), method=getattr(p, "method", None)))
    if not out:
        raise MetricError("no prompts given")
    return out


def group_key(backbone: str | None, d: int, *, with_dim: bool = False) -> str:
    """Group name, as core.library names it: the backbone, ``backbone:d`` when one backbone
    name shows several d, ``unknown:d<d>`` when a prompt does not say its backbone."""
    if not backbone:
        return f"unknown:d{d}"
    return f"{backbone}:{d}" if with_dim else backbone


def split_groups(prompts) -> dict[str, list]:
    """Split prompts by backbone (and d): each group is one embedding space.

    Prompts whose backbone is unknown are never mixed with a named backbone.
    """
    plist = list(prompts.values()) if isinstance(prompts, dict) else list(prompts)

    def bd(p):
        t = p.tensor if hasattr(p, "tensor") else p
        return getattr(p, "backbone", None) or None, int(t.shape[-1])

    dims: dict[str | None, set[int]] = {}
    for p in plist:
        b, d = bd(p)
        dims.setdefault(b, set()).add(d)
    groups: dict[str, list] = {}
    for p in plist:
        b, d = bd(p)
        groups.setdefault(group_key(b, d, with_dim=len(dims[b]) > 1), []).append(p)
    return groups


def check_one_group(prompts) -> str:
    """The single group of ``prompts``; MixedBackboneError when there are several."""
    groups = split_groups(prompts)
    if len(groups) > 1:
        raise MixedBackboneError({g: [getattr(p, "name", "?") for p in ps] for g, ps in groups.items()})
    return next(iter(groups))


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


# --------------------------------------------------------------------------- backbone metrics
def _binary_cosine(A: torch.Tensor, chunk: int = 1 << 20) -> np.ndarray:
    """A [N, D] bool -> cosine of the 0/1 rows [N, N]: |a∧b| / sqrt(|a||b|).

    The Gram is accumulated over column chunks so a long probe vector never
    needs a full float copy.
    """
    N, D = A.shape
    G = torch.zeros((N, N), dtype=torch.float64)
    for c in range(0, D, chunk):
        F_ = A[:, c:c + chunk].float()
        G += (F_ @ F_.T).double()  # counts < 2^24 per chunk: exact in float32
    return _cos_from_gram(G).numpy()


def _load_backbone_for(items: list[_Item], metric: str, backbone=None):
    """The Backbone object for these prompts (passed in, or loaded by the prompts' backbone name)."""
    names = {it.backbone for it in items}
    name = next(iter(names)) if len(names) == 1 else None
    if backbone is not None and not isinstance(backbone, str):
        bb = backbone
    else:
        want = backbone if isinstance(backbone, str) else name
        if want is None:
            raise BackboneUnavailable(None, metric)
        try:
            from core.backbone import load_backbone
        except ImportError as e:
            raise BackboneUnavailable(want, metric, f"core.backbone cannot be imported: {e}") from None
        try:
            bb = load_backbone(want)
        except (ValueError, OSError) as e:  # BackboneError is a ValueError
            raise BackboneUnavailable(want, metric, str(e).split("\n")[0]) from None
    d = {it.tensor.shape[1] for it in items}
    if d != {bb.dim}:
        raise MetricError(f"{metric}: prompts have d={sorted(d)} but backbone {bb.name} has d={bb.dim}")
    return bb


def on(prompts, backbone=None, *, batch: int = 16, counter: dict | None = None) -> np.ndarray:
    """ON: cosine of binarised FFN activations of each prompt alone. -> [N, N].

    One forward per prompt (``batch`` prompts share a batched forward):
    ``backbone.ffn_activations(P [n, L, d])`` -> [n, layers, d_ff], > 0.
    """
    items = _items(prompts)
    bb = _load_backbone_for(items, "on", backbone)
    rows = []
    for L, idx in _same_length_blocks(items).items():
        for s in range(0, len(idx), batch):
            part = idx[s:s + batch]
            acts = bb.ffn_activations(torch.stack([items[i].tensor for i in part]))  # [n, layers, d_ff]
            if counter is not None:
                counter["forwards"] = counter.get("forwards", 0) + 1
                counter["prompt_forwards"] = counter.get("prompt_forwards", 0) + len(part)
            rows += list(zip(part, (acts > 0).reshape(len(part), -1)))
    rows.sort(key=lambda r: r[0])
    return _binary_cosine(torch.stack([r[1] for r in rows]))


def _task_names(items: list[_Item], tasks: Sequence[str] | None) -> list[str]:
    if tasks:
        return list(dict.fromkeys(tasks))
    names = [it.task for it in items if it.task]
    if not names:
        try:
            from core.tasks import list_tasks
            names = list(list_tasks())
        except ImportError:
            names = []
    return list(dict.fromkeys(names))


def _get_task(name: str):
    try:
        from core.tasks import get_task
    except ImportError as e:
        raise MetricError(f"task {name!r}: core.tasks is not available ({e})") from None
    return get_task(name)


def probe_set(task_names: Sequence[str], *, k: int = 8, seed: int = 0, split: str = "validation",
              strict: bool = False) -> tuple[list[str], list[str], dict[str, str]]:
    """The shared probe set: k examples from every task (fixed seed per task).

    -> (texts, task of each text, {task: why it was skipped}). Tasks whose data
    is not prepared are skipped (or raise with ``strict``).
    """
    texts, owner, skipped = [], [], {}
    for name in task_names:
        try:
            task = _get_task(name)
        except (ValueError, OSError) as e:
            if strict:
                raise MetricError(f"probe set: task {name!r}: {e}") from None
            skipped[name] = str(e).split("\n")[0]
            continue
        pool = getattr(task, split).texts
        if not pool:
            skipped[name] = f"empty {split} split"
            continue
        rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        pick = rng.choice(len(pool), size=min(k, len(pool)), replace=False)
        texts += [pool[i] for i in sorted(pick)]
        owner += [name] * len(pick)
    if not texts:
        why = "; ".join(f"{t}: {w}" for t, w in skipped.items()) or "no tasks known"
        raise MetricError(f"no probe examples: {why} (prepare task data with `python -m core tasks prepare`)")
    return texts, owner, skipped


def on_probe(prompts, backbone=None, *, tasks: Sequence[str] | None = None, k: int = 8, seed: int = 0,
             max_length: int = 64, position: int | str = 0, probe_texts: Sequence[str] | None = None,
             counter: dict | None = None) -> np.ndarray:
    """ON on the shared probe set: per prompt, one batched forward over all probe texts.

    Activations at ``position`` (0: the first prompt slot, holding the mask
    token as in ``on``) of every probe example, binarised and concatenated.
    ``probe_texts`` replaces the task-drawn probe set (tests, benchmarks).
    """
    items = _items(prompts)
    bb = _load_backbone_for(items, "on_probe", backbone)
    texts = list(probe_texts) if probe_texts else probe_set(_task_names(items, tasks), k=k, seed=seed)[0]
    enc = bb.tokenize(texts, max_length=max_length)
    vecs = []
    for it in items:
        acts = bb.ffn_activations(it.tensor, enc["input_ids"], enc["attention_mask"], position=position,
                                  mask_slot0=True)  # [B, layers, d_ff]
        if counter is not None:
            counter["forwards"] = counter.get("forwards", 0) + 1
            counter["prompt_forwards"] = counter.get("prompt_forwards", 0) + 1
        vecs.append((acts > 0).reshape(-1))
    return _binary_cosine(torch.stack(vecs))


@torch.no_grad()
def _pooled(bb, prompt: torch.Tensor, enc: dict, pool: str = "text") -> torch.Tensor:
    """h(x; P) for all probe texts: [B, d] float32, unit rows."""
    h = bb.encode(enc["input_ids"], enc["attention_mask"], prompt, pool=pool).float().cpu()
    return torch.nn.functional.normalize(h, dim=1)


def panda_sim(prompts, backbone=None, *, tasks: Sequence[str] | None = None, k: int = 8, seed: int = 0,
              max_length: int = 64, target_faithful: bool = False, max_faithful: int = 40,
              pool: str = "text", probe_texts: Sequence[str] | None = None,
              counter: dict | None = None) -> np.ndarray:
    """mean_x cos(h(x; P_s), h(x; P_t)) -> [N, N] (our reading of PANDA's metric).

    Shared probe (default): one batched forward per prompt gives H [N, B, d]
    (unit rows); all pairs = reshape(H, [N, B*d]) Gram / B.
    Target-faithful: x = the target task's own inputs (k*#tasks of them): one
    batched forward per (prompt, target task); asymmetric; only for small N.
    """
    items = _items(prompts)
    bb = _load_backbone_for(items, "panda_sim", backbone)

    def count():
        if counter is not None:
            counter["forwards"] = counter.get("forwards", 0) + 1
            counter["prompt_forwards"] = counter.get("prompt_forwards", 0) + 1

    def outputs(texts) -> tuple[torch.Tensor, int]:
        """One batched forward per prompt over ``texts``: flattened pooled outputs [N, B*d], B."""
        enc = bb.tokenize(texts, max_length=max_length)
        H = []
        for it in items:
            H.append(_pooled(bb, it.tensor, enc, pool))
            count()
        H = torch.stack(H).double()                       # [N, B, d]
        return H.reshape(H.shape[0], -1), H.shape[1]

    if not target_faithful:
        texts = list(probe_texts) if probe_texts else probe_set(_task_names(items, tasks), k=k, seed=seed)[0]
        flat, B = outputs(texts)
        return (flat @ flat.T / B).clamp(-1.0, 1.0).numpy()
    if len(items) > max_faithful:
        raise MetricError(f"panda_sim target-faithful mode costs one forward per (prompt, target task): "
                          f"{len(items)} prompts is more than max_faithful={max_faithful}; use the shared probe")
    n = len(items)
    out = np.full((n, n), np.nan)
    by_task: dict[str, list[int]] = {}
    for j, it in enumerate(items):
        if it.task:
            by_task.setdefault(it.task, []).append(j)
    n_probe = k * max(1, len(_task_names(items, tasks)))
    for task_name, cols in by_task.items():
        try:
            texts, _, _ = probe_set([task_name], k=n_probe, seed=seed, strict=True)
        except MetricError:
            continue  # no data for this target task: its columns stay NaN
        flat, B = outputs(texts)
        out[:, cols] = (flat @ flat[cols].T / B).clamp(-1.0, 1.0).numpy()
    return out


def _zs_cache_path() -> Path:
    from core.config import cache_dir
    return cache_dir() / "metrics" / "zs_pairs.json"


def zs(prompts, backbone=None, *, max_examples: int = 200, head: str = "verbalizer",
       counter: dict | None = None, use_cache: bool = True) -> np.ndarray:
    """Zero-shot transfer [N_s, N_t]: accuracy of source s on target t's task, validation
    split (first ``max_examples``), minus that split's majority rate.

    Evaluations are per (source prompt, target task) and cached on disk by the
    prompt's content hash, so targets sharing a task cost one evaluation.
    """
    items = _items(prompts)
    bb = _load_backbone_for(items, "zs", backbone)
    try:
        from core.training.evaluation import evaluate
    except ImportError as e:
        raise MetricError(f"zs needs core.training.evaluate ({e})") from None
    store: dict[str, float] = {}
    path = _zs_cache_path()
    if use_cache and path.is_file():
        try:
            store = json.loads(path.read_text())
        except (OSError, ValueError):
            store = {}
    n = len(items)
    out = np.full((n, n), np.nan)
    tasks: dict[str, Any] = {}
    for it in items:
        if it.task and it.task not in tasks:
            try:
                tasks[it.task] = _get_task(it.task)
            except (ValueError, OSError):
                tasks[it.task] = None  # no data here: the task's columns stay blank
    dirty = False
    for t_name, task in tasks.items():
        if task is None:
            continue
        cols = [j for j, it in enumerate(items) if it.task == t_name]
        labels = list(task.validation.labels)[:max_examples or None]
        majority = max(np.bincount(labels)) / len(labels) if labels else 0.0
        data = json_hash([list(task.validation.texts)[:len(labels)], labels, list(task.descriptions)], 12)
        for i, src in enumerate(items):
            key = f"{bb.name}|{head}|{src.hash}|{t_name}|{data}"
            if key not in store:
                store[key] = float(evaluate(src.tensor, task, split="validation", backbone=bb, head=head,
                                            limit=max_examples or None))
                dirty = True
                if counter is not None:
                    counter["evaluations"] = counter.get("evaluations", 0) + 1
            out[i, cols] = store[key] - majority
    if dirty and use_cache:
        atomic_write_text(path, json.dumps(store))
    return out


BACKBONE_FUNCS: dict[str, Callable[..., np.ndarray]] = {
    "on": on, "on_probe": on_probe, "panda_sim": panda_sim, "zs": zs}


def metric_status(metric: str, prompts) -> tuple[bool, str]:
    """Can ``metric`` be computed for these prompts here? -> (ok, message to show when not)."""
    spec = get_spec(metric)
    if spec.kind == "runs":
        return True, ""
    try:
        items = _items(prompts)
        check_one_group(items)
    except MetricError as e:
        return False, str(e)
    if spec.equal_length and len({it.tensor.shape[0] for it in items}) > 1:
        return True, f"{metric} is only defined between prompts of equal length L: other pairs are blank"
    if not spec.needs_backbone:
        return True, ""
    name = items[0].backbone
    if name is None:
        return False, str(BackboneUnavailable(None, metric))
    try:
        from core.backbone import resolve_model_path
        resolve_model_path(name)
    except ImportError as e:
        return False, str(BackboneUnavailable(name, metric, f"core.backbone cannot be imported: {e}"))
    except (ValueError, OSError):
        return False, str(BackboneUnavailable(name, metric))
    return True, ""


# --------------------------------------------------------------------------- matrices + cache
def write_matrix_csv(df: pd.DataFrame, path: Path | str) -> Path:
    """Atomic CSV write (index = sources, columns = targets, full float precision)."""
    path = Path(path)
    atomic_write_text(path, df.to_csv(float_format="%.17g"))
    return path


def read_matrix_csv(path: Path | str) -> pd.DataFrame:
    path = Path(path)
    try:
        df = pd.read_csv(path, index_col=0)
    except (OSError, ValueError) as e:
        raise MetricError(f"{path}: cannot read a matrix CSV ({e})") from None
    df.index = df.index.astype(str)
    df.columns = df.columns.astype(str)
    return df.astype(float)


def _backbone_name(spec, backbone, items) -> str | None:
    """The backbone a matrix key names: only model-based metrics depend on one (the given
    name or Backbone, else the prompts' own)."""
    if not spec.needs_backbone:
        return None
    return backbone if isinstance(backbone, str) else getattr(backbone, "name", None) or items[0].backbone


def matrix_key(metric: str, prompts, backbone: str | None = None, **params) -> str:
    """Content hash of a matrix: metric, parameters, backbone and every prompt's (name, content hash)."""
    items = _items(prompts)
    payload = {"v": CACHE_VERSION, "metric": metric, "backbone": backbone,
               "params": {k: params[k] for k in sorted(params)},
               "prompts": [(it.name, it.hash, it.task if METRICS[metric].needs_tasks or metric == "zs" else None)
                           for it in items]}
    return json_hash(payload, 20)


def _cache_file(metric: str, key: str) -> Path:
    """The disk cache of one matrix: its values as .npy (float64 [N, N]); rows and columns are the
    prompts in the order the key lists them. (CSV took 1.4 s to write at N = 1,000, 12 s at 3,000.)"""
    from core.config import cache_dir
    return cache_dir() / "metrics" / f"{metric}-{key}.npy"


def _cached_frame(path: Path, names: list[str]) -> pd.DataFrame | None:
    a = load_cached_npy(path, (len(names), len(names))) if path.is_file() else None
    if a is None:
        return None
    df = pd.DataFrame(a, index=pd.Index(names, name="source"), columns=pd.Index(names, name="target"))
    return df


def compute_matrix(metric: str, prompts=None, *, results: pd.DataFrame | None = None, backbone=None,
                   cache: bool = True, **params) -> pd.DataFrame:
    """One metric as a DataFrame: index = source names, columns = target names.

    prompts: SoftPrompt-like objects (one backbone group), dict name -> tensor, or tensors.
    ``measured`` takes ``results`` (RESULTS COLUMNS) instead; its columns are target tasks.
    Backbone metrics load the prompts' backbone unless ``backbone`` (object or name) is given
    and raise :class:`BackboneUnavailable` when it cannot be loaded.
    """
    spec = get_spec(metric)
    if spec.kind == "runs":
        if results is None:
            raise MetricError("measured needs a results table (finished runs)")
        return measured(results, **params).mean
    if prompts is None:
        raise MetricError(f"{metric} needs prompts")
    items = _items(prompts)
    check_one_group(items)
    bb_name = _backbone_name(spec, backbone, items)
    key = matrix_key(metric, items, bb_name, **{k: v for k, v in params.items() if k != "counter"})
    path = _cache_file(metric, key)
    names = [it.name for it in items]
    if cache:
        df = _cached_frame(path, names)  # a broken cache file is recomputed and replaced
        if df is not None:
            return df
    if spec.needs_backbone:
        values = BACKBONE_FUNCS[metric](items, backbone if backbone is not None else bb_name, **params)
    else:
        values = PROMPT_FUNCS[metric](items, **params)
    df = pd.DataFrame(values, index=names, columns=names, dtype=float)
    df.index.name = "source"
    df.columns.name = "target"
    if cache:
        try:
            atomic_save_npy(path, df.to_numpy(dtype=float))
        except OSError:
            pass  # a read-only cache must not break the metric
    return df


PRECOMPUTED_INDEX = "index.json"


def save_precomputed(metric: str, df: pd.DataFrame, prompts, folder: Path | str, *, backbone=None,
                     **params) -> Path:
    """Write ``folder/<metric>.csv`` and record its matrix key in ``folder/index.json``,
    so a page can use it only while the prompts (content hashes) are unchanged."""
    folder = Path(folder)
    items = _items(prompts)
    spec = get_spec(metric)
    bb_name = _backbone_name(spec, backbone, items)
    path = write_matrix_csv(df, folder / f"{metric}.csv")
    index_path = folder / PRECOMPUTED_INDEX
    index = json.loads(index_path.read_text()) if index_path.is_file() else {}
    index[metric] = {"key": matrix_key(metric, items, bb_name, **params), "file": path.name,
                     "n": len(items), "params": {k: params[k] for k in sorted(params)}}
    atomic_write_text(index_path, json.dumps(index, indent=2, default=str) + "\n")
    return path


def load_precomputed(metric: str, prompts, folder: Path | str, *, backbone=None, trust_names: bool = False,
                     **params) -> pd.DataFrame | None:
    """``folder/<metric>.csv`` when ``folder/index.json`` records the key of exactly these prompts.

    trust_names: with no key recorded for the metric, accept a file whose rows and columns
    cover these prompts' names -- only for a read-only library built together with its
    matrices (the committed demo), where names cannot drift from contents.
    """
    folder = Path(folder)
    items = _items(prompts)
    names = [it.name for it in items]
    entry = {}
    index_path = folder / PRECOMPUTED_INDEX
    if index_path.is_file():
        try:
            entry = json.loads(index_path.read_text()).get(metric) or {}
        except (OSError, ValueError):
            return None
    if entry:
        spec = get_spec(metric)
        bb_name = _backbone_name(spec, backbone, items)
        if entry.get("key") != matrix_key(metric, items, bb_name, **params):
            return None
    elif not trust_names:
        return None
    path = folder / entry.get("file", f"{metric}.csv")
    if not path.is_file():
        return None
    try:
        df = read_matrix_csv(path)
    except MetricError:
        return None
    if not (set(df.index) >= set(names) and set(df.columns) >= set(names)):
        return None
    return df.loc[names, names]


def cached_matrix(metric: str, prompts, *, backbone=None, precomputed: Path | str | None = None,
                  trust_names: bool = False, **params) -> pd.DataFrame | None:
    """The matrix if it is already known (a precomputed file whose key matches, or the disk
    cache) -- never computes. For pages that must not start slow work unasked."""
    spec = get_spec(metric)
    if spec.kind == "runs":
        return None
    items = _items(prompts)
    try:
        check_one_group(items)
    except MetricError:
        return None
    if precomputed is not None:
        df = load_precomputed(metric, items, precomputed, backbone=backbone, trust_names=trust_names, **params)
        if df is not None:
            return df
    bb_name = _backbone_name(spec, backbone, items)
    path = _cache_file(metric, matrix_key(metric, items, bb_name, **params))
    return _cached_frame(path, [it.name for it in items])


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


def compute_matrices(metrics: Iterable[str], prompts, **kwargs) -> dict[str, pd.DataFrame | MetricError]:
    """Several metrics at once; a metric that cannot be computed maps to its MetricError."""
    out: dict[str, Any] = {}
    for m in metrics:
        try:
            out[m] = compute_matrix(m, prompts, **kwargs)
        except MetricError as e:
            out[m] = e
    return out


# --------------------------------------------------------------------------- measured
BUDGET_KEYS = ("steps", "train_size")


@dataclass
class Measured:
    """Measured transfer of one method, from finished runs.

    mean, std, n: [sources x target tasks] relative gain over scratch (std over seeds, ddof=1).
    noise: per target, the seed-to-seed spread of scratch (std / mean of its test score) -
           the same relative units as the gain: a gain inside ±noise is not distinguishable
           from seed noise.
    runs: one row per transfer run with its scratch baseline and gain.
    vs_generic: gain over the `generic` control source (same target, seed), where present.
    """

    method: str
    mean: pd.DataFrame
    std: pd.DataFrame
    n: pd.DataFrame
    noise: pd.Series
    runs: pd.DataFrame
    vs_generic: pd.DataFrame | None = None
    generic: list[str] = field(default_factory=list)

    def inside_noise(self) -> pd.DataFrame:
        """True where |mean gain| <= the target's noise band (False where no band is known)."""
        band = self.noise.reindex(self.mean.columns)
        return self.mean.abs().le(band, axis=1) & band.notna().values[None, :]


def finished_runs(results: pd.DataFrame) -> pd.DataFrame:
    """Rows with a test score whose status (if any) is finished; source '' for scratch."""
    if results is None or len(results) == 0:
        return pd.DataFrame(columns=["run_id", "method", "source", "target", "seed", "test_score"])
    need = {"method", "target", "test_score"}
    missing = need - set(results.columns)
    if missing:
        raise MetricError(f"results table lacks column(s) {sorted(missing)} (RESULTS COLUMNS of the contract)")
    df = results.copy()
    if "status" in df.columns:
        df = df[df["status"].fillna("finished").astype(str).isin(["finished", "done", ""])]
    df["test_score"] = pd.to_numeric(df["test_score"], errors="coerce")
    df = df[np.isfinite(df["test_score"])]
    if "source" not in df.columns:
        df["source"] = ""
    df["source"] = df["source"].fillna("").astype(str)
    if "seed" not in df.columns:
        df["seed"] = 0
    if "run_id" not in df.columns:
        df["run_id"] = [f"row{i}" for i in range(len(df))]
    return df.reset_index(drop=True)


def _budget_keys(df: pd.DataFrame) -> list[str]:
    return [k for k in BUDGET_KEYS if k in df.columns and df[k].notna().any()]


def measured(results: pd.DataFrame, *, method: str | None = None, baseline: str = "scratch",
             generic: Iterable[str] | None = None) -> Measured:
    """Relative gain over scratch on the same target, budget (steps, train_size) and seed.

    method: the transfer method (default: pot if present, else panda, else the first non-scratch one).
    generic: names of the generic control source prompts (default: sources named ``generic*``).
    """
    df = finished_runs(results)
    methods = [m for m in df["method"].astype(str).unique() if m != baseline]
    if method is None:
        method = next((m for m in ("pot", "panda") if m in methods), methods[0] if methods else "pot")
    keys = ["target", "seed"] + _budget_keys(df)
    kdf = df.copy()
    for k in keys[2:]:
        kdf[k] = kdf[k].fillna(-1)
    scratch = kdf[kdf["method"] == baseline].groupby(keys)["test_score"].mean().rename("scratch")
    runs = kdf[kdf["method"] == method].join(scratch, on=keys, how="inner")
    runs = runs[runs["scratch"] != 0]
    runs["gain"] = (runs["test_score"] - runs["scratch"]) / runs["scratch"]
    keep = [c for c in ["run_id", "method", "source", "target", "seed", *BUDGET_KEYS, "test_score", "scratch",
                        "gain", "prompt_path"] if c in runs.columns]
    runs = runs[keep].reset_index(drop=True)
    grp = runs.groupby(["source", "target"])["gain"]
    mean = grp.mean().unstack("target")
    std = grp.std(ddof=1).unstack("target").reindex_like(mean)
    n = grp.count().unstack("target").reindex_like(mean).fillna(0).astype(int)
    for m in (mean, std, n):
        m.index.name, m.columns.name = "source", "target"
    # noise band: spread of scratch over seeds, relative to its mean (per target)
    sc = kdf[kdf["method"] == baseline].groupby(["target", "seed"])["test_score"].mean()
    noise = sc.groupby("target").std(ddof=1) / sc.groupby("target").mean()
    noise = noise.reindex(mean.columns).rename("noise")
    gen = list(generic) if generic is not None else sorted(s for s in runs["source"].unique()
                                                             if str(s).lower().startswith("generic"))
    vs = None
    gruns = runs[runs["source"].isin(gen)]
    if len(gruns):
        g_base = gruns.groupby(["target", "seed"])["test_score"].mean().rename("generic")
        r2 = runs.join(g_base, on=["target", "seed"], how="inner")
        r2 = r2[r2["generic"] != 0]
        r2["gain_vs_generic"] = (r2["test_score"] - r2["generic"]) / r2["generic"]
        vs = r2.groupby(["source", "target"])["gain_vs_generic"].mean().unstack("target")
        vs.index.name, vs.columns.name = "source", "target"
    return Measured(method=method, mean=mean.astype(float), std=std.astype(float), n=n, noise=noise.astype(float),
                    runs=runs, vs_generic=vs, generic=gen)


# --------------------------------------------------------------------------- validation
def by_task(matrix: pd.DataFrame, prompts, *, rows: bool = False) -> pd.DataFrame:
    """Prompt x prompt matrix -> sources x target *tasks* (to compare with ``measured``).

    A target task's column is the mean over that task's target prompts; when
    some of them are ``scratch`` prompts, only those count (the prompt one
    would have trained anyway). Columns of prompts without a task keep their name.

    rows=True: source *tasks* x target tasks: a source task's row is the mean over all of
    its prompts (every method); a prompt is never averaged against itself
    (:func:`core.blocks.block_means`), and a row of a prompt without a task keeps its name.
    """
    items = {it.name: it for it in _items(prompts)}
    cols: dict[str, list[str]] = {}
    for c in matrix.columns:
        it = items.get(c)
        cols.setdefault((it.task if it is not None and it.task else c), []).append(c)
    col_groups = {}
    for task, names in cols.items():
        scratch = [c for c in names if items.get(c) is not None and items[c].method == "scratch"]
        col_groups[task] = scratch or names
    if rows:
        from core.blocks import block_means

        row_groups: dict[str, list[str]] = {}
        for r in matrix.index:
            it = items.get(r)
            row_groups.setdefault((it.task if it is not None and it.task else r), []).append(r)
        df = block_means(matrix, row_groups, col_groups).mean
    else:
        df = pd.DataFrame({task: matrix[names].mean(axis=1) for task, names in col_groups.items()},
                          index=matrix.index)
    df.index.name, df.columns.name = "source", "target"
    return df


def validate(predicted: pd.DataFrame, measured_mean: pd.DataFrame, *, source_task: dict[str, str] | None = None,
             k: int = 3, min_sources: int = 3) -> pd.DataFrame:
    """Per target: how well a metric's column ranks the sources by measured gain.

    predicted: sources x target tasks (see :func:`by_task`); measured_mean: the same axes.
    A source whose task is the target is left out (source_task maps name -> task;
    by default a source named like the target). Returns one row per target:
    target, n, rho, p (scipy.stats.spearmanr), best (best measured source),
    top_k (the metric's top-k), hit, chosen (metric's top-1), regret
    (best gain - gain of the chosen source).
    """
    from scipy.stats import spearmanr

    rows = []
    for target in measured_mean.columns:
        if target not in predicted.columns:
            continue
        cand = [s for s in measured_mean.index
                if s in predicted.index and (source_task or {}).get(s, s) != target
                and np.isfinite(measured_mean.at[s, target]) and np.isfinite(predicted.at[s, target])]
        if len(cand) < min_sources:
            continue
        m = predicted.loc[cand, target].astype(float)
        y = measured_mean.loc[cand, target].astype(float)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # constant input -> nan, reported as such
            res = spearmanr(m.values, y.values)
        top = list(m.sort_values(ascending=False, kind="stable").index[:k])
        best = y.idxmax()
        chosen = top[0]
        rows.append({"target": target, "n": len(cand), "rho": float(res.statistic), "p": float(res.pvalue),
                     "best": best, "top_k": top, "hit": best in top, "chosen": chosen,
                     "regret": float(y.max() - y[chosen])})
    return pd.DataFrame(rows, columns=["target", "n", "rho", "p", "best", "top_k", "hit", "chosen", "regret"])


def summarise(per_target: pd.DataFrame) -> dict:
    """mean ρ (over targets with a defined ρ), top-k hit rate, mean regret, number of targets."""
    if per_target.empty:
        return {"mean_rho": float("nan"), "top_k_hit": float("nan"), "regret": float("nan"), "n_targets": 0}
    return {"mean_rho": float(per_target["rho"].mean()), "top_k_hit": float(per_target["hit"].mean()),
            "regret": float(per_target["regret"].mean()), "n_targets": int(len(per_target))}


def validation_table(predicted: dict[str, pd.DataFrame], measured_mean: pd.DataFrame, *,
                     source_task: dict[str, str] | None = None, k: int = 3) -> pd.DataFrame:
    """One row per metric: mean ρ, top-k hit rate, mean regret, targets scored (best ρ first)."""
    rows = []
    for name, pred in predicted.items():
        s = summarise(validate(pred, measured_mean, source_task=source_task, k=k))
        rows.append({"metric": name, **s})
    df = pd.DataFrame(rows, columns=["metric", "mean_rho", "top_k_hit", "regret", "n_targets"])
    return df.sort_values("mean_rho", ascending=False, na_position="last").reset_index(drop=True)


# --------------------------------------------------------------------------- retrieval measures
def ndcg_at_k(predicted: Sequence[float], gain: Sequence[float], k: int = 3) -> float:
    """NDCG@k of ranking sources by ``predicted`` with relevance = measured gain clipped at 0.

    Lin et al. 2024 (after Poth et al. 2021). DCG@k = Σ_{i≤k} rel_(i) / log2(i + 1) in the
    predicted order, divided by the DCG@k of the best order; sklearn's ``ndcg_score`` (ties
    in ``predicted`` averaged). NaN when no source has a positive gain (nothing to find).
    """
    from sklearn.metrics import ndcg_score
    rel = np.clip(np.asarray(gain, dtype=float), 0.0, None)
    pred = np.asarray(predicted, dtype=float)
    if rel.shape != pred.shape or rel.ndim != 1:
        raise MetricError(f"ndcg_at_k: predicted {pred.shape} and gain {rel.shape} must be equal 1-D")
    if len(rel) < 2 or not (rel > 0).any():
        return float("nan")
    return float(ndcg_score(rel[None, :], pred[None, :], k=k))


def regret_at_k(predicted: Sequence[float], gain: Sequence[float], k: int = 3) -> float:
    """regret@k = best measured gain − best measured gain among the metric's top-k sources.

    Lin et al. 2024 (after Poth et al. 2021) divide by the best score; our measured gain is
    already relative to scratch and can be ≤ 0, so the difference is reported in gain units
    (0 = the best source is in the top-k; k = 1 is ``validate``'s ``regret``).
    """
    pred = np.asarray(predicted, dtype=float)
    y = np.asarray(gain, dtype=float)
    if pred.shape != y.shape or not len(y):
        raise MetricError(f"regret_at_k: predicted {pred.shape} and gain {y.shape} must be equal, non-empty")
    top = np.argsort(-pred, kind="stable")[:k]
    return float(y.max() - y[top].max())


def validate_retrieval(predicted: pd.DataFrame, measured_mean: pd.DataFrame, *,
                       source_task: dict[str, str] | None = None, k: int = 3, min_sources: int = 3) -> pd.DataFrame:
    """``validate``'s per-target rows plus ``ndcg_k`` and ``regret_k`` (same sources, same k)."""
    per = validate(predicted, measured_mean, source_task=source_task, k=k, min_sources=min_sources)
    nd, rk = [], []
    for _, row in per.iterrows():
        t = row["target"]
        cand = [s for s in measured_mean.index
                if s in predicted.index and (source_task or {}).get(s, s) != t
                and np.isfinite(measured_mean.at[s, t]) and np.isfinite(predicted.at[s, t])]
        m = predicted.loc[cand, t].astype(float).values
        y = measured_mean.loc[cand, t].astype(float).values
        nd.append(ndcg_at_k(m, y, k))
        rk.append(regret_at_k(m, y, k))
    per["ndcg_k"], per["regret_k"] = nd, rk
    return per


def retrieval_table(predicted: dict[str, pd.DataFrame], measured_mean: pd.DataFrame, *,
                    source_task: dict[str, str] | None = None, k: int = 3, sort_by: str = "ndcg_k") -> pd.DataFrame:
    """One row per metric: mean ρ, top-k hit, mean NDCG@k, mean regret@k, targets (best ``sort_by`` first)."""
    rows = []
    for name, pred in predicted.items():
        per = validate_retrieval(pred, measured_mean, source_task=source_task, k=k)
        rows.append({"metric": name, **summarise(per),
                     "ndcg_k": float(per["ndcg_k"].mean()) if len(per) else float("nan"),
                     "regret_k": float(per["regret_k"].mean()) if len(per) else float("nan")})
    df = pd.DataFrame(rows, columns=["metric", "mean_rho", "top_k_hit", "regret", "ndcg_k", "regret_k", "n_targets"])
    if sort_by not in df.columns:
        raise MetricError(f"retrieval_table: sort_by must be one of {', '.join(df.columns[1:])}")
    ascending = sort_by in ("regret", "regret_k")  # lower regret is better
    return df.sort_values(sort_by, ascending=ascending, na_position="last").reset_index(drop=True)


# --------------------------------------------------------------------------- CLI
def cli(command: str, argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m core {command}",
                                     description="A source x target metric matrix of a prompt library as CSV "
                                                 "(rows and columns = prompt names; measured: columns = tasks).")
    parser.add_argument("--library", action="append", default=[], metavar="DIR",
                        help="prompt folder (repeatable)")
    parser.add_argument("--metric", choices=list(METRICS), help="which metric")
    parser.add_argument("--group", default=None, help="backbone group (needed when the library has several)")
    parser.add_argument("--results", default=None, help="results CSV for measured (default: LIBRARY/../results.csv)")
    parser.add_argument("--method", default=None, help="measured: transfer method (pot, panda)")
    parser.add_argument("--by-task", nargs="?", const="targets", choices=["targets", "both"], default=None,
                        help="targets (the default when given alone): columns = target tasks (mean over a task's "
                             "prompts, scratch prompts preferred); both: rows = source tasks too (a prompt is never "
                             "averaged against itself)")
    parser.add_argument("--out", default=None, help="output CSV (default: stdout)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    parser.add_argument("--no-cache", action="store_true", help="recompute instead of reading cache_dir()/metrics")
    parser.add_argument("--list", action="store_true", help="list the metrics and exit")
    args = parser.parse_args(argv)
    if args.list:
        for m in METRICS.values():
            flags = ", ".join(f for f, on_ in [("needs backbone", m.needs_backbone), ("our reading", m.our_reading),
                                                 ("asymmetric", not m.symmetric)] if on_)
            print(f"{m.name:<10} {m.label}{f'  [{flags}]' if flags else ''}\n{'':<11}{m.description}")
        return 0
    if not args.metric:
        parser.error("--metric is required (or --list)")
    if args.out and Path(args.out).exists() and not args.overwrite:
        print(f"error: {args.out}: already exists (pass --overwrite to replace it)", file=sys.stderr)
        return 2
    try:
        df = _cli_matrix(args)
    except (MetricError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.out:
        write_matrix_csv(df, args.out)
        print(f"wrote {args.out}: {df.shape[0]} sources x {df.shape[1]} targets", file=sys.stderr)
    else:
        sys.stdout.write(df.to_csv(float_format="%.6g"))
    return 0


def _cli_matrix(args) -> pd.DataFrame:
    if args.metric == "measured":
        path = Path(args.results) if args.results else (Path(args.library[0]).parent / "results.csv"
                                                         if args.library else None)
        if path is None or not path.is_file():
            raise MetricError(f"{path}: no results CSV (pass --results FILE)")
        return measured(pd.read_csv(path, keep_default_na=False, na_values=[""]), method=args.method).mean
    if not args.library:
        raise MetricError("--library DIR is required")
    for d in args.library:
        if not Path(d).exists():
            raise MetricError(f"{d}: no such folder")
    from core.library import index_library

    index = index_library([Path(d) for d in args.library] if len(args.library) > 1 else Path(args.library[0]))
    for p in index.problems:
        print(f"warning: skipped {p}", file=sys.stderr)
    groups = index.groups()
    if not groups:
        raise MetricError(f"{', '.join(args.library)}: no prompts found")
    if args.group is None:
        if len(groups) > 1:
            raise MetricError("the library holds several backbone groups, which are never compared: "
                              + ", ".join(f"{g} ({len(n)})" for g, n in groups.items()) + "; pick one with --group")
        group = next(iter(groups))
    else:
        group = args.group
        if group not in groups:
            raise MetricError(f"no backbone group {group!r}; groups: {', '.join(groups)}")
    prompts = index.group_prompts(group)
    df = compute_matrix(args.metric, prompts, cache=not args.no_cache)
    return by_task(df, prompts, rows=args.by_task == "both") if args.by_task else df
