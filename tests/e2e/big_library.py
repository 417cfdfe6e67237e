"""A large generated prompt library for the scale tests and bench/page_scale.py (seconds to build).

    .venv/bin/python tests/e2e/big_library.py N OUT_DIR     (writes OUT_DIR/<prompt folders>)

N random [20, 384] prompts in 20 clusters: prompt i belongs to cluster i % 20 (task ``task<c>``,
family ``fam<c % 5>``), values = the cluster's centre + noise (seed 0), MiniLM backbone. One
prompt is written by core.prompts.write_prompt (a PEFT adapter folder + atlas.json); the
others copy its adapter_config.json and get their own weights and atlas.json (2 ms a prompt
instead of 36). Synthetic: it exercises the UI at scale, not the science.
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

L, D, CLUSTERS = 20, 384, 20
BACKBONE = "sentence-transformers/all-MiniLM-L6-v2"


def task_of(i: int) -> str:
    return f"task{i % CLUSTERS:02d}"


def build(n: int, folder: Path | str, seed: int = 0) -> Path:
    """Write the library into `folder` (reused when a complete one is already there); return it."""
    import numpy as np
    import safetensors.numpy
    import torch

    from core.prompts import ADAPTER_CONFIG, ADAPTER_WEIGHTS, METADATA, SoftPrompt, write_prompt

    folder = Path(folder)
    if (folder / ".complete").is_file():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (CLUSTERS, D))
    template = meta = None
    for i in range(n):
        c = i % CLUSTERS
        x = (centres[c][None, :] + 0.8 * rng.normal(0, 1, (L, D))).astype(np.float32)
        name, task, family = f"c{c:02d}_{i:05d}", task_of(i), f"fam{c % 5}"
        dest = folder / name
        if template is None:
            template = write_prompt(SoftPrompt(tensor=torch.tensor(x), name=name, task=task, family=family,
                                               backbone=BACKBONE, method="scratch"), dest)
            meta = json.loads((template / METADATA).read_text())
            continue
        dest.mkdir()
        shutil.copy2(template / ADAPTER_CONFIG, dest / ADAPTER_CONFIG)
        safetensors.numpy.save_file({"prompt_embeddings": x}, str(dest / ADAPTER_WEIGHTS[0]), metadata={"format": "pt"})
        (dest / METADATA).write_text(json.dumps({**meta, "name": name, "task": task, "family": family}))
    (folder / ".complete").write_text("ok\n")
    return folder


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    print(build(int(sys.argv[1]), sys.argv[2]))
