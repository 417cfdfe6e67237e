"""What a computation will cost before it starts, and whether this click may start it.

    python -m core jobs list        # the ledger these estimates read (ATLAS_HOME/runs.db)

Every computation a page can start (every metric matrix and the measured-validation predictions on
Transferability, a prompt's own-task accuracy through its head on the Library, PCA/t-SNE/UMAP on
Projection, a ranking on Tasks, a run estimate's calibration, a static figure export) is priced first:
**units × seconds per unit**,
the way core.estimate prices a run. Seconds per unit is the median of the last ``RECENT`` finished
computations of that kind in the job ledger (core.jobs records every one, inline or background, with
the units it did and its wall time); before the first one here it is the reference figure in
``REFERENCE`` (measured on the 2-core reference machine, MiniLM-L6), and the text says which.

The policy (:class:`Budget`, from the environment, for the operator):

    ATLAS_VIEWER_MAX_S    per-click ceiling for viewers, seconds (default 30)
    ATLAS_VIEWER_RATE     computations per session per window for viewers, "N/SECONDS" (default 6/600)
    ATLAS_MAX_COMPUTE     concurrent computations on this server, all sessions and processes together
                          (default: half the CPU cores, at least 1 -- 1 on 2 cores)
    ATLAS_JOB_IDLE_S      a viewer's background job ends when no session asked for it for this long (default 60)

:meth:`Budget.decide` says, for one click: ``run`` (inline, now), ``job`` (full mode above the
ceiling: a background job), or ``refuse`` (a viewer above the ceiling or over the rate limit), with
one line saying what it would cost. Torch-free, no Streamlit.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from statistics import median

RECENT = 10

# kind -> (unit, reference seconds per unit, where the figure comes from)
REFERENCE: dict[str, tuple[str, float, str]] = {
    "zs": ("evaluation", 5.0, "~5 CPU-s per zero-shot evaluation of ≤200 validation examples (issue 24)"),
    "on": ("prompt forward", 0.05, "0.4 s for 80 prompts after the model is loaded"),
    "on_probe": ("prompt forward", 4.6, "92.8 s for 20 prompts over the 88-text probe set"),
    "panda_sim": ("prompt forward", 4.6, "as on_probe: one batched forward per prompt over the probe set"),
    "tsne": ("point", 70.6 / 4820, "70.6 s for the demo's 4,820 token points (issue 24)"),
    "umap": ("point", 9.9 / 4820, "9.9 s for the demo's 4,820 token points, numba already compiled"),
    "rank": ("source × example", 5.0 / 200, "one source's pass is a zs evaluation's forwards: ~5 s per 200 examples "
             "(140 demo sources took ~13 min on the loaded shared 2-core machine)"),
    "calibrate": ("calibration", 30.0, "≈ 30 s to load MiniLM-L6 and run 3 prompt-tuning steps (1 warm-up, 2 timed) of batch 16 × 128 "
                  "tokens on the loaded shared 2-core machine (7.3 s/step; core.estimate.run_calibration)"),
    "head_eval": ("example", 0.1, "an estimate, not a measurement: ~4x zs's 0.025 s per example for a base-size "
                  "model (12 layers; MiniLM has 6) and ~2x for an LM head (bench/head_cost.py)"),
    "export": ("figure", 6.0, "11.6-12.0 s for a PNG + SVG of a 30 × 30 heatmap via kaleido (it starts Chromium)"),
    # prompt-space matrices (N × N prompt pairs) and PCA maps: cheap per unit, but a viewer's ?lib= subset
    # or token points can make them big; measured on the loaded 2-core machine, 440 demo-shaped prompts (L 20)
    "e_avg": ("prompt pair", 0.3e-6, "0.054 s for 440 × 440 prompt pairs"),
    "e_tok": ("prompt pair", 0.4e-6, "0.080 s for 440 × 440 prompt pairs"),
    "e_flat": ("prompt pair", 1.1e-6, "0.21 s for 440 × 440 prompt pairs"),
    "euclid": ("prompt pair", 2.7e-6, "0.52 s for 440 × 440 prompt pairs"),
    "tok_max": ("prompt pair", 17e-6, "3.2 s for 440 × 440 prompt pairs of 20 tokens"),
    "predictions": ("prompt pair", 22e-6, "every prompt-space metric for one (measured source, target prompt) "
                    "pair: the sum of their rates"),
    "pca": ("point", 0.17e-3, "0.075 s for 440 prompt points, 0.95 s for 8,800 token points"),
}
BACKBONE_METRICS = ("on", "on_probe", "panda_sim", "zs")
PROMPT_METRICS = ("e_avg", "e_tok", "e_flat", "euclid", "tok_max")   # priced per prompt pair (N × N)


class BudgetError(ValueError):
    """An operator setting that is not usable (the message names the variable and the value)."""


def fmt_seconds(s: float) -> str:
    if s < 1:
        return "< 1 s"
    if s < 90:
        return f"≈ {s:.0f} s"
    if s < 5400:
        return f"≈ {s / 60:.0f} min"
    return f"≈ {s / 3600:.1f} h"


@dataclass(frozen=True)
class Cost:
    """``units`` of ``kind`` at ``s_per_unit`` each; ``basis`` says where the rate comes from."""

    kind: str
    units: int
    s_per_unit: float
    basis: str

    @property
    def unit(self) -> str:
        return REFERENCE[self.kind][0]

    @property
    def seconds(self) -> float:
        return self.units * self.s_per_unit

    def text(self) -> str:
        if self.units == 0:
            return f"{self.kind}: nothing left to compute (every {self.unit} is saved)"
        plural = "" if self.units == 1 else "s"
        return (f"{self.kind}: {self.units:,} {self.unit}{plural} × {self.s_per_unit:.3g} s "
                f"= {fmt_seconds(self.seconds)} of CPU ({self.basis})")


def rate(kind: str, finished: list[dict] | None = None, recent: int = RECENT) -> tuple[float, str]:
    """(seconds per unit, basis): the median of the last ``recent`` finished ledger rows of ``kind``
    (``finished``: RunStore.list_jobs rows, newest first) that did units, else the reference figure."""
    if kind not in REFERENCE:
        raise BudgetError(f"no cost model for {kind!r} (one of {', '.join(REFERENCE)})")
    rates = []
    for j in finished or []:
        if j.get("kind") != kind or j.get("status") != "finished":
            continue
        units, wall = j.get("units") or 0, j.get("wall_s")
        if units > 0 and isinstance(wall, (int, float)) and wall > 0:
            rates.append(float(wall) / units)
            if len(rates) >= recent:
                break
    if rates:
        return median(rates), f"median of the last {len(rates)} measured here"
    unit, ref, where = REFERENCE[kind]
    return ref, f"reference figure: {where}"


def cost(kind: str, units: int, finished: list[dict] | None = None) -> Cost:
    s, basis = rate(kind, finished)
    return Cost(kind, int(units), s, basis)


# --------------------------------------------------------------------------- policy
def _float_env(env, name: str, default: float, lo: float) -> float:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        v = float(raw)
    except ValueError:
        raise BudgetError(f"{name}={raw!r}: a number of seconds, e.g. {default:g}") from None
    if not math.isfinite(v) or v < lo:
        raise BudgetError(f"{name}={raw!r}: must be a finite number ≥ {lo:g}")
    return v


def default_max_compute() -> int:
    return max(1, (os.cpu_count() or 2) // 2)


@dataclass(frozen=True)
class Budget:
    viewer_max_s: float = 30.0
    rate_n: int = 6
    rate_window_s: float = 600.0
    max_compute: int = 1
    idle_s: float = 60.0

    @classmethod
    def from_env(cls, env=None) -> "Budget":
        env = os.environ if env is None else env
        raw_rate = (env.get("ATLAS_VIEWER_RATE") or "").strip()
        n, window = 6, 600.0
        if raw_rate:
            try:
                a, b = raw_rate.split("/")
                n, window = int(a), float(b)
                if n < 0 or not (math.isfinite(window) and window > 0):
                    raise ValueError
            except ValueError:
                raise BudgetError(f"ATLAS_VIEWER_RATE={raw_rate!r}: computations per window as N/SECONDS, "
                                  "e.g. 6/600") from None
        raw_cap = (env.get("ATLAS_MAX_COMPUTE") or "").strip()
        cap = default_max_compute()
        if raw_cap:
            try:
                cap = int(raw_cap)
                if cap < 1:
                    raise ValueError
            except ValueError:
                raise BudgetError(f"ATLAS_MAX_COMPUTE={raw_cap!r}: a whole number ≥ 1") from None
        return cls(viewer_max_s=_float_env(env, "ATLAS_VIEWER_MAX_S", 30.0, 0.0), rate_n=n, rate_window_s=window,
                   max_compute=cap, idle_s=_float_env(env, "ATLAS_JOB_IDLE_S", 60.0, 1.0))

    def rate_left(self, clicks: list[float], now: float) -> tuple[int, float]:
        """(computations left in the window, seconds until the oldest counted click leaves it)."""
        recent = sorted(t for t in clicks if now - t < self.rate_window_s)
        left = self.rate_n - len(recent)
        wait = (recent[0] + self.rate_window_s - now) if recent and left <= 0 else 0.0
        return max(left, 0), max(wait, 0.0)

    def decide(self, c: Cost, *, viewer: bool, clicks: list[float] = (), now: float = 0.0,
               can_background: bool = True) -> "Decision":
        """What one click on a computation of cost ``c`` may do.

        viewer: the session is a viewer's (core.access); clicks: the session's earlier computation
        starts (timestamps), for the rate limit; can_background: this kind can run as a background job.
        """
        if c.units == 0:
            return Decision("run", c, "")
        over = c.seconds > self.viewer_max_s
        if viewer:
            if over:
                return Decision("refuse", c, f"Not computed: {c.text()}, above this server's per-click limit for "
                                             f"viewers ({fmt_seconds(self.viewer_max_s)}, ATLAS_VIEWER_MAX_S). "
                                             "Ask the operator to compute it.")
            left, wait = self.rate_left(list(clicks), now)
            if left <= 0:
                return Decision("refuse", c, f"Not computed: this session started {self.rate_n} computations in the "
                                             f"last {fmt_seconds(self.rate_window_s)} (ATLAS_VIEWER_RATE); try again in "
                                             f"{fmt_seconds(wait)}.")
            return Decision("run", c, "")
        if over and can_background:
            return Decision("job", c, f"{c.text()}: runs as a background job (progress below; it survives a "
                                      "reload and resumes after a restart).")
        return Decision("run", c, c.text() if over else "")


@dataclass(frozen=True)
class Decision:
    action: str        # "run" | "job" | "refuse"
    cost: Cost
    message: str
