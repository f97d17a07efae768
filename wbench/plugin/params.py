"""Parameters declared once, on the plugin class: read its defaults without building it.

A dataset class declares every parameter and its default in ``defaults`` (see
``wbench_plugins.datasets``); a surrogate class declares its fit-time parameters as keyword
arguments of ``__init__`` with defaults, and its evaluation-time ones in
``default_eval_params``. The registry and ``wbench list`` read them from here.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterable, Mapping
from typing import Any

from wbench.errors import WbenchError


def declared_params(cls: type) -> dict[str, Any]:
    """The parameters a plugin class declares, with their defaults.

    A class's ``defaults`` mapping when it has a non-empty one; else the keyword arguments
    with defaults of ``__init__``, following ``**kwargs`` up the base classes (a subclass's
    default wins over its base's).

    :param cls: a surrogate or dataset class (not an instance).
    :returns: parameter name -> default value (a new dict).
    """
    if not isinstance(cls, type):
        raise TypeError(f"declared_params needs a class, got {type(cls).__name__} {cls!r}")
    defaults = getattr(cls, "defaults", None)
    if isinstance(defaults, Mapping) and defaults:
        return dict(defaults)
    found: dict[str, Any] = {}
    for klass in cls.__mro__:
        if klass is object:
            break
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        passes_on = False
        for param in list(inspect.signature(init).parameters.values())[1:]:
            if param.kind is inspect.Parameter.VAR_KEYWORD:
                passes_on = True
            elif param.kind is not inspect.Parameter.VAR_POSITIONAL and param.default is not param.empty:
                found.setdefault(param.name, param.default)
        if not passes_on:
            break
    return found


class AssignmentError(WbenchError, ValueError):
    """A ``KEY=VALUE`` option is malformed."""


def parse_value(text: str) -> Any:
    """``text`` parsed as JSON when it is valid JSON (numbers, true/false/null, lists,
    objects, quoted strings), else the text itself as a string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_assignments(items: Iterable[str] | None) -> dict[str, Any]:
    """Turn ``["KEY=VALUE", ...]`` into a dict; values go through :func:`parse_value`.

    ``n=5`` -> ``{"n": 5}``; ``blur=0.05`` -> 0.05; ``flag=true`` -> True;
    ``sizes=[1,2]`` -> ``[1, 2]``; ``family=1d`` -> ``"1d"``; ``name="007"`` -> ``"007"``.
    A later assignment of the same key wins.

    :raises AssignmentError: an item without ``=`` or with an empty key.
    """
    out: dict[str, Any] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise AssignmentError(f"expected KEY=VALUE, got {item!r}")
        out[key] = parse_value(value.strip())
    return out
