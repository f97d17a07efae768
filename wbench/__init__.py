"""wbench: a benchmark harness for learned Wasserstein-2 surrogates.

The public surface is small: ``hookimpl`` to write plugins, the typed containers in
:mod:`wbench.measures` and :mod:`wbench.data`, the surrogate base classes in
:mod:`wbench.surrogate`, the registry in :mod:`wbench.registry`, the training helpers in
:mod:`wbench.training`, and the conformance kit in :mod:`wbench.testing` (the README's
Architecture section lists the rest). Nothing is imported or registered at import time.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from types import ModuleType

import pluggy

__version__ = "0.1.0"

PROJECT_NAME = "wbench"
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
"""Marker for plugin hook implementations: decorate ``wbench_register_*`` functions."""

__all__ = ["PROJECT_NAME", "__version__", "hookimpl"]

MOVED_MODULES: dict[str, str] = {
    "atomic": "util.atomic",
    "filenames": "util.filenames",
    "progress": "util.progress",
    "params": "plugin.params",
    "hookspecs": "plugin.hookspecs",
    "plugins": "plugin.manager",
    "saved_models": "plugin.saved_models",
    "executor_dask": "executor.dask",
    "_dask": "executor._dask",
    "lp": "oracle.lp",
    "supports": "oracle.supports",
    "cache": "oracle.cache",
    "groundtruth": "oracle.groundtruth",
    "exact_blocks": "oracle.exact_blocks",
    "fit_report": "train.report",
    "checkpoint": "train.checkpoint",
    "milestone_loop": "train.milestones",
    "frozen": "train.frozen",
    "sizing": "train.sizing",
    "rounds": "timing.rounds",
    "throughput": "timing.throughput",
    "costmodel": "timing.costmodel",
    "roofline": "timing.roofline",
    "gpurun": "timing.gpurun",
    "suite": "run.suite",
    "suite_check": "run.suite_check",
    "run_options": "run.options",
    "runlock": "run.lock",
    "runner": "run.runner",
    "cell": "run.cell",
    "cell_milestones": "run.cell_milestones",
    "cluster_task": "run.cluster_task",
    "record_frame": "board.frame",
    "plots": "board.plots",
    "columns": "records.columns",
    "leaderboard": "board.leaderboard",
    "learning_curves": "board.learning_curves",
    "site": "board.site",
    "cli_prepare": "cli.prepare",
    "cli_retime": "cli.retime",
}
"""Module paths of wbench 0.1 that moved into the stage subpackages (``wbench.<old>`` ->
``wbench.<new>``). Importing an old path still works for one release and warns
(:class:`DeprecationWarning`); see CHANGELOG.md."""


class _MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves ``wbench.<old>`` (and ``wbench.<old>.<sub>``) to the module's new home."""

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> importlib.machinery.ModuleSpec | None:
        if _new_name(fullname) is None:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        new = _new_name(spec.name)
        warnings.warn(
            f"{spec.name} moved to {new}; the old path goes away in the next release",
            DeprecationWarning,
            stacklevel=2,
        )
        return importlib.import_module(new)

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: :meth:`create_module` returned the imported new module."""


def _new_name(fullname: str) -> str | None:
    """The new dotted name of an old ``wbench.`` module path, or None if it did not move."""
    prefix, _, rest = fullname.partition(".")
    if prefix != PROJECT_NAME or not rest:
        return None
    head, _, tail = rest.partition(".")
    if head not in MOVED_MODULES:
        return None
    return f"{PROJECT_NAME}.{MOVED_MODULES[head]}" + (f".{tail}" if tail else "")


if not any(isinstance(f, _MovedModuleFinder) for f in sys.meta_path):
    sys.meta_path.insert(0, _MovedModuleFinder())
