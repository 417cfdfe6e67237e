"""The training loop: one run, read top to bottom in :func:`train`; its state in :class:`Run`.

    python -m core train --task sent_tweet --method scratch --steps 300 --train-size 200

``train`` sets a run up (seed, data, head, prompt, optimiser, teacher logits, step-0 eval), then
each step pads a batch, encodes it with the run's prompt in front, backpropagates the loss and
lets the run update (optimiser, schedule, progress event, eval every ``eval_every`` steps);
at the end the best checkpoint is tested. The packed loop (core.training.packed) drives the
same :class:`Run` objects, so a packed run computes what its single twin computes.

Loss: ``CE(z_s, y)``, plus for panda ``lambda * sum_k w_k MSE(z_s, z_t_k)`` with z the head's logits
(one teacher: w = 1). The head (:meth:`Run.forward`): the cosine / linear head on the backbone's pooled
features, or with ``cfg.lm_head`` the label words' scores read through the LM's own head as released
prompts were trained (core.training.lmhead; masked LM, seq2seq, causal) -- the same loss on either. attempt: the prompt in front is instance-wise, ``P(x)`` from the run's
target prompt and its frozen sources (core.training.attempt); :meth:`Run.batch_prompt` gives it.
Events: core.training.events.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from core.backbone import Backbone, load_backbone
from core.training.config import HeadKind, Method, Schedule, TrainConfig, TrainError
from core.training.data import batch_order, check_labels, load_run_data, load_test_split
from core.training.evaluation import predict_logits, scores, task_score_kind
from core.training.heads import Head, head_state, label_embeddings, load_head_state
from core.training.init import initial_prompt
from core.training.result import TrainResult, default_run_name, package_versions
from core.training.attempt import AttemptMixer, MixedPrompt
from core.training.init import source_stack
from core.training.lmhead import LabelWordHead, backbone_view, encoder_for
from core.training.teacher import make_teachers


def train(cfg: TrainConfig, *, callback: Callable[[dict], None] | None = None,
          should_stop: Callable[[], bool] | None = None, backbone: Backbone | None = None,
          task=None, progress: bool = False) -> TrainResult:
    """Run one training job; returns the best checkpoint's prompt and scores.

    callback(event): {"kind": "status"|"progress"|"eval"|"log", "step": int, "metrics": {...}}
    should_stop(): checked before every step; True ends the run early (cancelled=True),
    still returning the best prompt so far with its test score.
    """
    # a label-word head (cfg.lm_head) loads the LM with its head; the run reads the backbone through it
    bb = None if cfg.lm_head else backbone or load_backbone(cfg.backbone, cfg.device, compile=cfg.compile)
    # set-up: seed, data, head, prompt, optimiser, teacher logits, the step-0 eval
    run = Run(cfg, bb, task, callback=callback, should_stop=should_stop, progress=progress)
    while not run.done and not run.stop_requested():
        ids, idx = run.next_batch()
        logits = run.forward(ids)  # [B, C]: the head on pooled features, or the label words' scores
        run.loss(logits, ids, idx).backward()
        run.update()  # optimiser, schedule, progress event, eval every eval_every steps
    return run.finish()  # final eval, test with the best prompt


# --------------------------------------------------------------------------- #
# Schedule and seeding
# --------------------------------------------------------------------------- #
def lr_lambda(cfg: TrainConfig) -> Callable[[int], float]:
    """LambdaLR factor after ``step`` optimiser steps: linear warm-up, then linear / cosine / constant."""
    warm = int(cfg.warmup * cfg.steps) if cfg.warmup < 1 else int(cfg.warmup)

    def f(step: int) -> float:
        if warm and step < warm:
            return (step + 1) / warm
        if cfg.schedule == Schedule.constant:
            return 1.0
        rest = max(1, cfg.steps - warm)
        frac = min(1.0, (step - warm) / rest)
        if cfg.schedule == Schedule.cosine:
            return 0.5 * (1.0 + math.cos(math.pi * frac))
        return max(0.0, 1.0 - frac)
    return f


def seed_all(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % (2 ** 32))


def make_optimizer(cfg: TrainConfig, prompt: torch.nn.Parameter, head: Head,
                   mixer: torch.nn.Module | None = None):
    """AdamW on the prompt (and the linear head at head_lr, attempt's attention module at attn_lr)
    with the warm-up/decay schedule."""
    params = [{"params": [prompt], "lr": cfg.lr, "weight_decay": cfg.weight_decay}]
    if mixer is not None:
        params.append({"params": list(mixer.parameters()), "lr": cfg.attn_lr or cfg.lr, "weight_decay": 0.0})
    if cfg.head == HeadKind.linear:
        params.append({"params": list(head.linear.parameters()), "lr": cfg.head_lr, "weight_decay": 0.0})
    opt = torch.optim.AdamW(params)
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg))


def defer_progress(bb: Backbone) -> bool:
    """Emit progress events one step late (CUDA: reading a loss would drain the GPU queue)."""
    return bb.device.type == "cuda"


@dataclass(frozen=True)
class Best:
    """The best checkpoint so far: validation score, its step, prompt [L, d] (CPU), head weights
    and (attempt) the attention module's weights."""
    val: float
    step: int
    prompt: torch.Tensor
    head: dict | None
    mixer: dict | None = None
    scores: dict | None = None   # both validation scores of this checkpoint (the main one is val)


@dataclass
class Pending:
    """A logged step whose losses (device tensors) are read later (see Run.update)."""
    step: int
    loss: torch.Tensor
    ce: torch.Tensor
    kd: torch.Tensor | None
    lr: float
    examples_per_s: float
    eta_s: float


# --------------------------------------------------------------------------- #
# One run's state
# --------------------------------------------------------------------------- #
class Run:
    """One run's training state, shared by the single loop (:func:`train`) and the packed
    loop (core.training.packed): its data, head, prompt, optimiser, schedule, teacher,
    best checkpoint, history and event stream. The loops own only the forward pass.

    Constructing it does the set-up (seed, data, head, prompt, optimiser, teacher cache)
    and the step-0 eval, exactly as a single run does, so a packed run starts where its
    single twin starts.
    """

    def __init__(self, cfg: TrainConfig, bb: Backbone | None, task=None, *,
                 callback: Callable[[dict], None] | None = None,
                 should_stop: Callable[[], bool] | None = None, progress: bool = False):
        self.t_start = time.perf_counter()
        self.cfg, self.should_stop = cfg, should_stop
        self.emit = callback or (lambda e: None)
        if task is None:
            from core.tasks import get_task  # lazy: core.tasks may pull in loaders
            task = get_task(cfg.task)
        self.task, self.task_name = task, getattr(task, "name", cfg.task)
        # label-word head (core.training.lmhead): the LM with its head; the backbone is a view of its modules
        self.lmh = LabelWordHead.for_run(cfg, task) if cfg.lm_head else None
        bb = backbone_view(self.lmh.lm) if self.lmh is not None else bb
        if bb is None:
            bb = load_backbone(cfg.backbone, cfg.device, compile=cfg.compile)
        self.bb = bb
        self.encode = encoder_for(self.lmh, bb, cfg.max_length)
        self.score_kind = task_score_kind(task)   # the main score: selects the best checkpoint
        seed_all(cfg.seed)  # the linear head's init draws from the global generator
        self.emit({"kind": "status", "step": 0, "metrics": {"state": "started", "task": self.task_name,
                                                             "method": str(cfg.method), "device": str(bb.device)}})
        self.data = load_run_data(cfg, bb, task, self.task_name, self.encode)
        self.pad_to = self.data.pad_to
        # the pooled head (cosine verbalizer / linear); None when the label words are the head
        self.head = None if self.lmh else Head(cfg.head, label_embeddings(bb, task), cfg.tau).to(bb.device)
        check_labels(self.data, self.lmh.n_classes if self.lmh else self.head.label_emb.shape[0], self.task_name)
        init, source, self.source_names = initial_prompt(bb, cfg)
        self.prompt = torch.nn.Parameter(init.to(bb.device, torch.float32).clone())
        self.init_prompt = init.clone()
        self.tok_norm = float(bb.word_embeddings.weight.float().norm(dim=1).mean())
        self.max_norm_abs = cfg.max_norm * self.tok_norm if cfg.max_norm else None
        self.mixer = None
        if cfg.method == Method.attempt:  # drawn from the global RNG after the head: seeded, like the head
            self.mixer = AttemptMixer(source_stack(bb, cfg)[0], cfg.attn_dim, cfg.attn_temperature).to(bb.device)
        self.opt, self.sched = make_optimizer(cfg, self.prompt, self.head, self.mixer)
        self.lam = cfg.effective_lambda()
        self.teachers = (make_teachers(cfg, bb, self.head, source, self.data.tr_ids, self.emit, lmh=self.lmh)
                         if cfg.method == Method.panda else [])
        self._init_loop_state(want_metrics=callback is not None or progress, progress=progress)
        self.init_val = self.run_eval(0) if cfg.eval_at_start else None
        self.t_loop = time.perf_counter()

    def _init_loop_state(self, *, want_metrics: bool, progress: bool) -> None:
        cfg = self.cfg
        self.history: list[dict] = []
        self.best = Best(val=-1.0, step=0, prompt=self.init_prompt.clone(), head=head_state(self.head),
                         mixer=self.mixer.weights() if self.mixer is not None else None)
        self.rng = np.random.default_rng(cfg.seed)
        self.batches: list[list[int]] = []
        self.step = 0
        self.cancelled = False
        self.n_examples = 0
        self.want_metrics = want_metrics
        # Reading a loss (float(t)) waits for the GPU to finish it. On CUDA a progress event is
        # therefore emitted one step late: its losses are read after the next step is queued, so
        # the GPU never drains while the host logs (the loop stays ahead of the GPU).
        self.defer = defer_progress(self.bb)
        self.pending: Pending | None = None
        self._ce = self._kd = None
        self.bar = tqdm(total=cfg.steps, desc=f"{cfg.method} {self.task_name}", disable=not progress, leave=True)

    # ---- the pieces of one step ----------------------------------------------
    def stop_requested(self) -> bool:
        """Checked before every step: True (a cancel) ends the run after the step in flight."""
        if self.should_stop is None or not self.should_stop():
            return False
        self.cancelled = True
        self.flush_progress()
        self.emit({"kind": "status", "step": self.step, "metrics": {"state": "cancelled"}})
        return True

    def next_batch(self) -> tuple[list[list[int]], list[int]]:
        """The next batch: (token ids per example, unpadded; their training-set indices)."""
        if not self.batches:
            self.batches = batch_order(self.data.lengths, self.cfg.batch_size, self.rng, self.cfg.padding)
        idx = self.batches.pop()
        return [self.data.tr_ids[i] for i in idx], idx

    def batch_prompt(self, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The prompt in front of this batch (input_ids, mask [B, T] padded): the run's prompt [L, d];
        attempt: the instance-wise mixture [B, L, d] of its frozen sources and its target prompt."""
        if self.mixer is None:
            return self.prompt
        return self.mixer(self.bb.embed_ids(input_ids), mask.to(self.bb.device), self.prompt)

    def forward(self, ids: list[list[int]]) -> torch.Tensor:
        """This run's logits [B, C] for a batch (token ids per example, unpadded) with its prompt in
        front: the pooled head on the backbone's features, or the label words' scores (lm_head)."""
        if self.lmh is not None:
            # the prompt [L, d]; attempt: batch_prompt computes one per row from the padded batch
            return self.lmh.logits(ids, self.prompt if self.mixer is None else self.batch_prompt)
        b = self.bb.pad(ids, self.pad_to)
        P = self.batch_prompt(b["input_ids"], b["attention_mask"])  # [L, d], or [B, L, d] for attempt
        return self.head(self.bb.encode(b["input_ids"], b["attention_mask"], P, pool=self.cfg.pool))  # [B, C]

    def predict(self, ids: list[list[int]], prompt) -> torch.Tensor:
        """Logits [N, C] float32 CPU of an evaluation split (no gradient); prompt: from eval_prompt."""
        if self.lmh is not None:
            return self.lmh.predict(ids, prompt)
        return predict_logits(self.bb, self.head, ids, prompt, self.cfg.pool)

    def eval_prompt(self, prompt: torch.Tensor | None = None):
        """What evaluation puts in front: the prompt [L, d] (default the current one, detached), or
        for attempt a callable computing the instance-wise prompt with it."""
        p = self.prompt.detach() if prompt is None else prompt.to(self.bb.device)
        return p if self.mixer is None else MixedPrompt(self.bb, self.mixer, p)

    def loss(self, logits: torch.Tensor, ids: list[list[int]], idx: list[int]) -> torch.Tensor:
        """Logits [B, C] of this run's batch (its own prompt in front: :meth:`forward`) -> scalar loss."""
        idx_t = torch.tensor(idx, dtype=torch.long)
        y = self.bb.to_device(self.data.tr_labels[idx_t])
        ce = F.cross_entropy(logits, y)
        kd = None
        loss = ce
        if self.teachers:
            kd = sum(w * F.mse_loss(logits, t.logits(ids, idx_t, self.pad_to)) for w, t in self.teachers)
            if self.lam:  # lambda=0: exactly the scratch gradient
                loss = ce + self.lam * kd
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
        self.step += 1
        self.n_examples += self._n
        self.flush_progress()  # the last logged step's losses: read now, while this step runs
        if self.want_metrics and (self.step % cfg.log_every == 0 or self.step == cfg.steps):
            self.pending = self._progress_now()
            if not self.defer or self.step == cfg.steps:
                self.flush_progress()
        if cfg.eval_every and self.step % cfg.eval_every == 0 and self.step != cfg.steps:
            self.flush_progress()
            self.run_eval(self.step)

    def _progress_now(self) -> Pending:
        elapsed = time.perf_counter() - self.t_loop
        kd = self._kd.detach() if self._kd is not None else None
        return Pending(self.step, self._loss.detach(), self._ce.detach(), kd, float(self.sched.get_last_lr()[0]),
                       self.n_examples / max(elapsed, 1e-9), elapsed / self.step * (self.cfg.steps - self.step))

    def flush_progress(self) -> None:
        """Emit the pending progress event, if any (reads its losses: a device sync). A
        non-finite loss fails the run here: a diverged prompt is not a result."""
        p, self.pending = self.pending, None
        if p is None:
            return
        m = {"loss": float(p.loss), "ce": float(p.ce), "kd": float(p.kd) if p.kd is not None else 0.0,
             "lr": p.lr, "examples_per_s": p.examples_per_s, "eta_s": p.eta_s}
        if not math.isfinite(m["loss"]):
            raise TrainError(f"task {self.task_name}: the loss is {m['loss']} at step {p.step} (the prompt "
                             f"diverged or the data has bad values); lower lr or check the inputs")
        self.emit({"kind": "progress", "step": p.step, "metrics": m})
        self.bar.update(p.step - self.bar.n)
        self.bar.set_postfix(loss=f"{m['loss']:.3f}", best=f"{self.best.val:.3f}", refresh=False)

    def run_eval(self, step: int) -> float:
        """Validation score of the current prompt; it becomes the best checkpoint when it beats it."""
        if not self.data.va_ids:
            return float("nan")
        both = scores(self.predict(self.data.va_ids, self.eval_prompt()), self.data.va_labels)
        score = both[self.score_kind]
        if score > self.best.val:
            self.best = Best(val=score, step=step, prompt=self.prompt.detach().float().cpu().clone(),
                             head=head_state(self.head), mixer=self.mixer.weights() if self.mixer else None,
                             scores=both)
        self.history.append({"step": step, "val_score": score})
        self.emit({"kind": "eval", "step": step, "metrics": {"val_score": score, "best_val_score": self.best.val,
                                                             "score_kind": self.score_kind}})
        return score

    @torch.no_grad()
    def mean_attention(self, batch_size: int = 128) -> dict[str, float] | None:
        """attempt: the best checkpoint's attention averaged over the validation split
        {source name: a, ..., "target": a} (sums to 1); None without validation examples."""
        ids = self.data.va_ids
        if self.mixer is None or not ids:
            return None
        target, total = self.best.prompt.to(self.bb.device), torch.zeros(self.mixer.K + 1)
        for s in range(0, len(ids), batch_size):
            b = self.bb.pad(ids[s:s + batch_size])
            a = self.mixer.attention(self.bb.embed_ids(b["input_ids"]), b["attention_mask"].to(self.bb.device), target)
            total += a.float().sum(0).cpu()
        mean = (total / len(ids)).tolist()
        names = _unique(list(self.source_names) + ["target"])
        return {n: round(float(v), 6) for n, v in zip(names, mean)}

    @property
    def done(self) -> bool:
        return self.cancelled or self.step >= self.cfg.steps

    # ---- the end ----------------------------------------------------------------
    def finish(self) -> TrainResult:
        """Final eval (unless cancelled), test with the best prompt, the result + final event."""
        cfg, bb = self.cfg, self.bb
        self.flush_progress()
        if not self.cancelled and self.step == cfg.steps:
            self.run_eval(self.step)
        self.bar.close()
        best = self.best
        load_head_state(self.head, best.head)
        if self.mixer is not None:
            self.mixer.load_weights(best.mixer)
        te_ids, te_labels = load_test_split(cfg, bb, self.task, self.encode)
        test_scores = scores(self.predict(te_ids, self.eval_prompt(best.prompt)), te_labels)
        test_score = test_scores[self.score_kind]
        wall = time.perf_counter() - self.t_start
        state = "cancelled" if self.cancelled else "finished"
        self.emit({"kind": "status", "step": self.step, "metrics": {
            "state": state, "val_score": best.val, "test_score": test_score, "best_step": best.step,
            "wall_time_s": wall, "score_kind": self.score_kind}})
        return TrainResult(prompt=self._soft_prompt(test_score, wall), val_score=best.val, test_score=test_score,
                           best_step=best.step, steps=self.step, wall_time_s=wall, device=str(bb.device),
                           history=self.history, init_val_score=self.init_val, cancelled=self.cancelled,
                           head_state=best.head, init_prompt=self.init_prompt, config=cfg,
                           mixer=self.mixer, mixer_state=best.mixer, score_kind=self.score_kind,
                           val_scores=dict(best.scores or {}), test_scores=test_scores)

    def _soft_prompt(self, test_score: float, wall: float):
        """The best checkpoint as a SoftPrompt whose settings record the run (atlas.json)."""
        from core.prompts import SoftPrompt  # lazy
        cfg, bb, best = self.cfg, self.bb, self.best
        settings = cfg.settings()
        settings.update({"val_score": best.val, "test_score": test_score, "best_step": best.step,
                         "steps_run": self.step, "init_val_score": self.init_val, "wall_time_s": round(wall, 3),
                         "device": str(bb.device), "dtype": str(bb.dtype).replace("torch.", ""),
                         "train_examples": len(self.data.tr_ids), "cancelled": self.cancelled,
                         "versions": package_versions(), "init_norm": float(self.init_prompt.norm(dim=1).mean()),
                         "final_norm": float(best.prompt.norm(dim=1).mean()), "word_emb_norm": self.tok_norm})
        if self.lmh is not None:   # read back with the head it was trained with (prompts eval, atlas.json)
            settings.update({"head": self.lmh.record(), "label_words": list(self.lmh.words),
                             "label_word_source": self.lmh.word_source})
        if self.mixer is not None:
            settings["attempt"] = {"sources": list(self.source_names), "temperature": self.mixer.temperature,
                                   "attn_dim": cfg.attn_dim, "mean_attention": self.mean_attention()}
        return SoftPrompt(tensor=best.prompt, name=cfg.name or default_run_name(cfg, self.task_name, self.source_names),
                          task=self.task_name, family=getattr(self.task, "family", None), backbone=bb.name,
                          method=str(cfg.method), sources=self.source_names, score=test_score, settings=settings)


def _unique(names: list[str]) -> list[str]:
    """Names made unique by a #2, #3 suffix (two sources may share a name)."""
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n}#{seen[n]}")
    return out
