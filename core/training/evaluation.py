"""Accuracy of a prompt on a task split, and the baselines a trained prompt is compared with.

    python -m core train --task sent_movie --baselines     # majority / no prompt / logistic probe
"""
from __future__ import annotations

import numpy as np
import torch

from core.backbone import Backbone, load_backbone
from core.training.config import TrainError
from core.training.data import _ids, split_of, subsample
from core.training.heads import Head, label_embeddings
from core.training.init import load_prompt_tensor


@torch.no_grad()
def predict_logits(bb: Backbone, head: Head, ids: list[list[int]], prompt: torch.Tensor | None,
                   pool: str, batch_size: int = 128) -> torch.Tensor:
    """Logits [N, C] float32 CPU, in the input order (length-sorted batches inside).
    ids: N token-id lists, unpadded; prompt: [L, d] on the backbone's device, or None, or a
    callable (input_ids [B, T], mask [B, T]) -> [B, L, d] (an instance-wise prompt: attempt)."""
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    out = torch.empty((len(ids), head.label_emb.shape[0]))
    for s in range(0, len(order), batch_size):
        idx = order[s:s + batch_size]
        b = bb.pad([ids[i] for i in idx])
        p = prompt(b["input_ids"], b["attention_mask"]) if callable(prompt) else prompt
        z = bb.encode(b["input_ids"], b["attention_mask"], p, pool=pool)
        out[idx] = head(z).float().cpu()
    return out


def accuracy(logits: torch.Tensor, labels: list[int]) -> float:
    """Share of argmax(logits [N, C]) equal to the labels; NaN for no examples."""
    if not labels:
        return float("nan")
    return float((logits.argmax(-1) == torch.as_tensor(labels)).float().mean())


SCORE_KINDS = ("accuracy", "balanced_accuracy")   # both are computed on every split a run scores


def scores(logits: torch.Tensor, labels: list[int]) -> dict[str, float]:
    """Both scores of argmax(logits [N, C]) against the labels: {"accuracy", "balanced_accuracy"}
    (balanced: mean recall over the classes present in the labels, sklearn's
    balanced_accuracy_score); NaN for no examples. A run's main score is the one its task was
    registered with (core.tasks.target.score_kind); the other is kept beside it."""
    if not labels:
        return {k: float("nan") for k in SCORE_KINDS}
    from core.tasks.target import balanced_accuracy
    pred = logits.argmax(-1).numpy()
    y = np.asarray(labels)
    return {"accuracy": float((pred == y).mean()), "balanced_accuracy": balanced_accuracy(pred, y)}


def other_kind(kind: str) -> str:
    """The score kind stored beside the main one."""
    return "accuracy" if kind == "balanced_accuracy" else "balanced_accuracy"


def task_score_kind(task) -> str:
    """The task's registered score kind key; "accuracy" for a task that cannot say (a mixed or
    hand-made task object without splits)."""
    try:
        from core.tasks.target import score_kind
        return score_kind(task).key
    except Exception:  # noqa: BLE001 -- a task without train counts (mixed tasks): the default
        return "accuracy"


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
    sp = split_of(task, split)
    idx = list(range(len(sp) if limit is None else min(limit, len(sp))))
    labels = [sp.labels[i] for i in idx]
    if isinstance(head, str):
        if head != "verbalizer":
            raise TrainError("evaluate(head='linear') needs the trained Head object")
        head = Head("verbalizer", label_embeddings(bb, task), tau).to(bb.device)
    if prompt is not None:
        prompt = load_prompt_tensor(prompt, bb.dim)[0].to(bb.device)
    ids = _ids(bb, sp, idx, max_length)   # pairs tokenised as pairs
    return accuracy(predict_logits(bb, head, ids, prompt, pool, batch_size), labels)


def majority_rate(task, split: str = "test") -> float:
    """Share of the most frequent class in a split."""
    if hasattr(task, "majority_rate"):
        return float(task.majority_rate(split))
    labels = list(split_of(task, split).labels)
    return max(np.bincount(labels)) / len(labels) if labels else float("nan")


def logistic_probe(task, backbone: Backbone | None = None, split: str = "test", *,
                   train_size: int | None = None, seed: int = 0, max_length: int = 128) -> float:
    """Accuracy of a logistic regression on frozen, prompt-free pooled embeddings (sklearn, lazily)."""
    from sklearn.linear_model import LogisticRegression
    bb = backbone or load_backbone()
    idx = subsample(list(task.train.labels), train_size, seed)
    tr_texts, tr_texts2 = task.train.inputs(idx)
    X = bb.embed_texts(tr_texts, max_length=max_length, texts2=tr_texts2).numpy()
    y = np.asarray([task.train.labels[i] for i in idx])
    sp = split_of(task, split)
    Xt = bb.embed_texts(list(sp.texts), max_length=max_length, texts2=getattr(sp, "texts2", None)).numpy()
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
