"""Packed training: K runs on one frozen backbone, one forward per step.

    python -m core worker ID1 ID2 ...       # the launchers pack queued runs on a GPU; speed: bench/packed_speed.py

Each row of the forward carries its own run's prompt; every run is a :class:`~core.training.loop.Run`
(the same object the single loop drives), so its data, head, optimiser, schedule, seed, evals,
best checkpoint, events and cancel flag are its own, and a run that fails leaves the pack alone.
"""
from __future__ import annotations

import sys
import traceback
from dataclasses import dataclass

import torch

from core.backbone import Backbone, load_backbone
from core.training.config import TrainConfig, TrainError
from core.training.loop import Run
from core.training.result import TrainResult


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
    return (str(cfg.backbone), str(cfg.device), int(cfg.prompt_length), lm_head_key(cfg))


def lm_head_key(cfg: TrainConfig) -> tuple:
    """Runs with a label-word head share a forward only with runs reading the same LM the same way (the
    head kind, the read position, the scoring); the pooled head's runs only with each other."""
    if not cfg.lm_head:
        return ()
    p = cfg.lm_preset(cfg.task)
    return (p.head.value, p.position.value, p.scoring.value, p.word_prefix)


def train_packed(cfgs: list[TrainConfig], *, callbacks: list | None = None, should_stops: list | None = None,
                 backbone: Backbone | None = None, tasks: list | None = None) -> list[PackOutcome]:
    """Train K runs at once: each step, every active run's batch goes into ONE forward of the
    shared frozen backbone, each row carrying its own run's prompt; the summed loss is
    backpropagated once (the prompts are disjoint parameters, so no gradient mixes).

    Rows are padded to the pack's longest; the attention mask and the text-only mean pooling
    make that padding invisible to a run (up to float summation order). A run that finishes,
    is cancelled or raises leaves the pack with its own :class:`PackOutcome`; the others go on.
    When the packed step itself raises, that step is redone run by run, so the run at fault
    fails alone.

    cfgs: K configs with one :func:`pack_key`; callbacks / should_stops / tasks: K each (or None).
    Returns K outcomes in the order of cfgs.
    """
    K = len(cfgs)
    if K == 0:
        return []
    _check_packable(cfgs, backbone)
    callbacks, should_stops, tasks = callbacks or [None] * K, should_stops or [None] * K, tasks or [None] * K
    # label-word-head runs read the backbone through their LM (one per pack: core.heads.scorer caches it)
    bb = backbone or (None if cfgs[0].lm_head else load_backbone(cfgs[0].backbone, cfgs[0].device))
    pack = _Pack(K)
    for k, cfg in enumerate(cfgs):  # set-up one by one: each seeds the global RNG for its own head
        try:
            pack.runs[k] = Run(cfg, bb, tasks[k], callback=callbacks[k], should_stop=should_stops[k])
        except Exception:  # noqa: BLE001 -- bad data, a missing teacher: this run only
            pack.fail(k)
    while pack.runs:
        pack.end_the_done()
        if not pack.runs:
            break
        ks = list(pack.runs)
        batches = {k: pack.runs[k].next_batch() for k in ks}
        try:
            losses = packed_forward(bb, [pack.runs[k] for k in ks], [batches[k] for k in ks])
            torch.stack(losses).sum().backward()  # one backward; each prompt gets its own run's gradient
        except Exception:  # noqa: BLE001 -- redo this step alone per run: the culprit fails by itself
            for k in ks:
                try:
                    _backward_alone(bb, pack.runs[k], batches[k])
                except Exception:  # noqa: BLE001
                    pack.fail(k)
        for k in [k for k in ks if k in pack.runs]:
            try:
                pack.runs[k].update()
            except Exception:  # noqa: BLE001 -- e.g. a NaN loss: this run fails, the pack goes on
                pack.fail(k)
    return pack.out  # type: ignore[return-value]


class _Pack:
    """The pack's runs still going (by position k) and the outcomes of those that ended."""

    def __init__(self, K: int):
        self.out: list[PackOutcome | None] = [None] * K
        self.runs: dict[int, Run] = {}

    def fail(self, k: int) -> None:
        e = sys.exc_info()[1]
        self.out[k] = PackOutcome("failed", error=f"{type(e).__name__}: {e}\n{traceback.format_exc()[-3000:]}")
        self.runs.pop(k, None)

    def end_the_done(self) -> None:
        """Finish every run that is done or asked to stop (its test eval; a failure there is its own)."""
        for k in [k for k, r in self.runs.items() if r.done or r.stop_requested()]:
            try:
                res = self.runs[k].finish()
                self.out[k] = PackOutcome("cancelled" if res.cancelled else "finished", result=res)
                self.runs.pop(k, None)
            except Exception:  # noqa: BLE001 -- the test eval of one run must not end the others
                self.fail(k)


def _check_packable(cfgs: list[TrainConfig], backbone: Backbone | None) -> None:
    keys = {pack_key(c) for c in cfgs} if backbone is None else {(c.prompt_length, lm_head_key(c)) for c in cfgs}
    if len(keys) > 1:
        raise TrainError(f"train_packed: these runs cannot share a forward (backbone, device, prompt length "
                         f"or label-word head differ: {sorted(map(str, keys))}); pack runs with the same ones")


def _backward_alone(bb: Backbone, run: Run, batch: tuple) -> None:
    run.opt.zero_grad(set_to_none=True)
    ids, idx = batch
    run.loss(run.forward(ids), ids, idx).backward()


def packed_forward(bb: Backbone, runs: list[Run], batches: list[tuple]) -> list[torch.Tensor]:
    """One forward for a pack: rows of every run, padded to the longest, each with its own
    run's prompt [B_total, L, d] (attempt: each row's instance-wise prompt, computed from the row's
    text tokens only, so padding to the pack's longest changes nothing); returns each run's loss.

    Runs with a label-word head (lm_head; all of one pack share the LM: :func:`pack_key`) read their
    scores at one position per row (masked LM, first-token scoring): one forward scores every run's
    words on every row, and each run takes its own rows and its own words' columns. Sequence scoring
    (a decoder pass per label word) has no shared position: those runs go one after the other."""
    if runs[0].lmh is not None:
        return _packed_label_words(runs, batches)
    T = max(r.pad_to or max(len(x) for x in ids) for r, (ids, _) in zip(runs, batches))
    b = bb.pad([x for ids, _ in batches for x in ids], T)
    P, s = [], 0
    for r, (ids, _) in zip(runs, batches):  # each run's prompt for its own rows (attempt: per row)
        rows = slice(s, s + len(ids))
        s += len(ids)
        p = r.batch_prompt(b["input_ids"][rows], b["attention_mask"][rows])
        P.append(p.unsqueeze(0).expand(len(ids), -1, -1) if p.dim() == 2 else p)
    P = torch.cat(P)
    h, mask = bb.hidden(b["input_ids"], b["attention_mask"], P)  # [B_total, L+T, d], [B_total, L+T]
    L = P.shape[1]
    losses, s = [], 0
    for r, (ids, idx) in zip(runs, batches):
        rows = slice(s, s + len(ids))
        s += len(ids)
        z = bb.pool(h[rows], mask[rows], L, r.cfg.pool)
        losses.append(r.loss(r.head(z), ids, idx))
    return losses


def _packed_label_words(runs: list[Run], batches: list[tuple]) -> list[torch.Tensor]:
    """A pack of label-word-head runs: one forward of all rows (each with its run's prompt) when every
    run reads one position per row; else each run's own forward."""
    if not all(r.lmh.single_read for r in runs):
        return [r.loss(r.forward(ids), ids, idx) for r, (ids, idx) in zip(runs, batches)]
    lmh = runs[0].lmh
    rows = [x for ids, _ in batches for x in ids]
    x, m = lmh.pad(rows)
    P, words, cols, s = [], [], [], 0
    for r, (ids, _) in zip(runs, batches):
        p = r.batch_prompt(x[s:s + len(ids)], m[s:s + len(ids)])   # attempt: from the row's own text tokens
        P.append(p.unsqueeze(0).expand(len(ids), -1, -1) if p.dim() == 2 else p)
        cols.append(slice(len(words), len(words) + r.lmh.n_classes))
        words += r.lmh.word_ids
        s += len(ids)
    scores = lmh.logits(rows, torch.cat(P), word_ids=words)   # [B_total, sum of the runs' C]
    losses, s = [], 0
    for r, (ids, idx), c in zip(runs, batches, cols):
        losses.append(r.loss(scores[s:s + len(ids), c], ids, idx))
        s += len(ids)
    return losses
