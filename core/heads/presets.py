"""Head presets: how a released prompt family was trained to be read (input layout, where the score is
read, label words), as a validated dataclass stored with the prompt in its ``atlas.json``.

    python -m core prompts eval PATH --task sent_movie --preset thunlp-roberta

Heads (:class:`HeadKind`):

- ``cosine``: the verbalizer head on pooled features (core.training.heads), the default where the
  backbone has no LM head (the bundled MiniLM) and for prompts that do not say how they were trained;
- ``mlm``: a masked-LM's logits over the label words' first tokens, read at ``position`` --
  ``first_prompt`` (position 0, the first prompt slot: thunlp's RoBERTa/BERT prompts, input =
  prompt + ``<s>`` + text + ``</s>``) or ``mask_after`` (a mask token appended after the text, before
  its closing separator: the generic masked-LM reading);
- ``seq2seq``: an encoder-decoder, prompt in front of the encoder input (plus a PEFT adapter's decoder
  half in front of the decoder input), scored at the first decoder step over the label words' first
  tokens (``first_token``, thunlp's T5) or by each label word's sequence log-likelihood (``sequence``);
- ``causal``: a decoder-only LM, prompt in front, each label word scored as the continuation of the
  text (first token's logit or the word's sequence log-likelihood).

Label words (:func:`label_words`), first match wins: the preset's per-task ``verbalizer`` (one word
per label, set by the user); ``words="preset"``: the family's words of thunlp's release, matched by
label name (DESIGN.md §8); ``words="descriptions"``: the task's label descriptions; otherwise (and when
the preset table does not cover a task's labels, which the result says) the task's label names.

Torch-free: the pages read presets without loading a model.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from pathlib import Path


class HeadError(ValueError):
    """A preset or head that cannot be used; the message names the field or file and the problem."""


class HeadKind(StrEnum):
    cosine = "cosine"
    mlm = "mlm"
    seq2seq = "seq2seq"
    causal = "causal"


class Position(StrEnum):
    first_prompt = "first_prompt"   # position 0: the first prompt slot (thunlp)
    mask_after = "mask_after"       # a mask token after the text


class Scoring(StrEnum):
    first_token = "first_token"     # logits of the label words' first tokens at one position
    sequence = "sequence"           # sum of log p(label word tokens | prompt, text)


class WordSource(StrEnum):
    preset = "preset"               # the released family's words (THUNLP_WORDS), by label name
    labels = "labels"               # the task's label names
    descriptions = "descriptions"   # the task's label descriptions


# thunlp Prompt-Transferability's label words (DESIGN.md §8), by the label name a task uses.
# RoBERTa/BERT (formatter/*PromptRobertaFormatter.py) and T5 (model/PromptT5.py) differ for NLI.
_SENT = {"negative": "negative", "positive": "positive", "neutral": "moderate", "moderate": "moderate",
         "conflict": "conflict"}
_PARA = {"not_duplicate": "false", "duplicate": "true", "not_equivalent": "false", "equivalent": "true",
         "false": "false", "true": "true"}
THUNLP_WORDS: dict[str, dict[str, str]] = {
    "mlm": {**_SENT, **_PARA, "entailment": "yes", "contradiction": "no", "not_entailment": "no",
            "low": "low", "high": "high", "unacceptable": "un", "acceptable": "acceptable"},
    "seq2seq": {**_SENT, "neutral": "neutral", **_PARA, "entailment": "entailment",
                "contradiction": "contradiction", "not_entailment": "contradiction", "low": "low", "high": "high",
                "unacceptable": "unacceptable", "acceptable": "acceptable"},
}


def _enum(cls, value, name: str):
    try:
        return cls(value)
    except ValueError:
        raise HeadError(f"{name} {value!r}: use one of {', '.join(x.value for x in cls)}") from None


@dataclass
class HeadPreset:
    """How to read a prompt as it was trained. Validated on construction (precise messages)."""
    name: str = "cosine"
    head: HeadKind = HeadKind.cosine
    position: Position = Position.mask_after      # mlm only
    scoring: Scoring = Scoring.first_token        # seq2seq / causal (mlm reads one position: first_token)
    words: WordSource = WordSource.labels
    verbalizer: dict[str, list[str]] = field(default_factory=dict)   # task -> one word per label
    word_prefix: str = ""   # put before a label word when encoding it (" " for a BPE causal LM's continuation)
    decoder_prompt: bool = True   # seq2seq: prepend a PEFT adapter's decoder half, as PEFT does

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.strip():
            raise HeadError("preset name must be non-empty text")
        self.head = _enum(HeadKind, self.head, "head")
        self.position = _enum(Position, self.position, "position")
        self.scoring = _enum(Scoring, self.scoring, "scoring")
        self.words = _enum(WordSource, self.words, "words")
        if self.head == HeadKind.mlm and self.scoring != Scoring.first_token:
            raise HeadError("scoring 'sequence' needs a seq2seq or causal head: a masked LM reads one position")
        if not isinstance(self.word_prefix, str):
            raise HeadError("word_prefix must be text")
        if not isinstance(self.decoder_prompt, bool):
            raise HeadError("decoder_prompt must be true or false")
        if not isinstance(self.verbalizer, dict):
            raise HeadError("verbalizer must map a task name to a list of label words")
        for task, ws in self.verbalizer.items():
            if not isinstance(ws, (list, tuple)) or not ws or not all(isinstance(w, str) and w.strip() for w in ws):
                raise HeadError(f"verbalizer for task {task!r} must be a non-empty list of non-empty words")
            if len({w.strip() for w in ws}) != len(ws):
                raise HeadError(f"verbalizer for task {task!r} repeats a word: labels must be told apart")
        self.verbalizer = {str(k): [w.strip() for w in v] for k, v in self.verbalizer.items()}

    def to_dict(self) -> dict:
        d = asdict(self)
        return {k: (v.value if isinstance(v, StrEnum) else v) for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict, where: str = "head preset") -> "HeadPreset":
        if not isinstance(d, dict):
            raise HeadError(f"{where}: must be a JSON object")
        known = {f.name for f in fields(cls)}
        extra = sorted(set(d) - known)
        if extra:
            raise HeadError(f"{where}: unknown key(s) {', '.join(extra)} (known: {', '.join(sorted(known))})")
        try:
            return cls(**d)
        except HeadError as e:
            raise HeadError(f"{where}: {e}") from None

    def with_(self, **changes) -> "HeadPreset":
        return HeadPreset(**{**self.to_dict(), **{k: v for k, v in changes.items() if v is not None}})


PRESETS: dict[str, HeadPreset] = {p.name: p for p in [
    HeadPreset("cosine"),
    HeadPreset("thunlp-roberta", HeadKind.mlm, Position.first_prompt, words=WordSource.preset),
    HeadPreset("thunlp-bert", HeadKind.mlm, Position.first_prompt, words=WordSource.preset),
    HeadPreset("thunlp-t5", HeadKind.seq2seq, scoring=Scoring.first_token, words=WordSource.preset),
    HeadPreset("peft-causal", HeadKind.causal, scoring=Scoring.sequence, word_prefix=" "),
    HeadPreset("peft-seq2seq", HeadKind.seq2seq, scoring=Scoring.sequence),
    HeadPreset("mlm-default", HeadKind.mlm, Position.mask_after),
]}


# the presets that read a prompt through an LM head (every one but the pooled cosine head)
LABEL_WORD_PRESETS: tuple[str, ...] = tuple(n for n, p in PRESETS.items() if p.head != HeadKind.cosine)


def get_preset(name: str) -> HeadPreset:
    if name not in PRESETS:
        raise HeadError(f"preset {name!r}: use one of {', '.join(PRESETS)}")
    return HeadPreset.from_dict(PRESETS[name].to_dict())  # a copy: callers may edit it


def preset_for(prompt) -> HeadPreset:
    """The preset a prompt is read with: the one stored in its atlas.json (``settings["head"]``), else
    the one its release implies (thunlp's folder names, PEFT's task type), else ``cosine``."""
    s = getattr(prompt, "settings", None) or {}
    head = s.get("head")
    where = f"{getattr(prompt, 'origin', None) or prompt}: atlas.json head"
    if head == "verbalizer":   # trained here through the pooled cosine head (python -m core train)
        return get_preset("cosine")
    if head == "linear":       # its trained layer lives in head.safetensors: no preset reads it
        raise HeadError(f"{where}: trained with a linear head on pooled features (head.safetensors); "
                        "no label-word preset reads it as trained")
    if head is not None:
        return HeadPreset.from_dict(head, where)
    bb = (getattr(prompt, "backbone", None) or "").lower()
    if s.get("source") == "thunlp/Prompt-Transferability" and getattr(prompt, "method", None) != "projected":
        for key, name in (("roberta", "thunlp-roberta"), ("bert", "thunlp-bert"), ("t5", "thunlp-t5")):
            if bb.startswith(key):
                return get_preset(name)
    task_type = s.get("peft_task_type")
    if task_type == "CAUSAL_LM":
        return get_preset("peft-causal")
    if task_type == "SEQ_2_SEQ_LM":
        return get_preset("peft-seq2seq")
    return get_preset("cosine")


def trained_head(prompts) -> str:
    """The head a group of prompts was trained with, as a preset name a metric or a ranking can read them
    through: the label-word preset every prompt shares (preset_for: its atlas.json, or what its release
    implies), else ``cosine`` (mixed, pooled-head or linear-head prompts, or none). Pages open zs and the
    ranking on it, so released prompts are read as trained unless the user picks another head."""
    names = set()
    for p in prompts:
        try:
            names.add(preset_for(p).name)
        except HeadError:   # a linear head: no preset reads it
            return "cosine"
        if len(names) > 1:
            return "cosine"
    name = next(iter(names), "cosine")
    return name if name in LABEL_WORD_PRESETS else "cosine"


# class-name endings of checkpoints saved with an LM head (transformers' architectures in config.json)
_LM_ARCHITECTURES = ("ForMaskedLM", "ForPreTraining", "ForCausalLM", "LMHeadModel", "WithLMHead",
                     "ForConditionalGeneration")


def checkpoint_head_problem(config: dict, head: HeadKind | str, name: str) -> str | None:
    """Why a model (its config.json as a dict) cannot be read through a ``head`` label-word head, from
    its config alone (no weights loaded: a launch is refused before it queues), else None: a seq2seq head
    on a model that is not encoder-decoder, or a checkpoint saved without any LM head (``BertModel``, a
    sequence classifier, the bundled sentence-embedding MiniLM), whose label-word scores would come from
    random weights. A config without ``architectures`` passes; core.heads.scorer.load_lm checks the weights."""
    head = HeadKind(head)
    if head == HeadKind.cosine:
        return None
    if head == HeadKind.seq2seq and not config.get("is_encoder_decoder"):
        return f"{name} is not an encoder-decoder model ({config.get('model_type')}): it has no seq2seq head"
    archs = [str(a) for a in config.get("architectures") or []]
    if archs and not any(a.endswith(sfx) for a in archs for sfx in _LM_ARCHITECTURES):
        return (f"{name}: its checkpoint was saved as {', '.join(archs)}, without an LM head: a {head.value} "
                "head's label-word scores would come from random weights; use the model with its LM head "
                "(or the cosine head)")
    return None


def label_words(preset: HeadPreset, task) -> tuple[list[str], str]:
    """(one word per label of ``task``, where they came from). ``task``: anything with ``name``,
    ``labels`` and ``descriptions``."""
    labels = list(task.labels)
    if task.name in preset.verbalizer:
        ws = preset.verbalizer[task.name]
        if len(ws) != len(labels):
            raise HeadError(f"verbalizer for task {task.name!r} has {len(ws)} words but the task has "
                            f"{len(labels)} labels ({', '.join(labels)})")
        return list(ws), "verbalizer"
    if preset.words == WordSource.descriptions:
        return list(task.descriptions), "descriptions"
    if preset.words == WordSource.preset:
        table = THUNLP_WORDS.get(preset.head.value, {})
        ws = [table.get(str(x).strip().lower()) for x in labels]
        if all(ws) and len(set(ws)) == len(ws):
            return ws, "preset"
        return labels, f"labels (the {preset.name} words do not cover {task.name}'s labels)"
    return labels, "labels"


def store_preset(prompt, preset: HeadPreset) -> Path:
    """Write ``preset`` into the prompt's ``atlas.json`` (its PEFT adapter folder) as ``settings.head``,
    atomically; other keys are kept. A plain file has no folder for metadata: describe it in the
    Library first (which stores it as an adapter folder)."""
    import json

    from core.fsutil import atomic_write_json
    origin = Path(str(getattr(prompt, "origin", "") or ""))
    if getattr(prompt, "fmt", None) != "peft" or not origin.is_dir():
        raise HeadError(f"{origin}: a plain prompt file has no atlas.json to hold a head preset; store it as an "
                        "adapter folder first (python -m core library tag, or describe it in the Library)")
    meta_file = origin / "atlas.json"
    meta: dict = {}
    if meta_file.is_file():
        try:
            meta = json.loads(meta_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            raise HeadError(f"{meta_file}: not valid JSON; fix or remove it first") from None
        if not isinstance(meta, dict):
            raise HeadError(f"{meta_file}: must hold a JSON object; fix or remove it first")
    settings = meta.get("settings") if isinstance(meta.get("settings"), dict) else {}
    meta["settings"] = {**settings, "head": preset.to_dict()}
    atomic_write_json(meta_file, meta, indent=2, default=str)
    return meta_file
