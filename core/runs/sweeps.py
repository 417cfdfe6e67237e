"""Sweeps: a source x target x method x seed grid planned as one unit (pure planning: no store, no processes).

    python -m core sweep --spec grid.json [--backend ray --address ...] [--wait]
    python -m core sweep --resume SWEEP_ID

A grid file is the JSON of ``SweepSpec``::

    {"sources": ["sent_movie-scratch", "question_type-scratch"],
     "targets": ["sent_tweet", "party_tweet"], "methods": ["pot", "panda"],
     "seeds": [0, 1, 2], "params": {"steps": 300, "train_size": 64}}

What it plans (``plan``), in this order, so the queue runs them in that order:
1. ``scratch`` for every (target, seed): the baseline ``measured`` divides by;
2. ``pot`` for every (source, target, seed) -- asked for, or needed as a PANDA teacher;
3. ``panda`` for every (source, target, seed): its teacher is the prompt of the pot run
   of the same (source, target, seed) (what PANDA's released code does), stored as a
   dependency, so it starts only after that run finished.
Resume (``plan_resume``): runs that finished (or are still queued/running) are kept; failed,
cancelled or lost ones are launched again as new runs, and their dependents re-pointed.
4. ``mix`` (several sources at once, planned from a ranking's top K or from the Runs form's
   sources): ``attempt`` from the K sources; ``panda`` with K teachers (the PoT runs of each
   source, planned in 2. when missing, or the raw sources), weighted; ``spot``: PoT from their
   weighted average. Each is ONE run whose results-table source is the mix's label
   ("mix top-3 (zs)"), its members and weights in its settings.
``panda_pot_sweep``: a single PANDA run whose teacher is "PoT on the target first" is this
planner's 1x1 sweep (the Runs page and ``python -m core run`` both use it).
core.runs.queue launches what is planned here (``launch_sweep``, ``resume_sweep``).
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from core.runs.spec import METHODS, RunSpec, SpecError, validate_spec


@dataclass
class SweepSpec:
    sources: list[str]
    targets: list[str]
    methods: list[str] = field(default_factory=lambda: ["pot"])
    seeds: list[int] = field(default_factory=lambda: [0])
    backbone: str | None = None
    params: dict = field(default_factory=dict)  # shared TrainConfig fields (steps, lr, train_size ...)
    method_params: dict = field(default_factory=dict)  # per method overrides, e.g. {"panda": {"lr": 0.007}}
    panda_teacher: str = "pot"  # "pot": the PoT run's prompt (PANDA code); "source": the raw source prompt
    device: str = "auto"
    backend: str = "local"
    address: str | None = None
    name: str | None = None
    # --- added for sweeps planned from a ranking (core.ranking.ranked_sweep) ---
    scratch_seeds: list[int] | None = None  # seeds of the scratch baselines when they differ from `seeds`
    source_params: dict = field(default_factory=dict)  # source -> {method: params}, e.g. PANDA's metric_value
    spot: dict | None = None  # {"sources": [...], "weights": [...]}: one extra pot run from their weighted average
    ranking: dict | None = None  # what the sweep was planned from (target, metric, scores, lambdas, beta)
    # several sources at once: {"sources": [...], "weights": [...] | None, "methods": [attempt|panda|spot],
    #  "label": "mix top-3 (zs)", "members": [names], "metric": "zs", "top": 3, "metric_value": panda's λ/β}
    mix: dict | None = None

    def __post_init__(self):
        for k in ("sources", "targets", "methods", "seeds"):
            v = getattr(self, k)
            if isinstance(v, (str, int)):
                setattr(self, k, [v])
        problems = {**self._grid_problems(), **self._extra_problems()}
        if problems:
            raise SpecError(problems)

    def _grid_problems(self) -> dict[str, str]:
        problems = {}
        if not self.targets:
            problems["targets"] = "at least one target task"
        bad = [m for m in self.methods if m not in METHODS]
        if bad or not self.methods:
            problems["methods"] = f"unknown method(s) {bad} (one of {', '.join(METHODS)})" if bad else "at least one"
        if any(m != "scratch" for m in self.methods) and not self.sources and not self.mix:
            problems["sources"] = "pot/panda need at least one source prompt"
        if self.panda_teacher not in ("pot", "source"):
            problems["panda_teacher"] = "pot or source"
        if not all(isinstance(s, int) for s in self.seeds) or not self.seeds:
            problems["seeds"] = "a list of integers"
        return problems

    def _extra_problems(self) -> dict[str, str]:
        """The fields a sweep planned from a ranking adds."""
        problems = {}
        if self.scratch_seeds is not None and (not self.scratch_seeds or
                                               not all(isinstance(s, int) for s in self.scratch_seeds)):
            problems["scratch_seeds"] = "a non-empty list of integers (or null: the same as seeds)"
        if not isinstance(self.source_params, dict) or not all(
                isinstance(v, dict) and set(v) <= set(METHODS) for v in self.source_params.values()):
            problems["source_params"] = "an object source -> {method: {param: value}}"
        if self.spot is not None:
            sp = self.spot if isinstance(self.spot, dict) else {}
            src, w = sp.get("sources"), sp.get("weights")
            if not src or not isinstance(src, list) or not isinstance(w, list) or len(w) != len(src):
                problems["spot"] = "an object with 'sources' and as many 'weights'"
        if self.mix is not None:
            mx = self.mix if isinstance(self.mix, dict) else {}
            src, w, ms = mx.get("sources"), mx.get("weights"), mx.get("methods", list(MIX_METHODS))
            if not src or not isinstance(src, list) or (w is not None and (not isinstance(w, list) or len(w) != len(src))):
                problems["mix"] = "an object with 'sources' (and as many 'weights', or null: uniform)"
            elif not ms or set(ms) - set(MIX_METHODS):
                problems["mix"] = f"mix methods must be some of {', '.join(MIX_METHODS)}, got {ms}"
        return problems

    @classmethod
    def from_dict(cls, d: dict, origin: str | None = None) -> "SweepSpec":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known) if isinstance(d, dict) else []
        if not isinstance(d, dict) or unknown:
            raise SpecError({"spec": f"unknown field(s) {', '.join(unknown)}" if unknown else "not a JSON object"},
                            origin)
        try:
            return cls(**d)
        except TypeError as e:
            raise SpecError({"spec": str(e)}, origin) from None
        except SpecError as e:
            raise SpecError(e.problems, origin) from None

    @classmethod
    def from_file(cls, path: Path | str) -> "SweepSpec":
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SpecError("file not found", str(path)) from None
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise SpecError(f"not valid JSON ({e})", str(path)) from None
        return cls.from_dict(data, origin=str(path))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class Planned:
    key: str
    spec: RunSpec
    deps: list[str]  # keys of runs it needs first


def target_checks(targets: list[str]) -> tuple[list[str], list[str]]:
    """The target checks a sweep makes before launch (core.tasks.target.target_check on each target's
    whole validation split, which picks every checkpoint): (refusals, warnings), one line each, every
    line naming its target. A single-class or near-empty validation split is refused (every score on
    it is the majority rate); too few examples per class is a warning. A target that cannot be loaded
    is left to validate_spec (it names the problem)."""
    from core.tasks import get_task
    from core.tasks.target import target_check
    errors, warnings = [], []
    for t in dict.fromkeys(targets):
        try:
            task = get_task(t)
        except Exception:  # noqa: BLE001 -- validate_spec refuses it, naming the problem
            continue
        chk = target_check(task)
        errors += chk.errors  # they name the task
        warnings += [f"target {t!r}: {w}" for w in chk.warnings]
    return errors, warnings


def plan(sw: SweepSpec) -> list[Planned]:
    """Every run of the grid, in queue order: scratch baselines, PoT (and PANDA's PoT teachers),
    SPoT, then PANDA students (each depending on its teacher's key)."""
    out = [Planned(f"scratch|{t}|{seed}", _cell(sw, "scratch", t, seed), [])
           for t in sw.targets for seed in (sw.scratch_seeds or sw.seeds)]
    if "pot" in sw.methods or ("panda" in sw.methods and sw.panda_teacher == "pot"):
        out += [Planned(f"pot|{s}|{t}|{seed}", _cell(sw, "pot", t, seed, [s]), [])
                for s in sw.sources for t in sw.targets for seed in sw.seeds]
    if sw.spot:
        for t in sw.targets:
            for seed in sw.seeds:
                sp = _cell(sw, "pot", t, seed, sw.spot["sources"])
                sp.params = {**sp.params, "source_weights": [float(w) for w in sw.spot["weights"]]}
                out.append(Planned(f"spot|{t}|{seed}", sp, []))
    if "panda" in sw.methods:
        out += [_panda(sw, s, t, seed) for s in sw.sources for t in sw.targets for seed in sw.seeds]
    if sw.mix:
        out += _mix(sw, {p.key for p in out})
    return out


MIX_METHODS = ("attempt", "panda", "spot")


def _mix(sw: SweepSpec, planned: set[str]) -> list[Planned]:
    """The mixture runs of ``sw.mix`` per (target, seed), preceded by the PoT teachers that are
    not planned yet (panda_teacher "pot")."""
    mx = sw.mix
    srcs, w = [str(s) for s in mx["sources"]], mx.get("weights")
    methods = mx.get("methods") or list(MIX_METHODS)
    meta = {k: mx[k] for k in ("label", "members", "weights", "metric", "top") if k in mx} if mx.get("label") else None
    teachers, out = [], []
    for t in sw.targets:
        for seed in sw.seeds:
            if "attempt" in methods:
                out.append(Planned(f"mix-attempt|{t}|{seed}", _cell(sw, "attempt", t, seed, srcs, mix=meta), []))
            if "panda" in methods:
                spec = _cell(sw, "panda", t, seed, srcs, mix=meta)
                extra = {"teacher_weights": [float(x) for x in w]} if w else {}
                if spec.params.get("lambda_mode") == "metric" and mx.get("metric_value") is not None:
                    extra["metric_value"] = float(mx["metric_value"])
                if sw.panda_teacher == "pot":
                    keys = [f"pot|{s}|{t}|{seed}" for s in srcs]
                    teachers += [Planned(k, _cell(sw, "pot", t, seed, [s]), []) for s, k in zip(srcs, keys)
                                 if k not in planned and k not in {p.key for p in teachers}]
                    spec.teachers, deps = [f"key:{k}" for k in keys], keys
                    extra["teacher_mode"] = "pot"
                else:
                    spec.teachers, deps = list(srcs), []
                    extra["teacher_mode"] = "source"
                spec.params = {**spec.params, **extra}
                out.append(Planned(f"mix-panda|{t}|{seed}", spec, deps))
            if "spot" in methods:
                spec = _cell(sw, "pot", t, seed, srcs, mix=meta)
                spec.params = {**spec.params, "source_weights": [float(x) for x in (w or [1.0] * len(srcs))]}
                out.append(Planned(f"mix-spot|{t}|{seed}", spec, []))
    return teachers + out


def _cell(sw: SweepSpec, method: str, target: str, seed: int, sources=(), teacher: str | None = None,
          mix: dict | None = None) -> RunSpec:
    params = {**sw.params, **(sw.method_params.get(method) or {})}
    if len(sources) == 1:
        params.update((sw.source_params.get(sources[0]) or {}).get(method) or {})
    return RunSpec(method=method, target=target, sources=list(sources), teacher=teacher, backbone=sw.backbone,
                   params=params, seed=seed, device=sw.device, backend=sw.backend, address=sw.address, mix=mix)


def _panda(sw: SweepSpec, source: str, target: str, seed: int) -> Planned:
    key = f"panda|{source}|{target}|{seed}"
    if sw.panda_teacher == "pot":  # the PoT run of the same (source, target, seed): PANDA's released code
        pot = f"pot|{source}|{target}|{seed}"
        return Planned(key, _cell(sw, "panda", target, seed, [source], f"key:{pot}"), [pot])
    return Planned(key, _cell(sw, "panda", target, seed, [source], source), [])


def panda_pot_sweep(spec: RunSpec) -> SweepSpec | None:
    """The rule for one PANDA run whose teacher is "PoT on the target first" (``teacher_mode``
    "pot", TrainConfig's default) and that names no teacher prompt: that teacher does not exist
    yet, so the run becomes a 1x1 sweep (the scratch baseline, the PoT teacher, then the PANDA
    student once its teacher finished). None for every other spec: it is launched as it is."""
    if spec.method != "panda" or spec.teacher or spec.teachers or spec.params.get("teacher_mode", "pot") != "pot":
        return None
    if len(spec.sources) > 1:  # several sources: ONE student with K PoT teachers (weights: teacher_weights)
        params = {k: v for k, v in spec.params.items() if k not in ("teacher_mode", "teacher_weights")}
        return SweepSpec(sources=list(spec.sources), targets=[spec.target], methods=["scratch"], seeds=[spec.seed],
                         backbone=spec.backbone, params=params, device=spec.device, backend=spec.backend,
                         address=spec.address, name=spec.name,
                         mix={"sources": list(spec.sources), "weights": spec.params.get("teacher_weights"),
                              "methods": ["panda"]})
    return SweepSpec(sources=list(spec.sources), targets=[spec.target], methods=["panda"], seeds=[spec.seed],
                     backbone=spec.backbone, params={k: v for k, v in spec.params.items() if k != "teacher_mode"},
                     device=spec.device, backend=spec.backend, address=spec.address, name=spec.name)


def several_teachers(spec: RunSpec) -> RunSpec:
    """The rule for a PANDA run from several sources whose teachers are the raw sources
    (``teacher_mode`` "source", no teacher named): one teacher per source (``teachers``, weights
    ``teacher_weights`` or uniform), not their average. Every other spec is returned as it is."""
    if (spec.method != "panda" or len(spec.sources) < 2 or spec.teacher or spec.teachers
            or spec.params.get("teacher_mode") != "source"):
        return spec
    return dataclasses.replace(spec, teachers=list(spec.sources), params=dict(spec.params))


def _materialise(p: Planned, ids: dict[str, str], pending: set[str], sweep_id: str) -> RunSpec:
    spec = dataclasses.replace(p.spec, sweep_id=sweep_id, teachers=list(p.spec.teachers))
    if spec.teacher and spec.teacher.startswith("key:"):
        spec.teacher = f"run:{ids[spec.teacher[4:]]}"
    spec.teachers = [f"run:{ids[t[4:]]}" if t.startswith("key:") else t for t in spec.teachers]
    return validate_spec(spec, pending_runs=pending)


def validate_planned(planned: list[Planned], ids: dict[str, str], sweep_id: str,
                     todo: set[str]) -> dict[str, RunSpec]:
    """Validate every run to launch (keys in ``todo``, run ids from ``ids``); one error listing
    the first few bad cells."""
    out, errors = {}, []
    pending = set(ids.values())
    for p in planned:
        if p.key not in todo:
            continue
        try:
            out[p.key] = _materialise(p, ids, pending, sweep_id)
        except SpecError as e:
            errors.append(f"[{p.key}] {e}")
    if errors:
        more = f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""
        raise SpecError({"sweep": " | ".join(errors[:5]) + more})
    return out


@dataclass
class Resume:
    ids: dict[str, str]       # grid key -> run id (kept, or the new attempt's)
    todo: set[str]            # keys launched again
    replaced: list[str]       # queued run ids to cancel (they wait on a dependency that is redone)


def plan_resume(sweep_id: str, planned: list[Planned], runs: list[dict]) -> Resume:
    """What resuming a sweep launches again, from its stored ``runs`` (every attempt): a cell whose
    latest run finished, or is queued/running with no redone dependency, is kept; every other
    cell gets a new run id ``<sweep_id>-<index>-<attempt>``."""
    latest: dict[str, dict] = {}
    for run in sorted(runs, key=lambda r: (r["created"], r["run_id"])):
        latest[run["sweep_key"] or run["run_id"]] = run
    r = Resume({}, set(), [])
    for i, p in enumerate(planned):
        run = latest.get(p.key)
        dep_redone = any(d in r.todo for d in p.deps)
        if run is not None and (run["status"] == "finished" or
                                (run["status"] in ("queued", "running") and not dep_redone)):
            r.ids[p.key] = run["run_id"]
            continue
        if run is not None and run["status"] == "queued":
            r.replaced.append(run["run_id"])
        attempt = 1 + sum(1 for x in runs if x["sweep_key"] == p.key)
        r.ids[p.key] = f"{sweep_id}-{i:03d}-{attempt}"
        r.todo.add(p.key)
    return r
