"""A finished run: its result object, its default name, and saving it as a PEFT folder.

    python -m core train --task sent_tweet --method scratch --out /tmp/p   # writes what save_result writes
"""
from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from pathlib import Path

import torch

from core.training.config import Method, TrainConfig


@dataclass
class TrainResult:
    prompt: object               # core.prompts.SoftPrompt (the best checkpoint)
    val_score: float
    test_score: float
    best_step: int
    steps: int                   # steps actually run (fewer when cancelled)
    wall_time_s: float
    device: str
    history: list[dict] = field(default_factory=list)   # [{"step", "val_score"}] per eval
    init_val_score: float | None = None
    cancelled: bool = False
    head_state: dict | None = None   # linear head weights (CPU tensors) or None
    init_prompt: torch.Tensor | None = None  # the starting prompt [L, d] (pot: the source)
    config: TrainConfig | None = None
    mixer: object | None = None          # attempt: the AttemptMixer (its sources, T)
    mixer_state: dict | None = None      # attempt: the best checkpoint's attention-module weights
    score_kind: str = "accuracy"         # what val_score / test_score are (the task's registered kind)
    val_scores: dict = field(default_factory=dict)    # the best checkpoint's {"accuracy", "balanced_accuracy"}
    test_scores: dict = field(default_factory=dict)   # the same on test


def default_run_name(cfg: TrainConfig, task_name: str, source_names: list[str]) -> str:
    parts = [task_name, str(cfg.method)]
    if source_names and cfg.method != Method.scratch:
        parts.append("from-" + "+".join(source_names)[:60])
    parts.append(f"s{cfg.seed}")
    return "-".join(parts).replace("/", "_").replace(" ", "_")


def package_versions() -> dict:
    from importlib import metadata
    out = {"python": platform.python_version()}
    for pkg in ("torch", "transformers", "numpy", "peft"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def save_result(result: TrainResult, out_dir: Path | str, *, overwrite: bool = False) -> Path:
    """Write the run's prompt as a PEFT folder + atlas.json (core.prompts), plus head.safetensors if linear
    and, for attempt, attempt.safetensors (the attention module and its sources: core.training.attempt)."""
    from core.prompts import write_prompt
    folder = write_prompt(result.prompt, out_dir, overwrite=overwrite, base_model=result.prompt.backbone)
    if result.head_state:
        from safetensors.torch import save_file
        tmp = Path(folder) / ".head.safetensors.tmp"
        save_file({k: v.contiguous() for k, v in result.head_state.items()}, str(tmp))
        os.replace(tmp, Path(folder) / "head.safetensors")
    if result.mixer is not None and result.mixer_state is not None:
        from core.training.attempt import save_attempt
        save_attempt(result.mixer, result.mixer_state, Path(folder))
    return Path(folder)
