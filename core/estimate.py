"""What a run about to be launched will be: the regime of a measured cell, and how long it will take.

    python -m core runs list            # the finished runs these estimates read (ATLAS_HOME/runs.db)

Two rules the Runs form and the Transferability links share:

* :func:`measured_regime` — a run prefilled from a measured cell (source -> target) trains in the
  regime that cell was measured in: the steps and train size of its runs, with the learning rate,
  eval interval and the other budget settings they stored. Several regimes in one cell: the one
  with the most runs (then the most recent). A cell measured in 150 steps on 128 examples is not
  re-run as 300 steps on all data, which would not be comparable.
* :func:`estimate_duration` — seconds per step of the recent finished runs of the same backbone on
  the same device (median over the last ``recent``), times the steps asked for. Wall time includes
  loading and evaluation, so it is the time a user waits, not the pure step rate. Before the first
  such run: a timed calibration (:func:`run_calibration`: a few prompt-tuning steps of the backbone
  on this device, batch 16 at the run's max_length, seconds), cached under ATLAS_CACHE/calibration
  keyed by backbone + device + torch version, so it is paid once; the text says it comes from there.
  Unknown only where the backbone cannot load, never a guess.

Reads the run store only through its public methods (``list_runs``) and results tables
(``RESULTS_COLUMNS``); no torch, no Streamlit.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from statistics import median

from core.prompts import DEFAULT_BACKBONE

# settings of a run (core.training.TrainConfig fields) that make its budget: carried with steps / train_size
REGIME_EXTRA = ("prompt_length", "batch_size", "max_length", "head", "init", "pool", "val_size", "test_size",
                "lm_head", "label_words", "lm_scoring")   # a label-word head is part of the regime too
# the method's own settings of a measured cell (PANDA's teacher, λ and student start): a prefilled run
# copies them too, or it is not the run that was measured (query parameter ``method_params``)
METHOD_SETTINGS = ("teacher_mode", "lambda_mode", "beta", "metric_value", "student_init")
RECENT = 10
# what a link may ask for (the Runs form's own bounds): ``?steps=1e400`` or ``1e30`` is reported, never an
# OverflowError or a form value above its widget's maximum
LINK_BOUNDS = {"steps": (1, 100_000), "train_size": (0, 1_000_000), "eval_every": (0, 100_000)}
LR_BOUNDS = (1e-5, 10.0)


@dataclass(frozen=True)
class Regime:
    """How the runs of a measured cell were trained. ``train_size`` None = all training data."""

    steps: int
    train_size: int | None = None
    lr: float | None = None
    eval_every: int | None = None
    extra: dict = field(default_factory=dict)   # REGIME_EXTRA settings the runs stored
    n_runs: int = 0
    method: dict = field(default_factory=dict)  # METHOD_SETTINGS the runs stored

    def to_query(self) -> dict[str, str]:
        """The Runs page's query parameters (``steps``, ``train_size``, ``lr``, ``eval_every``, ``params``)."""
        q = {"steps": str(self.steps), "train_size": str(self.train_size or 0)}
        if self.lr is not None:
            q["lr"] = repr(float(self.lr))
        if self.eval_every is not None:
            q["eval_every"] = str(self.eval_every)
        if self.extra:
            q["params"] = json.dumps(self.extra, sort_keys=True)
        if self.method:
            q["method_params"] = json.dumps(self.method, sort_keys=True)
        return q

    @classmethod
    def from_query(cls, q: dict) -> tuple["Regime | None", list[str]]:
        """(regime, problems) from a link's query parameters (inverse of to_query). A value that is
        not usable is named in ``problems`` and left out (the form keeps its own value), never guessed."""
        problems: list[str] = []
        if not q.get("steps"):
            return None, [f"{k}={q[k]!r} without steps" for k in ("train_size", "lr", "eval_every", "params")
                          if q.get(k)]

        def whole(k):
            lo, hi = LINK_BOUNDS[k]
            v = _int(q.get(k))
            if q.get(k) not in (None, "") and (v is None or v < lo):
                problems.append(f"{k}={q[k]!r} is not a whole number ≥ {lo}")
                return None
            if v is not None and v > hi:
                problems.append(f"{k}={q[k]!r} is more than the form allows ({hi:,})")
                return None
            return v

        steps = whole("steps")
        if steps is None:
            return None, problems
        train_size, eval_every = whole("train_size"), whole("eval_every")
        lr = None
        if q.get("lr"):
            try:
                lr = float(q["lr"])
                if not (LR_BOUNDS[0] <= lr <= LR_BOUNDS[1]):  # also nan and inf
                    raise ValueError
            except ValueError:
                problems.append(f"lr={q['lr']!r} is not a learning rate")
                lr = None
        extra = {}
        if q.get("params"):
            try:
                extra = json.loads(q["params"])
                if not isinstance(extra, dict):
                    raise ValueError
            except ValueError:
                problems.append("params is not a JSON object")
                extra = {}
            unknown = [k for k in extra if k not in REGIME_EXTRA]
            if unknown:
                problems.append(f"params {', '.join(unknown)} are not budget settings ({', '.join(REGIME_EXTRA)})")
                extra = {k: v for k, v in extra.items() if k in REGIME_EXTRA}
        method = {}
        if q.get("method_params"):
            try:
                method = json.loads(q["method_params"])
                if not isinstance(method, dict):
                    raise ValueError
            except ValueError:
                problems.append("method_params is not a JSON object")
                method = {}
            unknown = [k for k in method if k not in METHOD_SETTINGS]
            if unknown:
                problems.append(f"method_params {', '.join(unknown)} are not method settings "
                                f"({', '.join(METHOD_SETTINGS)})")
                method = {k: v for k, v in method.items() if k in METHOD_SETTINGS}
        return cls(steps, train_size or None, lr, eval_every, extra, method=method), problems

    def describe(self) -> str:
        data = f"{self.train_size} training examples" if self.train_size else "all training data"
        return f"{self.steps} steps on {data}"


def _int(v) -> int | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if not math.isfinite(f) or f < 0 or f != int(f) else int(f)  # 1e400 is inf: no OverflowError


def measured_regime(results, source: str, target: str, method: str | None = None) -> Regime | None:
    """The regime of the finished runs of ``source`` -> ``target`` (RESULTS_COLUMNS rows), or None.

    ``method``: only runs of that method (the measured matrix's method); None: any transfer method.
    """
    if results is None or len(results) == 0:
        return None
    df = results[(results["source"].astype(str) == source) & (results["target"].astype(str) == target)]
    if "status" in df:
        df = df[df["status"].astype(str) == "finished"]
    df = df[df["method"].astype(str) != "scratch"]
    if method is not None:
        df = df[df["method"].astype(str) == method]
    rows = [r for r in df.to_dict("records") if _int(r.get("steps"))]
    if not rows:
        return None
    keyed: dict[tuple, list[dict]] = {}
    for i, r in enumerate(rows):  # later rows are more recent (results tables are oldest first)
        ts = _int(r.get("train_size"))
        keyed.setdefault((_int(r["steps"]), ts or None), []).append({**r, "_order": i})
    (steps, train_size), group = max(keyed.items(), key=lambda kv: (len(kv[1]), kv[1][-1]["_order"]))
    settings = group[-1].get("settings")
    try:
        settings = json.loads(settings) if isinstance(settings, str) and settings else dict(settings or {})
    except (json.JSONDecodeError, TypeError, ValueError):
        settings = {}
    params = settings.get("params") if isinstance(settings.get("params"), dict) else settings
    lr = params.get("lr")
    return Regime(steps=steps, train_size=train_size,
                  lr=float(lr) if isinstance(lr, (int, float)) else None,
                  eval_every=_int(params.get("eval_every")),
                  extra={k: params[k] for k in REGIME_EXTRA if params.get(k) is not None},
                  n_runs=len(group),
                  method={k: params[k] for k in METHOD_SETTINGS if params.get(k) is not None})


# --------------------------------------------------------------------------- duration
def _device_kind(device: str | None) -> str:
    """'cuda:1' -> 'cuda'; 'auto' is resolved by the caller (resolve_device)."""
    return str(device or "?").split(":")[0].lower()


def resolve_device(device: str | None) -> str:
    """What "auto" would run on here: cuda when torch sees a GPU, else cpu (torch only if imported)."""
    kind = _device_kind(device)
    if kind != "auto":
        return kind
    import sys
    torch = sys.modules.get("torch")
    if torch is None:
        try:
            import torch  # noqa: F811 -- the page has usually imported it already
        except ImportError:
            return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


@dataclass(frozen=True)
class Estimate:
    """``seconds`` None when neither a finished run of this backbone on this device nor a calibration is known.

    ``basis``: "runs" (median of finished runs) or "calibration" (a timed calibration, ``calibration``
    its cached record: s_per_step, load_s, steps, batch_size, max_length); ``why``: why it is unknown."""

    seconds: float | None
    s_per_step: float | None
    n_runs: int
    backbone: str
    device: str
    basis: str = "runs"
    calibration: dict | None = None
    why: str = ""

    def text(self) -> str:
        bb = self.backbone.split("/")[-1]
        if self.seconds is None:
            why = f" ({self.why})" if self.why else " (the first run sets the pace)."
            return f"Estimated duration: unknown — no finished run of {bb} on {self.device} yet{why}"
        if self.basis == "calibration":
            c = self.calibration or {}
            return (f"Estimated duration: {fmt_duration(self.seconds)} per run, from a timed calibration of {bb} on "
                    f"{self.device} ({self.s_per_step:.3g} s/step over {c.get('steps')} prompt-tuning steps of batch "
                    f"{c.get('batch_size')} × {c.get('max_length')} tokens, + {c.get('load_s', 0):.1f} s to load; "
                    "evaluations not included). The first finished run here replaces it.")
        return (f"Estimated duration: {fmt_duration(self.seconds)} per run ({self.s_per_step:.3g} s/step, median "
                f"of the last {self.n_runs} finished run(s) of {bb} on {self.device})")


def fmt_duration(s: float) -> str:
    if s < 90:
        return f"≈ {s:.0f} s"
    if s < 5400:
        return f"≈ {s / 60:.1f} min"
    return f"≈ {s / 3600:.1f} h"


def _run_backbone(run: dict) -> str:
    return (run.get("spec") or {}).get("backbone") or DEFAULT_BACKBONE


def _run_steps(run: dict) -> int | None:
    spec = run.get("spec") or {}
    return _int(run.get("step")) or _int((spec.get("params") or {}).get("steps")) or _int(run.get("total_steps"))


def estimate_duration(runs: list[dict], steps: int, backbone: str | None, device: str,
                      recent: int = RECENT) -> Estimate:
    """Estimated wall time of a run of ``steps`` steps on ``backbone`` / ``device`` (already resolved, see
    resolve_device) from ``runs`` (RunStore.list_runs rows, newest first): the median seconds per step of
    the last ``recent`` finished ones of that backbone on that device."""
    backbone = backbone or DEFAULT_BACKBONE
    device = _device_kind(device)
    rates = []
    for r in runs:
        if r.get("status") != "finished" or _run_backbone(r) != backbone or _device_kind(r.get("device")) != device:
            continue
        n, wall = _run_steps(r), r.get("wall_time_s")
        if not n or not isinstance(wall, (int, float)) or not wall > 0:
            continue
        rates.append(float(wall) / n)
        if len(rates) >= recent:
            break
    if not rates:
        return Estimate(None, None, 0, backbone, device)
    s = median(rates)
    return Estimate(s * int(steps), s, len(rates), backbone, device)


def estimate_for(store, steps: int, backbone: str | None, device: str | None, *, max_length: int | None = None,
                 calibrate: bool = False) -> Estimate:
    """estimate_duration over a run store's finished runs (its public ``list_runs``); before the first
    finished run of this backbone on this device, the cached timed calibration (:func:`cached_calibration`),
    timed now when ``calibrate`` (the CLI; a page decides with core.budget first, then calls
    :func:`calibrate` itself). ``max_length``: the run's (TrainConfig default 128)."""
    dev = resolve_device(device)
    est = estimate_duration(store.list_runs(status=("finished",), limit=200), steps, backbone, dev)
    if est.seconds is not None:
        return est
    ml = int(max_length or MAX_LENGTH)
    why = ""
    cal = cached_calibration(est.backbone, dev, ml)
    if cal is None and calibrate:
        try:
            cal = run_calibration(est.backbone, dev, ml)
        except Exception as e:  # noqa: BLE001 -- a backbone that does not load here: say so, never guess
            why = f"the calibration could not run: {type(e).__name__}: {str(e)[:200]}"
    if cal is None:
        return Estimate(None, None, 0, est.backbone, dev, why=why or NOT_CALIBRATED)
    s = float(cal["s_per_step"])
    return Estimate(float(cal.get("load_s") or 0.0) + s * int(steps), s, 0, est.backbone, dev,
                    basis="calibration", calibration=cal)


# --------------------------------------------------------------------------- calibration
NOT_CALIBRATED = "not calibrated on this device yet"
MAX_LENGTH = 128          # core.training.TrainConfig.max_length's default (not imported: that pulls in torch)
CALIBRATION = {"steps": 2, "batch_size": 16, "prompt_length": 20}


def _torch_version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("torch")
    except PackageNotFoundError:
        return "none"


def calibration_path(backbone: str | None, device: str, max_length: int = MAX_LENGTH):
    """ATLAS_CACHE/calibration/<hash>.json, keyed by backbone + device kind + torch version + max_length."""
    import hashlib

    from core.config import cache_dir
    key = json.dumps([backbone or DEFAULT_BACKBONE, _device_kind(device), _torch_version(), int(max_length)])
    return cache_dir() / "calibration" / (hashlib.sha256(key.encode()).hexdigest()[:24] + ".json")


def cached_calibration(backbone: str | None, device: str, max_length: int = MAX_LENGTH) -> dict | None:
    """The cached calibration record, or None (none yet, or a file that is not one: timed again)."""
    p = calibration_path(backbone, device, max_length)
    try:
        rec = json.loads(p.read_text(encoding="utf-8"))
        s = float(rec["s_per_step"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return rec if math.isfinite(s) and s > 0 else None


def run_calibration(backbone: str | None, device: str, max_length: int = MAX_LENGTH) -> dict:
    """Time CALIBRATION's prompt-tuning steps of ``backbone`` on ``device`` here (core.training.calibrate:
    seconds, torch) and cache the record (temp file, then rename). Raises what loading the backbone raises."""
    from core.fsutil import atomic_write_text
    from core.training.calibrate import time_steps
    backbone = backbone or DEFAULT_BACKBONE
    rec = time_steps(backbone, _device_kind(device), max_length=int(max_length), **CALIBRATION)
    rec.update(backbone=backbone, device=_device_kind(device), torch=_torch_version(), measured_at=time.time())
    p = calibration_path(backbone, device, max_length)
    p.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(p, json.dumps(rec, indent=1))
    return rec


# --------------------------------------------------------------------------- a sweep's total
def sweep_waves(planned) -> tuple[int, int]:
    """(runs that can start at once, runs that wait on another run) of a planned sweep
    (core.runs.sweeps.plan: PANDA students wait on their PoT teachers)."""
    waiting = sum(1 for p in planned if getattr(p, "deps", None))
    return len(planned) - waiting, waiting


def sweep_total_s(n_first: int, n_second: int, per_run_s: float | None, slots: int) -> float | None:
    """Wall time of a sweep: the runs that can start at once, ``slots`` at a time, then those that
    wait on them (teachers before students), each wave taking one run's time. None when the per-run
    time is unknown."""
    if per_run_s is None:
        return None
    slots = max(1, int(slots))
    return (math.ceil(n_first / slots) + math.ceil(n_second / slots)) * float(per_run_s)


def sweep_text(planned, est: "Estimate", slots: int) -> str:
    """What a sweep will cost, said before launch: how many runs, in what order, and the total."""
    first, second = sweep_waves(planned)
    n = first + second
    order = (f" ({first} first, then {second} PANDA student{'s' * (second != 1)} once their teachers finish)"
             if second else "")
    total = sweep_total_s(first, second, est.seconds, slots)
    if total is None:
        return (f"{n} runs{order}; total unknown until {est.backbone.split('/')[-1]} on {est.device} is timed "
                f"({est.why or 'no finished run yet'}).")
    basis = "timed calibration" if est.basis == "calibration" else "finished runs here"
    return (f"{n} runs{order}, {slots} at a time on {est.device}: {fmt_duration(total)} in all "
            f"({fmt_duration(est.seconds)} per run, from {basis}).")


def sweep_slots(device: str, backbone: str | None) -> int:
    """Runs this machine trains at once on ``device`` (core.runs.capacity: CPU slots, or GPU slots × GPUs)."""
    from core.runs.capacity import cpu_slots, gpu_slots, n_gpus
    return cpu_slots() if _device_kind(device) == "cpu" else gpu_slots(backbone) * max(1, n_gpus())


def sweep_run_estimate(sw, store, device: str | None = None, *, calibrate: bool = False) -> Estimate:
    """The per-run Estimate of a SweepSpec's runs (its backbone, device, steps and max_length)."""
    dev = resolve_device(device or getattr(sw, "device", "auto"))
    params = getattr(sw, "params", None) or {}
    steps = int(params.get("steps") or 300)
    return estimate_for(store, steps, getattr(sw, "backbone", None), dev, max_length=_int(params.get("max_length")),
                        calibrate=calibrate)


def sweep_estimate(sw, store, device: str | None = None, *, est: Estimate | None = None,
                   calibrate: bool = False) -> str:
    """sweep_text for a SweepSpec about to be launched on this machine: its planned runs
    (core.runs.sweeps.plan), the per-run estimate (``est``, or from the store's finished runs of its
    backbone on its device, else the calibration) and the parallel slots there (core.runs.capacity)."""
    from core.runs.sweeps import plan
    est = est or sweep_run_estimate(sw, store, device, calibrate=calibrate)
    return sweep_text(plan(sw), est, sweep_slots(est.device, est.backbone))


# --------------------------------------------------------------------------- a running sweep's ETA
def sweep_eta_s(runs: list[dict], per_run_s: float | None, slots: int) -> float | None:
    """Seconds left of a launched sweep (``runs``: its RunStore rows, any status): the runs still queued
    or running that can run now, ``slots`` at a time, then those waiting on another unfinished run
    (``depends_on``: PANDA students after their PoT teachers), each wave one run's time; a running run
    counts as a whole one (its progress is not read). 0 when nothing is left; None when the per-run
    time is unknown."""
    open_ = [r for r in runs if r.get("status") in ("queued", "running")]
    if not open_:
        return 0.0
    waiting_on = {r["run_id"] for r in open_}
    students = sum(1 for r in open_ if set(r.get("depends_on") or ()) & waiting_on)
    return sweep_total_s(len(open_) - students, students, per_run_s, slots)


def sweep_eta_text(store, sweep: dict) -> str:
    """The sweeps table's ETA of one sweep (RunStore.list_sweeps row): "done", "≈ 12 min", or "unknown"
    (no per-run estimate yet: no finished run of its backbone on its device and no calibration)."""
    runs = list(store.latest_sweep_runs(sweep["sweep_id"]).values())
    spec = sweep.get("spec") or {}
    params = spec.get("params") or {}
    dev = next((r.get("device") for r in runs if r.get("device")), None) or spec.get("device") or "auto"
    est = estimate_for(store, int(params.get("steps") or 300), spec.get("backbone"), dev,
                       max_length=_int(params.get("max_length")))
    left = sweep_eta_s(runs, est.seconds, sweep_slots(est.device, est.backbone))
    if left is None:
        return "unknown"
    return "done" if left == 0 else fmt_duration(left)
