"""The core's shape: stages as subpackages in one order, no import cycle, a small public top
level, built-in plugins through the public contracts only, and the 0.1 module paths still
importable (with a DeprecationWarning) for one release."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
import textwrap
import warnings
from collections import defaultdict
from pathlib import Path

import pytest
from conftest import REPO

import wbench

STAGES: tuple[tuple[str, ...], ...] = (
    ("wbench", "errors", "stats", "provenance", "util"),
    ("measures", "budget", "validate", "sections", "metrics"),
    ("data",),
    ("records", "plugin", "executor"),
    ("oracle", "registry"),
    ("train",),
    ("surrogate", "training"),
    ("evaluation",),
    ("testing", "timing"),
    ("run",),
    ("board",),
    ("cli",),
)
"""Lowest first. A module imports only from its own unit or from a unit of a lower stage:
the top-level public contracts and the subpackages are units (``wbench.board.site.pages`` is in
``board``; ``wbench.surrogate`` is its own unit)."""

PUBLIC_TOP_LEVEL = {
    "__init__", "errors", "stats", "provenance", "measures", "budget", "validate", "sections",
    "metrics", "data", "registry", "surrogate", "training", "evaluation", "testing",
}
PUBLIC_PACKAGES = {"metrics"}
"""Public contracts that are packages (``wbench.metrics`` re-exports its submodules' names)."""
PUBLIC_FACES = {"oracle", "executor"}
"""Subpackages whose ``__init__`` is a documented public face (exact W2, parallel maps)."""


def _modules(root: Path) -> dict[str, Path]:
    found = {}
    for path in sorted((root / "wbench").rglob("*.py")):
        name = ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
        found[name] = path
    return found


def _imports(path: Path, known: set[str]) -> set[str]:
    """Every ``wbench`` module that ``path`` imports anywhere: module level, inside functions
    and under ``TYPE_CHECKING`` alike (an import hidden in a function still ties two stages)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                out.add(full if full in known else node.module)
        elif isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
    return {name for name in out if name in known}


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "wbench"


def _graph() -> dict[str, set[str]]:
    modules = _modules(REPO)
    known = set(modules)
    return {name: _imports(path, known) - {name} for name, path in modules.items()}


def test_every_unit_has_a_stage_and_imports_only_downwards() -> None:
    rank = {unit: i for i, stage in enumerate(STAGES) for unit in stage}
    graph = _graph()
    units = {_unit(m) for m in graph}
    assert units <= set(rank), f"units without a stage: {sorted(units - set(rank))}"
    upward = [
        f"{a} -> {b}"
        for a, targets in graph.items()
        for b in targets
        if _unit(a) != _unit(b) and rank[_unit(b)] >= rank[_unit(a)]
    ]
    assert not upward, "imports that do not go to a lower stage:\n" + "\n".join(sorted(upward))


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle_between_modules() -> None:
    assert _cycles(_graph()) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_top_level_holds_the_public_contracts_only() -> None:
    top = {p.stem for p in (REPO / "wbench").glob("*.py")} | PUBLIC_PACKAGES
    assert top == PUBLIC_TOP_LEVEL and len(top) <= 16


def test_built_in_plugins_import_only_public_contracts() -> None:
    allowed = {f"wbench.{name}" for name in PUBLIC_TOP_LEVEL - {"__init__"}} | {f"wbench.{n}" for n in PUBLIC_FACES}
    allowed.add("wbench")
    bad = []
    for path in sorted((REPO / "plugins").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            bad += [f"{path.relative_to(REPO)}: {n}" for n in names if n.split(".")[0] == "wbench" and n not in allowed]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("old", sorted(wbench.MOVED_MODULES))
def test_a_moved_module_path_still_imports_and_warns(old: str) -> None:
    new = importlib.import_module(f"wbench.{wbench.MOVED_MODULES[old]}")
    sys.modules.pop(f"wbench.{old}", None)
    with pytest.warns(DeprecationWarning, match=rf"wbench\.{old} moved to wbench\.{wbench.MOVED_MODULES[old]}"):
        module = importlib.import_module(f"wbench.{old}")
    assert module is new


def test_a_submodule_of_a_moved_package_resolves() -> None:
    from wbench.board.site.build import build_site

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from wbench.site.build import build_site as old

    assert old is build_site


SINGLE_FILE_PLUGIN = '''
"""A plugin written against the wbench 0.1 README: old module paths, FitReport, params=."""
import torch

from wbench import hookimpl
from wbench.checkpoint import active_hooks
from wbench.params import declared_params
from wbench.surrogate import EmbeddingSurrogate, FitReport, with_grid_shape
from wbench.training import train_on_pairs


class Pixels(EmbeddingSurrogate):
    input_kind = "grid"

    def __init__(self, *, hidden=4, grid_shape=(8, 8)):
        super().__init__(hidden=hidden, grid_shape=grid_shape)
        self.model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, hidden))

    @classmethod
    def params_for(cls, params, measures):
        return with_grid_shape(cls, params, measures)

    def embed(self, x):
        return self.model(x.weights.reshape(-1, 1, 8, 8))

    def fit(self, train, val, budget):
        assert active_hooks() is None or active_hooks() is not None
        report = train_on_pairs(self, train, val, budget)
        assert isinstance(report, FitReport)
        return report


@hookimpl
def wbench_register_surrogates(registry):
    assert declared_params(Pixels)["hidden"] == 4
    registry.add_surrogate("pixels-01", f"{__name__}:Pixels", params={"hidden": 3}, test_params={"hidden": 2})
'''


def test_a_single_file_plugin_written_for_0_1_runs_unchanged(tmp_path: Path) -> None:
    """Registers (deprecated ``params=`` and old module paths warn, nothing breaks), fits on
    the bundled digits through ``wbench run``, and writes an ``ok`` record."""
    plugin = tmp_path / "old_plugin.py"
    plugin.write_text(textwrap.dedent(SINGLE_FILE_PLUGIN))
    out = tmp_path / "run"
    suite = tmp_path / "tiny.toml"
    suite.write_text(textwrap.dedent("""
        [suite]
        name = "tiny"
        seeds = [0]
        [budget]
        steps = 10
        batch_size = 16
        [evaluation]
        independent_pairs = 64
        pairwise_size = 16
        exact_independent_pairs = 16
        exact_pairwise_size = 4
        timing_rounds = 1
        min_round_s = 0.0
        direct_n = [4]
        speedup_sides = ["one_core"]
        plots = false
        options = { n_queries = 5, n_database = 15, k = 3, n_triplets = 50 }
        [[datasets]]
        name = "digits"
        params = { pairs_per_combination = 2, n_images = 100 }
        [[surrogates]]
        name = "pixels-01"
    """))
    cmd = [sys.executable, "-W", "default::DeprecationWarning", "-m", "wbench.cli", "--plugin", str(plugin),
           "run", str(suite), "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "wbench.checkpoint moved to wbench.train.checkpoint" in done.stderr
    assert "params= keyword of add_surrogate is deprecated" in done.stderr
    records = (out / "records.jsonl").read_text().splitlines()
    assert len(records) == 1 and '"status": "ok"' in records[0]


def test_stage_graph_has_no_unit_edges_left_unexplained() -> None:
    """Sanity of the checker itself: it sees the known downward edges."""
    edges = defaultdict(set)
    for a, targets in _graph().items():
        for b in targets:
            edges[_unit(a)].add(_unit(b))
    assert "train" in edges["surrogate"] and "surrogate" in edges["run"] and "run" in edges["board"]


def test_no_core_module_over_400_lines_and_no_function_over_60() -> None:
    long_modules = [f"{p.relative_to(REPO)}: {n}" for p in sorted((REPO / "wbench").rglob("*.py"))
                    if (n := len(p.read_text().splitlines())) > 400]
    long_functions = [
        f"{p.relative_to(REPO)}:{node.name}: {node.end_lineno - node.lineno + 1}"
        for p in sorted((REPO / "wbench").rglob("*.py"))
        for node in ast.walk(ast.parse(p.read_text()))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno + 1 > 60
    ]
    assert not long_modules and not long_functions, long_modules + long_functions
