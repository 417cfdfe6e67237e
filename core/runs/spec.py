"""What to train: RunSpec, its validation before anything starts, and the errors launching raises.

    python -m core run --spec spec.json [--backend ray --address http://127.0.0.1:8265] [--wait]

A spec file is the JSON of ``RunSpec`` (``method``, ``target``, ``sources``, ``params`` ...).
``validate_spec`` checks everything a run needs (a known, prepared target task; source and
teacher prompts that exist, read, and have the backbone's width; TrainConfig's own checks of
the hyper-parameters) and raises one SpecError naming every bad field; nothing is queued then.

Layer: core.runs.store <- spec <- sweeps, worker <- capacity <- local, ray_jobs <- queue <- cli.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.config import demo_dir, extra_library_dirs, user_library_dir
from core.runs.store import RunStore
from core.training.config import METHODS  # noqa: F401  (one definition: TrainConfig's Method choices)
BACKENDS = ("local", "ray")
# TrainConfig fields a RunSpec sets itself; everything else goes through ``params``.
SPEC_FIELDS = ("method", "task", "backbone", "sources", "teacher", "teachers", "seed", "device")
DEFAULT_RAY_ADDRESS = "http://127.0.0.1:8265"
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


class LaunchError(RuntimeError):
    """The backend cannot take the run (Ray missing or its cluster unreachable)."""


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
    teachers  panda with several teachers: one ref each (as ``teacher``); their weights go in
              params ``teacher_weights``
    mix       a mixture of several sources planned from a ranking: {"label": "mix top-3 (zs)",
              "members": [names], "weights": [...], "metric", "top"}; the results table shows the
              run as ONE source, ``label`` (core.runs.sweeps.plan)
    backbone  model name or folder (None = core.backbone.DEFAULT_BACKBONE)
    params    the other core.training.TrainConfig fields: steps, lr, train_size, lambda_mode, ...
    seed, device ("auto" | "cpu" | "cuda" | "cuda:N"), backend ("local" | "ray"),
    address   Ray dashboard address (backend ray)
    source_names  filled in by validate_spec (the names the results table shows)
    target_data_hash  filled in by validate_spec for a user task: the hash of the data it trained on,
              kept after the task is deleted, so a later task of the same name never merges with it
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
    target_data_hash: str | None = None
    teachers: list[str] = field(default_factory=list)
    mix: dict | None = None

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
        self.teachers = [str(t) for t in (self.teachers or []) if str(t).strip()]
        if self.method in ("pot", "panda", "attempt") and not self.sources and not self.teacher and not self.teachers:
            problems["sources"] = f"{self.method} needs at least one source prompt"
        if self.method != "panda" and (self.teacher or self.teachers):
            problems["teacher"] = "only panda uses a teacher"
        if self.teacher and self.teachers:
            problems["teachers"] = "give either teacher (one) or teachers (several), not both"
        if self.mix is not None and not (isinstance(self.mix, dict) and isinstance(self.mix.get("label"), str)):
            problems["mix"] = "an object with a 'label' (and 'members', 'weights')"
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
        if self.mix:
            return self.mix["label"]
        return "+".join(self.source_names or [Path(s).name for s in self.sources])

    def teacher_refs(self) -> list[str]:
        """Every teacher ref of the spec (``teacher`` or ``teachers``)."""
        return [self.teacher] if self.teacher else list(self.teachers)


# --------------------------------------------------------------------------- #
# Validation (before anything starts)
# --------------------------------------------------------------------------- #
def is_local_address(address: str | None) -> bool:
    """A Ray address on this machine (its cluster sees our disk and our prepared tasks)."""
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
    """hidden size and a parameter estimate from config.json (and that config as ``config``), without
    loading the model."""
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
            "layers": int(layers), "heads": int(heads), "config": cfg}


def validate_spec(spec: RunSpec, *, check_params: bool = True, pending_runs: set[str] | None = None) -> RunSpec:
    """Check everything a run needs before any process starts; return a copy with
    sources resolved to absolute paths and ``source_names`` filled in.

    ``pending_runs``: run ids a "run:<id>" teacher may refer to that are not finished yet
    (a sweep's PoT teachers). Raises SpecError naming every problem found.
    """
    problems: dict[str, str] = {}
    out = dataclasses.replace(spec, sources=list(spec.sources), params=dict(spec.params),
                              teachers=list(spec.teachers))
    out.target_data_hash = _check_target(spec, problems) or spec.target_data_hash
    dim = None
    try:
        info = backbone_info(spec.backbone)
        dim = info["dim"]
    except Exception as e:  # BackboneError, bad config.json
        problems["backbone"] = str(e)
    else:
        _check_lm_head(spec, info, problems)
    names, paths, loaded = [], [], []
    for ref in spec.sources:
        got = _check_prompt(spec, "sources", ref, dim, problems, loaded)
        if got:
            paths.append(str(got[0]))
            names.append(got[1])
    _check_same_kind(loaded, "sources", problems)
    if spec.method == "attempt" and loaded and "sources" not in problems:
        # attempt's target prompt is mixed with the sources token by token: it has their length (ATTEMPT's
        # code), stored in the spec so the run's settings say it; a different length asked for is refused
        L = loaded[0].L
        asked = spec.params.get("prompt_length")
        if asked is not None and int(asked) != L:
            problems["prompt_length"] = (f"attempt's target prompt is mixed with its sources token by token: it "
                                         f"needs their length {L}, not {asked} (leave prompt_length unset)")
        out.params["prompt_length"] = L
    out.sources, out.source_names = paths if len(paths) == len(spec.sources) else spec.sources, names
    if spec.teacher and spec.teacher.startswith("run:"):
        _check_teacher_run(spec.teacher, pending_runs, problems)
    elif spec.teacher:
        got = _check_prompt(spec, "teacher", spec.teacher, dim, problems)
        if got:
            out.teacher = str(got[0])
    for i, ref in enumerate(spec.teachers):
        if ref.startswith("run:"):
            _check_teacher_run(ref, pending_runs, problems)
        else:
            got = _check_prompt(spec, "teachers", ref, dim, problems)
            if got:
                out.teachers[i] = str(got[0])
    if check_params and not problems:
        _check_params(out, problems)
    if problems:
        raise SpecError(problems)
    return out


def _check_lm_head(spec: RunSpec, info: dict, problems: dict[str, str]) -> None:
    """A label-word head (params ``lm_head``) the backbone's checkpoint has: refused here, before the run
    queues, not minutes later in its worker (core.heads.checkpoint_head_problem reads config.json only)."""
    preset = spec.params.get("lm_head")
    if not preset:
        return
    from core.heads.presets import PRESETS, checkpoint_head_problem
    if preset not in PRESETS:
        return   # TrainConfig names the presets (_check_params)
    why = checkpoint_head_problem(info["config"], PRESETS[preset].head, spec.backbone or "the default backbone")
    if why:
        problems["lm_head"] = f"{preset}: {why}"


def _check_target(spec: RunSpec, problems: dict[str, str]) -> str | None:
    """Problems with the target go into ``problems``; returns a user task's data hash (None else)."""
    try:
        from core.tasks import get_task, list_tasks
    except ImportError as e:
        problems["target"] = f"the task registry is not available ({e})"
        return
    known = list_tasks()
    if spec.target not in known:
        problems["target"] = f"unknown task {spec.target!r} (known: {', '.join(known) or 'none'})"
    elif spec.backend == "local" or is_local_address(spec.address):
        try:  # a task that is listed but not prepared fails here, not in a worker
            task = get_task(spec.target)
        except Exception as e:  # TaskError names the folder and the fix
            problems["target"] = str(e)
        else:
            h = (task.meta or {}).get("data_hash")
            return str(h) if h else None
    return None


def _check_same_kind(loaded: list, kind: str, problems: dict[str, str]) -> None:
    """Prompts used together (a SPoT average, attempt's sources) share one length and one backbone."""
    if len(loaded) < 2 or kind in problems:
        return
    Ls = {p.L for p in loaded}
    bbs = {p.backbone for p in loaded if p.backbone}
    if len(Ls) > 1:
        problems[kind] = ("these prompts differ in prompt length ("
                          + ", ".join(f"{p.name} L={p.L}" for p in loaded) + "); use prompts of one length")
    elif len(bbs) > 1:
        problems[kind] = ("these prompts come from different backbones ("
                          + ", ".join(f"{p.name}: {p.backbone}" for p in loaded) + "); use prompts of one backbone")


def _check_prompt(spec: RunSpec, kind: str, ref: str, dim: int | None,
                  problems: dict[str, str], loaded: list | None = None) -> tuple[Path, str] | None:
    """A source or teacher prompt exists, reads, and has the backbone's width: (path, name)."""
    try:
        path, prompt = resolve_prompt_ref(ref)
    except Exception as e:  # PromptError names the file already
        problems[kind] = str(e)
        return None
    if loaded is not None:
        loaded.append(prompt)
    if dim is not None and prompt.d != dim:
        problems[kind] = (f"{path}: prompt has d={prompt.d} but backbone "
                          f"{spec.backbone or 'default (MiniLM)'} has hidden size {dim}")
        return None
    return path, prompt.name


def _check_teacher_run(teacher: str, pending_runs: set[str] | None, problems: dict[str, str]) -> None:
    rid = teacher[4:]
    if pending_runs and rid in pending_runs:
        return
    run = RunStore().get_run(rid)
    if run is None:
        problems["teacher"] = f"teacher {teacher!r}: no such run"
    elif run["status"] not in ("finished", "queued", "running"):
        problems["teacher"] = f"teacher {teacher!r}: that run is {run['status']}"


def teacher_run_ids(spec: RunSpec) -> list[str]:
    """The run ids a spec's "run:<id>" teachers name (it waits for them)."""
    return [t[4:] for t in spec.teacher_refs() if t.startswith("run:")]


def _check_params(out: RunSpec, problems: dict[str, str]) -> None:
    """Let TrainConfig's own validation speak; fills in ``steps`` (the page's progress bars need the total)."""
    try:
        # a "run:<id>" teacher is a placeholder here (TrainConfig checks presence, not the file)
        cfg = build_train_config(out, teacher_path=out.teacher, teacher_paths=list(out.teachers))
        out.params.setdefault("steps", cfg.steps)
    except SpecError as e:
        problems.update(e.problems)
    except ImportError as e:
        problems["params"] = f"the training engine is not available ({e})"
    except (TypeError, ValueError) as e:
        problems["params"] = str(e)


def build_train_config(spec: RunSpec, teacher_path: str | None, teacher_paths: list[str] | None = None):
    """RunSpec -> core.training.TrainConfig (its __post_init__ validates the values).
    ``teacher_paths``: the resolved ``teachers`` (panda with several teachers)."""
    from core.training import TrainConfig

    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(spec.params) - known)
    if unknown:
        raise SpecError({"params": f"unknown hyper-parameter(s) {', '.join(unknown)} "
                                   f"(TrainConfig has: {', '.join(sorted(known - set(SPEC_FIELDS)))})"})
    kw: dict[str, Any] = dict(spec.params)
    kw.update(method=spec.method, task=spec.target, sources=list(spec.sources), teacher=teacher_path,
              seed=spec.seed, device=spec.device)
    if teacher_paths:
        kw["teachers"] = list(teacher_paths)
    if spec.backbone:
        kw["backbone"] = spec.backbone
    kw = {k: v for k, v in kw.items() if k in known}
    return TrainConfig(**kw)

