"""Prompt file formats: sniffed from the first bytes (never from the name), then loaded safely.

    python -m core prompts inspect PATH...

PEFT adapter folders (``adapter_config.json`` + weights), ``.safetensors``, ``torch.save`` files
(``weights_only=True``; pickles that would run code are refused), ``.npy`` / ``.npz``
(``allow_pickle=False``). :func:`load_tensor` returns the prompt tensor of one file, chosen by
meaning (core.prompts.check).
"""
from __future__ import annotations

import pickle
import struct
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import safetensors
import safetensors.numpy

from core.prompts.check import _check_size, _first_line, _pick_tensor
from core.prompts.types import PromptError, _torch

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
METADATA = "atlas.json"
# PEFT adapter types whose saved prompt_embeddings is the [L, d] input prompt PEFT prepends (MPT: the shared
# prompt, which PEFT multiplies by each task's low-rank factors; core.prompts.files gives one prompt per task)
PROMPT_PEFT_TYPES = {"PROMPT_TUNING": None, "P_TUNING": "p_tuning", "MULTITASK_PROMPT_TUNING": "mpt", "CPT": "cpt"}
PROMPT_PEFT_NAMES = "PROMPT_TUNING, P_TUNING, MULTITASK_PROMPT_TUNING and CPT"


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

