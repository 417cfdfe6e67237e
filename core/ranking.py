"""Rank source prompts for a target task from the target's data alone (no target prompt).

    python -m core rank --target my_task [--library DIR ...] [--metric zs] [--top 3] [--out ranking.csv]

For every compatible source prompt (one backbone group) the target's validation split
(first ``max_examples`` rows, as ``core.metrics.zs``) is encoded once with the source
prompt in front. Two signals come out of that one pass:

zs   verbalizer accuracy of the source prompt on the target minus the split's majority
     rate: exactly ``core.metrics.zs``'s number for (source, target) -- the same head
     (label descriptions, tau 0.05), pooling and truncation as ``core.training.evaluate``.
ncc  leave-one-out nearest-class-centroid accuracy (cosine) of the target's classes on
     those same pooled features, minus the majority rate. It asks whether the source
     prompt makes the target's classes *separable*, whatever the label descriptions say
     (zs asks whether they line up with the descriptions). Chosen over a "sketch"
     target prompt + e_tok (SPoT) because it costs nothing beyond the zs pass (the
     60 s budget on 2 CPU cores goes to the forwards), is deterministic, and does not
     depend on how few steps a sketch got; and over raw activation similarity because
     there is no target activation to compare with before a target prompt exists.

Results are cached under ATLAS_CACHE/ranking/ by content: backbone name, settings,
the target's validation texts + labels + descriptions, and each prompt's content hash,
so a renamed prompt or task reuses its numbers and a changed one does not.

The λ rule of the demo build for PANDA runs planned from a ranking (``panda_lambdas``)
lives here too, so the Tasks page and ``python -m core sweep --target`` share it.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from core import fmt
from core.fsutil import atomic_write_json, atomic_write_text, cache_cap_bytes, json_hash, touch, trim_lru

CACHE_VERSION = 1
SIGNALS = ("zs", "ncc")
DEFAULT_BETA = 0.5   # the demo build's panda_beta (core.demo.Profile)
RANK_COLUMNS = ["rank", "source", "task", "family", "zs", "ncc", "accuracy", "L", "path"]


class RankError(ValueError):
    """A ranking that cannot be computed, with one message saying why."""


@dataclass
class RankSettings:
    """What the numbers depend on (part of the cache key)."""
    max_examples: int = 200     # validation rows scored (core.metrics.zs uses the first 200)
    tau: float = 0.05           # verbalizer temperature (core.training.evaluate's default)
    max_length: int = 128       # text tokens per example
    pool: str = "text"
    batch_size: int = 128      # as core.training.evaluate, so the numbers match it exactly
    # zs read through a label-word head (a core.heads preset: thunlp-roberta, peft-causal, ...) instead of
    # the cosine head on pooled features; ncc stays on the pooled features of the same model
    lm_head: str | None = None

    def __post_init__(self):
        problems = []
        if self.lm_head is not None:
            from core.heads.presets import LABEL_WORD_PRESETS
            if self.lm_head not in LABEL_WORD_PRESETS:
                problems.append(f"lm_head {self.lm_head!r}: use one of {', '.join(LABEL_WORD_PRESETS)} "
                                "(or none: the cosine head)")
        if int(self.max_examples) < 2:
            problems.append(f"max_examples must be >= 2, got {self.max_examples}")
        if not self.tau > 0:
            problems.append(f"tau must be > 0, got {self.tau}")
        if int(self.max_length) < 4:
            problems.append(f"max_length must be >= 4, got {self.max_length}")
        if self.pool not in ("text", "all", "last"):
            problems.append(f"pool {self.pool!r}: use text, all or last")
        if int(self.batch_size) < 1:
            problems.append(f"batch_size must be >= 1, got {self.batch_size}")
        if problems:
            raise RankError("RankSettings: " + "; ".join(problems))


@dataclass
class Ranking:
    """The ranked sources of one target. ``table`` columns: RANK_COLUMNS, best first by ``metric``."""
    target: str
    metric: str
    group: str
    backbone: str | None
    table: pd.DataFrame
    majority: float
    n_examples: int
    cached: int = 0             # sources whose numbers came from the cache
    computed: int = 0           # sources encoded in this call
    seconds: float = 0.0
    skipped: dict = field(default_factory=dict)   # prompt name -> why it was not ranked
    score: str = "accuracy"     # the target's score kind (core.tasks.target.score_kind): accuracy | balanced_accuracy
    chance: float | None = None  # its chance level: the majority rate (accuracy) or 1/C (balanced accuracy)
    warnings: list = field(default_factory=list)  # core.tasks.target.target_check: one line each
    undefined: dict = field(default_factory=dict)  # signal -> why it is not a number on this split (NaN in the table)
    lm_head: str | None = None  # the label-word preset zs was read through (RankSettings.lm_head); None: cosine

    @property
    def head(self) -> str:
        """What zs was read through, in words."""
        return f"{self.lm_head} (label words)" if self.lm_head else "cosine (pooled features vs label descriptions)"

    def top(self, k: int) -> list[str]:
        return list(self.table["source"].head(k))

    def saturation_warning(self, sources) -> str | None:
        """core.evidence.saturation_warning for ``sources`` (e.g. ``self.top(k)``): their zs score on this
        target's validation split (the ``accuracy`` column) already at the ceiling."""
        from core import evidence as E
        return E.saturation_warning(dict(zip(self.table["source"], self.table["accuracy"].astype(float))),
                                    sources, self.target)

    def scores(self, metric: str | None = None) -> dict[str, float]:
        m = metric or self.metric
        return dict(zip(self.table["source"], self.table[m].astype(float)))


# --------------------------------------------------------------------------- signals
def ncc_loo_accuracy(Z: np.ndarray, y: np.ndarray, balanced: bool = False) -> float:
    """Leave-one-out nearest-class-centroid accuracy with cosine similarity.

    Z: [n, d] features, y: [n] int labels. Each example is scored against the class
    centroids of the *other* examples (its own class's centroid without it), so a class
    of one example cannot predict itself. Returns a fraction in [0, 1]: accuracy, or with
    ``balanced`` the mean per-class recall.
    """
    Z = np.asarray(Z, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    n = len(y)
    if n < 2:
        return float("nan")
    Zn = Z / np.maximum(np.linalg.norm(Z, axis=1, keepdims=True), 1e-12)
    classes = np.unique(y)
    sums = np.stack([Zn[y == c].sum(0) for c in classes])          # [C, d]
    counts = np.array([(y == c).sum() for c in classes], dtype=np.float64)
    own = np.searchsorted(classes, y)                               # [n] index into classes
    sims = np.empty((n, len(classes)))
    for k in range(len(classes)):
        s = np.broadcast_to(sums[k], Zn.shape).copy()
        cnt = np.full(n, counts[k])
        mine = own == k
        s[mine] -= Zn[mine]
        cnt[mine] -= 1
        cent = s / np.maximum(np.linalg.norm(s, axis=1, keepdims=True), 1e-12)
        sims[:, k] = np.where(cnt > 0, (Zn * cent).sum(1), -np.inf)
    right = classes[sims.argmax(1)] == y
    if balanced:
        return float(np.mean([right[y == c].mean() for c in classes]))
    return float(right.mean())


def panda_lambdas(scores: dict[str, float], beta: float = DEFAULT_BETA) -> dict[str, float]:
    """The demo build's λ rule (core.demo.lambda_weights) applied to a ranking's scores.

    λ(s) = β · (score_s − min) / (max − min), min and max over *all* ranked sources of the
    target (not only the top-k launched), so negative zs values are fine; all sources get
    β when every score is equal. NaN scores are an error (a λ is never guessed).
    Returns source -> λ; ``metric_value`` for TrainConfig is λ / β.
    """
    if not scores:
        raise RankError("no scores to derive λ from")
    bad = [s for s, v in scores.items() if v is None or not np.isfinite(v)]
    if bad:
        raise RankError(f"no score for {', '.join(map(str, bad[:5]))}: cannot derive λ")
    if not beta >= 0:
        raise RankError(f"beta must be >= 0, got {beta}")
    lo, hi = min(scores.values()), max(scores.values())
    return {s: beta * ((v - lo) / (hi - lo) if hi > lo else 1.0) for s, v in scores.items()}


def mix_weights(scores: dict[str, float], chosen: list[str]) -> tuple[list[float], str]:
    """Weights of the K ``chosen`` sources in a mixture, from a ranking's scores: min-max over
    *all* ranked sources (as :func:`panda_lambdas`), then renormalised over the K chosen to sum 1.
    The K-th source gets 0 only when it is the lowest of all ranked (K = every source, or a tie at
    the bottom); then the weights are uniform, and the returned note says so.
    Returns (weights, note: "" or why they are uniform)."""
    norm = panda_lambdas(scores, 1.0)
    w = [float(norm[s]) for s in chosen]
    if min(w) <= 0 or sum(w) <= 0:
        return [1.0 / len(chosen)] * len(chosen), (f"uniform weights: {chosen[-1]} has the lowest {len(scores)}-source "
                                                   "score, so min-max gives it 0")
    return [x / sum(w) for x in w], ""


# --------------------------------------------------------------------------- data + cache
def task_data_hash(task, n: int) -> str:
    """sha256 of the first ``n`` validation texts (both texts of a pair) + labels and the label
    descriptions."""
    sp = task.validation
    texts2 = getattr(sp, "texts2", None)
    h = hashlib.sha256()
    h.update(json.dumps([list(task.labels), list(task.descriptions)]).encode())
    for i, (t, y) in enumerate(zip(list(sp.texts)[:n], list(sp.labels)[:n])):
        # json of the pair: a tab or newline inside a text cannot make two rows hash alike
        row = t if texts2 is None else json.dumps([t, texts2[i]], ensure_ascii=False)
        h.update(f"{y}\t{row}\n".encode("utf-8"))
    return h.hexdigest()[:16]


def _cache_path(backbone_name: str, settings: RankSettings, data_hash: str) -> Path:
    from core.config import cache_dir
    parts = [CACHE_VERSION, backbone_name, settings.max_examples, settings.tau, settings.max_length,
             settings.pool, data_hash]
    if settings.lm_head:   # another head reads other numbers (the pooled head's key is unchanged)
        parts.append(settings.lm_head)
    key = json_hash(parts, 20)
    return cache_dir() / "ranking" / f"{key}.json"


def _read_cache(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    touch(path)  # a read is a use: the least recently used rankings are trimmed first (_write_cache)
    return data


def _write_cache(path: Path, data: dict) -> None:
    """Save one target's ranking numbers, then trim the ranking folder to ATLAS_CACHE_MAX_MB (core.fsutil),
    least recently used first; the file just written stays."""
    atomic_write_json(path, data)
    trim_lru(path.parent, cache_cap_bytes(), "*.json", keep=path)


# --------------------------------------------------------------------------- sources
def collections_index(text: str | None = None):
    """The LibraryIndex of the collections named in ``text`` ("demo,my runs"; core.collection),
    by default the similarity analyses' default (demo + my library), as every page uses."""
    from core import collection as C
    chosen, unknown = C.parse(text)
    if unknown:
        raise RankError(f"unknown collection(s) {', '.join(map(repr, unknown))} (known: {', '.join(C.BUILTIN)})")
    return C.index(chosen)


def _pick_group(index, group: str | None, backbone: str | None) -> str:
    groups = index.groups()
    if not groups:
        raise RankError(f"no source prompts in {', '.join(index.roots) or 'the given folders'}")
    if group:
        if group not in groups:
            raise RankError(f"no prompts of group {group!r} (groups here: {', '.join(groups)})")
        return group
    if backbone:
        from core.prompts import portable_model_name
        names = {backbone, portable_model_name(backbone)}
        hits = [g for g in groups if any(g == n or g.startswith(f"{n}:") for n in names)]
        if len(hits) == 1:
            return hits[0]
        raise RankError(f"no single prompt group for backbone {backbone!r} (groups here: {', '.join(groups)})")
    if len(groups) > 1:
        desc = ", ".join(f"{g} ({len(v)})" for g, v in groups.items())
        raise RankError(f"the source prompts span several backbones: {desc}; pick one group (--group)")
    return next(iter(groups))


def _load_backbone(name: str | None, d: int):
    """The group's backbone, or RankError naming the model the prompts need."""
    from core.backbone import BackboneError, load_backbone, resolve_model_path
    if name is None or name.startswith("unknown"):
        raise RankError("these prompts do not say which model they were trained with: "
                        "ranking needs their backbone (set it in their atlas.json)")
    try:
        resolve_model_path(name)
    except (BackboneError, OSError, ValueError) as e:
        raise RankError(f"the source prompts need the model {name!r}, which is not available here ({e})") from None
    bb = load_backbone(name, device="auto")
    if bb.dim != d:
        raise RankError(f"the source prompts have d={d} but {name!r} has hidden size {bb.dim}")
    return bb


def _label_word_head(preset_name: str, bb_name: str | None, task, d: int):
    """The label-word head zs is read through (core.training.lmhead), or RankError saying why not."""
    from core.training.config import TrainError
    from core.training.lmhead import head_for_prompts
    try:
        return head_for_prompts(preset_name, bb_name, task, d)
    except TrainError as e:
        raise RankError(f"head {preset_name}: {e}") from None


# --------------------------------------------------------------------------- the pass
def _encode_all(bb, ids: list[list[int]], prompt, pool: str, batch_size: int):
    """Pooled features [n, d] float32 of every text with ``prompt`` ([L, d] or None) in front."""
    import torch
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    out = torch.empty((len(ids), bb.dim))
    with torch.no_grad():
        for s in range(0, len(order), batch_size):
            idx = order[s:s + batch_size]
            b = bb.pad([ids[i] for i in idx])
            out[idx] = bb.encode(b["input_ids"], b["attention_mask"], prompt, pool=pool).float().cpu()
    return out


def rank_sources(target, *, libraries: list | None = None, index=None, group: str | None = None,
                 backbone: str | None = None, metric: str = "zs", settings: RankSettings | None = None,
                 progress: Callable[[int, int, str], None] | None = None, use_cache: bool = True,
                 bb=None) -> Ranking:
    """Rank every prompt of one backbone group as a source for ``target`` (a task name or Task).

    libraries: prompt folders (default: the default collections, demo + my library:
    :func:`collections_index`), or pass a LibraryIndex as ``index``.
    group: the backbone group to rank (needed when the folders hold several).
    backbone: the model to load (a name or a local folder) when the prompts' recorded name
    is not loadable here (a folder's prompts record only its name); it also picks the group.
    progress(done, total, source_name) is called after each source.
    Prompts of the target task itself are not sources (they would be trained on it).
    """
    import torch
    from core.library import index_library
    from core.tasks import TaskError, get_task
    from core.training.heads import Head, label_embeddings

    t0 = time.perf_counter()
    if metric not in SIGNALS:
        raise RankError(f"unknown ranking metric {metric!r} (one of {', '.join(SIGNALS)})")
    settings = settings or RankSettings()
    if isinstance(target, str):
        try:
            task = get_task(target)
        except TaskError as e:
            raise RankError(str(e)) from None
    else:
        task = target
    n = min(len(task.validation), settings.max_examples)
    if n < 2:
        raise RankError(f"task {task.name!r}: the validation split has {len(task.validation)} examples; "
                        "ranking needs at least 2")
    from core.tasks.target import balanced_accuracy, score_kind, target_check
    check = target_check(task, n)
    if check.errors:  # a one-class split: every number would be the majority rate
        raise RankError(check.errors[0])
    kind = score_kind(task)
    if index is None and libraries is None:
        index = collections_index()
    elif index is None:
        roots = [Path(r) for r in libraries]
        missing = [str(r) for r in roots if not r.exists()]
        if missing:
            raise RankError(f"{missing[0]}: no such prompt folder")
        index = index_library(roots)
    g = _pick_group(index, group, backbone)
    prompts = index.group_prompts(g)
    skipped = {p.name: "a prompt of the target task itself" for p in prompts if p.task == task.name}
    # a PEFT seq2seq adapter's decoder half is prepended to the decoder's inputs, not the encoder's:
    # the forward pass here reads the encoder, so it is no source (its encoder half is)
    skipped.update({p.name: "the decoder half of a seq2seq adapter (only its encoder half is a source)"
                    for p in prompts if str(p.settings.get("part", "")).endswith("decoder")})
    prompts = [p for p in prompts if p.name not in skipped]
    if not prompts:
        raise RankError(f"group {g!r} has no source prompts other than the target's own")
    bb_name = backbone or prompts[0].backbone
    texts, texts2 = task.validation.inputs(list(range(n)))
    labels = np.asarray(list(task.validation.labels)[:n], dtype=np.int64)
    majority = float(np.bincount(labels).max() / n)
    chance = majority if kind.key == "accuracy" else 1.0 / task.num_labels
    score_key = "accuracy" if kind.key == "accuracy" else "balanced_accuracy"
    path = _cache_path(str(bb_name), settings, task_data_hash(task, n))
    store = _read_cache(path) if use_cache else {}
    todo = [p for p in prompts if "balanced_accuracy" not in store.get(p.content_hash(), {})]
    computed = 0
    if todo:
        lmh = _label_word_head(settings.lm_head, bb_name, task, prompts[0].d) if settings.lm_head else None
        if lmh is not None:   # the pooled features (ncc) from the same LM's modules: no second copy
            from core.training.lmhead import backbone_view
            bb = backbone_view(lmh.lm)
        bb = bb or _load_backbone(bb_name, prompts[0].d)
        ids = bb.token_ids(texts, settings.max_length, texts2)   # a pair target: tokenised as pairs
        head = None if lmh else Head("verbalizer", label_embeddings(bb, task), settings.tau).to(bb.device)
        lm_ids = lmh.encode(texts, texts2, settings.max_length) if lmh else None
        y = torch.as_tensor(labels)
        done = len(prompts) - len(todo)
        for p in todo:
            Z = _encode_all(bb, ids, p.tensor.to(bb.device), settings.pool, settings.batch_size)
            with torch.no_grad():
                if lmh is not None:   # zs: the label words' scores through the chosen head
                    pred = lmh.predict(lm_ids, p.tensor.to(bb.device), settings.batch_size).argmax(-1)
                else:
                    pred = head(Z.to(bb.device)).float().cpu().argmax(-1)
            acc = float((pred == y).float().mean())
            store[p.content_hash()] = {"accuracy": acc, "balanced_accuracy": balanced_accuracy(pred.numpy(), labels),
                                       "ncc": ncc_loo_accuracy(Z.numpy(), labels),
                                       "ncc_balanced": ncc_loo_accuracy(Z.numpy(), labels, balanced=True)}
            computed += 1
            done += 1
            if progress:
                progress(done, len(prompts), p.name)
            if use_cache and (computed % 4 == 0 or done == len(prompts)):
                _write_cache(path, store)  # a cancelled ranking keeps what it computed
    elif progress:
        progress(len(prompts), len(prompts), "")
    rows = []
    for p in prompts:
        v = store[p.content_hash()]
        ncc = v["ncc"] if score_key == "accuracy" else v["ncc_balanced"]
        rows.append({"source": p.name, "task": p.task, "family": p.family, "zs": v[score_key] - chance,
                     "ncc": float("nan") if "ncc" in check.undefined else ncc - chance,
                     "accuracy": v[score_key], "L": p.L, "path": p.origin})
    df = pd.DataFrame(rows)
    df = df.sort_values([metric, "source"], ascending=[False, True], kind="mergesort").reset_index(drop=True)
    df.insert(0, "rank", np.arange(1, len(df) + 1))
    return Ranking(target=task.name, metric=metric, group=g, backbone=bb_name, table=df[RANK_COLUMNS],
                   majority=majority, n_examples=n, cached=len(prompts) - computed, computed=computed,
                   seconds=time.perf_counter() - t0, skipped=skipped, score=kind.key, chance=chance,
                   warnings=list(check.warnings), undefined=dict(check.undefined),
                   lm_head=settings.lm_head)


def score_caption(r: Ranking) -> str:
    """Which score a ranking's numbers are: what zs / ncc / accuracy columns mean for this target."""
    if r.score == "balanced_accuracy":
        return (f"score: balanced accuracy (mean per-class recall; the target's smallest class is rare); "
                f"zs and ncc are minus chance 1/C = {r.chance:.3f}")
    return f"score: accuracy; zs and ncc are minus the majority rate {r.majority:.3f}"


def pending(target, *, index, group: str | None = None, backbone: str | None = None,
            settings: RankSettings | None = None) -> tuple[int, int, int]:
    """What :func:`rank_sources` would still compute (core.budget prices it before a click):
    -> (sources not in the cache, sources in all, validation examples per source). Reads the cache
    only; never loads a model."""
    from core.tasks import TaskError, get_task

    settings = settings or RankSettings()
    try:
        task = get_task(target) if isinstance(target, str) else target
    except TaskError as e:
        raise RankError(str(e)) from None
    n = min(len(task.validation), settings.max_examples)
    prompts = [p for p in index.group_prompts(_pick_group(index, group, backbone)) if p.task != task.name]
    if not prompts:
        return 0, 0, n
    bb_name = backbone or prompts[0].backbone
    store = _read_cache(_cache_path(str(bb_name), settings, task_data_hash(task, n)))
    return sum(p.content_hash() not in store for p in prompts), len(prompts), n


def source_backbone(refs: list[str]) -> str | None:
    """The backbone the source prompts ``refs`` (paths or library names) were trained with.

    None when there are no sources or they do not say (the default backbone is used).
    SpecError (field "sources") when they name several backbones, or one that cannot be
    loaded here -- before anything is queued, with the model the prompts need.
    """
    from core.backbone import BackboneError, resolve_model_path
    from core.runs.spec import SpecError, resolve_prompt_ref
    names = set()
    for ref in refs:
        try:
            names.add(resolve_prompt_ref(ref)[1].backbone or None)
        except ValueError as e:
            raise SpecError({"sources": str(e)}) from None
    names.discard(None)
    if not names:
        return None
    if len(names) > 1:
        raise SpecError({"sources": f"the sources were trained with different backbones ({', '.join(sorted(names))}); "
                                    "pick sources of one backbone"})
    name = names.pop()
    try:
        resolve_model_path(name)
    except (BackboneError, OSError, ValueError) as e:
        raise SpecError({"sources": f"these source prompts need the model {name!r}, which is not available "
                                    f"here: {e}"}) from None
    return name


def measured_for_target(target: str, sources: list[str], *, method: str = "pot",
                        results: pd.DataFrame | None = None,
                        prompt_tasks: dict[str, str] | None = None) -> pd.DataFrame | None:
    """Measured gain of finished ``method`` runs on ``target`` beside a ranking.

    Columns source, measured (mean relative test gain over scratch, core.metrics.measured),
    noise (the target's scratch seed spread, same units; NaN = unknown), mark (core.evidence's rule for the
    cell: evidence, inside noise, self-transfer, target not measurable, flagged runs, ...), run acc (the
    transfer runs' mean test accuracy), scratch acc and majority (the target's). None when no run
    measured the target.
    Sources are matched by name (the results table names a source by its prompt's name).
    """
    from core.metrics import MetricError, measured
    if results is None:
        from core.runs.store import RunStore
        results = RunStore().results_table(status=("finished",))
    if results is None or not len(results):
        return None
    try:
        m = measured(results, method=method)
    except MetricError:
        return None
    if target not in m.mean.columns:
        return None
    col = m.mean[target]
    noise = float(m.noise.get(target, float("nan")))
    # core.evidence: the cell's mark and its absolute numbers (the same rule as Home and Transferability)
    from core import evidence as E
    ev = E.evidence(results, method=method, prompt_tasks=prompt_tasks)
    ts = ev.targets.loc[target] if target in ev.targets.index else None

    def cell(frame: pd.DataFrame, s: str):
        return frame.at[s, target] if s in frame.index and target in frame.columns else float("nan")

    return pd.DataFrame({"source": list(sources),
                         "measured": [float(col[s]) if s in col.index else float("nan") for s in sources],
                         "noise": noise,
                         "mark": [cell(ev.marks, s) if isinstance(cell(ev.marks, s), str) else "" for s in sources],
                         "run acc": [float(cell(ev.source_score, s)) for s in sources],
                         "scratch acc": float(ts["scratch_mean"]) if ts is not None else float("nan"),
                         "majority": float(ts["majority"]) if ts is not None else float("nan")})


# --------------------------------------------------------------------------- ranking -> sweep
def demo_regime() -> dict:
    """The demo grid's training regime (core.demo.PROFILES["gpu"]): what a ranked sweep runs by default."""
    from core.demo.profiles import PROFILES  # the module: core.demo's package imports its cli
    p = PROFILES["gpu"]
    return {"params": dict(steps=p.steps, train_size=p.train_size, eval_every=p.eval_every, max_length=p.max_length,
                           lr=p.lr, init_text=p.init_text),
            "scratch_seeds": list(p.scratch_seeds), "seeds": [0], "beta": p.panda_beta}


def ranked_sweep(r: Ranking, top: int = 3, *, methods: tuple[str, ...] = ("pot", "panda"), spot: bool = False,
                 beta: float | None = None, params: dict | None = None, seeds: list[int] | None = None,
                 scratch_seeds: list[int] | None = None, backend: str = "local", address: str | None = None,
                 device: str = "auto", name: str | None = None, mix: bool = False,
                 mix_methods: tuple[str, ...] = ("attempt", "panda", "spot")):
    """The sweep for a ranking's top-k: scratch baseline, PoT and PANDA from each source.

    PANDA's λ comes from the ranking's metric exactly as the demo build sets it
    (``panda_lambdas``: min-max over *all* ranked sources of this target, times β), passed as
    ``lambda_mode="metric"``, ``beta``, ``metric_value`` = λ/β, so it is stored with each run.
    ``spot``: one more PoT run whose init is the top-k average weighted by the same
    normalised scores (SPoT); sources with weight 0 are dropped from it.
    ``mix``: "mix the top K" too -- ONE run per mixture method (``attempt``, multi-teacher ``panda``,
    ``spot`` = PoT from the weighted average), labelled "mix top-K (metric)" in the results, with
    the top K's :func:`mix_weights`; multi-teacher panda's λ is β times the weighted mean of the
    members' normalised scores.
    Regime defaults: ``demo_regime()`` (128 examples, 150 steps, 3 scratch seeds, 1 seed per transfer).
    A ranking read through a label-word head (``r.lm_head``) trains every run of the sweep, scratch
    included, through the same head (params ``lm_head``), as its sources were trained; ``params``
    may say otherwise (``lm_head: None`` = the pooled cosine head).
    """
    from core.runs.sweeps import SweepSpec
    reg = demo_regime()
    if r.metric in r.undefined:
        raise RankError(f"{r.metric} is undefined on {r.target}'s validation split ({r.undefined[r.metric]}): "
                        "no λ can come from it; rank by zs")
    beta = reg["beta"] if beta is None else float(beta)
    if not 1 <= int(top) <= len(r.table):
        raise RankError(f"top must be between 1 and the {len(r.table)} ranked sources, got {top}")
    scores = r.scores()
    norm = panda_lambdas(scores, 1.0)
    lam = {s: beta * v for s, v in norm.items()}
    chosen = r.top(int(top))
    path = dict(zip(r.table["source"], r.table["path"]))
    missing = [s for s in chosen if not path.get(s)]
    if missing:
        raise RankError(f"source {missing[0]!r} has no file to train from")
    srcs = [str(path[s]) for s in chosen]
    spot_spec = None
    if spot:
        pairs = [(path[s], norm[s]) for s in chosen if norm[s] > 0]
        if len(pairs) < 2:
            raise RankError("SPoT init needs at least 2 of the top-k with a positive normalised score")
        spot_spec = {"sources": [str(p) for p, _ in pairs], "weights": [w for _, w in pairs]}
    mix_spec = None
    if mix:
        w, note = mix_weights(scores, chosen)
        mix_spec = {"sources": srcs, "weights": w, "methods": list(mix_methods), "label": f"mix top-{top} ({r.metric})",
                    "members": list(chosen), "metric": r.metric, "top": int(top),
                    "metric_value": float(sum(wi * norm[s] for wi, s in zip(w, chosen)))}
        if note:
            mix_spec["note"] = note
    params = {**reg["params"], **({"lm_head": r.lm_head} if r.lm_head else {}), **(params or {})}
    if params.get("lm_head") is None:
        params.pop("lm_head", None)
    if params.get("eval_every") and params.get("steps") and params["eval_every"] > params["steps"]:
        params["eval_every"] = params["steps"]  # a short sweep still evaluates at its end
    return SweepSpec(
        sources=srcs, targets=[r.target], methods=list(methods), seeds=list(seeds or reg["seeds"]),
        scratch_seeds=list(scratch_seeds or reg["scratch_seeds"]), backbone=r.backbone,
        params=params,
        method_params={"panda": {"lambda_mode": "metric", "beta": beta, "student_init": "random",
                                 "teacher_mode": "pot"}},
        source_params={str(path[s]): {"panda": {"metric_value": norm[s]}} for s in chosen},
        spot=spot_spec, mix=mix_spec, device=device, backend=backend, address=address,
        name=name or f"{r.target}-top{top}-{r.metric}",
        ranking={"target": r.target, "metric": r.metric, "group": r.group, "beta": beta, "top": chosen,
                 "scores": scores, "lambdas": lam, **({"lm_head": r.lm_head} if r.lm_head else {})})


def sweep_cli(argv: list[str]) -> int:
    """``python -m core sweep --target T --top K ...``: rank, then launch the top-k sweep."""
    from core.runs.queue import launch_sweep, wait
    from core.runs.spec import BACKENDS, LaunchError, SpecError
    from core.runs.store import RunStore, StoreError

    ap = argparse.ArgumentParser(prog="python -m core sweep --target", description=ranked_sweep.__doc__.split("\n\n")[0])
    ap.add_argument("--target", required=True)
    ap.add_argument("--top", type=int, default=3)
    ap.add_argument("--library", nargs="+", action="extend", metavar="DIR",
                    help="source prompt folders instead of collections")
    ap.add_argument("--col", default=None, metavar="NAMES",
                    help="source collections, e.g. 'demo,my runs' (default: demo,my library)")
    ap.add_argument("--group")
    ap.add_argument("--backbone", help="the model to load (name or local folder) when the prompts' own is not here")
    ap.add_argument("--metric", choices=SIGNALS, default="zs")
    ap.add_argument("--lm-head", default=None, metavar="PRESET",
                    help="rank with zs read through this label-word preset and train the sweep through it "
                         "(as `rank --lm-head`; default: the cosine head on pooled features)")
    ap.add_argument("--methods", nargs="+", default=["pot", "panda"], choices=["pot", "panda"])
    ap.add_argument("--spot", action="store_true", help="add the SPoT weighted-average init run")
    ap.add_argument("--mix", action="store_true",
                    help="also mix the top K: attempt, multi-teacher panda and SPoT-weighted pot, one run each")
    ap.add_argument("--mix-methods", nargs="+", default=["attempt", "panda", "spot"],
                    choices=["attempt", "panda", "spot"])
    ap.add_argument("--yes", action="store_true", help="launch without asking (the plan is printed first)")
    ap.add_argument("--beta", type=float, default=None, help="PANDA β (default: the demo's 0.5)")
    ap.add_argument("--steps", type=int)
    ap.add_argument("--train-size", type=int)
    ap.add_argument("--param", action="append", default=[], metavar="KEY=JSON", help="another TrainConfig field")
    ap.add_argument("--seeds", type=int, nargs="+")
    ap.add_argument("--scratch-seeds", type=int, nargs="+")
    ap.add_argument("--backend", choices=BACKENDS, default="local")
    ap.add_argument("--address")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dry-run", action="store_true", help="print the sweep spec, launch nothing")
    ap.add_argument("--wait", action="store_true")
    a = ap.parse_args(argv)
    params = {k: v for k, v in (("steps", a.steps), ("train_size", a.train_size)) if v is not None}
    for kv in a.param:
        k, sep, v = kv.partition("=")
        if not sep:
            print(f"error: --param {kv!r}: use KEY=VALUE", file=sys.stderr)
            return 2
        try:
            params[k] = json.loads(v)
        except ValueError:
            params[k] = v
    try:
        idx = collections_index(a.col) if a.col is not None and a.library is None else None
        r = rank_sources(a.target, libraries=a.library, index=idx, group=a.group, backbone=a.backbone, metric=a.metric,
                         settings=RankSettings(lm_head=a.lm_head))
        for w in r.warnings:
            print(f"warning: {w}", file=sys.stderr)
        if sat := r.saturation_warning(r.top(a.top)):
            print(f"warning: {sat}", file=sys.stderr)
        sw = ranked_sweep(r, a.top, methods=tuple(a.methods), spot=a.spot, beta=a.beta, params=params,
                          seeds=a.seeds, scratch_seeds=a.scratch_seeds, backend=a.backend, address=a.address,
                          device=a.device, mix=a.mix, mix_methods=tuple(a.mix_methods))
        if a.dry_run:
            print(json.dumps(sw.to_dict(), indent=1))
            return 0
        store = RunStore()
        print(plan_text(sw, store, calibrate=True), flush=True)
        if not a.yes and sys.stdin.isatty() and input("launch? [y/N] ").strip().lower() not in ("y", "yes"):
            print("nothing launched")
            return 0
        sweep_id = launch_sweep(sw, store)
    except (RankError, SpecError, StoreError, LaunchError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(sweep_id, flush=True)
    if a.wait:
        return wait(store, [x["run_id"] for x in store.latest_sweep_runs(sweep_id).values()])
    return 0


def plan_text(sw, store=None, *, calibrate: bool = False) -> str:
    """What a sweep will launch, before it does: one line per run, the count and the estimate (per run and
    in all; ``calibrate``: time the backbone here first when no run of it finished yet -- the CLI)."""
    from core.runs.sweeps import plan
    planned = plan(sw)
    lines = [f"plan {sw.name or ''}: {len(planned)} run(s) on target(s) {', '.join(sw.targets)}"]
    for p in planned:
        s = p.spec
        what = s.mix["label"] if s.mix else "+".join(Path(x).name for x in s.sources) or "-"
        extra = ""
        if s.mix and s.mix.get("weights"):
            extra = " weights " + ", ".join(f"{m}={w:.2f}" for m, w in zip(s.mix.get("members") or s.sources,
                                                                           s.mix["weights"]))
        after = f" (after {', '.join(p.deps)})" if p.deps else ""
        lines.append(f"  {s.method:<8} {what:<40} seed {s.seed}{extra}{after}")
    if sw.mix and sw.mix.get("note"):
        lines.append(f"  note: {sw.mix['note']}")
    if store is not None:  # per run and in all, teachers before students (core.estimate)
        from core.estimate import sweep_estimate, sweep_run_estimate
        est = sweep_run_estimate(sw, store, calibrate=calibrate)
        lines.append(est.text())
        lines.append("Total: " + sweep_estimate(sw, store, est=est))
    return "\n".join(lines)


# --------------------------------------------------------------------------- CLI
def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m core rank", description=__doc__.split("\n\n")[1].strip())
    ap.add_argument("--target", required=True, help="a registered task (python -m core tasks list)")
    ap.add_argument("--library", nargs="+", action="extend", metavar="DIR",
                    help="source prompt folders instead of collections")
    ap.add_argument("--col", default=None, metavar="NAMES",
                    help="source collections, e.g. 'demo,my runs' (default: demo,my library, as the pages)")
    ap.add_argument("--group", help="backbone group when the folders hold several")
    ap.add_argument("--backbone", help="the model to load (name or local folder) when the prompts' own is not here")
    ap.add_argument("--metric", choices=SIGNALS, default="zs", help="rank by this signal (default zs)")
    ap.add_argument("--top", type=int, default=None, metavar="K", help="print only the best K")
    ap.add_argument("--max-examples", type=int, default=RankSettings.max_examples)
    ap.add_argument("--lm-head", metavar="PRESET", default=None,
                    help="read zs through this label-word head (thunlp-roberta, peft-causal, ...; core.heads "
                         "presets) instead of the cosine head on pooled features; ncc stays on pooled features")
    ap.add_argument("--out", help="write the whole ranking as CSV here (raw values: the product reads it back; unlike the pages' downloads, cells starting with = + - @ are not neutralised for spreadsheets)")
    ap.add_argument("--no-cache", action="store_true")
    return ap


def cli(command: str, argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.top is not None and args.top < 1:
        print("error: --top must be >= 1", file=sys.stderr)
        return 2

    def progress(done, total, name):
        if name:
            print(f"  [{done}/{total}] {name}", file=sys.stderr, flush=True)

    try:
        idx = collections_index(args.col) if args.col is not None and args.library is None else None
        r = rank_sources(args.target, libraries=args.library, index=idx, group=args.group, backbone=args.backbone,
                         metric=args.metric,
                         settings=RankSettings(max_examples=args.max_examples, lm_head=args.lm_head),
                         progress=progress,
                         use_cache=not args.no_cache)
    except RankError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    df = r.table if args.top is None else r.table.head(args.top)
    print(f"{r.target}: {len(r.table)} sources of {r.group}, {r.n_examples} validation examples, "
          f"majority {r.majority:.3f}; ranked by {r.metric} ({r.computed} computed, {r.cached} cached, "
          f"{r.seconds:.1f} s)")
    print(score_caption(r))
    print(f"zs read through: {r.head}")
    for w in r.warnings:
        print(f"warning: {w}")
    for k, why in r.undefined.items():
        print(f"undefined: {k} ({why}): shown as NaN, not a measurement")
    signed = {c: (lambda x: f"{x:+.3f}") for c in SIGNALS}
    meas = measured_for_target(r.target, list(df["source"]))
    if meas is not None:  # the measured columns, with core.evidence's marks (as on the Tasks page)
        df = df.merge(meas, on="source", how="left")
        df["measured"], df["noise"] = df["measured"].map(fmt.gain), df["noise"].map(fmt.gain)
    print(df.drop(columns=["path"]).to_string(index=False, formatters={**signed, "accuracy": "{:.3f}".format}))
    if args.out:
        out = atomic_write_text(args.out, r.table.to_csv(index=False))
        print(f"wrote {out}")
    return 0
