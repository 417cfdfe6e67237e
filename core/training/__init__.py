"""Train one soft prompt on a task: scratch | pot | panda | attempt, one loop, one event stream.

    python -m core train --task sent_tweet --method scratch --steps 300 --train-size 200
    python -m core train --task sent_product --method pot --source workspace/library/sent_tweet-scratch-s0
    python -m core train --task sent_product --method panda --source SRC --teacher POT_PROMPT
    python -m core train --task sent_product --method panda --teachers POT_A --teachers POT_B --teacher-weights 0.6 0.4
    python -m core train --task sent_product --method attempt --source A --source B --source C
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

- ``panda`` with several teachers (``teachers``: K prompts, PoT runs per source or the raw
  sources; ``teacher_weights`` normalised to sum 1, default uniform):
  ``loss = CE + lambda * sum_k w_k MSE(z_s, z_t_k)``, lambda by the same rules; each
  teacher's logits cached. One teacher with weight 1 is exactly the single-teacher loss.
- ``attempt`` (ATTEMPT, Asai et al. 2022; ``attempt.py``): K frozen source prompts, a new
  target prompt (scratch init, the sources' length) and a small attention module train; the
  prompt in front of each input is ``sum_j a_j(x) P_j + P_target`` over the sources and the
  target. Saved as the target's PEFT folder plus ``attempt.safetensors`` (module + sources);
  the run records its mean attention over the validation split (atlas.json ``attempt``).

Sources used together (SPoT average, attempt, several teachers) must share one prompt length
and one backbone; otherwise one TrainError line says which differ.

Packed training (:func:`train_packed`, ``packed.py``): K runs on one frozen backbone in one forward per
step, each row carrying its own run's prompt; every run is a :class:`Run` (the same object
the single loop drives), so its data, head, optimiser, schedule, seed, evals, best
checkpoint, events and cancel flag are its own, and a run that fails leaves the pack alone.
The launchers use it on a GPU (``python -m core worker ID1 ID2 ...``); speed:
``bench/packed_speed.py``.

Heads (``heads.py``): ``verbalizer`` (default): ``logits = cos(pool(x; P), e_c) / tau`` with
``e_c`` the frozen, prompt-free pooled embedding of each label description --
only the prompt trains; ``linear``: a trainable ``Linear(d, C)`` as well (its
weights are saved as ``head.safetensors`` beside the prompt).

Batching (``data.py``): texts are tokenised once; batches are length-bucketed (sort by length
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

Modules (arrows point to what a module imports; none points back):

    config     TrainConfig, its str-Enum choices and checks, TrainError
    events     the event names; upgrade_metrics reads events written by older versions (no torch)
    data       subsample, batch_order, a run's tokenised data             <- config
    heads      Head (verbalizer | linear), label_embeddings               <- config
    init       scratch init, source prompts (SPoT average)                <- config
    evaluation evaluate, baselines (majority, no prompt, probe)           <- data, heads, init
    teacher    PANDA's teacher(s) logits, cached                          <- evaluation, heads, init
    attempt    ATTEMPT's attention module, instance-wise prompts, saving   <- config
    result     TrainResult, save_result                                   <- config
    loop       train(), Run (one run's state and step)                    <- all of the above
    packed     train_packed(): K runs, one forward per step               <- loop
    cli        python -m core train (flags generated from TrainConfig)    <- config (the rest lazily)
    trainable  why_not(target, backbone): can a run be launched here (no torch)

Module-top imports: stdlib, torch, numpy, transformers, tqdm only (this runs
on GPU boxes without pandas/sklearn/streamlit); peft, sklearn and core.tasks
are imported where used. ``import core.training`` itself imports nothing heavy:
the names below load their module on first use, so ``core.training.trainable``
and ``core.training.events`` stay torch-free for the pages and the run store.
"""
from __future__ import annotations

import importlib

# public name -> the module that defines it (loaded on first use: PEP 562)
_EXPORTS = {
    "core.training.config": ("TrainConfig", "TrainError", "METHODS", "NEUTRAL_TEXT", "PANDA_BETA", "Method",
                             "Schedule", "Init", "HeadKind", "Pool", "Padding", "TeacherMode", "StudentInit",
                             "LambdaMode"),
    "core.training.data": ("subsample", "batch_order"),
    "core.training.heads": ("Head", "label_embeddings"),
    "core.training.init": ("load_prompt_tensor", "text_init", "random_vocab_init", "scratch_init", "source_prompt"),
    "core.training.evaluation": ("evaluate", "predict_logits", "majority_rate", "logistic_probe", "zero_shot_scores"),
    "core.training.result": ("TrainResult", "save_result", "default_run_name"),
    "core.training.loop": ("train", "Run"),
    "core.training.attempt": ("AttemptMixer", "instance_prompt", "load_attempt"),
    "core.training.packed": ("train_packed", "pack_key", "PackOutcome"),
    "core.training.events": ("upgrade_metrics",),
    "core.training.trainable": ("why_not",),
}
# (no name here equals a submodule's: once imported, a submodule would shadow it)
_WHERE = {name: mod for mod, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'core.training' has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)


def __dir__() -> list[str]:
    return __all__
