"""Prompts in and out: read one file or adapter folder, write a PEFT adapter folder.

    python -m core prompts inspect PATH... [--dim D]

:func:`read_prompts` (PEFT folders, seq2seq encoder/decoder split, save folders with several
adapters, single files in any format core.prompts.formats sniffs), :func:`write_prompt`
(an atomic PEFT PROMPT_TUNING folder + atlas.json with a portable model name).
"""
from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import safetensors.numpy

from core.prompts.check import DEFAULT_BACKBONE, KNOWN_DIMS, _check_size, _first_line, validate_array
from core.prompts.formats import (ADAPTER_CONFIG, ADAPTER_WEIGHTS, METADATA, PROMPT_PEFT_NAMES, PROMPT_PEFT_TYPES,
                                  _load_safetensors,
                                  _load_torch, _sniff_head, load_tensor, sniff)
from core.prompts.meta import _apply_metadata, _read_json, model_name, portable_model_name, thunlp_metadata
from core.prompts.types import PromptError, SoftPrompt


def mpt_task_prompts(shared, cols, rows, path) -> list:
    """MULTITASK_PROMPT_TUNING's prompt of every task, as peft 0.21 computes it
    (``MultitaskPromptEmbedding.forward``): ``shared * (cols[t] @ rows[t])``, element-wise.

    shared: [L, d] the saved ``prompt_embeddings``; cols: ``prefix_task_cols`` [T, L, r];
    rows: ``prefix_task_rows`` [T, r, d]. Returns T float32 arrays [L, d] (float32 all through,
    as PEFT's float32 parameters: for r = 1 the numbers are PEFT's to the bit).
    """
    import numpy as np

    cols = validate_tensor_nd(cols, path, "prefix_task_cols", 3)
    rows = validate_tensor_nd(rows, path, "prefix_task_rows", 3)
    L, d = shared.shape
    T, r = cols.shape[0], cols.shape[2]
    if cols.shape[1] != L or rows.shape != (T, r, d):
        raise PromptError(path, f"MULTITASK_PROMPT_TUNING weights disagree: prompt_embeddings {tuple(shared.shape)}, "
                                f"prefix_task_cols {tuple(cols.shape)}, prefix_task_rows {tuple(rows.shape)} "
                                f"(expected [T, {L}, r] and [T, r, {d}])")
    return [np.ascontiguousarray(shared * np.matmul(cols[t], rows[t]), dtype=np.float32) for t in range(T)]


def validate_tensor_nd(t, path, key: str, ndim: int):
    """A finite float tensor of ``ndim`` dimensions as float32 numpy (MPT's task factors)."""
    import numpy as np

    a = t.detach().to("cpu").float().numpy() if hasattr(t, "detach") else np.asarray(t)
    if a.ndim != ndim or not np.issubdtype(a.dtype, np.floating):
        raise PromptError(path, f"{key} should be a {ndim}-D float tensor, got shape {tuple(a.shape)} {a.dtype}")
    if not np.isfinite(a).all():
        raise PromptError(path, f"{key} contains NaN or Inf values")
    return a.astype(np.float32, copy=False)


def _read_peft(folder: Path, expected_dim, max_bytes, notes: list[str] | None = None) -> list[SoftPrompt]:
    """The prompt(s) of one PEFT adapter folder: PROMPT_TUNING, P_TUNING (whose saved
    ``prompt_embeddings`` is the prompt encoder's output, the [L, d] input prompt PEFT prepends),
    CPT (its saved ``prompt_embeddings`` is the token embeddings plus the projected delta, what PEFT
    prepends) and MULTITASK_PROMPT_TUNING (one prompt per task, ``<name>/task<t>``, plus the shared
    prompt ``<name>/shared``: see :func:`mpt_task_prompts`)."""
    cfg = _read_json(folder / ADAPTER_CONFIG, folder)
    peft_type = cfg.get("peft_type")
    if peft_type == "PREFIX_TUNING":
        raise PromptError(folder, "peft_type is 'PREFIX_TUNING': per-layer key/value prefixes, not an input "
                                  f"prompt (only {PROMPT_PEFT_NAMES} adapters hold a soft prompt)")
    if peft_type not in PROMPT_PEFT_TYPES:
        raise PromptError(folder, f"peft_type is {peft_type!r}; only {PROMPT_PEFT_NAMES} adapters "
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
    whole = [("", t)]
    if peft_type == "MULTITASK_PROMPT_TUNING":
        missing = [k for k in ("prefix_task_cols", "prefix_task_rows") if k not in state]
        if missing:
            raise PromptError(folder, f"MULTITASK_PROMPT_TUNING weights lack {', '.join(missing)}")
        tasks = mpt_task_prompts(t, state["prefix_task_cols"], state["prefix_task_rows"], folder)
        notes.append(f"multitask prompt tuning: the shared prompt and {len(tasks)} task prompts "
                     "(shared x that task's low-rank factors, as PEFT's get_prompt(task_ids=...))")
        whole = [("/shared", t)] + [(f"/task{i}", x) for i, x in enumerate(tasks)]
    parts = whole
    if n_sub == 2:
        notes.append(f"seq2seq adapter ({task_type}): {n_virtual * 2} rows split into an encoder and a decoder "
                     f"prompt of {n_virtual} tokens each")
        parts = [(f"{w}/{half}", x[sl]) for w, x in whole
                 for half, sl in (("encoder", slice(None, n_virtual)), ("decoder", slice(n_virtual, None)))]
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
        if suffix.startswith("/task"):  # which of PEFT's task_ids this prompt is
            s["mpt_task_id"] = int(suffix[5:].split("/")[0])
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

