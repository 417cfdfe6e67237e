"""The demo's training budgets (Profile, PROFILES) and the id of its sweep (its results.csv: core.results).

    python -m core demo estimate [--profile cpu|gpu|tiny]
"""
from __future__ import annotations

from dataclasses import dataclass, field

SWEEP_ID = "demo-grid"


@dataclass
class Profile:
    """A training budget. Fields say what they bound."""
    name: str
    source_steps: int          # steps of each full-data source prompt
    steps: int                 # steps of each low-resource grid run
    seeds: list[int]           # seeds of every grid cell (pot, panda)
    scratch_seeds: list[int]   # seeds of the scratch baselines (their spread = the noise band)
    workers: int               # concurrent worker processes
    pack: int = 1              # runs per worker trained in one forward (core.training.train_packed); GPU only
    train_size: int = 128      # target training examples in the grid
    eval_every: int = 25
    max_length: int = 128
    generic_per_task: int = 200
    panda_beta: float = 0.5
    # training settings pinned here (not inherited from TrainConfig defaults) so the committed
    # demo stays reproducible by its command when the engine's defaults move
    lr: float = 0.03
    init_text: str = "read the following text and decide what it is about ."
    val_size: int | None = None   # cap validation / test examples (only the smoke-test profile does)
    test_size: int | None = None
    commit_seeds: list[int] = field(default_factory=lambda: [0])  # grid prompts copied into data/demo

    def __post_init__(self):
        if self.steps < 1 or self.source_steps < 1:
            raise ValueError(f"profile {self.name}: steps must be positive")
        if not set(self.seeds) <= set(self.scratch_seeds):
            raise ValueError(f"profile {self.name}: every grid seed needs a scratch baseline "
                             f"(seeds {self.seeds}, scratch_seeds {self.scratch_seeds})")


# Budgets. CPU: ~4 steps/s on 2 cores at batch 16 -> 11 x 400 source steps +
# (30 scratch + 220 grid) x 100 steps ~ 30k steps ~ 2 h. GPU: 12 concurrent
# MiniLM runs ~ 1,000 steps/s on an H200 -> all cells, 3 seeds, in minutes.
PROFILES = {
    "cpu": Profile("cpu", source_steps=400, steps=100, seeds=[0], scratch_seeds=[0, 1, 2], workers=1),
    # a smoke test of the whole pipeline in about a minute (tests, and `--profile tiny`)
    "tiny": Profile("tiny", source_steps=6, steps=4, seeds=[0], scratch_seeds=[0, 1], workers=1, train_size=32,
                    eval_every=2, max_length=32, generic_per_task=16, val_size=40, test_size=60),
    # GPU: what the committed demo ran (H200, fp32, 12 workers): sources + seed 0 of the grid
    # (241 runs) in 4.2 min, then seeds 1-2 of every cell (440 runs) in 6.1 min in a resume.
    # pack=16 (issue 18) is NOT measured yet: no GPU was lent to that issue; bench/packed_speed.py
    # on the device decides it (ATLAS_PACK or --pack override)
    "gpu": Profile("gpu", source_steps=600, steps=150, seeds=[0, 1, 2], scratch_seeds=[0, 1, 2], workers=12,
                   pack=16),
}
