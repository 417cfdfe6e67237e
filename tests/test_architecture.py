"""The import graph of core/, read from the source with ast: one-way arrows, no Streamlit, torch kept out
of the torch-free parts.

    .venv/bin/python -m pytest -q -p no:cacheprovider tests/test_architecture.py -s   (-s prints the cycles)

Every import counts, the ones inside functions included (a function-level import that closes a
circle is the same tangle, deferred). core/__main__ dispatches by module-name strings: its COMMANDS
table is read as edges too.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[1] / "core"

# Known cycles, as the exact import edges that close them (a back-edge from a lower layer to a higher one).
# The check drops these edges and then wants no cycle at all; an entry whose edge is gone or no longer
# closes a cycle fails the test, so remove it when the cycle is fixed. None left: core/runs/ is
# store <- spec <- sweeps / worker <- capacity <- local, ray_jobs <- queue <- cli, and `sweep --target`
# reaches core.ranking from core.runs.cli only (ranking imports the queue, never the cli).
ALLOWED_BACK_EDGES: set[tuple[str, str]] = set()

# Modules that must not import torch at module level, directly or through what they import
# (package __init__ files included, since importing a submodule runs them).
TORCH_FREE = ["core.metrics", "core.metrics.validation", "core.metrics.measured", "core.metrics.clustering",
              "core.metrics.cache", "core.results", "core.headline", "core.blocks", "core.fsutil", "core.tasks",
              "core.tasks.registry"]
TORCH_FREE += ["core.training.events", "core.training.trainable", "core.training.config", "core.runs.spec"]  # read by the run store and the pages
TORCH_FREE += ["core.fmt", "core.mapview", "core.estimate", "core.runs.store", "core.evidence"]  # what the pages format and read


def module_name(path: Path, core: Path = CORE) -> str:
    parts = path.relative_to(core.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def all_modules(core: Path = CORE) -> dict[str, Path]:
    return {module_name(p, core): p for p in sorted(core.rglob("*.py"))}


def _target(name: str, modules: dict[str, Path]) -> str | None:
    """The core module an imported dotted name lands in (a name inside a module -> that module)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(mod: str, path: Path, modules: dict[str, Path], *, top_level_only: bool = False):
    """(imported dotted name, line) for every import in the file; relative imports resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    nodes = _top_level_imports(tree) if top_level_only else ast.walk(tree)
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    for node in nodes:
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            for a in node.names:  # `from core import tasks` imports the module core.tasks
                full = f"{base}.{a.name}"
                yield (full if full in modules else base), node.lineno


def _top_level_imports(tree: ast.Module):
    """Imports that run when the module is imported: module body, incl. inside if/try/with at top level
    (not inside functions or classes' methods)."""
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, (ast.If, ast.Try, ast.With, ast.ClassDef)):
            for field in ("body", "orelse", "finalbody", "handlers"):
                for child in getattr(node, field, []):
                    stack.extend(child.body if isinstance(child, ast.ExceptHandler) else [child])


def main_dispatch(modules: dict[str, Path]) -> set[str]:
    """core/__main__'s COMMANDS table: command -> (module name string, help)."""
    tree = ast.parse((CORE / "__main__.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        if any(getattr(t, "id", None) == "COMMANDS" for t in targets):
            table = ast.literal_eval(node.value)
            return {_target(mod, modules) for mod, _help in table.values()} - {None}
    raise AssertionError("core/__main__.py has no COMMANDS table")


def graph(*, top_level_only: bool = False) -> dict[str, set[str]]:
    modules = all_modules()
    edges = {m: set() for m in modules}
    for mod, path in modules.items():
        for name, _line in imports_of(mod, path, modules, top_level_only=top_level_only):
            t = _target(name, modules)
            if t and t != mod:
                edges[mod].add(t)
    if not top_level_only:
        edges["core.__main__"] |= main_dispatch(modules)
    return edges


def strongly_connected(edges: dict[str, set[str]]) -> list[frozenset[str]]:
    """Tarjan's algorithm; components of more than one module (self-imports are dropped above)."""
    index, low, on_stack, stack, out = {}, {}, set(), [], []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(frozenset(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def torch_chain(start: str, core: Path = CORE) -> list[str] | None:
    """Shortest chain of module-level imports from ``start`` to torch, or None. Importing a submodule
    runs its parent packages' __init__ first, so those are followed too."""
    modules = all_modules(core)
    prev, queue = {start: None}, [start]
    while queue:
        mod = queue.pop(0)
        names = [n for n, _ in imports_of(mod, modules[mod], modules, top_level_only=True)]
        if any(n == "torch" or n.startswith("torch.") for n in names):
            chain = [mod]
            while prev[chain[-1]]:
                chain.append(prev[chain[-1]])
            return chain[::-1] + ["torch"]
        parents = [mod.rsplit(".", i)[0] for i in range(1, mod.count("."))]
        for t in [_target(n, modules) for n in names] + parents:
            if t and t not in prev:
                prev[t] = mod
                queue.append(t)
    return None


# --------------------------------------------------------------------------- the checks
def test_no_streamlit_in_core():
    modules = all_modules()
    bad = [f"{path.relative_to(CORE.parent)}:{line} imports {name}"
           for mod, path in modules.items() for name, line in imports_of(mod, path, modules)
           if name == "streamlit" or name.startswith("streamlit.")]
    assert not bad, "core/ is a plain library; Streamlit belongs in app.py and pages/:\n" + "\n".join(bad)


def reaches(edges: dict[str, set[str]], a: str, b: str) -> bool:
    seen, stack = {a}, [a]
    while stack:
        for w in edges.get(stack.pop(), ()):
            if w == b:
                return True
            if w not in seen:
                seen.add(w)
                stack.append(w)
    return False


def test_no_import_cycles_but_the_listed_ones():
    edges = graph()
    print("\nimport cycles in core/ (strongly connected components, every import counted):")
    for comp in strongly_connected(edges):
        print("  " + " <-> ".join(sorted(comp)))
    pruned = {m: {t for t in ts if (m, t) not in ALLOWED_BACK_EDGES} for m, ts in edges.items()}
    new = [sorted(c) for c in strongly_connected(pruned)]
    assert not new, f"import cycles in core/ (one-way arrows only): {new}"
    stale = sorted((a, b) for a, b in ALLOWED_BACK_EDGES if b not in edges.get(a, ()) or not reaches(pruned, b, a))
    assert not stale, f"ALLOWED_BACK_EDGES lists edges that no longer close a cycle: remove {stale}"


def test_cycle_finder_sees_function_level_imports_and_main_dispatch():
    """The checks above are only as good as the graph: imports inside functions and the string
    dispatch of core/__main__ must be edges."""
    edges = graph()
    assert "core.ranking" in edges["core.runs.cli"]  # `sweep --target`: imported inside a function only
    assert "core.runs.capacity" in edges["core.demo.build"]  # cpu_packing, imported inside a function only
    assert {"core.tasks", "core.jobs", "core.training.cli", "core.runs.cli"} <= edges["core.__main__"]
    assert "core.tasks.types" in edges["core.tasks.registry"]
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [frozenset("abc")]


# What running SQL looks like: a statement, a cursor call, a raw transaction, the store's private helpers.
SQL_SIGNS = re.compile(r"\.execute(many|script)?\(|\b(SELECT|INSERT INTO|UPDATE \w+ SET|DELETE FROM)\b|"
                       r"\._read\(|\._insert_event\(|\._tx\(|\.write\(\)\s+as\b|\bsqlite3\b")
RUN_STORE = CORE / "runs" / "store.py"


def sql_lines(path: Path) -> list[str]:
    return [f"{path.relative_to(CORE.parent)}:{i}: {line.strip()}"
            for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if SQL_SIGNS.search(line)]


def test_only_the_run_store_speaks_sql():
    """core/runs/store.py owns every SQL statement of runs.db (claims, Ray submissions, the dispatcher's
    meta row, event inserts); launchers and pages call its public methods."""
    files = sorted(CORE.rglob("*.py")) + sorted((CORE.parent / "pages").glob("*.py")) + [CORE.parent / "app.py"]
    bad = [hit for f in files if f != RUN_STORE for hit in sql_lines(f)]
    assert not bad, "SQL outside core/runs/store.py:\n" + "\n".join(bad)
    assert len(sql_lines(RUN_STORE)) > 20  # the pattern does see SQL where it is


@pytest.mark.parametrize("mod", TORCH_FREE)
def test_torch_free_parts_do_not_import_torch_at_module_level(mod):
    assert mod in all_modules(), f"{mod} is listed as torch-free but does not exist: update TORCH_FREE"
    chain = torch_chain(mod)
    assert chain is None, f"{mod} imports torch at module level: {' -> '.join(chain)}"


def test_torch_chain_finds_a_real_chain(tmp_path):
    """The torch check can fail: the activation metrics import torch at module level, and a chain through
    other modules and through a parent package's __init__ is followed; an import inside a function is not."""
    assert torch_chain("core.metrics.activations") == ["core.metrics.activations", "torch"]
    assert torch_chain("core.metrics.prompt_space") == ["core.metrics.prompt_space", "torch"]
    assert torch_chain("core.tasks.registry") is None
    fake = tmp_path / "core"
    for rel, text in {"__init__.py": "", "a.py": "from core import b\n", "b.py": "import torch.nn as nn\n",
                      "pkg/__init__.py": "try:\n    import torch\nexcept ImportError:\n    pass\n",
                      "pkg/c.py": "", "d.py": "def f():\n    import torch\n"}.items():
        (fake / rel).parent.mkdir(parents=True, exist_ok=True)
        (fake / rel).write_text(text)
    assert torch_chain("core.a", fake) == ["core.a", "core.b", "torch"]
    assert torch_chain("core.pkg.c", fake) == ["core.pkg.c", "core.pkg", "torch"]
    assert torch_chain("core.d", fake) is None
