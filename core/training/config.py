"""TrainConfig: every setting of one training run, its choices and its checks.

    python -m core train --help        # one flag per field below, generated from them (core.training.cli)

A field's ``metadata`` carries its CLI help (and, for a few, the flag's name or a range);
the choices are str-Enums, so ``cfg.method == "panda"`` and ``json.dumps`` keep working.
Validation runs on construction and raises :class:`TrainError` naming the field and the
value. Defaults and the sweep behind them: ``core/training/__init__.py``.
"""
from __future__ import annotations

import numbers
import sys
import types
from dataclasses import dataclass, field, fields
from enum import Enum, StrEnum
from typing import Any, get_args, get_type_hints

from core.config import DEFAULT_BACKBONE
from core.heads.presets import LABEL_WORD_PRESETS, PRESETS, HeadKind as LMHead, Scoring

# the label-word heads a run can train through (core.heads.presets; "cosine" is the pooled head here)
LM_HEAD_PRESETS = LABEL_WORD_PRESETS

# PEFT TEXT-init text: a comma repeated L times starts at about the no-prompt accuracy
# (mean +1.2 points over the 10 demo tasks; a sentence-like text lost up to 5 points).
NEUTRAL_TEXT = ","
PANDA_BETA = 0.1  # PANDA code run scripts: --beta 0.1


class TrainError(ValueError):
    """A training set-up that cannot run; the message says what to change."""


class Method(StrEnum):
    scratch = "scratch"
    pot = "pot"
    panda = "panda"
    attempt = "attempt"


class Schedule(StrEnum):
    linear = "linear"
    cosine = "cosine"
    constant = "constant"


class Init(StrEnum):
    text = "text"
    random_vocab = "random_vocab"


class HeadKind(StrEnum):
    verbalizer = "verbalizer"
    linear = "linear"


class Pool(StrEnum):
    text = "text"
    all = "all"


class Padding(StrEnum):
    bucket = "bucket"
    dynamic = "dynamic"
    max_length = "max_length"


class TeacherMode(StrEnum):
    pot = "pot"
    source = "source"


class StudentInit(StrEnum):
    random = "random"
    source = "source"


class LambdaMode(StrEnum):
    fixed = "fixed"
    metric = "metric"


METHODS = tuple(m.value for m in Method)


def _f(default: Any = None, help: str = "", **meta) -> Any:
    """A field with its CLI help; meta: min (inclusive lower bound), above (exclusive), flag,
    metavar, required (CLI only)."""
    if isinstance(default, list):
        return field(default_factory=list, metadata={"help": help, **meta})
    return field(default=default, metadata={"help": help, **meta})


@dataclass
class TrainConfig:
    """Everything a run needs; validated on construction (TrainError)."""
    method: Method = _f(Method.scratch, "scratch | pot | panda | attempt (DESIGN.md §4)")
    task: str = _f("", "task name (python -m core tasks list)", required=True)
    backbone: str = _f(DEFAULT_BACKBONE, "frozen backbone: a name or a local folder")
    prompt_length: int = _f(20, "soft-prompt tokens L", min=1)
    steps: int = _f(300, "optimiser steps", min=1)
    batch_size: int = _f(16, "training examples per step", min=1)
    lr: float = _f(0.03, "prompt learning rate (AdamW)", above=0)
    warmup: float = _f(0.1, "warm-up: a fraction of steps if < 1, else a step count", min=0)
    schedule: Schedule = _f(Schedule.linear, "learning-rate decay after warm-up")
    max_norm: float | None = _f(None, "cap each prompt token's L2 norm at this x the mean word-embedding norm",
                                above=0)
    weight_decay: float = _f(0.0, "AdamW weight decay on the prompt", min=0)
    max_length: int = _f(128, "text tokens kept per example", min=1)
    eval_every: int = _f(50, "validation every N steps (0: only at the end)", min=0)
    eval_at_start: bool = _f(True, "evaluate the initial prompt (step 0) too; it can be the best")
    val_size: int | None = _f(None, "cap validation examples (seeded, stratified; speed)", min=1)
    test_size: int | None = _f(None, "cap test examples (seeded, stratified); default the whole split", min=1)
    train_size: int | None = _f(None, "low-resource target: seeded, stratified training subsample", min=1)
    seed: int = _f(0, "seed of data order, subsamples, init and head")
    init: Init = _f(Init.text, "scratch / student init: init-text embeddings or random vocabulary tokens")
    init_text: str = _f(NEUTRAL_TEXT, "text whose token embeddings, repeated to L, start the prompt (init text)")
    head: HeadKind = _f(HeadKind.verbalizer, "verbalizer (only the prompt trains) or a trainable linear head")
    head_lr: float = _f(1e-2, "learning rate of the linear head", above=0)
    pool: Pool = _f(Pool.text, "mean-pool the text tokens only, or prompt + text")
    tau: float = _f(0.05, "verbalizer temperature", above=0)
    lm_head: str | None = _f(None, "read the prompt through a label-word head instead of pooled features: a preset "
                             f"({' | '.join(LM_HEAD_PRESETS)}; core.heads.presets), trained with cross-entropy over "
                             "the label words' scores", metavar="PRESET")
    label_words: list[str] | None = _f(None, "with --lm-head: one word per label, in the task's label order "
                                       "(default: the preset's words, else the label names)")
    lm_scoring: Scoring | None = _f(None, "with a seq2seq / causal --lm-head: first_token or sequence "
                                    "(log-likelihood of the whole word); default the preset's")
    padding: Padding = _f(Padding.bucket, "length-bucketed batches, random batches, or fixed max_length")
    sources: list = _f([], "source prompt path (repeat for a SPoT weighted average)", flag="--source",
                       metavar="PROMPT")
    source_weights: list[float] | None = _f(None, "SPoT weights, one per --source (default uniform)")
    teacher: object = _f(None, "panda teacher prompt (PoT-trained on the target)", metavar="PROMPT")
    teachers: list = _f([], "panda with several teachers: one prompt each (repeat; not with --teacher)",
                        metavar="PROMPT")
    teacher_weights: list[float] | None = _f(None, "weights of --teachers, normalised to sum 1 (default uniform)")
    teacher_mode: TeacherMode = _f(TeacherMode.pot, "panda teacher: the --teacher prompt or the raw source")
    student_init: StudentInit = _f(StudentInit.random, "panda student: the scratch init or the source")
    kd_lambda: float | None = _f(None, "fixed KD weight (default: PANDA code 0.1*beta/batch)", min=0)
    lambda_mode: LambdaMode = _f(LambdaMode.fixed, "fixed KD weight, or beta x the pair's metric")
    beta: float = _f(PANDA_BETA, "PANDA beta")
    metric_value: float | None = _f(None, "the pair's metric in [0, 1] (lambda_mode metric)")
    teacher_every_step: bool = _f(False, "recompute the teacher's logits every step (PANDA code; speed bench)")
    attn_temperature: float | None = _f(None, "attempt: softmax temperature (default d*e, ATTEMPT code)", above=0)
    attn_dim: int = _f(100, "attempt: the attention module's down-projection size (ATTEMPT code: 100)", min=1)
    attn_lr: float | None = _f(None, "attempt: learning rate of the attention module (default lr)", above=0)
    device: str = _f("auto", "auto | cpu | cuda | cuda:N")
    compile: bool = _f(False, "torch.compile the backbone")
    name: str | None = _f(None, "name of the saved prompt")
    log_every: int = _f(1, "progress event every N steps (each one syncs the device for the loss)", min=1)

    def __post_init__(self):
        hints = field_types()
        for f in fields(self):
            setattr(self, f.name, _checked(f.name, getattr(self, f.name), hints[f.name], f.metadata))
        self._check_methods()

    def _check_methods(self) -> None:
        """The rules that tie fields together (which method needs which prompts)."""
        if self.source_weights is not None:
            if len(self.source_weights) != len(self.sources):
                _bad(f"{len(self.source_weights)} source weights for {len(self.sources)} sources")
            if any(w < 0 for w in self.source_weights) or sum(self.source_weights) <= 0:
                _bad("source weights must be >= 0 with a positive sum")
        if self.method == Method.pot and not self.sources:
            _bad("method pot needs at least one source prompt (--source PATH)")
        if self.method == Method.attempt and not self.sources:
            _bad("method attempt needs at least one source prompt (--source PATH, repeat for several)")
        if self.teacher_weights is not None:
            if len(self.teacher_weights) != len(self.teachers):
                _bad(f"{len(self.teacher_weights)} teacher weights for {len(self.teachers)} teachers")
            if any(w < 0 for w in self.teacher_weights) or sum(self.teacher_weights) <= 0:
                _bad("teacher weights must be >= 0 with a positive sum")
        self._check_lm_head()
        if self.method != Method.panda:
            if self.teachers:
                _bad("only panda uses teachers")
            return
        if self.teachers and self.teacher is not None:
            _bad("give either --teacher (one) or --teachers (several), not both")
        if self.teacher_mode == TeacherMode.pot and self.teacher is None and not self.teachers:
            _bad("panda with teacher_mode 'pot' needs --teacher: a prompt trained with --method pot "
                 "from the source on this target (or use --teacher-mode source)")
        if self.teacher_mode == TeacherMode.source and not self.sources and self.teacher is None and not self.teachers:
            _bad("panda with teacher_mode 'source' needs --source")
        if self.student_init == StudentInit.source and not self.sources:
            _bad("student_init 'source' needs --source")
        if self.lambda_mode == LambdaMode.metric and self.metric_value is None:
            _bad("lambda_mode 'metric' needs metric_value (the pair's metric, normalised to [0, 1])")

    def _check_lm_head(self) -> None:
        if self.lm_head is None:
            if self.label_words is not None or self.lm_scoring is not None:
                _bad("label_words and lm_scoring go with --lm-head (a label-word head); the pooled head reads "
                     "the task's label descriptions")
            return
        if self.lm_head not in LM_HEAD_PRESETS:
            _bad(f"lm_head {self.lm_head!r} is not one of {', '.join(LM_HEAD_PRESETS)}")
        if self.head == HeadKind.linear:
            _bad("head 'linear' trains a layer on pooled features; with --lm-head the label words are the head")
        if self.pool != Pool.text:
            _bad("pool applies to the pooled head only; leave it at 'text' with --lm-head")
        if self.lm_scoring == Scoring.sequence and PRESETS[self.lm_head].head == LMHead.mlm:
            _bad(f"lm_scoring 'sequence' needs a seq2seq or causal head; {self.lm_head} is a masked LM")
        if self.label_words is not None:
            words = [w.strip() for w in self.label_words]
            if not words or not all(words) or len(set(words)) != len(words):
                _bad("label_words must be non-empty, distinct words (one per label)")
            self.label_words = words

    def lm_preset(self, task_name: str):
        """The run's HeadPreset (core.heads.presets), with --label-words as its verbalizer for this task
        and --lm-scoring applied; None for the pooled head."""
        if self.lm_head is None:
            return None
        from core.heads.presets import get_preset
        p = get_preset(self.lm_head)
        if self.lm_scoring is not None:
            p = p.with_(scoring=self.lm_scoring)
        if self.label_words is not None:
            p = p.with_(verbalizer={**p.verbalizer, task_name: list(self.label_words)})
        return p

    def effective_lambda(self) -> float:
        """The KD weight on the mean-reduced MSE actually used."""
        if self.method != Method.panda:
            return 0.0
        if self.lambda_mode == LambdaMode.metric:
            return float(self.beta * min(1.0, max(0.0, float(self.metric_value))))
        if self.kd_lambda is not None:
            return float(self.kd_lambda)
        return 0.1 * self.beta / self.batch_size  # PANDA code: 0.1*beta*mse_loss(mean)/batch_size

    def kd_weights(self) -> list[float]:
        """The K teachers' weights w_k, normalised to sum 1 (uniform when not given)."""
        w = self.teacher_weights or [1.0] * len(self.teachers)
        total = float(sum(w))
        return [float(x) / total for x in w]

    def settings(self) -> dict:
        """JSON-friendly copy (choices as plain strings; prompts given as tensors are described, not dumped)."""
        d = {f.name: _plain(getattr(self, f.name)) for f in fields(self)}
        d["source_weights"] = list(self.source_weights) if self.source_weights else None
        d["sources"] = [describe(s) for s in self.sources]
        d["teacher"] = None if self.teacher is None else describe(self.teacher)
        d["teachers"] = [describe(t) for t in self.teachers]
        d["teacher_weights"] = self.kd_weights() if self.teachers else None
        d["kd_lambda_effective"] = self.effective_lambda()
        return d


def field_types() -> dict[str, Any]:
    """Each TrainConfig field's resolved type (``int | None``, ``Method``, ...)."""
    return get_type_hints(TrainConfig)


def _bad(msg: str):
    raise TrainError(f"train config: {msg}")


def _plain(v):
    return v.value if isinstance(v, Enum) else v


def _checked(name: str, v, hint, meta) -> Any:
    """One field's value, type- and range-checked; a choice becomes its Enum member."""
    base, optional = unwrap_optional(hint)
    if v is None and optional:
        return None
    if isinstance(base, type) and issubclass(base, Enum):
        try:
            return base(v)
        except ValueError:
            _bad(f"{name} {v!r} is not one of {', '.join(m.value for m in base)}")
    if base is bool and not isinstance(v, bool):
        _bad(f"{name} must be true or false, got {v!r}")
    if base is int:
        if isinstance(v, float) and v.is_integer():
            v = int(v)  # 300.0 from a JSON spec is 300
        if not isinstance(v, numbers.Integral) or isinstance(v, bool):
            _bad(f"{name} must be a whole number, got {v!r}")
    if base is float and (not isinstance(v, numbers.Real) or isinstance(v, bool)):
        _bad(f"{name} must be a number, got {v!r}")
    if base is str and not isinstance(v, str):
        _bad(f"{name} must be a string, got {type(v).__name__}")
    if name in ("sources", "teachers"):
        return list(v or [])
    if name == "label_words":
        if isinstance(v, str) or not all(isinstance(w, str) for w in v):
            _bad(f"label_words must be a list of words, got {v!r}")
        return list(v)
    if name in ("source_weights", "teacher_weights"):
        try:
            return [float(w) for w in v]
        except (TypeError, ValueError):
            _bad(f"{name} must be a list of numbers, got {v!r}")
    if "min" in meta and v < meta["min"]:
        _bad(f"{name} must be >= {meta['min']}" + (" (or None)" if optional else "") + f", got {v}")
    if "above" in meta and not v > meta["above"]:
        _bad(f"{name} must be > {meta['above']}" + (" (or None)" if optional else "") + f", got {v}")
    return v


def unwrap_optional(hint) -> tuple[Any, bool]:
    """``int | None`` -> (int, True); ``Method`` -> (Method, False)."""
    args = get_args(hint)
    if isinstance(hint, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return (rest[0] if len(rest) == 1 else hint), True
    return hint, False


def describe(x) -> str:
    """A prompt given as a path, SoftPrompt or tensor, in words (a tensor is described, not dumped)."""
    torch = sys.modules.get("torch")  # a tensor exists only once torch is imported: no import here
    if torch is not None and isinstance(x, torch.Tensor):
        return f"<tensor {tuple(x.shape)}>"
    if hasattr(x, "tensor") and hasattr(x, "name"):
        return str(getattr(x, "origin", None) or x.name)
    return str(x)
