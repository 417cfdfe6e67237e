"""TrainConfig, its generated CLI flags and the event names (no training: fast).

    .venv/bin/python -m pytest -q -p no:cacheprovider tests/test_training_config.py
"""
from __future__ import annotations

import dataclasses

import json
import sqlite3
from dataclasses import fields

import pytest

from core.training.cli import OTHER_FLAGS, config_from_args, flag_of, parser, to_argv
from core.training.config import Method, Schedule, TrainConfig, TrainError
from core.training.events import upgrade_metrics

# every flag of `python -m core train` before the flags were generated (README + the old argparse),
# with its default: each must keep its name and default
DOCUMENTED = {
    "--task": None, "--method": "scratch", "--source": None, "--source-weights": None, "--teacher": None,
    "--teacher-mode": "pot", "--student-init": "random", "--kd-lambda": None, "--lambda-mode": "fixed",
    "--beta": 0.1, "--metric-value": None, "--teacher-every-step": False, "--steps": 300, "--batch-size": 16,
    "--lr": 0.03, "--warmup": 0.1, "--schedule": "linear", "--max-norm": None, "--prompt-length": 20,
    "--max-length": 128, "--eval-every": 50, "--train-size": None, "--val-size": None, "--test-size": None,
    "--seed": 0, "--init": "text", "--head": "verbalizer", "--pool": "text", "--tau": 0.05,
    "--padding": "bucket", "--backbone": "sentence-transformers/all-MiniLM-L6-v2", "--device": "auto",
    "--compile": False, "--name": None, "--out": None, "--no-save": False, "--overwrite": False, "--json": False,
    "--baselines": False,
}


def _actions():
    return {opt: a for a in parser()._actions for opt in a.option_strings}


def test_every_field_is_a_flag_and_the_documented_flags_keep_their_defaults():
    actions = _actions()
    dests = {a.dest for a in actions.values()}
    assert {f.name for f in fields(TrainConfig)} <= dests
    # the five that `python -m core train` could not set before
    for flag in ("--weight-decay", "--eval-at-start", "--no-eval-at-start", "--init-text", "--head-lr",
                 "--log-every"):
        assert flag in actions, flag
    for flag, default in DOCUMENTED.items():
        assert flag in actions, f"documented flag {flag} is gone"
        assert actions[flag].default == default, (flag, actions[flag].default)
    assert actions["--task"].required
    # the non-field flags do not shadow a field
    assert not {flag.lstrip("-").replace("-", "_") for flag, _ in OTHER_FLAGS} & {f.name for f in fields(TrainConfig)}


def test_no_flags_give_the_dataclass_defaults():
    args = parser().parse_args(["--task", "sent_tweet"])
    assert config_from_args(args) == TrainConfig(task="sent_tweet")


def test_every_field_round_trips_through_the_flags():
    cfg = TrainConfig(
        method="panda", task="sent_movie", backbone="some/model", prompt_length=8, steps=7, batch_size=4,
        lr=0.5, warmup=3.0, schedule="cosine", max_norm=2.0, weight_decay=0.01, max_length=64, eval_every=0,
        eval_at_start=False, val_size=10, test_size=11, train_size=12, seed=3, init="random_vocab",
        init_text="classify .", head="linear", head_lr=0.2, pool="all", tau=0.1, padding="max_length",
        sources=["/p/a", "/p/b"], source_weights=[1.0, 3.0], teachers=["/p/t", "/p/u"], teacher_weights=[2.0, 1.0],
        teacher_mode="source", student_init="source", kd_lambda=0.25, lambda_mode="metric", beta=0.5,
        metric_value=0.4, teacher_every_step=True, attn_temperature=10.0, attn_dim=8, attn_lr=0.05, device="cpu",
        compile=True, name="x-run", log_every=5)
    defaults = TrainConfig()
    changed = [f.name for f in fields(TrainConfig) if getattr(cfg, f.name) == getattr(defaults, f.name)]
    # teacher (one) and teachers (several) exclude each other: teacher's round trip is the second one; a
    # label-word head excludes the linear head and pool 'all': the lm_* fields' round trip is the third
    assert changed == ["lm_head", "label_words", "lm_scoring", "teacher"], \
        f"the round trip must exercise every field; at default: {changed}"
    argv = to_argv(cfg)
    assert "--no-eval-at-start" in argv and argv.count("--source") == 2 and argv.count("--teachers") == 2
    back = config_from_args(parser().parse_args(argv))
    assert back == cfg
    assert back.settings() == cfg.settings()
    one = dataclasses.replace(cfg, teachers=[], teacher_weights=None, teacher="/p/t")
    back = config_from_args(parser().parse_args(to_argv(one)))
    assert back == one and back.teacher == "/p/t" and back.teachers == []
    lm = dataclasses.replace(cfg, head="verbalizer", pool="text", lm_head="peft-causal", label_words=["no", "yes"],
                             lm_scoring="first_token")
    back = config_from_args(parser().parse_args(to_argv(lm)))
    assert back == lm and back.settings() == lm.settings() and back.label_words == ["no", "yes"]


def test_choices_are_str_enums_that_read_and_write_as_plain_strings():
    cfg = TrainConfig(method="pot", sources=["a"], schedule="cosine")
    assert cfg.method is Method.pot and cfg.method == "pot" and cfg.schedule is Schedule.cosine
    assert f"{cfg.method}" == "pot" and str(cfg.schedule) == "cosine"
    s = cfg.settings()
    assert type(s["method"]) is str and json.loads(json.dumps(s))["schedule"] == "cosine"


@pytest.mark.parametrize("kw, message", [
    (dict(method="nope"), "method 'nope' is not one of scratch, pot, panda"),
    (dict(steps=0), "steps must be >= 1, got 0"),
    (dict(steps="5"), "steps must be a whole number, got '5'"),
    (dict(steps=2.5), "steps must be a whole number, got 2.5"),
    (dict(lr=0), "lr must be > 0, got 0"),
    (dict(head_lr=-1.0), "head_lr must be > 0, got -1.0"),
    (dict(max_norm=0.0), "max_norm must be > 0 (or None), got 0.0"),
    (dict(train_size=0), "train_size must be >= 1 (or None), got 0"),
    (dict(eval_every=-1), "eval_every must be >= 0, got -1"),
    (dict(weight_decay=-0.1), "weight_decay must be >= 0, got -0.1"),
    (dict(eval_at_start="yes"), "eval_at_start must be true or false, got 'yes'"),
    (dict(tau="0.1"), "tau must be a number, got '0.1'"),
    (dict(head="mlp"), "head 'mlp' is not one of verbalizer, linear"),
    (dict(padding="none"), "padding 'none' is not one of bucket, dynamic, max_length"),
    (dict(method="panda", sources=["s"], lambda_mode="metric", teacher="t"), "lambda_mode 'metric' needs metric_value"),
])
def test_validation_names_the_field_and_the_value(kw, message):
    with pytest.raises(TrainError) as e:
        TrainConfig(**kw)
    assert str(e.value) == f"train config: {message}" or str(e.value).startswith(f"train config: {message}")


def test_a_whole_float_from_a_json_spec_is_a_whole_number():
    assert TrainConfig(steps=300.0).steps == 300 and type(TrainConfig(steps=300.0).steps) is int


def test_bad_flag_values_are_refused_by_the_cli(capsys):
    from core.training.cli import cli
    assert cli("train", ["--task", "t", "--steps", "0"]) == 2
    assert "steps must be >= 1, got 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli("train", ["--task", "t", "--schedule", "sawtooth"])  # argparse names the choices
    assert "invalid choice: 'sawtooth'" in capsys.readouterr().err


def test_package_names_are_the_objects_they_name():
    """A name exported by core.training equal to a submodule's would become that module once the
    submodule is imported (``from core.training import evaluate`` returning a module)."""
    import importlib
    import pkgutil
    import types

    import core.training as T
    subs = {m.name for m in pkgutil.iter_modules(T.__path__)}
    assert not subs & set(T.__all__)
    for name in subs:
        importlib.import_module(f"core.training.{name}")
    assert all(not isinstance(getattr(T, n), types.ModuleType) for n in T.__all__)
    assert callable(T.evaluate) and T.train.__module__ == "core.training.loop"


def test_flag_names():
    assert flag_of("sources") == "--source" and flag_of("prompt_length") == "--prompt-length"


# --------------------------------------------------------------------------- events: one name per thing
def test_upgrade_metrics_renames_the_old_event_names():
    old = {"val_acc": 0.7, "best_val_acc": 0.8, "test_acc": 0.75, "init_val_acc": 0.5, "loss": 1.0}
    assert upgrade_metrics(old) == {"val_score": 0.7, "best_val_score": 0.8, "test_score": 0.75,
                                    "init_val_score": 0.5, "loss": 1.0}
    assert old["val_acc"] == 0.7  # the caller's dict is not changed
    assert upgrade_metrics({"val_score": 0.9, "val_acc": 0.1}) == {"val_score": 0.9}  # a new name wins
    assert upgrade_metrics(None) == {}


def test_a_runs_db_written_with_the_old_event_names_still_reads(tmp_path):
    """Rows as a worker before the rename left them (raw SQL, as on disk): the store reads them with
    today's names, so the Runs page's curves and 'best val' column show old and new runs alike."""
    from core.runs.store import RunStore
    db = tmp_path / "runs.db"
    store = RunStore(db)
    store.add_run("r-old", {"method": "scratch", "target": "t", "sources": [], "seed": 0, "params": {"steps": 4}})
    with sqlite3.connect(db) as con:
        for seq, step, acc in ((2, 2, 0.6), (3, 4, 0.7)):
            con.execute("INSERT INTO events (run_id, seq, ts, kind, step, metrics) VALUES (?, ?, ?, ?, ?, ?)",
                        ("r-old", seq, 1.0 + seq, "eval", step, json.dumps({"val_acc": acc, "best_val_acc": acc})))
        con.execute("UPDATE runs SET last_metrics = ? WHERE run_id = ?",
                    (json.dumps({"val_acc": 0.7, "best_val_acc": 0.7, "loss": 0.3}), "r-old"))
    store = RunStore(db)
    evals = store.events("r-old", kinds=["eval"])
    assert [(e["step"], e["metrics"]) for e in evals] == [(2, {"val_score": 0.6, "best_val_score": 0.6}),
                                                         (4, {"val_score": 0.7, "best_val_score": 0.7})]
    assert store.get_run("r-old")["last_metrics"] == {"val_score": 0.7, "best_val_score": 0.7, "loss": 0.3}
    assert [r["last_metrics"].get("best_val_score") for r in store.list_runs()] == [0.7]
    frame = store.events_frame(["r-old"], kinds=["eval"])
    assert frame["val_score"].tolist() == [0.6, 0.7] and "val_acc" not in frame
