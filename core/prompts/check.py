"""Is this tensor a soft prompt? Validation and the choice of the prompt tensor inside a file.

    python -m core prompts inspect PATH...      (prints what was read, or why it is not a prompt)

:func:`_pick_tensor` chooses by meaning, not by shape alone: vocabulary tables ``[V, d]``,
attention / layer-norm weights, per-layer key/value prefixes (P-tuning v2, prefix tuning) and
training checkpoints are refused with a message that says what they look like; a leading batch
dimension of 1 is dropped. :func:`validate_array` checks the chosen ``[L, d]`` (float, finite, the
backbone's width) and returns it as float32 numpy. Size caps: :func:`max_prompt_bytes`.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from core.prompts.types import PromptError, _is_torch_tensor

from core.config import DEFAULT_BACKBONE  # noqa: E402  (one definition, torch-free)
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
# dict keys that name the prompt tensor, in order of preference (also matched as a dotted suffix)
PROMPT_KEYS = ("prompt_embeddings", "prompt_embedding", "soft_prompt", "prompt", "prefix_embeddings",
               "embeddings", "embedding", "weight")


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

