"""Saved models name a registered surrogate, never code: the class of a saved header is
resolved through the registry."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from wbench.errors import PluginError, WbenchError
from wbench.plugin.manager import make_plugin_manager


class SavedModelError(WbenchError, ValueError):
    """A saved model's header names no registered surrogate, or is malformed."""


def resolve_saved_class(header: Mapping[str, Any], registry: Any = None, *, base: type, where: str = "model") -> type:
    """The class of a saved model, found only through the registry, never by importing a
    path the file names.

    The header's ``surrogate`` (the registered name :meth:`TorchSurrogate.save` writes) is
    looked up in the registry; a file without one (written before wbench stored it) is
    matched by its ``class`` against the registered surrogates' targets and their classes'
    ``module:qualname``. Only code that a plugin registered is ever imported.

    :param registry: a :class:`wbench.plugin.registry.Registry` (default: the installed plugins').
    :param base: the class the match must derive from (``TorchSurrogate``, passed by its
        ``load``: this stage sits below the surrogate interface and does not import it).
    :raises SavedModelError: no registered surrogate matches, or the match is not a
        subclass of ``base``, or name and class disagree.
    """
    if registry is None:
        registry = make_plugin_manager().registry
    name, recorded = header.get("surrogate"), header.get("class")
    known = ", ".join(registry.names("surrogate")) or "(none)"
    if name is not None:
        if not isinstance(name, str) or name not in registry.names("surrogate"):
            raise SavedModelError(f"{where}: {name!r} is not a registered surrogate; known: {known}")
        found = registry.get("surrogate", name).load()
        if isinstance(recorded, str) and recorded != f"{found.__module__}:{found.__qualname__}":
            raise SavedModelError(
                f"{where}: class {recorded!r} is not the class of the registered surrogate {name!r} "
                f"({found.__module__}:{found.__qualname__}); refusing to load it"
            )
    else:
        if not isinstance(recorded, str):
            raise SavedModelError(f"{where}: names no surrogate (no 'surrogate' and no 'class' key)")
        entries = list(registry.entries("surrogate"))
        matches = [e for e in entries if e.target == recorded]
        if not matches:
            for entry in entries:  # registered code only: importing it runs nothing the user did not install
                try:
                    loaded = entry.load()
                except PluginError:
                    continue
                if f"{loaded.__module__}:{loaded.__qualname__}" == recorded:
                    matches.append(entry)
        if not matches:
            raise SavedModelError(
                f"{where}: class {recorded!r} is not a registered surrogate; refusing to import it "
                f"(a saved model can only name a registered surrogate; known: {known})"
            )
        found = matches[0].load()
    if not (isinstance(found, type) and issubclass(found, base)):
        raise SavedModelError(f"{where}: the registered surrogate {name or recorded!r} is not a {base.__name__}")
    return found


