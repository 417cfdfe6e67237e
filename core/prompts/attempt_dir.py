"""ATTEMPT's released output folders, opened as one model (issue 27).

    python -m core prompts inspect attempt_out/       # one line per prompt, then what the folder is

ATTEMPT (AkariAsai/ATTEMPT, ``save_prompts``) saves each named parameter on its own with ``torch.save``:
``prefix_embeddings.pt`` (the target prompt ``[L, d]``), ``attn_W_down.pt`` ``[r, d]``, ``attn_W_up.pt``
``[d, r]``, ``layer_norm_weight.pt`` / ``layer_norm_bias.pt`` ``[d]`` and ``attn_Wa_weights.pt`` ``[d, d]``
(used by its ``linear`` attention only; the released runs use ``sub``, the down/up projection, which is
what core.training.attempt computes). Its source prompts are the ``--prefix_embedding_path`` files the
run read (e.g. ``mnli.pt``, ``sst2.pt``, each ``[L, d]``): when such files sit in the same folder they
are the model's sources, named by their file stem, in name order (ATTEMPT's order is the order of that
option, which the folder does not record: said in :attr:`Released.notes`).

The library still indexes the folder as its prompts (the target prompt and each source) plus the
weight files listed as not prompts; this module says what the folder is *as a model*.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from core.prompts.types import PromptError

TARGET_FILE = "prefix_embeddings.pt"
WEIGHT_FILES = {"attn_W_down": "attn_W_down.pt", "attn_W_up": "attn_W_up.pt",
                "layer_norm_weight": "layer_norm_weight.pt", "layer_norm_bias": "layer_norm_bias.pt"}
IGNORED = {"attn_Wa_weights.pt": "the linear attention's weights (unused by the released sub attention)"}


@dataclass
class Released:
    """An ATTEMPT output folder. target [L, d]; weights: attn_W_down [r, d], attn_W_up [d, r],
    layer_norm_weight / layer_norm_bias [d] (a missing bias is absent, never invented); sources:
    name -> [L, d]; missing: why the instance-wise prompt cannot be recomputed ('' when it can)."""
    folder: Path
    target: torch.Tensor
    weights: dict[str, torch.Tensor]
    sources: dict[str, torch.Tensor] = field(default_factory=dict)
    missing: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def attn_dim(self) -> int:
        return int(self.weights["attn_W_down"].shape[0])

    def describe(self) -> str:
        """One line: what the folder is as a model."""
        L, d = self.target.shape
        src = ", ".join(self.sources) if self.sources else "none beside it"
        head = f"ATTEMPT model: target prompt {L} x {d}, attention module r={self.attn_dim}; sources: {src}"
        return head + (f" — {self.missing}" if self.missing else "")


def is_attempt_dir(folder: Path | str) -> bool:
    """True when ``folder`` has ATTEMPT's target prompt and its attention weights."""
    f = Path(folder)
    return f.is_dir() and (f / TARGET_FILE).is_file() and (f / WEIGHT_FILES["attn_W_down"]).is_file()


def _load(path: Path) -> torch.Tensor:
    try:
        t = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 -- pickles that run code, truncated files: one line naming it
        raise PromptError(path, f"not a readable torch tensor file ({type(e).__name__})") from None
    if not isinstance(t, torch.Tensor):
        raise PromptError(path, f"holds a {type(t).__name__}, not a tensor (ATTEMPT saves one tensor per file)")
    return t.detach().float()


def open_released(folder: Path | str) -> Released:
    """Read an ATTEMPT output folder (see the module docstring). PromptError naming the file when the
    target prompt or a weight is unreadable or has the wrong shape."""
    from core.prompts.files import read_prompt
    folder = Path(folder)
    if not is_attempt_dir(folder):
        raise PromptError(folder, f"not an ATTEMPT output folder (needs {TARGET_FILE} and "
                                  f"{WEIGHT_FILES['attn_W_down']})")
    target = read_prompt(folder / TARGET_FILE).tensor.float()
    L, d = target.shape
    weights, notes = {}, []
    for key, name in WEIGHT_FILES.items():
        p = folder / name
        if p.is_file():
            weights[key] = _load(p)
        elif key != "layer_norm_bias":
            raise PromptError(p, "missing: an ATTEMPT folder's attention module needs it")
    down, up = weights["attn_W_down"], weights["attn_W_up"]
    if down.dim() != 2 or down.shape[1] != d or up.shape != (d, down.shape[0]):
        raise PromptError(folder / WEIGHT_FILES["attn_W_up"],
                          f"attn_W_down {tuple(down.shape)} and attn_W_up {tuple(up.shape)} do not fit a prompt "
                          f"of width {d} (expected [r, {d}] and [{d}, r])")
    for key in ("layer_norm_weight", "layer_norm_bias"):
        if key in weights and tuple(weights[key].shape) != (d,):
            raise PromptError(folder / WEIGHT_FILES[key], f"shape {tuple(weights[key].shape)}, expected [{d}]")
    if "layer_norm_bias" not in weights:
        notes.append("no layer_norm_bias.pt: the instance-wise prompt cannot be recomputed exactly")
    for name, why in IGNORED.items():
        if (folder / name).is_file():
            notes.append(f"{name}: {why}")
    known = {TARGET_FILE, *WEIGHT_FILES.values(), *IGNORED}
    sources = {}
    for p in sorted(folder.iterdir()):
        if p.name in known or p.name.startswith(".") or not p.is_file() or p.suffix not in (".pt", ".bin", ".safetensors"):
            continue
        try:
            sp = read_prompt(p)
        except PromptError:
            continue  # not a prompt: the library lists it with what it looks like
        if tuple(sp.tensor.shape) == (L, d):
            sources[p.stem] = sp.tensor.float()
        else:
            notes.append(f"{p.name}: a prompt of shape {tuple(sp.tensor.shape)}, not [{L}, {d}]: not a source")
    missing = ""
    if not sources:
        missing = (f"no source prompt files ([{L}, {d}], e.g. mnli.pt) beside it: put the files the run read "
                   "(its --prefix_embedding_path) in this folder to recompute its instance-wise prompt")
    elif "layer_norm_bias" not in weights:
        missing = "no layer_norm_bias.pt beside it"
    if sources:
        notes.append("sources in file-name order; ATTEMPT's order is that of its --prefix_embedding_path option")
    return Released(folder, target, weights, sources, missing, notes)
