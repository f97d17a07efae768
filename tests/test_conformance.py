"""Every registered plugin passes wbench's conformance checks with its test parameters."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

import wbench
from wbench.plugin.manager import make_plugin_manager
from wbench.run.suite import load_suite
from wbench.testing import check_dataset, check_surrogate, toy_dataset

REGISTRY = make_plugin_manager().registry
NEEDS_FILES = {"mnist": "WBENCH_MNIST_ROOT"}
SUITES = Path(wbench.__file__).parent / "suites"
OWN_SIZE = {s.name for path in sorted(SUITES.glob("*.toml")) for s in load_suite(path).surrogates if not s.match_budget}
"""Methods the built-in suites run at their own size (``match_budget = false``): no width needed."""

# Surrogates behind an optional extra: surrogate name -> (the module the extra installs, the extra).
OPTIONAL_EXTRAS = {"wormhole": ("wassersteinwormhole", "wormhole")}


def missing_extra(name: str) -> str | None:
    """The extra that ``name`` needs and that is not installed, or None."""
    module, extra = OPTIONAL_EXTRAS.get(name, (None, None))
    if module is None or importlib.util.find_spec(module) is not None:
        return None
    return extra


@pytest.fixture(scope="module")
def toy_grid():
    return toy_dataset()


@pytest.fixture(scope="module")
def toy_cloud():
    return toy_dataset(point_clouds=True)


@pytest.mark.parametrize("name", REGISTRY.names("surrogate"))
def test_surrogate_conforms(name, toy_grid, toy_cloud) -> None:
    extra = missing_extra(name)
    if extra:
        pytest.skip(f"{name} needs the optional extra: pip install 'wbench[{extra}]'")
    entry = REGISTRY.get("surrogate", name)
    cls = entry.load()
    dataset = toy_cloud if cls.input_kind == "cloud" else toy_grid
    check_surrogate(cls, entry.test_params, dataset, match_budget=name not in OWN_SIZE)


@pytest.mark.parametrize("name", REGISTRY.names("dataset"))
def test_dataset_conforms(name) -> None:
    variable = NEEDS_FILES.get(name)
    if variable and not os.environ.get(variable):
        pytest.skip(f"{name} needs its files: set {variable}")
    entry = REGISTRY.get("dataset", name)
    check_dataset(entry.load(), entry.test_params)


@pytest.mark.parametrize("name", REGISTRY.names("metric"))
def test_metric_is_importable_and_documented(name) -> None:
    function = REGISTRY.get("metric", name).load()
    assert callable(function) and (function.__doc__ or "").strip(), f"metric {name} needs a docstring"


def test_every_builtin_plugin_loads() -> None:
    broken = [(i.name, i.error) for i in make_plugin_manager().infos if i.status != "ok"]
    assert not broken
    for kind in ("surrogate", "dataset", "metric"):
        for entry in REGISTRY.entries(kind):
            if kind == "surrogate" and missing_extra(entry.name):
                continue  # listed unavailable, naming its install command (tests/test_wormhole.py)
            assert entry.status() == (True, ""), (entry.name, entry.status())
            assert entry.description, f"{kind} {entry.name} needs a description"
