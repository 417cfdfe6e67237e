"""Sweeps: a source x target x method x seed grid launched (and resumed) as one unit.

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
Resume: runs that finished (or are still queued/running) are kept; failed, cancelled or
lost ones are launched again as new runs, and their dependents re-pointed.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from core.runs import METHODS, RunSpec, SpecError, validate_spec
from core.runstore import RunStore, new_run_id


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

    def __post_init__(self):
        problems = {}
        for k in ("sources", "targets", "methods", "seeds"):
            v = getattr(self, k)
            if isinstance(v, (str, int)):
                setattr(self, k, [v])
        if not self.targets:
            problems["targets"] = "at least one target task"
        bad = [m for m in self.methods if m not in METHODS]
        if bad or not self.methods:
            problems["methods"] = f"unknown method(s) {bad} (one of {', '.join(METHODS)})" if bad else "at least one"
        if any(m != "scratch" for m in self.methods) and not self.sources:
            problems["sources"] = "pot/panda need at least one source prompt"
        if self.panda_teacher not in ("pot", "source"):
            problems["panda_teacher"] = "pot or source"
        if not all(isinstance(s, int) for s in self.seeds) or not self.seeds:
            problems["seeds"] = "a list of integers"
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
        if problems:
            raise SpecError(problems)

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


def plan(sw: SweepSpec) -> list[Planned]:
    def spec(method, target, seed, sources=(), teacher=None) -> RunSpec:
        params = {**sw.params, **(sw.method_params.get(method) or {})}
        if len(sources) == 1:
            params.update((sw.source_params.get(sources[0]) or {}).get(method) or {})
        return RunSpec(method=method, target=target, sources=list(sources), teacher=teacher, backbone=sw.backbone,
                       params=params, seed=seed, device=sw.device, backend=sw.backend, address=sw.address)

    out: list[Planned] = []
    for t in sw.targets:
        for seed in (sw.scratch_seeds or sw.seeds):
            out.append(Planned(f"scratch|{t}|{seed}", spec("scratch", t, seed), []))
    need_pot = "pot" in sw.methods or ("panda" in sw.methods and sw.panda_teacher == "pot")
    if need_pot:
        for s in sw.sources:
            for t in sw.targets:
                for seed in sw.seeds:
                    out.append(Planned(f"pot|{s}|{t}|{seed}", spec("pot", t, seed, [s]), []))
    if sw.spot:
        for t in sw.targets:
            for seed in sw.seeds:
                sp = spec("pot", t, seed, sw.spot["sources"])
                sp.params = {**sp.params, "source_weights": [float(w) for w in sw.spot["weights"]]}
                out.append(Planned(f"spot|{t}|{seed}", sp, []))
    if "panda" in sw.methods:
        for s in sw.sources:
            for t in sw.targets:
                for seed in sw.seeds:
                    if sw.panda_teacher == "pot":
                        pot = f"pot|{s}|{t}|{seed}"
                        out.append(Planned(f"panda|{s}|{t}|{seed}", spec("panda", t, seed, [s], f"key:{pot}"), [pot]))
                    else:
                        out.append(Planned(f"panda|{s}|{t}|{seed}", spec("panda", t, seed, [s], s), []))
    return out


def _materialise(p: Planned, ids: dict[str, str], pending: set[str], sweep_id: str) -> RunSpec:
    spec = dataclasses.replace(p.spec, sweep_id=sweep_id)
    if spec.teacher and spec.teacher.startswith("key:"):
        spec.teacher = f"run:{ids[spec.teacher[4:]]}"
    return validate_spec(spec, pending_runs=pending)


def _validate_all(planned: list[Planned], ids: dict[str, str], sweep_id: str, todo: set[str]) -> dict[str, RunSpec]:
    """Validate every run to launch; one error listing the first few bad cells."""
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


def launch_sweep(sw: SweepSpec, store: RunStore | None = None, *, dispatch: bool = True) -> str:
    """Validate every run of the grid, then queue them all in one transaction and pump."""
    from core.launchers import pump, ray_client, resolve_device_for_queue

    store = store or RunStore()
    if sw.backend == "ray":
        ray_client(sw.address)
    sweep_id = new_run_id("s")
    planned = plan(sw)
    ids = {p.key: f"{sweep_id}-{i:03d}" for i, p in enumerate(planned)}
    specs = _validate_all(planned, ids, sweep_id, set(ids))
    with store.write() as c:
        store.add_sweep(sweep_id, sw.to_dict(), name=sw.name, backend=sw.backend, con=c)
        for p in planned:
            spec = specs[p.key]
            if spec.backend == "local":
                spec.device = resolve_device_for_queue(spec.device)
            store.add_run(ids[p.key], spec.to_dict(), sweep_id=sweep_id, sweep_key=p.key,
                          depends_on=[ids[d] for d in p.deps], con=c)
    pump(store, dispatch=dispatch)
    return sweep_id


def resume_sweep(sweep_id: str, store: RunStore | None = None, *, dispatch: bool = True) -> tuple[str, list[str]]:
    """Relaunch what did not finish; returns (sweep_id, new run ids)."""
    from core.launchers import pump, reconcile, resolve_device_for_queue

    store = store or RunStore()
    row = store.get_sweep(sweep_id)
    if row is None:
        raise SpecError({"sweep": f"no sweep {sweep_id!r} in {store.path}"})
    reconcile(store)  # runs whose process died count as failed now
    sw = SweepSpec.from_dict(row["spec"])
    planned = plan(sw)
    latest = store.latest_sweep_runs(sweep_id)
    ids: dict[str, str] = {}
    todo: set[str] = set()
    for i, p in enumerate(planned):
        run = latest.get(p.key)
        dep_redone = any(d in todo for d in p.deps)
        if run is not None and (run["status"] == "finished" or
                                (run["status"] in ("queued", "running") and not dep_redone)):
            ids[p.key] = run["run_id"]
            continue
        if run is not None and run["status"] == "queued":  # waiting on a dependency that is redone
            store.set_status(run["run_id"], "cancelled", only_if=("queued",), event={"reason": "replaced on resume"})
        attempt = 1 + sum(1 for r in store.list_runs(sweep_id=sweep_id) if r["sweep_key"] == p.key)
        ids[p.key] = f"{sweep_id}-{i:03d}-{attempt}"
        todo.add(p.key)
    if not todo:
        pump(store, dispatch=dispatch)
        return sweep_id, []
    specs = _validate_all(planned, ids, sweep_id, todo)
    with store.write() as c:
        for p in planned:
            if p.key not in todo:
                continue
            spec = specs[p.key]
            if spec.backend == "local":
                spec.device = resolve_device_for_queue(spec.device)
            old = latest.get(p.key)
            store.add_run(ids[p.key], spec.to_dict(), sweep_id=sweep_id, sweep_key=p.key,
                          depends_on=[ids[d] for d in p.deps], retry_of=old["run_id"] if old else None, con=c)
    pump(store, dispatch=dispatch)
    return sweep_id, [ids[k] for k in ids if k in todo]

