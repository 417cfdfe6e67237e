"""Training data: seeded stratified subsamples, token ids computed once, length-bucketed batches.

    python -c "from core.training.data import subsample; print(subsample([0]*9 + [1], 5, 0))"

Texts are tokenised once; batches are length-bucketed (sort by length within random chunks,
shuffle the batches) and padded to their longest text; ``padding="dynamic"`` (random batches)
and ``"max_length"`` (fixed length, as PEFT examples do) exist for the benchmark.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from core.backbone import Backbone
from core.training.config import Padding, TrainConfig, TrainError


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
    if padding != Padding.bucket:
        return [perm[s:s + batch_size].tolist() for s in range(0, N, batch_size)]
    k = min(50, max(1, N // (batch_size * 8)))
    chunk = batch_size * k
    batches = []
    for s in range(0, N, chunk):
        part = sorted(perm[s:s + chunk].tolist(), key=lambda i: lengths[i])
        batches.extend(part[b:b + batch_size] for b in range(0, len(part), batch_size))
    order = rng.permutation(len(batches))
    return [batches[i] for i in order]


def split_of(task, split: str):
    """A task's split by name ("val" and "valid" mean validation)."""
    try:
        return getattr(task, {"val": "validation", "valid": "validation"}.get(split, split))
    except AttributeError:
        raise TrainError(f"task {getattr(task, 'name', '?')}: no split {split!r} "
                         "(use train, validation or test)") from None


@dataclass
class RunData:
    """One run's tokenised training and validation data.

    tr_ids / va_ids: token ids per example, unpadded; tr_labels: [N_train] long;
    pad_to: the fixed batch length (padding "max_length") or None (each batch its longest).
    """
    tr_ids: list[list[int]]
    tr_labels: torch.Tensor
    lengths: list[int]
    va_ids: list[list[int]]
    va_labels: list[int]
    pad_to: int | None


def load_run_data(cfg: TrainConfig, bb: Backbone, task, task_name: str, encode=None) -> RunData:
    """The seeded training subsample and the (capped) validation split, tokenised once.
    encode: (texts, texts2) -> ids (a label-word head's layout); default the backbone's tokenizer."""
    tr_idx = subsample(list(task.train.labels), cfg.train_size, cfg.seed)
    if not tr_idx:
        raise TrainError(f"task {task_name}: empty training split")
    # a sentence-pair task's rows are tokenised as pairs (Split.inputs gives texts2 or None)
    tr_ids = _ids(bb, task.train, tr_idx, cfg.max_length, encode)
    tr_labels = torch.tensor([task.train.labels[i] for i in tr_idx], dtype=torch.long)
    va = split_of(task, "validation")
    vi = list(range(len(va))) if cfg.val_size is None else subsample(list(va.labels), cfg.val_size, cfg.seed)
    va_labels = [va.labels[i] for i in vi]
    va_ids = _ids(bb, va, vi, cfg.max_length, encode) if vi else []
    pad_to = cfg.max_length if cfg.padding == Padding.max_length else None
    return RunData(tr_ids, tr_labels, [len(x) for x in tr_ids], va_ids, va_labels, pad_to)


def check_labels(data: RunData, n_classes: int, task_name: str) -> None:
    """Every label a class index; on CUDA a bad index is a device-side assert that ends every
    run in the process, so it is refused here, by name."""
    for split, ys in (("training", data.tr_labels.tolist()), ("validation", data.va_labels)):
        bad = [y for y in ys if not 0 <= int(y) < n_classes]
        if bad:
            raise TrainError(f"task {task_name}: a {split} label is {bad[0]}, outside its {n_classes} classes")


def load_test_split(cfg: TrainConfig, bb: Backbone, task, encode=None) -> tuple[list[list[int]], list[int]]:
    """The (seeded, stratified, capped) test split: token ids and labels."""
    te = split_of(task, "test")
    ti = subsample(list(te.labels), cfg.test_size, cfg.seed)
    return _ids(bb, te, ti, cfg.max_length, encode), [te.labels[i] for i in ti]


def _ids(bb: Backbone, sp, idx: list[int], max_length: int, encode=None) -> list[list[int]]:
    """Token ids of rows ``idx`` of a split: single texts, or (text, text2) pairs encoded as the
    tokenizer encodes pairs, truncated longest-first (a split without ``texts2`` is single).
    encode: (texts, texts2) -> ids instead of the backbone's tokenizer (a label-word head's layout)."""
    texts2 = getattr(sp, "texts2", None)
    texts, texts2 = [sp.texts[i] for i in idx], None if texts2 is None else [texts2[i] for i in idx]
    if encode is not None:
        return encode(texts, texts2)
    return bb.token_ids(texts, max_length, texts2)
