"""Train one soft prompt on a task: scratch | pot | panda, one loop, one event stream.

    python -m core train --task sent_tweet --method scratch --steps 300 --train-size 200
    python -m core train --task sent_product --method pot --source workspace/library/sent_tweet-scratch-s0
    python -m core train --task sent_product --method panda --source SRC --teacher POT_PROMPT
    python -m core train --task sent_movie --baselines        # majority / no prompt / logistic probe

Methods (DESIGN.md §4):

- ``scratch``: prompt initialised from the token embeddings of a short
  task-neutral text repeated/truncated to L (PEFT's ``TEXT`` init, default
  :data:`NEUTRAL_TEXT`), or ``init="random_vocab"`` (random vocabulary tokens, as
  SPoT). The text init starts at the no-prompt accuracy (measured below); random
  vocab starts below it.
- ``pot``: initialised from one source prompt, or the SPoT weighted average
  ``sum_r w_r P_r / sum_r w_r`` of several (``source_weights``, default uniform).
- ``panda``: ``loss = CE(z_s, y) + lambda * MSE(z_s, z_t)`` with ``z`` the head's
  logits; the teacher is the frozen model with the teacher prompt
  (``teacher_mode="pot"``: a prompt already PoT-trained on this target, passed
  as ``teacher``, as PANDA's code does; ``"source"``: the raw source prompt). The
  student starts from the scratch init (``student_init="random"``: PANDA's code
  starts the student from a fresh prompt) or from the source (``"source"``).
  lambda: ``lambda_mode="fixed"`` uses ``kd_lambda``, by default PANDA's code
  value ``0.1 * beta / batch_size`` with beta = 0.1 (their ``mse_loss`` is
  mean-reduced, then divided by the batch size and scaled by 0.1*beta; that is
  6.25e-4 on our mean-reduced MSE at batch 16); ``lambda_mode="metric"``:
  ``lambda = beta * clip(metric_value, 0, 1)`` (our reading of the paper: the
  caller normalises the pair's metric to [0, 1]). The teacher is frozen and in
  eval mode, so its logits are computed once per training example and cached
  (PANDA costs about what PoT costs); ``teacher_every_step=True`` recomputes
  them each step, as PANDA's code does (for the speed benchmark).

Packed training (:func:`train_packed`): K runs on one frozen backbone in one forward per
step, each row carrying its own run's prompt; every run is a :class:`Run` (the same object
the single loop drives), so its data, head, optimiser, schedule, seed, evals, best
checkpoint, events and cancel flag are its own, and a run that fails leaves the pack alone.
The launchers use it on a GPU (``python -m core worker ID1 ID2 ...``); speed:
``bench/packed_speed.py``.

Heads: ``verbalizer`` (default): ``logits = cos(pool(x; P), e_c) / tau`` with
``e_c`` the frozen, prompt-free pooled embedding of each label description --
only the prompt trains; ``linear``: a trainable ``Linear(d, C)`` as well (its
weights are saved as ``head.safetensors`` beside the prompt).

Batching: texts are tokenised once; batches are length-bucketed (sort by length
within random chunks, shuffle the batches) and padded to their longest text;
``padding="dynamic"`` (random batches) and ``"max_length"`` (fixed length, as
PEFT examples do) exist for the benchmark.

Defaults come from a small sweep on real demo tasks (2026-11-26, MiniLM-L6 on an
H200 in fp32, L=20, batch 16, 300 steps, all training data (<= 2,000), eval
every 50 steps, verbalizer head, seed 0). Validation / test accuracy:

    config                      sent_tweet   question_type  party_tweet   mean val  mean test  |P_i|
    lr 0.003                    .953/.939    .853/.826      .913/.914     .906      .893       1.34
    lr 0.01                     .947/.953    .893/.832      .927/.906     .923      .897       2.62
    lr 0.03  (default)          .947/.947    .900/.814      .930/.938     .926      .900       5.81
    lr 0.1                      .937/.950    .897/.816      .893/.902     .909      .889      13.94
    lr 0.3                      .937/.958    .877/.818      .913/.900     .909      .892      31.71
    lr 0.1, max_norm 2          .921/.913    .853/.808      .893/.886     .889      .869       2.13
    lr 0.3, max_norm 2          .911/.924    .833/.786      .817/.816     .854      .842       2.13
    lr 0.03, cosine             .932/.945    .903/.840      .940/.928     .925      .904       5.88
    lr 0.03, tau 0.1            .947/.955    .897/.838      .907/.892     .917      .895       6.21
    lr 0.03, pool all           .953/.955    .910/.854      .923/.924     .929      .911       5.39
    lr 0.03, init random_vocab  .937/.942    .903/.854      .917/.914     .919      .903       4.28

|P_i| = mean prompt-token norm after training; real MiniLM word embeddings
average 1.07, so lr 0.3 leaves the prompt ~30x their scale (the issue's ~45x),
lr 0.03 ~5x. Chosen: lr 0.03, warm-up 10% then linear decay, no max-norm (a
cap at 2x the word-embedding norm cost 3-7 points), tau 0.05. pool "all" and
cosine decay are within noise of the defaults (one seed); "text" pooling stays
the default so the prompt acts only through attention (DESIGN.md §4).

Scratch init text: the untrained prompt's validation accuracy minus no prompt,
mean over the 10 demo tasks (worst task): "read the following text and decide
what it is about ." -0.4 points (-5.3); "classify this text ." +0.1 (-3.9);
"." +0.5 (-3.1); "," +1.2 (-3.1); "text ." +1.2 (-3.9); random vocab tokens
-3 (-11) on a CPU check. Default: "," repeated -- punctuation is what BERT-style
models already attend to as a no-op (Clark et al. 2019), so the start is about
the no-prompt model.

Module-top imports: stdlib, torch, numpy, transformers, tqdm only (this runs
on GPU boxes without pandas/sklearn/streamlit); peft, sklearn and core.tasks
are imported where used.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from core.backbone import DEFAULT_BACKBONE, Backbone, BackboneError, load_backbone

METHODS = ("scratch", "pot", "panda")
# PEFT TEXT-init text: a comma repeated L times starts at about the no-prompt accuracy
# (mean +1.2 points over the 10 demo tasks; a sentence-like text lost up to 5 points).
NEUTRAL_TEXT = ","
PANDA_BETA = 0.1  # PANDA code run scripts: --beta 0.1


class TrainError(ValueError):
    """A training set-up that cannot run; the message says what to change."""


# --------------------------------------------------------------------------- #
# Configuration and result
# --------------------------------------------------------------------------- #
@dataclass
class TrainConfig:
    """Everything a run needs; validated on construction (TrainError)."""
    method: str = "scratch"
    task: str = ""
    backbone: str = DEFAULT_BACKBONE
    prompt_length: int = 20
    steps: int = 300
    batch_size: int = 16
    lr: float = 0.03
    warmup: float = 0.1          # fraction of steps if < 1, else a step count
    schedule: str = "linear"     # linear | cosine | constant (after warm-up)
    max_norm: float | None = None  # cap each prompt token's L2 norm at max_norm x the mean word-embedding norm
    weight_decay: float = 0.0
    max_length: int = 128
    eval_every: int = 50         # 0: only at the end
    eval_at_start: bool = True   # evaluate the initial prompt (step 0) too; it can be the best
    val_size: int | None = None  # cap validation examples (speed)
    test_size: int | None = None  # cap test examples (speed; seeded, stratified); None = the whole split
    train_size: int | None = None  # low-resource targets: seeded, stratified subsample
    seed: int = 0
    init: str = "text"           # text | random_vocab (scratch / student init)
    init_text: str = NEUTRAL_TEXT
    head: str = "verbalizer"     # verbalizer | linear
    head_lr: float = 1e-2
    pool: str = "text"           # text | all
    tau: float = 0.05
    padding: str = "bucket"      # bucket | dynamic | max_length
    sources: list = field(default_factory=list)   # prompt paths (or tensors / SoftPrompts in code)
    source_weights: list[float] | None = None
    teacher: object = None       # path (or tensor / SoftPrompt) of the teacher prompt
    teacher_mode: str = "pot"    # pot | source
    student_init: str = "random"  # random (= the scratch init) | source
    kd_lambda: float | None = None  # None: PANDA code value 0.1*beta/batch_size
    lambda_mode: str = "fixed"   # fixed | metric
    beta: float = PANDA_BETA
    metric_value: float | None = None
    teacher_every_step: bool = False
    device: str = "auto"
    compile: bool = False
    name: str | None = None      # name of the saved prompt
    log_every: int = 1           # progress event every N steps (each one syncs the device for the loss)

    def __post_init__(self):
        def bad(msg):
            raise TrainError(f"train config: {msg}")
        if self.method not in METHODS:
            bad(f"method {self.method!r} is not one of {', '.join(METHODS)}")
        for k in ("prompt_length", "steps", "batch_size", "max_length"):
            if int(getattr(self, k)) < 1:
                bad(f"{k} must be >= 1, got {getattr(self, k)}")
        if self.log_every < 1:
            bad("log_every must be >= 1")
        if self.eval_every < 0:
            bad("eval_every must be >= 0")
        if not self.lr > 0 or not self.head_lr > 0:
            bad("lr and head_lr must be > 0")
        if self.warmup < 0:
            bad("warmup must be >= 0")
        if self.schedule not in ("linear", "cosine", "constant"):
            bad(f"schedule {self.schedule!r}: use linear, cosine or constant")
        if self.max_norm is not None and not self.max_norm > 0:
            bad("max_norm must be > 0 (or None)")
        if self.train_size is not None and self.train_size < 1:
            bad("train_size must be >= 1 (or None for all)")
        for k in ("val_size", "test_size"):
            if getattr(self, k) is not None and getattr(self, k) < 1:
                bad(f"{k} must be >= 1 (or None for all)")
        if self.init not in ("text", "random_vocab"):
            bad(f"init {self.init!r}: use text or random_vocab")
        if self.head not in ("verbalizer", "linear"):
            bad(f"head {self.head!r}: use verbalizer or linear")
        if self.pool not in ("text", "all"):
            bad(f"pool {self.pool!r}: use text or all")
        if not self.tau > 0:
            bad("tau must be > 0")
        if self.padding not in ("bucket", "dynamic", "max_length"):
            bad(f"padding {self.padding!r}: use bucket, dynamic or max_length")
        if self.teacher_mode not in ("pot", "source"):
            bad(f"teacher_mode {self.teacher_mode!r}: use pot or source")
        if self.student_init not in ("random", "source"):
            bad(f"student_init {self.student_init!r}: use random or source")
        if self.lambda_mode not in ("fixed", "metric"):
            bad(f"lambda_mode {self.lambda_mode!r}: use fixed or metric")
        if self.kd_lambda is not None and self.kd_lambda < 0:
            bad("kd_lambda must be >= 0")
        self.sources = list(self.sources or [])
        if self.method == "pot" and not self.sources:
            bad("method pot needs at least one source prompt (--source PATH)")
        if self.source_weights is not None:
            self.source_weights = [float(w) for w in self.source_weights]
            if len(self.source_weights) != len(self.sources):
                bad(f"{len(self.source_weights)} source weights for {len(self.sources)} sources")
            if any(w < 0 for w in self.source_weights) or sum(self.source_weights) <= 0:
                bad("source weights must be >= 0 with a positive sum")
        if self.method == "panda":
            if self.teacher_mode == "pot" and self.teacher is None:
                bad("panda with teacher_mode 'pot' needs --teacher: a prompt trained with --method pot "
                    "from the source on this target (or use --teacher-mode source)")
            if self.teacher_mode == "source" and not self.sources and self.teacher is None:
                bad("panda with teacher_mode 'source' needs --source")
            if self.student_init == "source" and not self.sources:
                bad("student_init 'source' needs --source")
            if self.lambda_mode == "metric" and self.metric_value is None:
                bad("lambda_mode 'metric' needs metric_value (the pair's metric, normalised to [0, 1])")

    def effective_lambda(self) -> float:
        """The KD weight on the mean-reduced MSE actually used."""
        if self.method != "panda":
            return 0.0
        if self.lambda_mode == "metric":
            return float(self.beta * min(1.0, max(0.0, float(self.metric_value))))
        if self.kd_lambda is not None:
            return float(self.kd_lambda)
        return 0.1 * self.beta / self.batch_size  # PANDA code: 0.1*beta*mse_loss(mean)/batch_size

    def settings(self) -> dict:
        """JSON-friendly copy (prompts given as tensors are described, not dumped)."""
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["source_weights"] = list(self.source_weights) if self.source_weights else None
        d["sources"] = [_describe(s) for s in self.sources]
        d["teacher"] = None if self.teacher is None else _describe(self.teacher)
        d["kd_lambda_effective"] = self.effective_lambda()
        return d


def _describe(x) -> str:
    if isinstance(x, torch.Tensor):
        return f"<tensor {tuple(x.shape)}>"
    if hasattr(x, "tensor") and hasattr(x, "name"):
        return str(getattr(x, "origin", None) or x.name)
    return str(x)


@dataclass
class TrainResult:
    prompt: object               # core.prompts.SoftPrompt (the best checkpoint)
    val_score: float
    test_score: float
    best_step: int
    steps: int                   # steps actually run (fewer when cancelled)
    wall_time: float
    device: str
    history: list[dict] = field(default_factory=list)
    init_val_score: float | None = None
    cancelled: bool = False
    head_state: dict | None = None   # linear head weights (CPU tensors) or None
    init_prompt: torch.Tensor | None = None  # the starting prompt [L, d] (pot: the source)
    config: TrainConfig | None = None


# --------------------------------------------------------------------------- #
# Data: subsample, tokenise once, bucketed batches
# --------------------------------------------------------------------------- #
def subsample(labels: list[int], n: int | None, seed: int) -> list[int]:
    """Indices of a seeded, stratified subsample of size n (every class kept when n allows)."""
    N = len(labels)
    if n is None or n >= N:
        return list(range(N))
    rng = np.random.default_rng(seed)
    labels_a = np.asarray(labels)
    classes = sorted(set(labels))
    # proportional allocation, at least one per class when n >= number of classes
    counts = {c: int((labels_a == c).sum()) for c in classes}
    alloc = {c: max(1 if n >= len(classes) else 0, int(round(n * counts[c] / N))) for c in classes}
    while sum(alloc.values()) > n:
        c = max(alloc, key=lambda k: alloc[k])
        alloc[c] -= 1
    while sum(alloc.values()) < n:
        c = max(classes, key=lambda k: counts[k] - alloc[k])
        alloc[c] += 1
    out = []
    for c in classes:
        idx = np.flatnonzero(labels_a == c)
        out.extend(rng.permutation(idx)[:alloc[c]].tolist())
    return sorted(out)


def batch_order(lengths: list[int], batch_size: int, rng: np.random.Generator, padding: str = "bucket"):
    """One epoch of batches (lists of indices).

    bucket: shuffle, cut into chunks of up to 50 batches, sort each chunk by
    length, cut into batches, shuffle the batches (similar lengths share a
    batch, so little padding; the chunk is small enough on small sets that
    batch composition still changes between epochs). dynamic / max_length:
    plain shuffled batches.
    """
    N = len(lengths)
    perm = rng.permutation(N)
    if padding != "bucket":
        return [perm[s:s + batch_size].tolist() for s in range(0, N, batch_size)]
    k = min(50, max(1, N // (batch_size * 8)))
    chunk = batch_size * k
    batches = []
    for s in range(0, N, chunk):
        part = sorted(perm[s:s + chunk].tolist(), key=lambda i: lengths[i])
        batches.extend(part[b:b + batch_size] for b in range(0, len(part), batch_size))
    order = rng.permutation(len(batches))
    return [batches[i] for i in order]


def _pad_batch(bb: Backbone, ids: list[list[int]], pad_to: int | None = None) -> dict[str, torch.Tensor]:
    return bb.pad(ids, pad_to)


# --------------------------------------------------------------------------- #
# Heads
# --------------------------------------------------------------------------- #
class Head(torch.nn.Module):
    """pooled [B, d] float32 -> logits [B, C]."""

    def __init__(self, kind: str, label_emb: torch.Tensor, tau: float):
        super().__init__()
        self.kind = kind
        self.tau = float(tau)
        # e_c: frozen label-description embeddings, unit norm [C, d]
        self.register_buffer("label_emb", F.normalize(label_emb.float(), dim=-1))
        if kind == "linear":
            C, d = label_emb.shape
            self.linear = torch.nn.Linear(d, C)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if self.kind == "linear":
            return self.linear(z)
        return F.normalize(z, dim=-1) @ self.label_emb.T / self.tau


def label_embeddings(bb: Backbone, task) -> torch.Tensor:
    """Frozen pooled embedding of each label description (no prompt) [C, d]."""
    descs = list(getattr(task, "descriptions", None) or task.labels)
    return bb.embed_texts(descs)


# --------------------------------------------------------------------------- #
# Prompts in
# --------------------------------------------------------------------------- #
def load_prompt_tensor(x, dim: int | None = None) -> tuple[torch.Tensor, str]:
    """A prompt given as a path, SoftPrompt or tensor -> ([L, d] float32 CPU, name)."""
    if isinstance(x, torch.Tensor):
        t, name = x, "tensor"
    elif hasattr(x, "tensor"):
        t, name = x.tensor, str(getattr(x, "name", "prompt"))
    else:
        from core.prompts import read_prompt  # lazy: keeps this module's import light
        sp = read_prompt(x, expected_dim=dim)
        t, name = sp.tensor, sp.name
    t = t.detach().to("cpu", torch.float32)
    if t.dim() != 2:
        raise TrainError(f"{_describe(x)}: a prompt must be [L, d], got shape {tuple(t.shape)}")
    if dim is not None and t.shape[1] != dim:
        raise TrainError(f"{_describe(x)}: prompt has d={t.shape[1]}, the backbone needs d={dim} "
                         "(it was trained on another model)")
    return t, name


def text_init(bb: Backbone, L: int, text: str = NEUTRAL_TEXT) -> torch.Tensor:
    """PEFT TEXT init: embeddings of the text's tokens, repeated / truncated to L -> [L, d]."""
    ids = bb.tokenizer(text, add_special_tokens=False)["input_ids"]
    if not ids:
        raise TrainError(f"init text {text!r} has no tokens")
    ids = (ids * math.ceil(L / len(ids)))[:L]
    with torch.no_grad():
        return bb.embed_ids(torch.tensor([ids])).float()[0].cpu()


def random_vocab_init(bb: Backbone, L: int, seed: int) -> torch.Tensor:
    """Embeddings of L random non-special vocabulary tokens (SPoT-style) -> [L, d]."""
    g = torch.Generator().manual_seed(seed)
    V = bb.word_embeddings.weight.shape[0]
    special = set(bb.tokenizer.all_special_ids or [])
    ids = []
    while len(ids) < L:
        i = int(torch.randint(0, V, (1,), generator=g))
        if i not in special:
            ids.append(i)
    with torch.no_grad():
        return bb.word_embeddings.weight[torch.tensor(ids, device=bb.device)].float().cpu()


def scratch_init(bb: Backbone, cfg: TrainConfig) -> torch.Tensor:
    if cfg.init == "random_vocab":
        return random_vocab_init(bb, cfg.prompt_length, cfg.seed)
    return text_init(bb, cfg.prompt_length, cfg.init_text)


def source_prompt(bb: Backbone, cfg: TrainConfig) -> tuple[torch.Tensor, list[str]]:
    """The source prompt: one, or the SPoT weighted average of several (same L)."""
    loaded = [load_prompt_tensor(s, bb.dim) for s in cfg.sources]
    shapes = {tuple(t.shape) for t, _ in loaded}
    if len(shapes) > 1:
        raise TrainError(f"source prompts differ in shape {sorted(shapes)}: averaging needs equal L")
    w = cfg.source_weights or [1.0] * len(loaded)
    total = sum(w)
    avg = sum(wi * t for wi, (t, _) in zip(w, loaded)) / total
    return avg, [n for _, n in loaded]


# --------------------------------------------------------------------------- #
# Evaluation
# --------------------------------------------------------------------------- #
@torch.no_grad()
def _predict_logits(bb: Backbone, head: Head, ids: list[list[int]], prompt: torch.Tensor | None,
                    pool: str, batch_size: int = 128) -> torch.Tensor:
    """Logits [N, C] float32 CPU, in the input order (length-sorted batches inside)."""
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    out = torch.empty((len(ids), head.label_emb.shape[0]))
    for s in range(0, len(order), batch_size):
        idx = order[s:s + batch_size]
        b = bb.pad([ids[i] for i in idx])
        z = bb.encode(b["input_ids"], b["attention_mask"], prompt, pool=pool)
        out[idx] = head(z).float().cpu()
    return out


def _accuracy(logits: torch.Tensor, labels: list[int]) -> float:
    if not labels:
        return float("nan")
    return float((logits.argmax(-1) == torch.as_tensor(labels)).float().mean())


def _split(task, split: str):
    try:
        return getattr(task, {"val": "validation", "valid": "validation"}.get(split, split))
    except AttributeError:
        raise TrainError(f"task {getattr(task, 'name', '?')}: no split {split!r} "
                         "(use train, validation or test)") from None


def evaluate(prompt: torch.Tensor | None, task, split: str = "test", backbone: Backbone | None = None,
             head: str | Head = "verbalizer", *, pool: str = "text", tau: float = 0.05,
             max_length: int = 128, batch_size: int = 128, limit: int | None = None) -> float:
    """Accuracy of ``prompt`` ([L, d] or None = no prompt) on a task split.

    head: "verbalizer" (built from the task's label descriptions) or a trained Head.
    """
    bb = backbone or load_backbone()
    if isinstance(task, str):
        from core.tasks import get_task
        task = get_task(task)
    sp = _split(task, split)
    texts, labels = list(sp.texts), list(sp.labels)
    if limit is not None:
        texts, labels = texts[:limit], labels[:limit]
    if isinstance(head, str):
        if head != "verbalizer":
            raise TrainError("evaluate(head='linear') needs the trained Head object")
        head = Head("verbalizer", label_embeddings(bb, task), tau).to(bb.device)
    if prompt is not None:
        prompt = load_prompt_tensor(prompt, bb.dim)[0].to(bb.device)
    ids = bb.token_ids(texts, max_length)
    return _accuracy(_predict_logits(bb, head, ids, prompt, pool, batch_size), labels)


def majority_rate(task, split: str = "test") -> float:
    """Share of the most frequent class in a split."""
    if hasattr(task, "majority_rate"):
        return float(task.majority_rate(split))
    labels = list(_split(task, split).labels)
    return max(np.bincount(labels)) / len(labels) if labels else float("nan")


def logistic_probe(task, backbone: Backbone | None = None, split: str = "test", *,
                   train_size: int | None = None, seed: int = 0, max_length: int = 128) -> float:
    """Accuracy of a logistic regression on frozen, prompt-free pooled embeddings (sklearn, lazily)."""
    from sklearn.linear_model import LogisticRegression
    bb = backbone or load_backbone()
    idx = subsample(list(task.train.labels), train_size, seed)
    X = bb.embed_texts([task.train.texts[i] for i in idx], max_length=max_length).numpy()
    y = np.asarray([task.train.labels[i] for i in idx])
    sp = _split(task, split)
    Xt = bb.embed_texts(list(sp.texts), max_length=max_length).numpy()
    clf = LogisticRegression(max_iter=2000, C=1.0).fit(X, y)
    return float((clf.predict(Xt) == np.asarray(sp.labels)).mean())


def zero_shot_scores(task, backbone: Backbone | None = None, split: str = "test", *,
                     probe: bool = False, train_size: int | None = None, tau: float = 0.05) -> dict:
    """Baselines for a task: majority-class rate, verbalizer with no prompt (and the logistic probe)."""
    bb = backbone or load_backbone()
    out = {"majority": majority_rate(task, split),
           "no_prompt": evaluate(None, task, split, bb, tau=tau)}
    if probe:
        out["probe"] = logistic_probe(task, bb, split, train_size=train_size)
    return out


# --------------------------------------------------------------------------- #
# The loop
# --------------------------------------------------------------------------- #
def _lr_lambda(cfg: TrainConfig):
    warm = int(cfg.warmup * cfg.steps) if cfg.warmup < 1 else int(cfg.warmup)

    def f(step: int) -> float:  # step = number of optimizer steps taken so far
        if warm and step < warm:
            return (step + 1) / warm
        if cfg.schedule == "constant":
            return 1.0
        rest = max(1, cfg.steps - warm)
        frac = min(1.0, (step - warm) / rest)
        if cfg.schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * frac))
        return max(0.0, 1.0 - frac)
    return f


def _seed_all(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % (2 ** 32))


class Run:
    """One run's training state, shared by the single loop (:func:`train`) and the packed
    loop (:func:`train_packed`): its data, head, prompt, optimiser, schedule, teacher,
    best checkpoint, history and event stream. The loops own only the forward pass.

    Constructing it does the set-up (seed, data, head, prompt, optimiser, teacher cache)
    and the step-0 eval, exactly as a single run does, so a packed run starts where its
    single twin starts.
    """

    def __init__(self, cfg: TrainConfig, bb: Backbone, task=None, *,
                 callback: Callable[[dict], None] | None = None,
                 should_stop: Callable[[], bool] | None = None, progress: bool = False):
        self.t_start = time.perf_counter()
        self.cfg, self.bb, self.should_stop = cfg, bb, should_stop
        self.emit = callback or (lambda e: None)
        if task is None:
            from core.tasks import get_task  # lazy: core.tasks may pull in loaders
            task = get_task(cfg.task)
        self.task = task
        self.task_name = task_name = getattr(task, "name", cfg.task)
        _seed_all(cfg.seed)  # the linear head's init draws from the global generator
        self.emit({"kind": "status", "step": 0, "metrics": {"state": "started", "task": task_name,
                                                             "method": cfg.method, "device": str(bb.device)}})

        # ---- data -----------------------------------------------------------
        tr_idx = subsample(list(task.train.labels), cfg.train_size, cfg.seed)
        tr_texts = [task.train.texts[i] for i in tr_idx]
        self.tr_labels = torch.tensor([task.train.labels[i] for i in tr_idx], dtype=torch.long)
        if len(tr_texts) == 0:
            raise TrainError(f"task {task_name}: empty training split")
        self.tr_ids = bb.token_ids(tr_texts, cfg.max_length)
        self.lengths = [len(x) for x in self.tr_ids]
        va = _split(task, "validation")
        va_texts, va_labels = list(va.texts), list(va.labels)
        if cfg.val_size is not None:
            vi = subsample(va_labels, cfg.val_size, cfg.seed)
            va_texts, va_labels = [va_texts[i] for i in vi], [va_labels[i] for i in vi]
        self.va_ids, self.va_labels = (bb.token_ids(va_texts, cfg.max_length) if va_texts else []), va_labels
        self.pad_to = cfg.max_length if cfg.padding == "max_length" else None

        # ---- head + prompt --------------------------------------------------
        self.head = head = Head(cfg.head, label_embeddings(bb, task), cfg.tau).to(bb.device)
        C = head.label_emb.shape[0]
        for split, ys in (("training", self.tr_labels.tolist()), ("validation", va_labels)):
            bad = [y for y in ys if not 0 <= int(y) < C]
            if bad:  # on CUDA a bad index is a device-side assert that ends every run in the process
                raise TrainError(f"task {task_name}: a {split} label is {bad[0]}, outside its {C} classes")
        self.source_names: list[str] = []
        src = None
        if cfg.sources:
            src, self.source_names = source_prompt(bb, cfg)
        if cfg.method == "pot" or (cfg.method == "panda" and cfg.student_init == "source"):
            init = src.clone()
        else:
            init = scratch_init(bb, cfg)
        self.prompt = torch.nn.Parameter(init.to(bb.device, torch.float32).clone())
        self.init_prompt = init.clone()
        self.tok_norm = float(bb.word_embeddings.weight.float().norm(dim=1).mean())
        self.max_norm_abs = cfg.max_norm * self.tok_norm if cfg.max_norm else None

        params = [{"params": [self.prompt], "lr": cfg.lr, "weight_decay": cfg.weight_decay}]
        if cfg.head == "linear":
            params.append({"params": list(head.linear.parameters()), "lr": cfg.head_lr, "weight_decay": 0.0})
        self.opt = torch.optim.AdamW(params)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, _lr_lambda(cfg))

        # ---- teacher (panda) ------------------------------------------------
        self.lam = cfg.effective_lambda()
        self.teacher_prompt = self.teacher_cache = None
        self.teacher_head = head
        if cfg.method == "panda":
            # teacher_mode "pot": the given PoT-trained prompt; "source": --teacher if given, else the source
            tp = load_prompt_tensor(cfg.teacher, bb.dim)[0] if cfg.teacher is not None else src
            self.teacher_prompt = tp.to(bb.device)
            if cfg.head == "linear":
                self.teacher_head = _teacher_linear_head(cfg, head, bb)
            if not cfg.teacher_every_step:
                self.emit({"kind": "status", "step": 0, "metrics": {"state": "caching_teacher",
                                                                     "n": len(self.tr_ids)}})
                self.teacher_cache = _predict_logits(bb, self.teacher_head, self.tr_ids, self.teacher_prompt,
                                                     cfg.pool).to(bb.device)

        # ---- loop state -----------------------------------------------------
        self.history: list[dict] = []
        self.best = {"val": -1.0, "step": 0, "prompt": self.init_prompt.clone(), "head": _head_state(head)}
        self.rng = np.random.default_rng(cfg.seed)
        self.batches: list[list[int]] = []
        self.step = 0
        self.cancelled = False
        self.n_examples = 0
        self.want_metrics = callback is not None or progress
        # Reading a loss (float(t)) waits for the GPU to finish it. On CUDA a progress event is
        # therefore emitted one step late: its losses are read after the next step is queued, so
        # the GPU never drains while the host logs (the loop stays ahead of the GPU).
        self.defer = _defer_progress(bb)
        self.pending = None
        self._ce = self._kd = None
        self.bar = tqdm(total=cfg.steps, desc=f"{cfg.method} {task_name}", disable=not progress, leave=True)
        self.init_val = self.run_eval(0) if cfg.eval_at_start else None
        self.t_loop = time.perf_counter()

    # ---- the pieces of one step ----------------------------------------------
    def stop_requested(self) -> bool:
        """Checked before every step: True (a cancel) ends the run after the step in flight."""
        if self.should_stop is None or not self.should_stop():
            return False
        self.cancelled = True
        if self.pending is not None:
            self.flush_progress()
        self.emit({"kind": "status", "step": self.step, "metrics": {"state": "cancelled"}})
        return True

    def next_batch(self) -> tuple[list[list[int]], list[int]]:
        """The next batch: (token ids per example, unpadded; their training-set indices)."""
        if not self.batches:
            self.batches = batch_order(self.lengths, self.cfg.batch_size, self.rng, self.cfg.padding)
        idx = self.batches.pop()
        return [self.tr_ids[i] for i in idx], idx

    def loss(self, z: torch.Tensor, ids: list[list[int]], idx: list[int]) -> torch.Tensor:
        """Pooled [B, d] of this run's batch (its own prompt in front) -> scalar loss."""
        cfg, bb = self.cfg, self.bb
        idx_t = torch.tensor(idx, dtype=torch.long)
        y = bb.to_device(self.tr_labels[idx_t])
        logits = self.head(z)
        ce = F.cross_entropy(logits, y)
        kd = None
        if cfg.method == "panda":
            if self.teacher_cache is not None:
                zt = self.teacher_cache.index_select(0, bb.to_device(idx_t))
            else:
                b = bb.pad(ids, self.pad_to)
                with torch.no_grad():
                    zt = self.teacher_head(bb.encode(b["input_ids"], b["attention_mask"], self.teacher_prompt,
                                                     pool=cfg.pool)).float()
            kd = F.mse_loss(logits, zt)
            loss = ce + self.lam * kd if self.lam else ce  # lambda=0: exactly the scratch gradient
        else:
            loss = ce
        self._loss, self._ce, self._kd, self._n = loss, ce, kd, len(idx)
        return loss

    def update(self) -> None:
        """After backward: optimiser + schedule, progress event, eval every eval_every steps."""
        cfg = self.cfg
        self.opt.step()
        self.sched.step()
        self.opt.zero_grad(set_to_none=True)
        if self.max_norm_abs is not None:
            with torch.no_grad():
                self.prompt.data = torch.renorm(self.prompt.data, p=2, dim=0, maxnorm=self.max_norm_abs)
        self.step = step = self.step + 1
        self.n_examples += self._n
        if self.pending is not None:  # last logged step's losses: read now, while this step runs
            self.flush_progress()
        if self.want_metrics and (step % cfg.log_every == 0 or step == cfg.steps):
            elapsed = time.perf_counter() - self.t_loop
            kd = self._kd.detach() if self._kd is not None else None
            self.pending = (step, self._loss.detach(), self._ce.detach(), kd,
                            float(self.sched.get_last_lr()[0]), self.n_examples / max(elapsed, 1e-9),
                            elapsed / step * (cfg.steps - step))
            if not self.defer or step == cfg.steps:
                self.flush_progress()
        if cfg.eval_every and step % cfg.eval_every == 0 and step != cfg.steps:
            if self.pending is not None:
                self.flush_progress()
            self.run_eval(step)

    def flush_progress(self) -> None:
        """Emit the pending progress event (reads its losses: a device sync). A non-finite loss
        fails the run here: a diverged prompt is not a result."""
        s_, loss_, ce_, kd_, lr_, eps_, eta_ = self.pending
        self.pending = None
        m = {"loss": float(loss_), "ce": float(ce_), "kd": float(kd_) if kd_ is not None else 0.0,
             "lr": lr_, "examples_per_s": eps_, "eta_s": eta_}
        if not math.isfinite(m["loss"]):
            raise TrainError(f"task {self.task_name}: the loss is {m['loss']} at step {s_} (the prompt "
                             f"diverged or the data has bad values); lower lr or check the inputs")
        self.emit({"kind": "progress", "step": s_, "metrics": m})
        self.bar.update(s_ - self.bar.n)
        self.bar.set_postfix(loss=f"{m['loss']:.3f}", best=f"{self.best['val']:.3f}", refresh=False)

    def run_eval(self, step: int) -> float:
        if not self.va_ids:
            return float("nan")
        bb, best = self.bb, self.best
        acc = _accuracy(_predict_logits(bb, self.head, self.va_ids, self.prompt.detach(), self.cfg.pool),
                        self.va_labels)
        if acc > best["val"]:
            best.update(val=acc, step=step, prompt=self.prompt.detach().float().cpu().clone(),
                        head=_head_state(self.head))
        self.history.append({"step": step, "val_acc": acc})
        self.emit({"kind": "eval", "step": step, "metrics": {"val_acc": acc, "best_val_acc": best["val"]}})
        return acc

    @property
    def done(self) -> bool:
        return self.cancelled or self.step >= self.cfg.steps

    # ---- the end ----------------------------------------------------------------
    def finish(self) -> TrainResult:
        """Final eval (unless cancelled), test with the best prompt, the result + final event."""
        cfg, bb, best, step = self.cfg, self.bb, self.best, self.step
        if self.pending is not None:
            self.flush_progress()
        if not self.cancelled and step == cfg.steps:
            self.run_eval(step)
        self.bar.close()
        _load_head_state(self.head, best["head"])
        best_prompt = best["prompt"]
        te = _split(self.task, "test")
        ti = subsample(list(te.labels), cfg.test_size, cfg.seed)
        te_ids = bb.token_ids([te.texts[i] for i in ti], cfg.max_length)
        test_acc = _accuracy(_predict_logits(bb, self.head, te_ids, best_prompt.to(bb.device), cfg.pool),
                             [te.labels[i] for i in ti])
        wall = time.perf_counter() - self.t_start

        from core.prompts import SoftPrompt  # lazy
        name = cfg.name or default_run_name(cfg, self.task_name, self.source_names)
        settings = cfg.settings()
        settings.update({"val_score": best["val"], "test_score": test_acc, "best_step": best["step"],
                         "steps_run": step, "init_val_score": self.init_val, "wall_time_s": round(wall, 3),
                         "device": str(bb.device), "dtype": str(bb.dtype).replace("torch.", ""),
                         "train_examples": len(self.tr_ids), "cancelled": self.cancelled,
                         "versions": package_versions(), "init_norm": float(self.init_prompt.norm(dim=1).mean()),
                         "final_norm": float(best_prompt.norm(dim=1).mean()), "word_emb_norm": self.tok_norm})
        sp = SoftPrompt(tensor=best_prompt, name=name, task=self.task_name, family=getattr(self.task, "family", None),
                        backbone=bb.name, method=cfg.method, sources=self.source_names, score=test_acc,
                        settings=settings)
        state = "cancelled" if self.cancelled else "finished"
        self.emit({"kind": "status", "step": step, "metrics": {"state": state, "val_acc": best["val"],
                                                                "test_acc": test_acc, "best_step": best["step"],
                                                                "wall_time_s": wall}})
        return TrainResult(prompt=sp, val_score=best["val"], test_score=test_acc, best_step=best["step"],
                           steps=step, wall_time=wall, device=str(bb.device), history=self.history,
                           init_val_score=self.init_val, cancelled=self.cancelled, head_state=best["head"],
                           init_prompt=self.init_prompt, config=cfg)


def train(cfg: TrainConfig, *, callback: Callable[[dict], None] | None = None,
          should_stop: Callable[[], bool] | None = None, backbone: Backbone | None = None,
          task=None, progress: bool = False) -> TrainResult:
    """Run one training job; returns the best checkpoint's prompt and scores.

    callback(event): {"kind": "status"|"progress"|"eval"|"log", "step": int, "metrics": {...}}
    should_stop(): checked before every step; True ends the run early (cancelled=True),
    still returning the best prompt so far with its test score.
    """
    bb = backbone or load_backbone(cfg.backbone, cfg.device, compile=cfg.compile)
    # set-up: seed, data, head, prompt, optimiser, teacher logits, the step-0 eval
    run = Run(cfg, bb, task, callback=callback, should_stop=should_stop, progress=progress)
    while not run.done:
        if run.stop_requested():
            break
        ids, idx = run.next_batch()
        b = bb.pad(ids, run.pad_to)
        z = bb.encode(b["input_ids"], b["attention_mask"], run.prompt, pool=cfg.pool)  # [B, d]
        run.loss(z, ids, idx).backward()
        run.update()  # optimiser, schedule, progress event, eval every eval_every steps
    return run.finish()  # final eval, test with the best prompt


# --------------------------------------------------------------------------- #
# Packed training: K runs, one frozen backbone, one forward per step
# --------------------------------------------------------------------------- #
@dataclass
class PackOutcome:
    """How one run of a pack ended: finished | cancelled (with a result) | failed (error =
    the exception and its traceback; the other runs of the pack went on)."""
    status: str
    result: TrainResult | None = None
    error: str | None = None


def pack_key(cfg: TrainConfig) -> tuple:
    """Runs pack together when these agree: one backbone and device, and one prompt length
    (a prompt of another length would shift the text's positions)."""
    return (str(cfg.backbone), str(cfg.device), int(cfg.prompt_length))


def train_packed(cfgs: list[TrainConfig], *, callbacks: list | None = None, should_stops: list | None = None,
                 backbone: Backbone | None = None, tasks: list | None = None) -> list[PackOutcome]:
    """Train K runs at once: each step, every active run's batch goes into ONE forward of the
    shared frozen backbone, each row carrying its own run's prompt; the summed loss is
    backpropagated once (the prompts are disjoint parameters, so no gradient mixes).

    Each run keeps everything of its own (a :class:`Run`: data, head, optimiser, schedule,
    seed, evals, best checkpoint, events, cancel flag checked every step). Rows are padded
    to the pack's longest; the attention mask and the text-only mean pooling make that
    padding invisible to a run (up to float summation order). A run that finishes, is
    cancelled or raises leaves the pack with its own :class:`PackOutcome`; the others go on.
    When the packed step itself raises, that step is redone run by run, so the run at fault
    fails alone.

    cfgs: K configs with one :func:`pack_key`; callbacks / should_stops / tasks: K each (or None).
    Returns K outcomes in the order of cfgs.
    """
    K = len(cfgs)
    if K == 0:
        return []
    keys = {pack_key(c) for c in cfgs} if backbone is None else {c.prompt_length for c in cfgs}
    if len(keys) > 1:
        raise TrainError(f"train_packed: these runs cannot share a forward (backbone, device, prompt length "
                         f"differ: {sorted(map(str, keys))}); pack runs with the same ones")
    callbacks = list(callbacks or [None] * K)
    should_stops = list(should_stops or [None] * K)
    tasks = list(tasks or [None] * K)
    bb = backbone or load_backbone(cfgs[0].backbone, cfgs[0].device)
    out: list[PackOutcome | None] = [None] * K
    runs: dict[int, Run] = {}

    def fail(k: int) -> None:
        out[k] = PackOutcome("failed", error=f"{_exc_line()}\n{traceback.format_exc()[-3000:]}")
        runs.pop(k, None)

    def end(k: int) -> None:
        try:
            res = runs[k].finish()
            out[k] = PackOutcome("cancelled" if res.cancelled else "finished", result=res)
            runs.pop(k, None)
        except Exception:  # noqa: BLE001 -- the test eval of one run must not end the others
            fail(k)

    for k, cfg in enumerate(cfgs):  # set-up one by one: each seeds the global RNG for its own head
        try:
            runs[k] = Run(cfg, bb, tasks[k], callback=callbacks[k], should_stop=should_stops[k])
        except Exception:  # noqa: BLE001 -- bad data, a missing teacher: this run only
            fail(k)

    while runs:
        for k in [k for k, r in runs.items() if r.done or r.stop_requested()]:
            end(k)
        if not runs:
            break
        ks = list(runs)
        batches = {k: runs[k].next_batch() for k in ks}
        try:
            losses = _packed_forward(bb, [runs[k] for k in ks], [batches[k] for k in ks])
            torch.stack(losses).sum().backward()  # one backward; each prompt gets its own run's gradient
        except Exception:  # noqa: BLE001 -- redo this step alone per run: the culprit fails by itself
            for k in ks:
                runs[k].opt.zero_grad(set_to_none=True)
                try:
                    ids, idx = batches[k]
                    r = runs[k]
                    b = bb.pad(ids, r.pad_to)
                    r.loss(bb.encode(b["input_ids"], b["attention_mask"], r.prompt, pool=r.cfg.pool),
                           ids, idx).backward()
                except Exception:  # noqa: BLE001
                    fail(k)
        for k in [k for k in ks if k in runs]:
            try:
                runs[k].update()
            except Exception:  # noqa: BLE001 -- e.g. a NaN loss: this run fails, the pack goes on
                fail(k)
    return out  # type: ignore[return-value]


def _packed_forward(bb: Backbone, runs: list[Run], batches: list[tuple]) -> list[torch.Tensor]:
    """One forward for a pack: rows of every run, padded to the longest, each with its own
    run's prompt [B_total, L, d]; returns each run's loss (pooled over its own rows)."""
    T = max(r.pad_to or max(len(x) for x in ids) for r, (ids, _) in zip(runs, batches))
    b = bb.pad([x for ids, _ in batches for x in ids], T)
    P = torch.cat([r.prompt.unsqueeze(0).expand(len(ids), -1, -1) for r, (ids, _) in zip(runs, batches)])
    h, mask = bb.hidden(b["input_ids"], b["attention_mask"], P)  # [B_total, L+T, d], [B_total, L+T]
    L = P.shape[1]
    losses, s = [], 0
    for r, (ids, idx) in zip(runs, batches):
        rows = slice(s, s + len(ids))
        s += len(ids)
        z = bb.pool(h[rows], mask[rows], L, r.cfg.pool)
        losses.append(r.loss(z, ids, idx))
    return losses


def _exc_line() -> str:
    e = sys.exc_info()[1]
    return f"{type(e).__name__}: {e}"


def _defer_progress(bb: Backbone) -> bool:
    """Emit progress events one step late (CUDA: reading a loss would drain the GPU queue)."""
    return bb.device.type == "cuda"


def _head_state(head: Head) -> dict | None:
    if head.kind != "linear":
        return None
    return {k: v.detach().cpu().clone() for k, v in head.linear.state_dict().items()}


def _load_head_state(head: Head, state: dict | None) -> None:
    if state is not None and head.kind == "linear":
        head.linear.load_state_dict({k: v.to(head.label_emb.device) for k, v in state.items()})


def _teacher_linear_head(cfg: TrainConfig, head: Head, bb: Backbone) -> Head:
    """A linear-head teacher needs its own trained head: head.safetensors beside the teacher prompt."""
    path = None if cfg.teacher is None or isinstance(cfg.teacher, torch.Tensor) else Path(str(cfg.teacher))
    f = path / "head.safetensors" if path is not None and path.is_dir() else None
    if f is None or not f.is_file():
        raise TrainError(f"{cfg.teacher}: a panda teacher with head 'linear' needs head.safetensors in the "
                         "teacher's folder (saved by a run with --head linear); or use --head verbalizer")
    from safetensors.torch import load_file
    th = Head("linear", head.label_emb.cpu(), cfg.tau).to(bb.device)
    try:
        th.linear.load_state_dict({k: v.to(bb.device) for k, v in load_file(str(f)).items()})
    except Exception as e:
        raise TrainError(f"{f}: cannot load the teacher head ({e})") from None
    return th


def default_run_name(cfg: TrainConfig, task_name: str, source_names: list[str]) -> str:
    parts = [task_name, cfg.method]
    if source_names and cfg.method != "scratch":
        parts.append("from-" + "+".join(source_names)[:60])
    parts.append(f"s{cfg.seed}")
    return "-".join(parts).replace("/", "_").replace(" ", "_")


def package_versions() -> dict:
    from importlib import metadata
    out = {"python": platform.python_version()}
    for pkg in ("torch", "transformers", "numpy", "peft"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def save_result(result: TrainResult, out_dir: Path | str, *, overwrite: bool = False) -> Path:
    """Write the run's prompt as a PEFT folder + atlas.json (core.prompts), plus head.safetensors if linear."""
    from core.prompts import write_prompt
    folder = write_prompt(result.prompt, out_dir, overwrite=overwrite, base_model=result.prompt.backbone)
    if result.head_state:
        from safetensors.torch import save_file
        tmp = Path(folder) / ".head.safetensors.tmp"
        save_file({k: v.contiguous() for k, v in result.head_state.items()}, str(tmp))
        os.replace(tmp, Path(folder) / "head.safetensors")
    return Path(folder)


# --------------------------------------------------------------------------- #
# CLI
# --------------------------------------------------------------------------- #
def _parser() -> argparse.ArgumentParser:
    d = TrainConfig()
    p = argparse.ArgumentParser(prog="python -m core train", description="Train one soft prompt: scratch | pot | panda.")
    p.add_argument("--task", required=True, help="task name (python -m core tasks list)")
    p.add_argument("--method", default="scratch", choices=METHODS)
    p.add_argument("--source", action="append", default=[], metavar="PROMPT",
                   help="source prompt path (repeat for a SPoT weighted average)")
    p.add_argument("--source-weights", type=float, nargs="+", default=None)
    p.add_argument("--teacher", default=None, metavar="PROMPT", help="panda teacher prompt (PoT-trained on the target)")
    p.add_argument("--teacher-mode", default=d.teacher_mode, choices=("pot", "source"))
    p.add_argument("--student-init", default=d.student_init, choices=("random", "source"))
    p.add_argument("--kd-lambda", type=float, default=None, help="fixed KD weight (default: PANDA code 0.1*beta/batch)")
    p.add_argument("--lambda-mode", default=d.lambda_mode, choices=("fixed", "metric"))
    p.add_argument("--beta", type=float, default=d.beta)
    p.add_argument("--metric-value", type=float, default=None)
    p.add_argument("--teacher-every-step", action="store_true")
    p.add_argument("--steps", type=int, default=d.steps)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--warmup", type=float, default=d.warmup)
    p.add_argument("--schedule", default=d.schedule, choices=("linear", "cosine", "constant"))
    p.add_argument("--max-norm", type=float, default=d.max_norm)
    p.add_argument("--prompt-length", type=int, default=d.prompt_length)
    p.add_argument("--max-length", type=int, default=d.max_length)
    p.add_argument("--eval-every", type=int, default=d.eval_every)
    p.add_argument("--train-size", type=int, default=None)
    p.add_argument("--val-size", type=int, default=None)
    p.add_argument("--test-size", type=int, default=None)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--init", default=d.init, choices=("text", "random_vocab"))
    p.add_argument("--head", default=d.head, choices=("verbalizer", "linear"))
    p.add_argument("--pool", default=d.pool, choices=("text", "all"))
    p.add_argument("--tau", type=float, default=d.tau)
    p.add_argument("--padding", default=d.padding, choices=("bucket", "dynamic", "max_length"))
    p.add_argument("--backbone", default=d.backbone)
    p.add_argument("--device", default="auto")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--name", default=None)
    p.add_argument("--out", default=None, help="output folder (default: ATLAS_HOME/library/NAME)")
    p.add_argument("--no-save", action="store_true")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--json", action="store_true", help="print the result as one JSON line")
    p.add_argument("--baselines", action="store_true",
                   help="only print majority / no-prompt / logistic-probe accuracy for the task")
    return p


def cli(command: str, argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        from core.tasks import get_task
        task = get_task(args.task)
        bb = load_backbone(args.backbone, args.device, compile=args.compile)
        if args.baselines:
            s = zero_shot_scores(task, bb, probe=True, train_size=args.train_size)
            print(json.dumps({"task": task.name, **{k: round(v, 4) for k, v in s.items()}}))
            return 0
        cfg = TrainConfig(method=args.method, task=args.task, backbone=args.backbone,
                          prompt_length=args.prompt_length, steps=args.steps, batch_size=args.batch_size,
                          lr=args.lr, warmup=args.warmup, schedule=args.schedule, max_norm=args.max_norm,
                          max_length=args.max_length, eval_every=args.eval_every, train_size=args.train_size,
                          val_size=args.val_size, test_size=args.test_size, seed=args.seed, init=args.init, head=args.head, pool=args.pool,
                          tau=args.tau, padding=args.padding, sources=args.source,
                          source_weights=args.source_weights, teacher=args.teacher,
                          teacher_mode=args.teacher_mode, student_init=args.student_init,
                          kd_lambda=args.kd_lambda, lambda_mode=args.lambda_mode, beta=args.beta,
                          metric_value=args.metric_value, teacher_every_step=args.teacher_every_step,
                          device=args.device, compile=args.compile, name=args.name)

        def on_event(ev):
            if ev["kind"] == "eval":
                tqdm.write(f"step {ev['step']:>5}  val_acc {ev['metrics']['val_acc']:.4f}  "
                           f"best {ev['metrics']['best_val_acc']:.4f}")
            elif ev["kind"] == "status" and ev["metrics"].get("state") == "caching_teacher":
                tqdm.write(f"caching teacher logits for {ev['metrics']['n']} examples")

        res = train(cfg, callback=on_event, backbone=bb, task=task, progress=not args.json)
        out = None
        if not args.no_save:
            from core.config import user_library_dir
            out = save_result(res, Path(args.out) if args.out else user_library_dir() / res.prompt.name,
                              overwrite=args.overwrite)
        summary = {"task": task.name, "method": cfg.method, "val_acc": round(res.val_score, 4),
                   "test_acc": round(res.test_score, 4), "init_val_acc": res.init_val_score,
                   "majority": round(majority_rate(task), 4), "best_step": res.best_step, "steps": res.steps,
                   "wall_time_s": round(res.wall_time, 1), "device": res.device,
                   "kd_lambda": cfg.effective_lambda(), "saved": str(out) if out else None}
        if args.json:
            print(json.dumps(summary))
        else:
            for k, v in summary.items():
                print(f"{k:>13}: {v}")
        return 0
    except (TrainError, BackboneError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
