"""A prompt's accuracy on a task, read through the head it was trained with.

    python -m core prompts eval PATH --task sent_movie [--preset thunlp-roberta] [--head mlm] [--split test]

:func:`evaluate_prompt` takes a prompt (core.prompts.SoftPrompt), a task and a preset (default: the
prompt's own, core.heads.presets.preset_for) and scores the task's test split (validation when the
test split is empty): ``cosine`` through core.training.evaluation (pooled features, label
descriptions), the label-word heads through core.heads.scorer. A PEFT seq2seq adapter's decoder half
is put in front of the decoder input where PEFT's own forward does so (multitask prompt tuning; for
PROMPT_TUNING PEFT saves a decoder half but runs the encoder half alone: :func:`decoder_half`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from core.heads.presets import HeadError, HeadKind, HeadPreset, label_words, preset_for
from core.heads.scorer import label_scores, load_lm, word_token_ids


@dataclass
class HeadEval:
    task: str
    split: str
    n: int
    accuracy: float
    balanced_accuracy: float
    preset: HeadPreset
    backbone: str
    words: list[str] = field(default_factory=list)
    word_source: str = ""
    decoder_prompt: bool = False

    def line(self) -> str:
        p = self.preset
        how = {HeadKind.mlm: f"position={p.position.value}", HeadKind.cosine: "pooled features + label descriptions"}
        detail = how.get(p.head, f"scoring={p.scoring.value}")
        words = f" words={','.join(self.words)} ({self.word_source})" if self.words else ""
        dec = " +decoder prompt" if self.decoder_prompt else ""
        return (f"accuracy {self.accuracy:.4f} (balanced {self.balanced_accuracy:.4f}) on {self.task} {self.split} "
                f"(n={self.n}) head={p.head.value} preset={p.name} {detail}{words}{dec} backbone={self.backbone}")


# PEFT (0.21) PeftModelForSeq2SeqLM.forward/generate put only the encoder half in front for these types:
# their decoder half is saved (num_transformer_submodules 2) but never reaches the model
ENCODER_ONLY_PEFT_TYPES = ("PROMPT_TUNING", "P_TUNING")


def decoder_half(prompt) -> torch.Tensor | None:
    """The decoder prompt PEFT puts in front of the decoder input when it runs this encoder prompt of a
    seq2seq adapter (``num_transformer_submodules`` 2): the saved decoder half for
    MULTITASK_PROMPT_TUNING; None for PROMPT_TUNING / P_TUNING, whose decoder half PEFT saves but its
    forward and generate never use, and for anything that is not an encoder half."""
    s = prompt.settings or {}
    part = str(s.get("part") or "")
    if not part.endswith("encoder") or not prompt.origin or s.get("peft_type") in ENCODER_ONLY_PEFT_TYPES:
        return None
    from core.prompts.files import read_prompts
    want = part[: -len("encoder")] + "decoder"
    for p in read_prompts(prompt.origin, sub_adapters=False):
        got = str(p.settings.get("part") or "")
        if got.endswith("decoder") and want.endswith(got):
            return torch.as_tensor(p.values, dtype=torch.float32)
    return None


def _split(task, split: str | None):
    names = [split] if split else ["test", "validation"]
    for name in names:
        sp = task.split(name)
        if len(sp):
            return name, sp
    raise HeadError(f"task {task.name}: split {' / '.join(names)} has no examples")


def evaluate_prompt(prompt, task, preset: HeadPreset | None = None, *, split: str | None = None,
                    backbone: str | None = None, device: str = "auto", batch_size: int = 32,
                    max_length: int = 128, limit: int | None = None) -> HeadEval:
    """Accuracy of ``prompt`` on ``task`` (a Task or its name) read with ``preset``."""
    if isinstance(task, str):
        from core.tasks import get_task
        task = get_task(task)
    preset = preset or preset_for(prompt)
    bb_name = backbone or prompt.backbone
    if not bb_name:
        raise HeadError(f"{prompt.name}: the prompt does not say its backbone; pass --backbone")
    split_name, sp = _split(task, split)
    idx = list(range(len(sp) if limit is None else min(int(limit), len(sp))))
    labels = [sp.labels[i] for i in idx]
    from core.training.evaluation import scores
    P = torch.as_tensor(prompt.values, dtype=torch.float32)
    if preset.head == HeadKind.cosine:
        from core.backbone import BackboneError, load_backbone
        from core.training.data import _ids
        from core.training.evaluation import predict_logits
        from core.training.heads import Head, label_embeddings
        try:
            bb = load_backbone(bb_name, device)
        except BackboneError as e:
            raise HeadError(str(e)) from None
        if P.shape[1] != bb.dim:
            raise HeadError(f"{prompt.name}: d={P.shape[1]} does not fit {bb_name} (d={bb.dim})")
        head = Head("verbalizer", label_embeddings(bb, task), 0.05).to(bb.device)
        logits = predict_logits(bb, head, _ids(bb, sp, idx, max_length), P.to(bb.device), "text", batch_size)
        s = scores(logits, labels)
        return HeadEval(task.name, split_name, len(idx), s["accuracy"], s["balanced_accuracy"], preset, bb_name)
    lm = load_lm(bb_name, preset.head, device)
    if P.shape[1] != lm.dim:
        raise HeadError(f"{prompt.name}: d={P.shape[1]} does not fit {bb_name} (d={lm.dim})")
    dec = decoder_half(prompt) if preset.head == HeadKind.seq2seq and preset.decoder_prompt else None
    words, source = label_words(preset, task)
    wids = word_token_ids(lm, words, preset)
    texts, texts2 = sp.inputs(idx)
    order = sorted(range(len(idx)), key=lambda i: len(texts[i]) + len(texts2[i] if texts2 else ""))
    out = torch.empty((len(idx), len(words)))
    with torch.no_grad():
        for s0 in range(0, len(order), batch_size):
            b = order[s0:s0 + batch_size]
            out[b] = label_scores(lm, preset, P, wids, [texts[i] for i in b],
                                  [texts2[i] for i in b] if texts2 else None, decoder_prompt=dec,
                                  max_length=max_length).cpu()
    s = scores(out, labels)
    return HeadEval(task.name, split_name, len(idx), s["accuracy"], s["balanced_accuracy"], preset, bb_name,
                    words, source, dec is not None)


@dataclass
class OwnTaskPlan:
    """Whether a prompt's accuracy on its own task can be computed here, and at what size.
    reason: one line saying why not (None: it can); n: the examples it would score."""
    preset: HeadPreset | None
    task: str | None
    split: str | None = None
    n: int = 0
    reason: str | None = None


def own_task_plan(prompt) -> OwnTaskPlan:
    """The own-task check a page offers: the prompt's preset, its task (known and prepared here) and its
    backbone (loadable here); the first thing missing is the reason."""
    try:
        preset = preset_for(prompt)
    except HeadError as e:
        return OwnTaskPlan(None, prompt.task, reason=str(e))
    if not prompt.task:
        return OwnTaskPlan(preset, None, reason="the prompt does not say its task (describe it to set one)")
    from core.tasks import TaskError, get_task
    try:
        task = get_task(prompt.task)
    except (TaskError, KeyError, ValueError, OSError) as e:
        return OwnTaskPlan(preset, prompt.task, reason=f"its task {prompt.task!r} is not available here "
                           f"({str(e).splitlines()[0][:200]}); add or prepare it (python -m core tasks list)")
    from core.backbone import unavailable_reason
    why = unavailable_reason(prompt.backbone)
    if why:
        return OwnTaskPlan(preset, task.name, reason=why)
    try:
        split, sp = _split(task, None)
    except HeadError as e:
        return OwnTaskPlan(preset, task.name, reason=str(e))
    return OwnTaskPlan(preset, task.name, split, len(sp))


__all__ = ["ENCODER_ONLY_PEFT_TYPES", "HeadEval", "OwnTaskPlan", "decoder_half", "evaluate_prompt", "own_task_plan"]
