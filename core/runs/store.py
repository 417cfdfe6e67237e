"""The run store: every run, sweep and event, in one SQLite file (WAL mode).

    python -m core runs list          # reads ATLAS_HOME/runs.db

The bottom of core/runs/ (store <- spec <- sweeps, worker <- capacity <- local, ray_jobs <- queue <- cli):
every SQL statement of the package is here. The launchers decide *which* runs to start
(caps, packs); the store claims them in one transaction (``claim_local``, ``claim_job``) and
keeps the dispatcher's record (``swap_meta``).

Why SQLite in WAL mode: many processes (the Streamlit server, the CLI, each
worker, the dispatcher) read and write the same file at once; WAL lets readers
run while one writer commits, every write here is one short ``BEGIN IMMEDIATE``
transaction, and ``busy_timeout`` makes a writer wait its turn instead of
failing. The store is the record: a page reload, a server restart or a Ray
cluster going away loses nothing that reached it.

Tables
    runs    one row per run (spec JSON, status, pid/host or Ray job, scores, progress)
    events  (run_id, seq, ts, kind, step, metrics JSON); seq is assigned by the store,
            1, 2, 3 ... per run inside the writing transaction, so it is gap-free and
            ordered even with several writers on one run
    sweeps  one row per sweep (its grid spec)
    meta    small key/value facts (the dispatcher's pid)

Statuses: queued -> running -> finished | failed | cancelled. Runs trained together in one
process (packed training, core.runs.local) share a ``pack_id``; each keeps its own row and events.
"""
from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from core.config import atlas_home
from core.curves import CURVE_KEY, curve_from_events
from core.results import FLAGS_NOT_RECORDED, RESULTS_COLUMNS, SCORE_KIND, head_label  # the contract is defined once, in core.results
from core.training.events import upgrade_metrics

TERMINAL = ("finished", "failed", "cancelled")
ACTIVE = ("queued", "running")
EVENT_KINDS = ("status", "progress", "eval", "log")


_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    sweep_id TEXT,
    sweep_key TEXT,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    status TEXT NOT NULL,
    spec TEXT NOT NULL,
    method TEXT, target TEXT, source TEXT, seed INTEGER,
    backend TEXT NOT NULL DEFAULT 'local',
    address TEXT,
    device TEXT,
    depends_on TEXT NOT NULL DEFAULT '[]',
    retry_of TEXT,
    pid INTEGER, pid_start TEXT, host TEXT,
    job_id TEXT, collected_seq INTEGER NOT NULL DEFAULT 0,
    started REAL, finished REAL,
    cancel_requested REAL,
    step INTEGER NOT NULL DEFAULT 0, total_steps INTEGER,
    last_metrics TEXT NOT NULL DEFAULT '{}',
    val_score REAL, test_score REAL, wall_time_s REAL,
    prompt_path TEXT, error TEXT,
    pack_id TEXT
);
CREATE INDEX IF NOT EXISTS runs_status ON runs(status);
CREATE INDEX IF NOT EXISTS runs_sweep ON runs(sweep_id);
CREATE TABLE IF NOT EXISTS events (
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    ts REAL NOT NULL,
    kind TEXT NOT NULL,
    step INTEGER,
    metrics TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sweeps (
    sweep_id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    name TEXT,
    spec TEXT NOT NULL,
    backend TEXT NOT NULL DEFAULT 'local'
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
"""

# The compute ledger (core.jobs): every computation a page or the CLI starts (a background job or an
# inline click) holds one row while it runs, so one global cap counts them across sessions and processes.
# ``pairs`` keeps per-(metric, backbone, prompt hash, task, variant) values as a job accumulates them.
_JOBS_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    key TEXT NOT NULL,
    kind TEXT NOT NULL,
    title TEXT,
    spec TEXT NOT NULL DEFAULT '{}',
    status TEXT NOT NULL,
    owner TEXT NOT NULL DEFAULT 'full',
    background INTEGER NOT NULL DEFAULT 1,
    created REAL NOT NULL, updated REAL NOT NULL, started REAL, finished REAL,
    pid INTEGER, pid_start TEXT, host TEXT,
    done INTEGER NOT NULL DEFAULT 0, total INTEGER, units INTEGER NOT NULL DEFAULT 0,
    est_s REAL, wall_s REAL,
    heartbeat REAL, cancel_requested REAL, error TEXT
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status);
CREATE INDEX IF NOT EXISTS jobs_key ON jobs(key);
CREATE TABLE IF NOT EXISTS pairs (
    metric TEXT NOT NULL, backbone TEXT NOT NULL, prompt_hash TEXT NOT NULL, task TEXT NOT NULL,
    variant TEXT NOT NULL, value REAL NOT NULL, ts REAL NOT NULL,
    PRIMARY KEY (metric, backbone, prompt_hash, task, variant)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS pairs_ts ON pairs(ts);
"""

_JSON_COLS = ("spec", "depends_on", "last_metrics")


# ``pairs`` is a cache like the disk ones: at most ATLAS_PAIRS_MAX rows, least recently used (``ts``: set
# when a value is saved or read back) deleted first. A row is ~100 bytes: the default is ~50 MB.
PAIRS_MAX = 500_000


def pairs_cap() -> int:
    """ATLAS_PAIRS_MAX (a whole number of rows >= 1) or PAIRS_MAX; a bad value raises StoreError naming it."""
    raw = (os.environ.get("ATLAS_PAIRS_MAX") or "").strip()
    if not raw:
        return PAIRS_MAX
    try:
        n = int(raw)
        if n < 1:
            raise ValueError
    except ValueError:
        raise StoreError(f"ATLAS_PAIRS_MAX={raw!r}: a whole number of saved values >= 1, e.g. {PAIRS_MAX}") from None
    return n


def default_db_path() -> Path:
    return atlas_home() / "runs.db"


def hostname() -> str:
    return socket.gethostname()


def new_run_id(prefix: str = "r") -> str:
    """Sortable, unique, safe as a folder name and a Ray submission id."""
    return f"{prefix}{time.strftime('%y%m%d-%H%M%S')}-{os.urandom(3).hex()}"


class StoreError(RuntimeError):
    pass


def _select(table: str, order: str, *, status: Iterable[str] | None = None, limit: int | None = None,
            **equal: Any) -> tuple[str, list]:
    """SELECT * FROM ``table`` [WHERE status IN (...) AND col = ? ...] ORDER BY ``order`` [LIMIT n]:
    the listing query of runs and jobs (``equal`` columns left out when None)."""
    sql, args, where = f"SELECT * FROM {table}", [], []
    if status is not None:
        status = list(status)
        where.append(f"status IN ({','.join('?' for _ in status)})")
        args += status
    for col, value in equal.items():
        if value is not None:
            where.append(f"{col} = ?")
            args.append(value)
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY {order}"
    if limit:
        sql += f" LIMIT {int(limit)}"
    return sql, args


class RunStore:
    """A handle on ``runs.db``; cheap to create, safe to share between threads.

    Each thread (and each forked process) gets its own sqlite3 connection.
    """

    def __init__(self, path: Path | str | None = None, *, busy_timeout_s: float = 60.0):
        self.path = Path(path) if path else default_db_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        con = self._conn()
        con.executescript(_SCHEMA)
        con.executescript(_JOBS_SCHEMA)
        cols = {r[1] for r in con.execute("PRAGMA table_info(runs)")}
        if "pack_id" not in cols:  # a store written before packed training
            try:
                con.execute("ALTER TABLE runs ADD COLUMN pack_id TEXT")
            except sqlite3.OperationalError:  # another process added it first
                pass

    # -- connections -------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None or getattr(self._local, "pid", None) != os.getpid():
            con = sqlite3.connect(self.path, timeout=self.busy_timeout_s, isolation_level=None,
                                  check_same_thread=False)
            con.row_factory = sqlite3.Row
            con.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_s * 1000)}")
            mode = con.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(f"{self.path}: could not switch to WAL mode (got {mode!r}); "
                                 "is it on a network file system?")
            # NORMAL is durable across process crashes in WAL mode (only an OS crash
            # can lose the last commits), and it makes a commit cost no fsync.
            con.execute("PRAGMA synchronous = NORMAL")
            self._local.con, self._local.pid = con, os.getpid()
        return con

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; BEGIN IMMEDIATE takes the write lock up front, so
        read-then-write sequences (claims, seq numbers) cannot interleave."""
        con = self._conn()
        con.execute("BEGIN IMMEDIATE")
        try:
            yield con
        except BaseException:
            con.execute("ROLLBACK")
            raise
        else:
            con.execute("COMMIT")

    @contextmanager
    def _tx(self, con: sqlite3.Connection | None) -> Iterator[sqlite3.Connection]:
        """The caller's open transaction, or a new one."""
        if con is not None:
            yield con
        else:
            with self.write() as c:
                yield c

    def _read(self, sql: str, args: Iterable[Any] = ()) -> list[sqlite3.Row]:
        return self._conn().execute(sql, tuple(args)).fetchall()

    def close(self) -> None:
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None

    # -- runs --------------------------------------------------------------
    def add_run(self, run_id: str, spec: dict, *, sweep_id: str | None = None, sweep_key: str | None = None,
                depends_on: list[str] | None = None, retry_of: str | None = None, status: str = "queued",
                con: sqlite3.Connection | None = None) -> str:
        """Insert a queued run (plus its first status event). ``spec`` is RunSpec.to_dict()."""
        now = time.time()
        row = dict(
            run_id=run_id, sweep_id=sweep_id, sweep_key=sweep_key, created=now, updated=now, status=status,
            spec=json.dumps(spec, sort_keys=True), method=spec.get("method"), target=spec.get("target"),
            source=(spec.get("mix") or {}).get("label") or "+".join(spec.get("source_names") or []),
            seed=spec.get("seed"),
            backend=spec.get("backend", "local"), address=spec.get("address"), device=spec.get("device"),
            depends_on=json.dumps(list(depends_on or [])), retry_of=retry_of,
            total_steps=(spec.get("params") or {}).get("steps"),
        )
        with self._tx(con) as c:
            c.execute(f"INSERT INTO runs ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})",
                      tuple(row.values()))
            self._insert_event(c, run_id, "status", 0, {"status": status}, now)
        return run_id

    def add_runs(self, runs: list[dict], *, sweep: dict | None = None) -> None:
        """Queue several runs, and the row of the sweep they belong to, in one transaction: all
        or none. ``runs``: add_run's keyword arguments; ``sweep``: add_sweep's."""
        with self.write() as c:
            if sweep is not None:
                self.add_sweep(**sweep, con=c)
            for r in runs:
                self.add_run(**r, con=c)

    def get_run(self, run_id: str) -> dict | None:
        rows = self._read("SELECT * FROM runs WHERE run_id = ?", (run_id,))
        return _row(rows[0]) if rows else None

    def require_runs(self, run_ids: list[str]) -> list[dict]:
        """The runs ``run_ids``, in that order, read in one query per 500 (a waiter polls many runs);
        StoreError names the first that is not in the store."""
        found: dict[str, dict] = {}
        for s in range(0, len(run_ids), 500):
            part = list(run_ids[s:s + 500])
            rows = self._read(f"SELECT * FROM runs WHERE run_id IN ({','.join('?' * len(part))})", part)
            found.update((r["run_id"], _row(r)) for r in rows)
        missing = [r for r in run_ids if r not in found]
        if missing:
            raise StoreError(f"{self.path}: no run {missing[0]!r}")
        return [found[r] for r in run_ids]

    def require_run(self, run_id: str) -> dict:
        run = self.get_run(run_id)
        if run is None:
            raise StoreError(f"{self.path}: no run {run_id!r}")
        return run

    def list_runs(self, *, status: Iterable[str] | None = None, sweep_id: str | None = None,
                  limit: int | None = None) -> list[dict]:
        sql, args = _select("runs", "created DESC, run_id DESC", status=status, sweep_id=sweep_id, limit=limit)
        return [_row(r) for r in self._read(sql, args)]

    def update_run(self, run_id: str, con: sqlite3.Connection | None = None, **fields: Any) -> None:
        if not fields:
            return
        fields["updated"] = time.time()
        for k in _JSON_COLS:
            if k in fields and not isinstance(fields[k], str):
                fields[k] = json.dumps(fields[k])
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self._tx(con) as c:
            c.execute(f"UPDATE runs SET {sets} WHERE run_id = ?", (*fields.values(), run_id))

    def set_status(self, run_id: str, status: str, *, only_if: Iterable[str] | None = None,
                   event: dict | None = None, **fields: Any) -> bool:
        """Move a run to ``status`` (and write the status event) in one transaction.
        With ``only_if``, only when its current status is one of those; returns whether it moved."""
        now = time.time()
        with self.write() as c:
            cur = c.execute("SELECT status FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if cur is None or (only_if is not None and cur["status"] not in tuple(only_if)):
                return False
            if status in TERMINAL:
                fields.setdefault("finished", now)
            if status == "running":
                fields.setdefault("started", now)
            self.update_run(run_id, con=c, status=status, **fields)
            metrics = {"status": status, **(event or {})}
            if fields.get("error"):
                metrics.setdefault("error", fields["error"])
            self._insert_event(c, run_id, "status", None, metrics, now)
        return True

    def request_cancel(self, run_id: str) -> str:
        """Flag a run for cancellation. A queued run is cancelled at once; a running
        one stops at its next step (the worker polls the flag). Returns the new status."""
        now = time.time()
        with self.write() as c:
            cur = c.execute("SELECT status FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if cur is None:
                raise StoreError(f"{self.path}: no run {run_id!r}")
            status = cur["status"]
            if status == "queued":
                self.update_run(run_id, con=c, status="cancelled", finished=now, cancel_requested=now)
                self._insert_event(c, run_id, "status", None, {"status": "cancelled"}, now)
                return "cancelled"
            if status == "running":
                self.update_run(run_id, con=c, cancel_requested=now)
                self._insert_event(c, run_id, "log", None, {"message": "cancel requested"}, now)
            return status

    def cancel_flags(self, run_ids: Iterable[str]) -> set[str]:
        """Which of these runs have a cancel request (a pack reads all its flags in one query)."""
        ids = list(run_ids)
        rows = self._read(f"SELECT run_id FROM runs WHERE cancel_requested IS NOT NULL "
                          f"AND run_id IN ({','.join('?' for _ in ids)})", ids)
        return {r[0] for r in rows}

    def pack_runs(self, pack_id: str) -> list[dict]:
        """The runs of one pack (trained in one process), oldest first."""
        return [_row(r) for r in self._read("SELECT * FROM runs WHERE pack_id = ? ORDER BY created, run_id",
                                            (pack_id,))]

    def cancel_requested(self, run_id: str) -> bool:
        rows = self._read("SELECT cancel_requested FROM runs WHERE run_id = ?", (run_id,))
        return bool(rows and rows[0][0])

    def delete_run(self, run_id: str) -> None:
        with self.write() as c:
            cur = c.execute("SELECT status FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if cur is None:
                raise StoreError(f"{self.path}: no run {run_id!r}")
            if cur["status"] in ACTIVE:
                raise StoreError(f"run {run_id} is {cur['status']}: cancel it before deleting")
            c.execute("DELETE FROM events WHERE run_id = ?", (run_id,))
            c.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))

    # -- the queue's claims: the launchers choose, the store records ---------
    def has_queued(self, backend: str) -> bool:
        return bool(self._read("SELECT 1 FROM runs WHERE status = 'queued' AND backend = ? LIMIT 1", (backend,)))

    def deps_finished(self, depends_on: Iterable[str]) -> bool:
        """Whether every run in ``depends_on`` finished (a PANDA student waits for its PoT teacher)."""
        return _deps_finished(self._conn(), list(depends_on))

    def claim_local(self, host: str, choose: Callable[[list[dict], dict[str, int]], list[dict]]) -> list[dict]:
        """Move startable local runs to 'running' in one BEGIN IMMEDIATE transaction, so two pumps
        never start a run twice.

        ``choose(ready, used)`` decides: ``ready`` are the queued local runs whose dependencies
        all finished, oldest first ({"run_id", "device", "spec"}); ``used`` is the number of worker
        processes running per device on ``host``. It returns claims {"run_ids", "device"}, one per
        process. Each claim is recorded (status, device, host, start time, a new ``pack_id`` when it
        holds several runs, one status event per run) and returned with its ``pack_id``.
        """
        if not self.has_queued("local"):
            return []  # the common case on every page poll: no write lock taken
        with self.write() as c:
            rows = c.execute("SELECT run_id, device, spec, depends_on FROM runs WHERE status = 'queued' "
                             "AND backend = 'local' ORDER BY created, run_id").fetchall()
            ready = [{"run_id": r["run_id"], "device": r["device"], "spec": json.loads(r["spec"])}
                     for r in rows if _deps_finished(c, json.loads(r["depends_on"]))]
            if not ready:
                return []
            used: dict[str, int] = {}
            for r in c.execute("SELECT device, COUNT(DISTINCT COALESCE(pack_id, run_id)) AS n FROM runs "
                               "WHERE status = 'running' AND backend = 'local' AND host = ? GROUP BY device",
                               (host,)):
                used[r["device"] or "cpu"] = used.get(r["device"] or "cpu", 0) + int(r["n"])
            claims = choose(ready, used)
            now = time.time()
            for claim in claims:
                n = len(claim["run_ids"])
                claim["pack_id"] = new_run_id("p") if n > 1 else None
                for rid in claim["run_ids"]:
                    self.update_run(rid, con=c, status="running", device=claim["device"], started=now, host=host,
                                    pack_id=claim["pack_id"])
                    ev = {"status": "running", "device": claim["device"]}
                    if n > 1:
                        ev.update(pack_id=claim["pack_id"], pack_size=n)
                    self._insert_event(c, rid, "status", 0, ev, now)
        return claims

    def claim_job(self, run_ids: list[str], job_id: str, pack_id: str | None) -> list[str]:
        """Queued runs -> 'running' as one Ray job (submission id ``job_id``; ``pack_id`` when it
        trains several), in one transaction: claimed before the submission, so two pumps never
        submit twice. Returns the ids it claimed (those still queued)."""
        claimed = []
        with self.write() as c:
            now = time.time()
            for rid in run_ids:
                cur = c.execute("SELECT status, address FROM runs WHERE run_id = ?", (rid,)).fetchone()
                if cur is None or cur["status"] != "queued":
                    continue
                self.update_run(rid, con=c, status="running", started=now, job_id=job_id, pack_id=pack_id)
                ev = {"status": "running", "backend": "ray", "address": cur["address"]}
                if pack_id:
                    ev.update(pack_id=pack_id, pack_size=len(run_ids))
                self._insert_event(c, rid, "status", 0, ev, now)
                claimed.append(rid)
        return claimed

    # -- events ------------------------------------------------------------
    @staticmethod
    def _insert_event(c: sqlite3.Connection, run_id: str, kind: str, step: int | None, metrics: dict,
                      ts: float | None = None) -> int:
        if kind not in EVENT_KINDS:
            raise StoreError(f"unknown event kind {kind!r} (one of {', '.join(EVENT_KINDS)})")
        seq = c.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM events WHERE run_id = ?", (run_id,)).fetchone()[0]
        c.execute("INSERT INTO events (run_id, seq, ts, kind, step, metrics) VALUES (?, ?, ?, ?, ?, ?)",
                  (run_id, seq, ts if ts is not None else time.time(), kind, step,
                   json.dumps(metrics, default=_json_default)))
        return seq

    def add_event(self, run_id: str, kind: str, step: int | None = None, metrics: dict | None = None,
                  ts: float | None = None) -> int:
        """Append one event; a progress/eval event also updates the run's step and last metrics."""
        return self.add_events(run_id, [{"kind": kind, "step": step, "metrics": metrics or {}, "ts": ts}])[-1]

    def add_events(self, run_id: str, events: list[dict], *, collected_seq: int | None = None) -> list[int]:
        """Append several events in one transaction. ``collected_seq`` records how far a
        collector has read a worker's own numbering (so a restarted collector skips them)."""
        seqs = []
        with self.write() as c:
            last_step, last_metrics = None, None
            for ev in events:
                metrics = ev.get("metrics") or {}
                step = ev.get("step")
                seqs.append(self._insert_event(c, run_id, ev["kind"], step, metrics, ev.get("ts")))
                if ev["kind"] in ("progress", "eval") and step is not None:
                    last_step = step
                    last_metrics = {**(last_metrics or {}), **metrics}
            fields: dict[str, Any] = {}
            if last_step is not None:
                prev = c.execute("SELECT last_metrics FROM runs WHERE run_id = ?", (run_id,)).fetchone()
                merged = {**json.loads(prev[0] if prev else "{}"), **(last_metrics or {})}
                fields.update(step=last_step, last_metrics=json.dumps(merged, default=_json_default))
            if collected_seq is not None:
                fields["collected_seq"] = collected_seq
            if fields:
                self.update_run(run_id, con=c, **fields)
        return seqs

    def events(self, run_id: str, *, after_seq: int = 0, kinds: Iterable[str] | None = None) -> list[dict]:
        sql = "SELECT * FROM events WHERE run_id = ? AND seq > ?"
        args: list[Any] = [run_id, after_seq]
        if kinds is not None:
            kinds = list(kinds)
            sql += f" AND kind IN ({','.join('?' for _ in kinds)})"
            args += kinds
        sql += " ORDER BY seq"
        return [dict(r, metrics=upgrade_metrics(json.loads(r["metrics"]))) for r in self._read(sql, args)]

    def event_count(self, run_id: str | None = None) -> int:
        if run_id is None:
            return self._read("SELECT COUNT(*) FROM events")[0][0]
        return self._read("SELECT COUNT(*) FROM events WHERE run_id = ?", (run_id,))[0][0]

    def events_frame(self, run_ids: Iterable[str], kinds: Iterable[str] = ("progress", "eval")):
        """Events of several runs as a long DataFrame: run_id, seq, ts, kind, step + one column per metric."""
        import pandas as pd

        rows = []
        for rid in run_ids:
            for ev in self.events(rid, kinds=kinds):
                rows.append({"run_id": rid, "seq": ev["seq"], "ts": ev["ts"], "kind": ev["kind"],
                             "step": ev["step"], **{k: v for k, v in ev["metrics"].items()
                                                    if isinstance(v, (int, float)) and not isinstance(v, bool)}})
        return pd.DataFrame(rows)

    # -- sweeps ------------------------------------------------------------
    def add_sweep(self, sweep_id: str, spec: dict, *, name: str | None = None, backend: str = "local",
                  con: sqlite3.Connection | None = None) -> None:
        with self._tx(con) as c:
            c.execute("INSERT OR IGNORE INTO sweeps (sweep_id, created, name, spec, backend) VALUES (?, ?, ?, ?, ?)",
                      (sweep_id, time.time(), name, json.dumps(spec, sort_keys=True), backend))

    def get_sweep(self, sweep_id: str) -> dict | None:
        rows = self._read("SELECT * FROM sweeps WHERE sweep_id = ?", (sweep_id,))
        return dict(rows[0], spec=json.loads(rows[0]["spec"])) if rows else None

    def list_sweeps(self) -> list[dict]:
        """Each sweep with its run counts per status (latest attempt per grid cell only)."""
        out = []
        for r in self._read("SELECT * FROM sweeps ORDER BY created DESC"):
            runs = self.latest_sweep_runs(r["sweep_id"])
            counts: dict[str, int] = {}
            for run in runs.values():
                counts[run["status"]] = counts.get(run["status"], 0) + 1
            out.append(dict(r, spec=json.loads(r["spec"]), counts=counts, n_runs=len(runs)))
        return out

    def latest_sweep_runs(self, sweep_id: str) -> dict[str, dict]:
        """sweep_key -> the newest run for that grid cell."""
        latest: dict[str, dict] = {}
        for run in sorted(self.list_runs(sweep_id=sweep_id), key=lambda r: (r["created"], r["run_id"])):
            latest[run["sweep_key"] or run["run_id"]] = run
        return latest

    # -- meta --------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        rows = self._read("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def swap_meta(self, key: str, decide: Callable[[str | None], str | None]) -> str | None:
        """Read ``key`` and store ``decide(current)`` (None deletes it) in one transaction; returns
        the value stored after. The dispatcher's check-then-record is one of these, so two callers
        never both start one."""
        with self.write() as c:
            row = c.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
            current = row[0] if row else None
            new = decide(current)
            if new != current:
                self.set_meta(key, new, con=c)
        return new

    def set_meta(self, key: str, value: str | None, con: sqlite3.Connection | None = None) -> None:
        with self._tx(con) as c:
            if value is None:
                c.execute("DELETE FROM meta WHERE key = ?", (key,))
            else:
                c.execute("INSERT INTO meta (key, value) VALUES (?, ?) "
                          "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value))

    # -- tables ------------------------------------------------------------
    def run_flags(self, run: dict) -> str | None:
        """A finished run's sanity flags as the results table's ``flags`` column has them (core.evidence:
        "clean", the flags joined by "; ", or "not recorded" when its final event has none); None before
        it finished."""
        if run.get("status") != "finished":
            return None
        return self._final_metrics([run["run_id"]]).get(run["run_id"], {}).get("flags") or FLAGS_NOT_RECORDED

    def _final_metrics(self, run_ids: list[str]) -> dict[str, dict]:
        """run_id -> the metrics of its last status event that carries a test score ({} when none)."""
        out: dict[str, dict] = {}
        for chunk in _chunks(run_ids):
            sql = (f"SELECT run_id, metrics FROM events WHERE kind = 'status' AND run_id IN "
                   f"({','.join('?' for _ in chunk)}) ORDER BY run_id, seq")
            for r in self._read(sql, chunk):
                m = json.loads(r["metrics"])
                if isinstance(m, dict) and m.get("test_score") is not None:
                    out[r["run_id"]] = m
        return out

    def results_table(self, *, status: Iterable[str] | None = None):
        """The RESULTS COLUMNS table (CONTRACT.md), one row per run, oldest first; a finished run's
        ``settings`` carry its validation curve (``val_curve``, core.curves).
        Feed ``status=("finished",)`` to the measured matrix."""
        import pandas as pd

        rows = []
        runs = list(reversed(self.list_runs(status=status)))
        finals = self._final_metrics([r["run_id"] for r in runs])
        for r in runs:
            spec = r["spec"]
            params = spec.get("params") or {}
            final = finals.get(r["run_id"], {})
            settings = {k: v for k, v in spec.items() if k not in ("method", "target", "seed", "source_names")}
            if r["status"] == "finished":  # the validation curve travels with the result (core.curves)
                settings[CURVE_KEY] = curve_from_events(self.events(r["run_id"], kinds=["eval"]))
            rows.append({
                "run_id": r["run_id"], "sweep_id": r["sweep_id"] or "", "method": r["method"],
                "source": r["source"] or "", "target": r["target"], "seed": r["seed"],
                "steps": params.get("steps"), "train_size": params.get("train_size"),
                "val_score": r["val_score"], "test_score": r["test_score"], "wall_time_s": r["wall_time_s"],
                "device": r["device"], "status": r["status"], "prompt_path": r["prompt_path"] or "",
                "settings": json.dumps(settings, sort_keys=True, default=_json_default),
                # what the number is, from the run's own final event (core.runs.worker.sanity)
                "majority_rate": final.get("majority_rate"), "test_n": final.get("test_n"),
                "score_kind": final.get("score_kind") or SCORE_KIND, "head": head_label(params) or final.get("head"),
                "data_hash": final.get("data_hash"),
                "flags": final.get("flags") or (FLAGS_NOT_RECORDED if r["status"] == "finished" else None),
                "val_other": final.get("val_other"), "test_other": final.get("test_other"),
            })
        return pd.DataFrame(rows, columns=RESULTS_COLUMNS)

    # -- the compute ledger (core.jobs decides; the store records) -----------
    def submit_job(self, job_id: str, key: str, kind: str, spec: dict, *, title: str = "", owner: str = "full",
                   background: bool = True, total: int | None = None, est_s: float | None = None) -> tuple[dict, bool]:
        """The active (queued/running) job of ``key``, or a new queued one, in one transaction:
        everyone asking for the same thing shares one job. -> (job, created). Asking again counts as
        a heartbeat; a full-mode request makes a shared viewer job a full one (it then runs to the end)."""
        now = time.time()
        with self.write() as c:
            cur = c.execute("SELECT * FROM jobs WHERE key = ? AND status IN ('queued', 'running') "
                            "ORDER BY created LIMIT 1", (key,)).fetchone()
            if cur is not None:
                owner_now = "full" if "full" in (cur["owner"], owner) else cur["owner"]
                c.execute("UPDATE jobs SET heartbeat = ?, owner = ?, updated = ? WHERE job_id = ?",
                          (now, owner_now, now, cur["job_id"]))
                return self._job(c, cur["job_id"]), False
            row = dict(job_id=job_id, key=key, kind=kind, title=title, spec=json.dumps(spec, sort_keys=True),
                       status="queued", owner=owner, background=int(background), created=now, updated=now,
                       total=total, est_s=est_s, heartbeat=now)
            c.execute(f"INSERT INTO jobs ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})",
                      tuple(row.values()))
            return self._job(c, job_id), True

    @staticmethod
    def _job(c: sqlite3.Connection, job_id: str) -> dict | None:
        r = c.execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        return _job_row(r) if r is not None else None

    def get_job(self, job_id: str) -> dict | None:
        rows = self._read("SELECT * FROM jobs WHERE job_id = ?", (job_id,))
        return _job_row(rows[0]) if rows else None

    def list_jobs(self, *, status: Iterable[str] | None = None, kind: str | None = None,
                  limit: int | None = None) -> list[dict]:
        sql, args = _select("jobs", "created DESC, job_id DESC", status=status, kind=kind, limit=limit)
        return [_job_row(r) for r in self._read(sql, args)]

    def update_job(self, job_id: str, con: sqlite3.Connection | None = None, **fields: Any) -> None:
        if not fields:
            return
        fields["updated"] = time.time()
        if "spec" in fields and not isinstance(fields["spec"], str):
            fields["spec"] = json.dumps(fields["spec"], sort_keys=True)
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self._tx(con) as c:
            c.execute(f"UPDATE jobs SET {sets} WHERE job_id = ?", (*fields.values(), job_id))

    def claim_compute_slot(self, job_id: str, cap: int, gone: Callable[[dict], str | None], **fields: Any) -> bool:
        """Move job ``job_id`` to 'running' if fewer than ``cap`` jobs run, in one BEGIN IMMEDIATE
        transaction (two claimants never both take the last slot). ``gone(job)`` names why a running
        job's process is gone (it is marked failed first, freeing its slot) or returns None."""
        now = time.time()
        with self.write() as c:
            running = [_job_row(r) for r in c.execute("SELECT * FROM jobs WHERE status = 'running'")]
            n = 0
            for j in running:
                why = gone(j)
                if why:
                    self.update_job(j["job_id"], con=c, status="failed", finished=now, error=why)
                else:
                    n += 1
            cur = c.execute("SELECT status FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
            if cur is None or cur["status"] != "queued" or n >= cap:
                return False
            self.update_job(job_id, con=c, status="running", started=now, **fields)
            return True

    def finish_job(self, job_id: str, status: str, **fields: Any) -> bool:
        """Move an active job to a terminal status; False if it already ended."""
        now = time.time()
        with self.write() as c:
            cur = c.execute("SELECT status, started FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
            if cur is None or cur["status"] in TERMINAL:
                return False
            if cur["started"] is not None:
                fields.setdefault("wall_s", now - cur["started"])
            self.update_job(job_id, con=c, status=status, finished=now, **fields)
            return True

    def request_job_cancel(self, job_id: str) -> str:
        """A queued job is cancelled at once; a running one stops before its next unit. -> its status."""
        now = time.time()
        with self.write() as c:
            cur = c.execute("SELECT status FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
            if cur is None:
                raise StoreError(f"{self.path}: no job {job_id!r}")
            if cur["status"] in ACTIVE:
                self.update_job(job_id, con=c, cancel_requested=now)
            if cur["status"] == "queued":
                self.update_job(job_id, con=c, status="cancelled", finished=now)
                return "cancelled"
            return cur["status"]

    def job_heartbeat(self, job_id: str) -> None:
        with self.write() as c:
            c.execute("UPDATE jobs SET heartbeat = ? WHERE job_id = ?", (time.time(), job_id))

    # -- per-(prompt, task) values a job accumulates -------------------------
    def get_pairs(self, metric: str, backbone: str, keys: Iterable[tuple[str, str, str]]) -> dict[tuple, float]:
        """{(prompt_hash, task, variant): value} for those of ``keys`` already stored."""
        keys = list(keys)
        out: dict[tuple, float] = {}
        con = self._conn()
        for s in range(0, len(keys), 300):
            part = keys[s:s + 300]
            cond = " OR ".join("(prompt_hash = ? AND task = ? AND variant = ?)" for _ in part)
            rows = con.execute(f"SELECT prompt_hash, task, variant, value FROM pairs WHERE metric = ? AND backbone = ? "
                               f"AND ({cond})", (metric, backbone, *[x for k in part for x in k])).fetchall()
            out.update({(r[0], r[1], r[2]): float(r[3]) for r in rows})
        if out:
            self._touch_pairs(metric, backbone, list(out))
        return out

    def _touch_pairs(self, metric: str, backbone: str, keys: list[tuple[str, str, str]]) -> None:
        """Mark values read back as used now (the LRU order of :meth:`trim_pairs`). Best effort: a busy
        or read-only store leaves the old time, which only makes those values evicted sooner."""
        now = time.time()
        try:
            with self.write() as c:
                c.executemany("UPDATE pairs SET ts = ? WHERE metric = ? AND backbone = ? AND prompt_hash = ? "
                              "AND task = ? AND variant = ?", [(now, metric, backbone, *k) for k in keys])
        except sqlite3.Error:
            pass

    def put_pair(self, metric: str, backbone: str, prompt_hash: str, task: str, variant: str, value: float) -> None:
        with self.write() as c:
            c.execute("INSERT INTO pairs (metric, backbone, prompt_hash, task, variant, value, ts) "
                      "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(metric, backbone, prompt_hash, task, variant) "
                      "DO UPDATE SET value = excluded.value, ts = excluded.ts",
                      (metric, backbone, prompt_hash, task, variant, float(value), time.time()))
            self.trim_pairs(con=c)

    def trim_pairs(self, cap: int | None = None, con: sqlite3.Connection | None = None) -> int:
        """Delete the least recently used saved values beyond ``cap`` rows (default :func:`pairs_cap`,
        ATLAS_PAIRS_MAX). -> rows deleted. The newest values (the job that is saving) go last."""
        cap = pairs_cap() if cap is None else int(cap)
        with self._tx(con) as c:
            extra = int(c.execute("SELECT COUNT(*) FROM pairs").fetchone()[0]) - cap
            if extra <= 0:
                return 0
            c.execute("DELETE FROM pairs WHERE (metric, backbone, prompt_hash, task, variant) IN "
                      "(SELECT metric, backbone, prompt_hash, task, variant FROM pairs ORDER BY ts LIMIT ?)", (extra,))
            return extra

    def pair_count(self, metric: str | None = None) -> int:
        if metric is None:
            return int(self._read("SELECT COUNT(*) FROM pairs")[0][0])
        return int(self._read("SELECT COUNT(*) FROM pairs WHERE metric = ?", (metric,))[0][0])


def _job_row(r: sqlite3.Row) -> dict:
    d = dict(r)
    if isinstance(d.get("spec"), str):
        d["spec"] = json.loads(d["spec"])
    return d


def _chunks(xs: list, n: int = 500):
    for i in range(0, len(xs), n):
        yield xs[i:i + n]


def _deps_finished(c: sqlite3.Connection, deps: list[str]) -> bool:
    for d in deps:
        row = c.execute("SELECT status FROM runs WHERE run_id = ?", (d,)).fetchone()
        if row is None or row["status"] != "finished":
            return False
    return True


def _row(r: sqlite3.Row) -> dict:
    d = dict(r)
    for k in _JSON_COLS:
        if isinstance(d.get(k), str):
            d[k] = json.loads(d[k])
    if isinstance(d.get("last_metrics"), dict):  # runs recorded before the event names were unified
        d["last_metrics"] = upgrade_metrics(d["last_metrics"])
    return d


def _json_default(o: Any) -> Any:
    try:  # numpy / torch scalars
        return o.item()
    except Exception:
        return str(o)
