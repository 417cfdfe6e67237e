"""Warm a freshly started server before its first visitor, in a background thread.

    streamlit run serve.py        (what `make run` does: serve.py calls start() when the server starts)
    .venv/bin/python -c "from pages._warm import warm; print(warm())"    (timings, no server)

A cold server makes its first visitor pay for everything the process has not done yet: importing
pandas, plotly, scipy and torch (the metrics compute in torch), plotly's lazily loaded figure
validators, and reading every prompt of the library. At 1,000 prompts that is ~2.8 s of server CPU
on the first visit to the Transferability page against ~0.3 s on the second (bench/page_scale.py).
``warm`` does that work once when the server starts, into the same module table and the same
``st.cache_resource`` the pages read, so a first visit costs what a second one does.

What is warmed is read from the pages themselves (their module-level imports), so a page that
starts importing something heavy is warmed without touching this file. Nothing here changes what a
page shows: a page opened during the warm-up waits on the same import lock / cache entry instead of
doing the work twice. A failure is logged and never stops the server.
"""
from __future__ import annotations

import ast
import gc
import importlib
import logging
import threading
import time
from pathlib import Path

from streamlit.logger import get_logger

PAGES = Path(__file__).resolve().parent
# imported inside functions by core (so a torch-free page stays torch-free when it is the only one
# served), but every heatmap, metric and training page needs them: warm them too
LAZY = ("torch", "scipy.cluster.hierarchy", "plotly.io", "plotly.express")

_LOG = get_logger("atlas.warm")  # streamlit's handler and level: `make run` shows the one INFO line
_started: threading.Thread | None = None
_lock = threading.Lock()


def page_imports(pages_dir: Path = PAGES) -> list[str]:
    """Every module a page or page helper may import at module level (top-level statements only), in
    file order, deduplicated; ``from m import x`` gives ``m`` and ``m.x`` (x may be a submodule).
    Streamlit and the pages package itself are left out."""
    out: dict[str, None] = {}
    for f in sorted(pages_dir.glob("*.py")):
        tree = ast.parse(f.read_text(encoding="utf-8"), filename=str(f))
        for node in tree.body:
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                # `from core import blocks` imports the submodule core.blocks; `from core.config import
                # demo_dir` names an attribute: both are tried, a name that is not a module is skipped
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names if a.name != "*")]
            else:
                continue
            for name in names:
                if name.split(".")[0] not in ("streamlit", "pages", "__future__"):
                    out.setdefault(name, None)
    return list(out)


def _plotly_figure() -> None:
    """plotly loads each trace's validators on first use: build and serialise the traces the pages draw."""
    import plotly.graph_objects as go

    fig = go.Figure([go.Heatmap(z=[[0.0, 1.0], [1.0, 0.0]]), go.Scatter(x=[0], y=[0], mode="markers"),
                     go.Bar(x=[0], y=[0])])
    fig.to_json()


def warm(*, freeze: bool = True) -> dict[str, float]:
    """Do the first visit's one-off work now. Returns seconds per step (``imports``, ``plotly``,
    ``library`` with the prompt count as ``prompts``); a step that fails is logged and skipped.

    freeze: gc.freeze() what exists afterwards (see below); False in tests that share a process."""
    took: dict[str, float] = {}

    def step(name, fn):
        t0 = time.perf_counter()
        try:
            out = fn()
        except Exception as e:  # noqa: BLE001 -- warming is an optimisation: never fatal
            _LOG.warning("warm-up step %s failed: %s", name, e)
            return None
        took[name] = round(time.perf_counter() - t0, 3)
        return out

    def imports():
        for name in [*page_imports(), *LAZY]:
            try:
                importlib.import_module(name)
            except ModuleNotFoundError:  # an attribute (`from m import f`) or an optional extra: nothing to warm
                pass
            except Exception as e:  # noqa: BLE001 -- a broken module: its page will say so; warm the others
                _LOG.warning("warm-up: importing %s failed: %s", name, e)

    step("imports", imports)
    step("plotly", _plotly_figure)

    def library():
        from pages._shared import warm_default_library

        # the cached function is called outside a session, which streamlit reports once per call
        # ("missing ScriptRunContext ... can be ignored"): expected here, so not logged
        quiet = logging.getLogger("streamlit.runtime.scriptrunner_utils.script_run_context")
        level = quiet.level
        quiet.setLevel(logging.ERROR)
        try:
            return warm_default_library()
        finally:
            quiet.setLevel(level)

    n = step("library", library)
    if n is not None:
        took["prompts"] = n
    # Streamlit runs a full gc.collect(2) after every script run (runner.postScriptGC); with torch,
    # pandas and plotly loaded that walks ~280k long-lived objects: 0.1 s alone, 0.4 s in the server
    # (py-spy, first visit). gc.freeze() moves what exists now (modules, the library index) out of
    # every later collection (measured: 0.11 s -> 10 us); reference counting still frees them.
    if freeze:
        gc.freeze()
    said = [f"{k} {v:.2f} s" + (f" ({took['prompts']} prompts)" if k == "library" else "")
            for k, v in took.items() if k != "prompts"]
    _LOG.info("Prompt Atlas warmed: %s", ", ".join(said))
    return took


def start() -> threading.Thread:
    """Start the one warm-up thread of this process (later calls return the same thread)."""
    global _started
    with _lock:
        if _started is None:
            _started = threading.Thread(target=warm, name="atlas-warm", daemon=True)
            _started.start()
        return _started
