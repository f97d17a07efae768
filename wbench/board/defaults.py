"""The "not the authors' defaults" flag: a record's hyper-parameters against those its
method's plugin declares as its authors' (``Surrogate.authors_defaults``)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from wbench.records.store import Record

NOT_DEFAULTS = "not the authors' defaults"


def _find_key(tree: Any, name: str) -> Any:
    """The value of the first key ``name`` in the nested mappings ``tree`` (breadth first), or None."""
    level = [tree]
    while level:
        deeper = []
        for node in level:
            if isinstance(node, Mapping):
                if name in node:
                    return node[name]
                deeper.extend(node.values())
        level = deeper
    return None


def record_parameter(record: Record, name: str) -> Any:
    """The value ``record`` used for hyper-parameter ``name``: its method parameters, then its
    budget (``lr``, ``batch_size``), then its model's description at any depth (None: not stored)."""
    if name in (record.method_params or {}):
        return record.method_params[name]
    if name in (record.budget or {}):
        return record.budget[name]
    return _find_key(record.outcome.describe if record.outcome else {}, name)


def _same(used: Any, default: Any) -> bool:
    if isinstance(used, int | float) and isinstance(default, int | float):
        return math.isclose(float(used), float(default), rel_tol=1e-9)
    return used == default


def _shown(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def differing_defaults(record: Record, defaults: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """(name, used, authors' value) for each declared default the record stored another value
    for, in declaration order; a parameter the record does not store is not compared."""
    out = []
    for name, default in defaults.items():
        used = record_parameter(record, name)
        if used is not None and not _same(used, default):
            out.append((name, used, default))
    return out


def defaults_text(differing: Sequence[tuple[str, Any, Any]]) -> str:
    """``"not the authors' defaults: emb_dim 32 (128), lr 0.001 (0.0001)"`` ("" when none differ)."""
    if not differing:
        return ""
    return f"{NOT_DEFAULTS}: " + ", ".join(f"{n} {_shown(u)} ({_shown(d)})" for n, u, d in differing)


def registered_defaults(methods: Sequence[str], registry: Any = None) -> dict[str, Mapping[str, Any]]:
    """Method name -> its class's ``authors_defaults`` (default registry: the installed
    plugins'); a method that cannot be loaded, or declares nothing, is left out."""
    if registry is None:
        from wbench.plugin.manager import make_plugin_manager

        registry = make_plugin_manager().registry
    found: dict[str, Mapping[str, Any]] = {}
    for name in sorted(set(methods)):
        try:
            declared = dict(getattr(registry.get("surrogate", name).load(), "authors_defaults", {}) or {})
        except Exception:  # an uninstalled or broken plugin: nothing to compare with
            continue
        if declared:
            found[name] = declared
    return found


def with_defaults_flags(frame: pd.DataFrame, records: Sequence[Record], registry: Any = None) -> pd.DataFrame:
    """``frame`` (one row per record, column ``key``) with a ``not_defaults`` column: each
    record's :func:`defaults_text` against its method's declared authors' defaults."""
    if frame.empty:
        return frame
    declared = registered_defaults([r.method for r in records], registry)
    texts = {r.key: defaults_text(differing_defaults(r, declared[r.method])) if r.method in declared else ""
             for r in records}
    return frame.assign(not_defaults=[texts.get(k, "") for k in frame["key"]])
