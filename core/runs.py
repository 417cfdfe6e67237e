"""Runs: what to train (RunSpec), the worker that trains it, and the command line.

    python -m core run --spec spec.json [--backend ray --address http://127.0.0.1:8265] [--wait]
    python -m core sweep --spec grid.json [--backend ...] [--wait] | --resume SWEEP_ID
    python -m core sweep --target T --top K [--library DIR ...] [--spot] [--dry-run]   (core.ranking)
    python -m core runs list | show ID | cancel ID | retry ID | delete ID --yes | pump | reconcile
    python -m core worker RUN_ID [RUN_ID ...]   (started by a launcher, not by hand; several = one pack)

A spec file is the JSON of ``RunSpec`` (``method``, ``target``, ``sources``,
``params`` ...; see ``RunSpec``); a sweep file the JSON of ``core.sweeps.SweepSpec``.

How the parts fit (DESIGN.md §5):
    core.runstore  the SQLite store (runs, events, sweeps) under ATLAS_HOME/runs.db
    core.runs      RunSpec + validation, the worker, the CLI (this file)
    core.launchers local processes / Ray jobs, the queue (pump), cancel, retry, the dispatcher
    core.sweeps    source x target x method x seed grids with baselines and PANDA teachers

The worker runs ``core.train.train`` and writes every event both to the store (when it can reach it) and as one JSON line on stdout:
``{"run_id", "seq", "ts", "kind", "step", "metrics"}``. Ray jobs run the worker
with ``--spec FILE`` and no store: their JSON lines are collected from the job's
log by the dispatcher (core.launchers), and the finished prompt travels inside
the final event (base64 files), so a remote cluster needs no shared disk.
"""
from __future__ import annotations

import argparse
import base64
import dataclasses
import json
import os
import re
import signal
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.config import atlas_home, demo_dir, extra_library_dirs, user_library_dir
from core.runstore import TERMINAL, RunStore, StoreError, hostname, new_run_id

METHODS = ("scratch", "pot", "panda")
BACKENDS = ("local", "ray")
# TrainConfig fields a RunSpec sets itself; everything else goes through ``params``.
SPEC_FIELDS = ("method", "task", "backbone", "sources", "teacher", "seed", "device")
DEFAULT_RAY_ADDRESS = "http://127.0.0.1:8265"
PROGRESS_MIN_INTERVAL_S = 0.2  # progress events written at most 5 per second (evals always)
_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


class SpecError(ValueError):
    """A spec that must not start. ``problems`` maps a field name to what is wrong."""

    def __init__(self, problems: dict[str, str] | str, origin: str | None = None):
        if isinstance(problems, str):
            problems = {"spec": problems}
        self.problems = dict(problems)
        self.origin = origin
        text = "; ".join(f"{k}: {v}" for k, v in self.problems.items())
        super().__init__(f"{origin}: {text}" if origin else text)


# --------------------------------------------------------------------------- #
# The spec
# --------------------------------------------------------------------------- #
@dataclass
class RunSpec:
    """One training run.

    method    scratch | pot | panda
    target    task name (core.tasks.list_tasks())
    sources   source prompts: paths or library names (pot/panda; none for scratch)
    teacher   panda's teacher prompt: a path, a library name, or "run:<run_id>"
              (the prompt a finished run produced: PANDA's PoT teacher in a sweep)
    backbone  model name or folder (None = core.backbone.DEFAULT_BACKBONE)
    params    the other core.train.TrainConfig fields: steps, lr, train_size, lambda_mode, ...
    seed, device ("auto" | "cpu" | "cuda" | "cuda:N"), backend ("local" | "ray"),
    address   Ray dashboard address (backend ray)
    source_names  filled in by validate_spec (the names the results table shows)
    """

    method: str
    target: str
    sources: list[str] = field(default_factory=list)
    teacher: str | None = None
    backbone: str | None = None
    params: dict = field(default_factory=dict)
    seed: int = 0
    device: str = "auto"
    backend: str = "local"
    address: str | None = None
    sweep_id: str | None = None
    source_names: list[str] = field(default_factory=list)
    name: str | None = None

    def __post_init__(self):
        # Cheap shape checks only; validate_spec() checks files, tasks and dimensions.
        problems: dict[str, str] = {}
        if self.method not in METHODS:
            problems["method"] = f"unknown method {self.method!r} (one of {', '.join(METHODS)})"
        if not isinstance(self.target, str) or not self.target.strip():
            problems["target"] = "a target task name is required"
        if isinstance(self.sources, str):
            self.sources = [self.sources]
        self.sources = [str(s) for s in (self.sources or []) if str(s).strip()]
        if self.method == "scratch" and self.sources:
            problems["sources"] = "scratch trains from no source prompt; remove the sources or pick pot/panda"
        if self.method in ("pot", "panda") and not self.sources and not self.teacher:
            problems["sources"] = f"{self.method} needs at least one source prompt"
        if self.method != "panda" and self.teacher:
            problems["teacher"] = "only panda uses a teacher"
        try:
            self.seed = int(self.seed)
        except (TypeError, ValueError):
            problems["seed"] = f"seed must be an integer, got {self.seed!r}"
        self.device = str(self.device or "auto").strip().lower()
        if not _DEVICE_RE.match(self.device):
            problems["device"] = f"unknown device {self.device!r} (auto, cpu, cuda, cuda:N)"
        if self.backend not in BACKENDS:
            problems["backend"] = f"unknown backend {self.backend!r} (one of {', '.join(BACKENDS)})"
        if self.backend == "ray" and not self.address:
            self.address = os.environ.get("RAY_ADDRESS") or DEFAULT_RAY_ADDRESS
        if not isinstance(self.params, dict):
            problems["params"] = f"params must be a JSON object, got {type(self.params).__name__}"
        else:
            clash = sorted(set(self.params) & set(SPEC_FIELDS))
            if clash:
                problems["params"] = f"{', '.join(clash)} belong in the spec itself, not in params"
        if problems:
            raise SpecError(problems)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict, origin: str | None = None) -> "RunSpec":
        if not isinstance(d, dict):
            raise SpecError(f"a run spec must be a JSON object, got {type(d).__name__}", origin)
        known = {f.name for f in dataclasses.fields(cls)}
        # convenience aliases a person writing a spec file will try
        d = dict(d)
        if "task" in d and "target" not in d:
            d["target"] = d.pop("task")
        if "source" in d and "sources" not in d:
            d["sources"] = d.pop("source")
        unknown = sorted(set(d) - known)
        if unknown:
            raise SpecError({"spec": f"unknown field(s) {', '.join(unknown)} "
                                     f"(hyper-parameters go in 'params')"}, origin)
        missing = [k for k in ("method", "target") if k not in d]
        if missing:
            raise SpecError({k: "required" for k in missing}, origin)
        try:
            return cls(**d)
        except SpecError as e:
            raise SpecError(e.problems, origin) from None

    @classmethod
    def from_file(cls, path: Path | str) -> "RunSpec":
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SpecError("file not found", str(path)) from None
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise SpecError(f"not valid JSON ({e})", str(path)) from None
        return cls.from_dict(data, origin=str(path))

    @property
    def source_label(self) -> str:
        return "+".join(self.source_names or [Path(s).name for s in self.sources])


# --------------------------------------------------------------------------- #
# Validation (before anything starts)
# --------------------------------------------------------------------------- #
def _is_local_address(address: str | None) -> bool:
    a = (address or "").lower()
    return any(h in a for h in ("127.0.0.1", "localhost", "0.0.0.0")) or a in ("", "auto")


def library_roots() -> list[Path]:
    """Where library names are looked up: the user library, the demo prompts, ATLAS_LIBRARY."""
    roots = [user_library_dir(), demo_dir() / "prompts", *extra_library_dirs()]
    return [r for r in roots if r.is_dir()]


def resolve_prompt_ref(ref: str) -> tuple[Path, Any]:
    """A path or a library name -> (path, SoftPrompt). Raises ValueError with a clear message."""
    from core.prompts import read_prompt

    p = Path(ref).expanduser()
    if p.exists():
        return p.resolve(), read_prompt(p)
    looks_like_path = os.sep in ref or ref.startswith(".") or p.suffix in (".pt", ".bin", ".npy", ".safetensors")
    if not looks_like_path:
        from core.library import index_library

        roots = library_roots()
        if roots:
            index = index_library(roots)
            prompt = index.prompts.get(ref)
            if prompt is not None and prompt.origin:
                return Path(prompt.origin).resolve(), prompt
        raise ValueError(f"{ref!r}: no such file, and no prompt of that name in the library "
                         f"({', '.join(str(r) for r in roots) or 'no library folders'})")
    raise ValueError(f"{p}: no such file or folder")


def backbone_info(backbone: str | None) -> dict:
    """hidden size and a parameter estimate from config.json, without loading the model."""
    from core.backbone import resolve_model_path

    folder = Path(resolve_model_path(backbone))
    cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    d = cfg.get("hidden_size") or cfg.get("d_model") or cfg.get("n_embd") or cfg.get("dim")
    if not d:
        raise ValueError(f"{folder / 'config.json'}: no hidden_size/d_model, cannot check prompt dimensions")
    layers = cfg.get("num_hidden_layers") or cfg.get("num_layers") or cfg.get("n_layer") or 12
    inter = cfg.get("intermediate_size") or 4 * d
    vocab = cfg.get("vocab_size") or 30522
    params = vocab * d + layers * (4 * d * d + 2 * d * inter)
    heads = cfg.get("num_attention_heads") or cfg.get("n_head") or cfg.get("num_heads") or 12
    return {"path": str(folder), "dim": int(d), "params": int(params), "model_type": cfg.get("model_type"),
            "layers": int(layers), "heads": int(heads)}


def validate_spec(spec: RunSpec, *, check_params: bool = True, pending_runs: set[str] | None = None) -> RunSpec:
    """Check everything a run needs before any process starts; return a copy with
    sources resolved to absolute paths and ``source_names`` filled in.

    ``pending_runs``: run ids a "run:<id>" teacher may refer to that are not finished yet
    (a sweep's PoT teachers). Raises SpecError naming every problem found.
    """
    problems: dict[str, str] = {}
    out = dataclasses.replace(spec, sources=list(spec.sources), params=dict(spec.params))

    # target task
    try:
        from core.tasks import list_tasks

        known = list_tasks()
        if spec.target not in known:
            problems["target"] = f"unknown task {spec.target!r} (known: {', '.join(known) or 'none'})"
        elif spec.backend == "local" or _is_local_address(spec.address):
            from core.tasks import get_task  # a task that is listed but not prepared fails here, not in a worker

            try:
                get_task(spec.target)
            except Exception as e:  # TaskError names the folder and the fix
                problems["target"] = str(e)
    except ImportError as e:
        problems["target"] = f"the task registry is not available ({e})"

    # backbone
    dim = None
    try:
        dim = backbone_info(spec.backbone)["dim"]
    except Exception as e:  # BackboneError, bad config.json
        problems["backbone"] = str(e)

    # sources and teacher: exist, readable, right width
    def check_prompt(kind: str, ref: str) -> tuple[Path, str] | None:
        try:
            path, prompt = resolve_prompt_ref(ref)
        except Exception as e:  # PromptError names the file already
            problems[kind] = str(e)
            return None
        if dim is not None and prompt.d != dim:
            problems[kind] = (f"{path}: prompt has d={prompt.d} but backbone "
                              f"{spec.backbone or 'default (MiniLM)'} has hidden size {dim}")
            return None
        return path, prompt.name

    names, paths = [], []
    for ref in spec.sources:
        got = check_prompt("sources", ref)
        if got:
            paths.append(str(got[0]))
            names.append(got[1])
    out.sources, out.source_names = paths if len(paths) == len(spec.sources) else spec.sources, names
    if spec.teacher:
        if spec.teacher.startswith("run:"):
            rid = spec.teacher[4:]
            if not (pending_runs and rid in pending_runs):
                run = RunStore().get_run(rid)
                if run is None:
                    problems["teacher"] = f"teacher {spec.teacher!r}: no such run"
                elif run["status"] not in ("finished", "queued", "running"):
                    problems["teacher"] = f"teacher {spec.teacher!r}: that run is {run['status']}"
        else:
            got = check_prompt("teacher", spec.teacher)
            if got:
                out.teacher = str(got[0])

    # hyper-parameters: let TrainConfig's own validation speak
    if check_params and not problems:
        try:
            # a "run:<id>" teacher is a placeholder here (TrainConfig checks presence, not the file)
            cfg = build_train_config(out, teacher_path=out.teacher)
            out.params.setdefault("steps", cfg.steps)  # the page's progress bars need the total
        except SpecError as e:
            problems.update(e.problems)
        except ImportError as e:
            problems["params"] = f"the training engine is not available ({e})"
        except (TypeError, ValueError) as e:
            problems["params"] = str(e)
    if problems:
        raise SpecError(problems)
    return out


def build_train_config(spec: RunSpec, teacher_path: str | None):
    """RunSpec -> core.train.TrainConfig (its __post_init__ validates the values)."""
    from core.training import TrainConfig

    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(spec.params) - known)
    if unknown:
        raise SpecError({"params": f"unknown hyper-parameter(s) {', '.join(unknown)} "
                                   f"(TrainConfig has: {', '.join(sorted(known - set(SPEC_FIELDS)))})"})
    kw: dict[str, Any] = dict(spec.params)
    kw.update(method=spec.method, task=spec.target, sources=list(spec.sources), teacher=teacher_path,
              seed=spec.seed, device=spec.device)
    if spec.backbone:
        kw["backbone"] = spec.backbone
    kw = {k: v for k, v in kw.items() if k in known}
    return TrainConfig(**kw)


# --------------------------------------------------------------------------- #
# The worker
# --------------------------------------------------------------------------- #
def _memory_mb(device: str | None) -> dict:
    out = {}
    try:
        with open("/proc/self/statm") as f:
            out["rss_mb"] = round(int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    if device and str(device).startswith("cuda"):
        try:
            import torch

            out["gpu_mem_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        except Exception:
            pass
    return out


def result_files(folder: Path) -> dict[str, str]:
    """A saved prompt folder as {relative name: base64} (to travel in a JSON line)."""
    return {str(p.relative_to(folder)): base64.b64encode(p.read_bytes()).decode("ascii")
            for p in sorted(folder.rglob("*")) if p.is_file()}


def write_result_files(files: dict[str, str], dest: Path) -> Path:
    """Inverse of result_files, atomic: written beside dest, then renamed into place."""
    dest = Path(dest)
    if dest.exists():
        raise FileExistsError(f"{dest}: already exists, not overwriting")
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    for name, b64 in files.items():
        rel = Path(name)
        if rel.is_absolute() or ".." in rel.parts:
            raise ValueError(f"refusing result file name {name!r}")
        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp / rel).write_bytes(base64.b64decode(b64))
    os.replace(tmp, dest)
    return dest


def run_output_dir(run_id: str) -> Path:
    """Where a finished run's prompt goes: the user library, so it joins it."""
    return user_library_dir() / "runs" / run_id


class Worker:
    """Runs one spec; emits events to the store (if any) and as JSON lines to ``out``
    (stdout; in a local pack, the run's own log file, so each run keeps its own log)."""

    def __init__(self, run_id: str, spec: RunSpec, store: RunStore | None, out_dir: Path, out=None):
        self.run_id, self.spec, self.store, self.out_dir = run_id, spec, store, out_dir
        self.out = out or sys.stdout
        self.seq = 0
        self.stop_reason: str | None = None
        self._last_progress = 0.0
        self._pending_progress: dict | None = None
        self.device = spec.device
        self.cancel_poll = None  # a pack's shared poller (one store read per pack step)

    # events --------------------------------------------------------------
    def emit(self, kind: str, step: int | None, metrics: dict) -> None:
        self.seq += 1
        ev = {"run_id": self.run_id, "seq": self.seq, "ts": time.time(), "kind": kind, "step": step,
              "metrics": metrics}
        if self.store is not None and not (kind == "status" and metrics.get("status") in TERMINAL):
            self.store.add_events(self.run_id, [ev])  # terminal status goes through finish()
        self.out.write(json.dumps(ev, default=str) + "\n")
        self.out.flush()

    def callback(self, event: dict) -> None:
        kind = event.get("kind", "log")
        step = event.get("step")
        metrics = dict(event.get("metrics") or {})
        if kind == "status" and metrics.get("device"):
            self.device = str(metrics["device"])
        if kind == "progress":
            now = time.monotonic()
            total = self.spec.params.get("steps")
            if now - self._last_progress < PROGRESS_MIN_INTERVAL_S and step != total:
                self._pending_progress = {"step": step, "metrics": metrics}
                return  # throttled; the newest one is flushed with the next eval
            self._last_progress = now
            metrics.update(_memory_mb(self.device))
            self._pending_progress = None
        elif kind == "eval" and self._pending_progress is not None:
            p = self._pending_progress
            self._pending_progress = None
            self.emit("progress", p["step"], {**p["metrics"], **_memory_mb(self.device)})
        if kind not in ("status", "progress", "eval", "log"):
            kind, metrics = "log", {"message": str(event)}
        self.emit(kind, step, metrics)

    def should_stop(self) -> bool:
        if self.stop_reason:
            return True
        # one indexed row read (tens of microseconds) before every step: well under 1% of even a
        # 7 ms GPU step, and it makes a cancel take effect at the next step
        if self.cancel_poll is not None:
            if self.cancel_poll(self.run_id):
                self.stop_reason = "cancel requested"
        elif self.store is not None and self.store.cancel_requested(self.run_id):
            self.stop_reason = "cancel requested"
        return bool(self.stop_reason)

    def _on_sigterm(self, signum, frame):  # Ray's stop_job and the launcher's escalation
        self.stop_reason = f"signal {signum}"

    # run ----------------------------------------------------------------
    def teacher_path(self) -> str | None:
        t = self.spec.teacher
        if not t or not t.startswith("run:"):
            return t
        if self.store is None:
            raise SpecError({"teacher": f"{t} cannot be resolved without the run store"})
        run = self.store.require_run(t[4:])
        if run["status"] != "finished" or not run["prompt_path"]:
            raise SpecError({"teacher": f"teacher run {t[4:]} is {run['status']}, not finished with a prompt"})
        return run["prompt_path"]

    def begin(self) -> None:
        self.t0 = time.time()
        self.emit("status", 0, {"status": "running", "pid": os.getpid(), "host": hostname(),
                                "device": self.spec.device})

    def outcome(self, result) -> dict:
        """The final status of a run that returned (finished, or cancelled with its best prompt)."""
        if self._pending_progress is not None:
            p, self._pending_progress = self._pending_progress, None
            self.emit("progress", p["step"], p["metrics"])
        if self.stop_reason:
            return {"status": "cancelled", "reason": self.stop_reason, "steps": getattr(result, "steps", None)}
        return {"status": "finished", **self.save(result)}

    def failure(self, e: BaseException | None, error: str | None = None) -> dict:
        """The final status of a run that raised (``error``: a pack's message + traceback)."""
        if self.stop_reason:
            return {"status": "cancelled", "reason": self.stop_reason}
        tb = error or f"{type(e).__name__}: {e}\n{traceback.format_exc()[-3000:]}"
        self.out.write(tb + "\n")
        if self.out is not sys.stdout:
            sys.stderr.write(f"run {self.run_id} failed: {tb}\n")
        final = {"status": "failed", "error": tb}
        if isinstance(e, KeyboardInterrupt):
            final["reason"] = "interrupted"
        return final

    def run(self) -> str:
        """Returns the final status: finished | failed | cancelled."""
        signal.signal(signal.SIGTERM, self._on_sigterm)
        self.begin()
        try:
            cfg = build_train_config(self.spec, self.teacher_path())
            from core.training import train

            final = self.outcome(train(cfg, callback=self.callback, should_stop=self.should_stop))
        except BaseException as e:  # noqa: BLE001 - a worker reports every failure
            final = self.failure(e)
        self.finish(final)
        return final["status"]

    def save(self, result) -> dict:
        from core.training import save_result

        prompt = getattr(result, "prompt", None)
        if prompt is not None and hasattr(prompt, "name"):
            # unique in the library: the index is keyed by name
            src = self.spec.source_label
            prompt.name = "-".join(x for x in (self.spec.target, self.spec.method, src,
                                               f"s{self.spec.seed}", self.run_id) if x)
        self.out_dir.parent.mkdir(parents=True, exist_ok=True)
        saved = save_result(result, self.out_dir)
        path = Path(saved) if saved else self.out_dir
        info = {"val_score": _num(getattr(result, "val_score", None)),
                "test_score": _num(getattr(result, "test_score", None)),
                "best_step": getattr(result, "best_step", None), "steps": getattr(result, "steps", None),
                "wall_time_s": _num(getattr(result, "wall_time_s", None)),
                "device": str(getattr(result, "device", None) or self.device),
                "prompt_path": str(path)}
        return info

    def finish(self, final: dict) -> None:
        self.final_status = final["status"]
        final.setdefault("wall_time_s", round(time.time() - getattr(self, "t0", time.time()), 3))
        if self.store is None:
            if final.get("status") == "finished" and final.get("prompt_path"):
                final["files"] = result_files(Path(final["prompt_path"]))
            self.emit("status", None, final)
            return
        self.emit("status", None, final)  # stdout only (the store gets it below, atomically)
        record_final(self.store, self.run_id, final)


def run_pack(workers: list[Worker]) -> list[str]:
    """Train several runs in one process and one forward per step (core.train.train_packed).
    Each run keeps its own events, log, cancel flag, result and final status; a run whose
    set-up fails (a teacher run that did not finish) ends alone before the pack starts.
    Returns each run's final status."""
    from core.training import pack_key, train_packed

    def on_sigterm(signum, frame):
        for w in workers:
            w._on_sigterm(signum, frame)

    signal.signal(signal.SIGTERM, on_sigterm)
    store = workers[0].store
    poll = _CancelPoll(store, [w.run_id for w in workers]) if store is not None else None
    members, cfgs = [], []
    for w in workers:
        w.cancel_poll = poll
        w.begin()
        try:
            cfgs.append(build_train_config(w.spec, w.teacher_path()))
            members.append(w)
        except BaseException as e:  # noqa: BLE001
            w.finish(w.failure(e))
    for w in members:
        w.emit("log", 0, {"message": f"packed with {len(members)} runs in process {os.getpid()}",
                          "pack_size": len(members)})
    # one forward per pack key (the launchers pack one key; a hand-made list may mix them)
    groups: dict[tuple, list[int]] = {}
    for i, c in enumerate(cfgs):
        groups.setdefault(pack_key(c), []).append(i)
    for idx in groups.values():
        ws = [members[i] for i in idx]
        try:
            outs = train_packed([cfgs[i] for i in idx], callbacks=[w.callback for w in ws],
                                should_stops=[w.should_stop for w in ws])
        except BaseException as e:  # noqa: BLE001 -- the pack as a whole (backbone load, Ctrl-C)
            for w in ws:
                w.finish(w.failure(e))
            continue
        for w, o in zip(ws, outs):
            try:
                final = w.failure(None, o.error) if o.status == "failed" else w.outcome(o.result)
            except BaseException as e:  # noqa: BLE001 -- saving one prompt failed
                final = w.failure(e)
            w.finish(final)
    return [_final_status(w) for w in workers]


class _CancelPoll:
    """A pack's cancel flags: one store read per pack step (the first run to ask again
    starts a new step), not one per run."""

    def __init__(self, store: RunStore, run_ids: list[str]):
        self.store, self.run_ids = store, run_ids
        self.flags: set[str] = set()
        self.asked: set[str] = set()

    def __call__(self, run_id: str) -> bool:
        if run_id in self.asked or not self.asked:
            self.flags = self.store.cancel_flags(self.run_ids)
            self.asked = set()
        self.asked.add(run_id)
        return run_id in self.flags


def _final_status(w: Worker) -> str:
    return getattr(w, "final_status", "failed")


def pack_note(store: RunStore, run: dict) -> str | None:
    """'packed with N runs' for a run trained in one process with others (the Runs page shows it)."""
    if not run.get("pack_id"):
        return None
    n = len(store.pack_runs(run["pack_id"]))
    return (f"packed with {n} runs (one worker process, one forward of the backbone per step; "
            f"pack {run['pack_id']})")


def record_final(store: RunStore, run_id: str, final: dict) -> bool:
    """Write a run's terminal status (scores, prompt path, error) in one transaction."""
    status = final["status"]
    fields = {k: final[k] for k in ("val_score", "test_score", "wall_time_s", "prompt_path", "device", "error")
              if final.get(k) is not None}
    if status == "finished" and final.get("steps") is not None:
        fields["step"] = final["steps"]
    event = {k: v for k, v in final.items() if k not in ("status", "files")}
    return store.set_status(run_id, status, only_if=("queued", "running"), event=event, **fields)


def _num(x):
    try:
        return None if x is None else float(x)
    except (TypeError, ValueError):
        return None


def worker_main(run_ids: list[str] | str, spec_files: list[str] | str | None = None) -> int:
    """Run one stored run, or several as one pack (one process, one forward per step)."""
    run_ids = [run_ids] if isinstance(run_ids, str) else list(run_ids)
    spec_files = [spec_files] if isinstance(spec_files, str) else list(spec_files or [])
    packed = len(run_ids) > 1
    workers = []
    if spec_files:  # Ray: no store here, events travel on stdout
        if len(spec_files) != len(run_ids):
            print(f"error: {len(run_ids)} run ids but {len(spec_files)} --spec files", file=sys.stderr)
            return 2
        for rid, f in zip(run_ids, spec_files):
            workers.append(Worker(rid, RunSpec.from_file(f), None, Path(os.getcwd()) / "result" / rid))
    else:
        store = RunStore()
        for rid in run_ids:
            run = store.require_run(rid)
            if run["status"] in TERMINAL:
                print(f"run {rid} is already {run['status']}; nothing to do", file=sys.stderr)
                continue
            store.update_run(rid, pid=os.getpid(), host=hostname())
            out = None
            if packed:  # the process's own output is the pack's log; each run keeps its own log too
                d = atlas_home() / "runs" / rid
                d.mkdir(parents=True, exist_ok=True)
                out = open(d / "log.txt", "a", encoding="utf-8")
            workers.append(Worker(rid, RunSpec.from_dict(run["spec"]), store, run_output_dir(rid), out))
    if not workers:
        return 0
    statuses = run_pack(workers) if packed else [workers[0].run()]
    return 0 if all(s in ("finished", "cancelled") for s in statuses) else 1


# --------------------------------------------------------------------------- #
# Command line
# --------------------------------------------------------------------------- #
def _fmt_run(r: dict) -> str:
    total = r.get("total_steps") or "?"
    score = "" if r.get("test_score") is None else f"test={r['test_score']:.3f}"
    return (f"{r['run_id']:<24} {r['status']:<9} {r['method']:<7} {r['target']:<16} "
            f"{(r['source'] or '-')[:28]:<28} seed={r['seed']} step={r['step']}/{total} "
            f"{r['backend']}:{r['device'] or '?'} {score}")


def _wait(store: RunStore, run_ids: list[str], poll_s: float = 1.0, quiet: bool = False) -> int:
    from core.launchers import pump

    seen: dict[str, str] = {}
    while True:
        pump(store, dispatch=False)
        runs = [store.require_run(r) for r in run_ids]
        for r in runs:
            if not quiet and seen.get(r["run_id"]) != f"{r['status']}{r['step']}":
                seen[r["run_id"]] = f"{r['status']}{r['step']}"
                print(_fmt_run(r), flush=True)
        if all(r["status"] in TERMINAL for r in runs):
            return 0 if all(r["status"] == "finished" for r in runs) else 1
        time.sleep(poll_s)


def cli(command: str, argv: list[str]) -> int:
    if command == "worker":
        ap = argparse.ArgumentParser(prog="python -m core worker",
                                     description="execute stored runs: one, or several as one pack")
        ap.add_argument("run_id", nargs="+", help="run id(s); several train packed in one forward")
        ap.add_argument("--spec", action="append", default=[],
                        help="run from this spec file without a store (Ray jobs); one per run id")
        a = ap.parse_args(argv)
        return worker_main(a.run_id, a.spec)

    from core import launchers

    if command == "run":
        ap = argparse.ArgumentParser(prog="python -m core run", description="launch one run from a spec file")
        ap.add_argument("--spec", required=True, help="RunSpec JSON file")
        ap.add_argument("--backend", choices=BACKENDS)
        ap.add_argument("--address", help="Ray dashboard address (default $RAY_ADDRESS or %s)" % DEFAULT_RAY_ADDRESS)
        ap.add_argument("--wait", action="store_true", help="stay and print progress until it ends")
        a = ap.parse_args(argv)
        try:
            spec = RunSpec.from_file(a.spec)
            if a.backend or a.address:
                spec = dataclasses.replace(spec, backend=a.backend or spec.backend, address=a.address or spec.address)
            store = RunStore()
            run_id = launchers.submit(spec, store)
        except (SpecError, StoreError, launchers.LaunchError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(run_id, flush=True)
        return _wait(store, [run_id]) if a.wait else 0

    if command == "sweep":
        from core import sweeps

        if "--target" in argv:  # a sweep planned from a ranking of sources for this target
            from core.ranking import sweep_cli
            return sweep_cli(argv)

        ap = argparse.ArgumentParser(prog="python -m core sweep", description="launch a source x target grid")
        g = ap.add_mutually_exclusive_group(required=True)
        g.add_argument("--spec", help="SweepSpec JSON file")
        g.add_argument("--resume", metavar="SWEEP_ID", help="relaunch what did not finish")
        ap.add_argument("--backend", choices=BACKENDS)
        ap.add_argument("--address")
        ap.add_argument("--wait", action="store_true")
        a = ap.parse_args(argv)
        store = RunStore()
        try:
            if a.resume:
                sweep_id, new = sweeps.resume_sweep(a.resume, store)
                print(f"{sweep_id}: relaunched {len(new)} run(s)")
            else:
                sw = sweeps.SweepSpec.from_file(a.spec)
                if a.backend or a.address:
                    sw = dataclasses.replace(sw, backend=a.backend or sw.backend, address=a.address or sw.address)
                sweep_id = sweeps.launch_sweep(sw, store)
                print(sweep_id, flush=True)
        except (SpecError, StoreError, launchers.LaunchError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        if a.wait:
            return _wait(store, [r["run_id"] for r in store.latest_sweep_runs(sweep_id).values()])
        return 0

    if command == "runs":
        ap = argparse.ArgumentParser(prog="python -m core runs", description="the run store")
        sub = ap.add_subparsers(dest="action", required=True)
        p = sub.add_parser("list")
        p.add_argument("--status", action="append")
        p.add_argument("--csv", action="store_true", help="the results table as CSV")
        p = sub.add_parser("show")
        p.add_argument("run_id")
        p.add_argument("--events", type=int, default=20, help="last N events (0 = none)")
        for name in ("cancel", "retry"):
            sub.add_parser(name).add_argument("run_id")
        p = sub.add_parser("delete")
        p.add_argument("run_id")
        p.add_argument("--yes", action="store_true", help="really delete (its prompt stays in the library)")
        sub.add_parser("pump", help="start queued runs once")
        sub.add_parser("reconcile", help="mark runs whose process died as failed")
        p = sub.add_parser("dispatch", help="serve the queue until idle (started detached by launchers)")
        p.add_argument("--idle-exit-s", type=float, default=10.0)
        a = ap.parse_args(argv)
        store = RunStore()
        try:
            if a.action == "list":
                if a.csv:
                    store.results_table(status=a.status).to_csv(sys.stdout, index=False)
                else:
                    for r in store.list_runs(status=a.status):
                        print(_fmt_run(r))
            elif a.action == "show":
                r = store.require_run(a.run_id)
                print(json.dumps({k: v for k, v in r.items()}, indent=2, default=str))
                if a.events:
                    for ev in store.events(a.run_id)[-a.events:]:
                        print(json.dumps(ev, default=str))
            elif a.action == "cancel":
                print(f"{a.run_id}: {launchers.cancel(a.run_id, store)}")
            elif a.action == "retry":
                print(launchers.retry(a.run_id, store))
            elif a.action == "delete":
                if not a.yes:
                    print("error: deleting needs --yes", file=sys.stderr)
                    return 2
                store.delete_run(a.run_id)
                print(f"{a.run_id}: deleted")
            elif a.action == "pump":
                print(json.dumps(launchers.pump(store, dispatch=False)))
            elif a.action == "reconcile":
                print(json.dumps(launchers.reconcile(store)))
            elif a.action == "dispatch":
                return launchers.dispatch_forever(store, idle_exit_s=a.idle_exit_s)
        except (SpecError, StoreError, launchers.LaunchError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        return 0

    print(f"error: core.runs does not handle {command!r}", file=sys.stderr)
    return 2
