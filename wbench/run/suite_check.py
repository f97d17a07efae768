"""Check a suite against the registered plugins before any compute.

Parsing (:mod:`wbench.run.suite`) checks a suite on its own: keys, types, sizes. This module
checks what needs the plugins: every method's and dataset's parameters against those the
plugin class declares (:func:`wbench.plugin.params.declared_params`, the single source; a class
that declares none is not checked), the
evaluation settings against a method's ``default_eval_params``, each dataset's parameters
by constructing it (cheap: datasets build their measures in ``build()``), and the ranking
metric against the metric columns wbench knows. Every error names the suite key.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from wbench.errors import PluginError, SuiteError, WbenchError
from wbench.plugin.registry import Registry
from wbench.records.columns import (  # noqa: F401 (re-exported)
    SPLITS,
    UnknownMetricError,
    check_primary,
    known_metric_columns,
    pair_metric_columns,
)
from wbench.run.suite import Suite


def _check_keys(given: Mapping[str, Any], declared: Iterable[str], what: str, where: str) -> None:
    """Refuse keys of ``given`` not in ``declared``; a class that declares no parameter at all
    (a plugin reading ``self.params`` itself) is not checked: it has no declaration to check against."""
    allowed = sorted(declared)
    if not allowed:
        return
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise SuiteError(
            f"{where}: {what} has no parameter {unknown[0]!r}; its parameters: {', '.join(allowed) or '(none)'}"
        )


def _load(registry: Registry, kind: Any, name: str) -> type | None:
    """The class registered as ``name`` (None when its plugin is unavailable: that cell is
    recorded ``unavailable`` instead); an unknown name raises, listing the known ones."""
    entry = registry.get(kind, name)
    try:
        return entry.load()
    except PluginError:
        return None


def check_dataset_params(registry: Registry, name: str, params: Mapping[str, Any], where: str) -> None:
    """Refuse parameters the dataset ``name`` does not declare or refuses at construction."""
    from wbench.plugin.params import declared_params

    cls = _load(registry, "dataset", name)
    if cls is None:
        return
    defaults = declared_params(cls)
    _check_keys(params, defaults, f"dataset {name!r}", where)
    try:
        dataset = cls(**{**defaults, **params})
    except (TypeError, ValueError) as exc:
        raise SuiteError(f"{where}: dataset {name!r} rejects its parameters {dict(params)}: {exc}") from exc
    _preflight(dataset, name, where)


def _preflight(dataset: Any, name: str, where: str) -> None:
    """Run the dataset's optional ``preflight()`` (cheap checks of what ``build()`` needs, such
    as data files), so that a missing input stops the run before any work or any write."""
    preflight = getattr(dataset, "preflight", None)
    if not callable(preflight):
        return
    try:
        preflight()
    except (WbenchError, OSError, ValueError) as exc:
        raise SuiteError(f"{where}: dataset {name!r} cannot be built: {exc}") from exc


def _width_names(cls: type, declared: Mapping[str, Any]) -> set[str]:
    """The parameters of a method class that set a layer width: its ``width_param`` and any
    declared ``width`` or ``*_width`` keyword."""
    names = {key for key in declared if key == "width" or key.endswith("_width")}
    width_param = getattr(cls, "width_param", None)
    if isinstance(width_param, str):
        names.add(width_param)
    return names


def check_width_params(cls: type, params: Mapping[str, Any], declared: Mapping[str, Any], where: str) -> None:
    """Refuse a width parameter (see :func:`_width_names`) that is not a positive integer."""
    for key in sorted(_width_names(cls, declared) & set(params)):
        value = params[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise SuiteError(f"{where}.{key}: a width must be a positive integer, got {type(value).__name__} {value!r}")


def check_surrogate_params(
    registry: Registry, name: str, params: Mapping[str, Any], evals: Iterable[Mapping[str, Any]], where: str
) -> None:
    """Refuse fit-time parameters the method ``name`` does not declare (keywords of its
    ``__init__``) and evaluation settings not in its ``default_eval_params``."""
    from wbench.plugin.params import declared_params

    cls = _load(registry, "surrogate", name)
    if cls is None:
        return
    declared = declared_params(cls)
    _check_keys(params, declared, f"method {name!r}", f"{where}.params")
    check_width_params(cls, params, declared, f"{where}.params")
    eval_known = getattr(cls, "default_eval_params", {}) or {}
    for k, setting in enumerate(evals):
        if setting and not eval_known:
            raise SuiteError(f"{where}.eval[{k}]: method {name!r} has no evaluation-time parameters; got {dict(setting)}")
        _check_keys(setting, eval_known, f"method {name!r} (evaluation settings)", f"{where}.eval[{k}]")


def check_suite(suite: Suite, registry: Registry) -> None:
    """Check every name and parameter of ``suite`` against ``registry``; see the module doc.

    :raises SuiteError: naming the suite key of the first bad parameter.
    :raises wbench.errors.UnknownNameError: an unregistered method, dataset or metric.
    """
    source = suite.source or "<suite>"
    for i, spec in enumerate(suite.datasets):
        check_dataset_params(registry, spec.name, spec.params, f"{source}: datasets[{i}] ({spec.name}).params")
        for j, target in enumerate(spec.transfer_to):
            check_dataset_params(
                registry, target.name, target.params, f"{source}: datasets[{i}].transfer_to[{j}] ({target.name}).params"
            )
    for i, s in enumerate(suite.surrogates):
        check_surrogate_params(registry, s.name, s.params, s.eval, f"{source}: surrogates[{i}] ({s.name})")
    registry.get("surrogate", suite.evaluation.speedup_reference)  # must be a registered surrogate
    for name in suite.evaluation.metrics or ():
        registry.get("metric", name)
