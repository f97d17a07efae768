"""Saved models name a registered surrogate, never code: the class of a saved header is
resolved through the registry."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

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


def read_saved_header(path: Path) -> Any:
    """The JSON header of a saved model (``<name>.pt.json``).

    :raises SavedModelError: naming ``path``: missing, unreadable or not JSON.
    """
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise SavedModelError(f"{path}: the saved model's header does not exist") from exc
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise SavedModelError(f"{path}: the saved model's header is not a readable JSON file ({exc})") from exc


def read_saved_state(path: Path, device: str) -> Mapping[str, torch.Tensor]:
    """The tensors of a saved model, read with ``torch.load(weights_only=True)``.

    :raises SavedModelError: naming ``path``: missing, or not a weights-only tensor file
        (a pickle that names code, a damaged file) or not a mapping of tensors.
    """
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError as exc:
        raise SavedModelError(f"{path}: the saved model's tensor file does not exist") from exc
    except Exception as exc:  # UnpicklingError (not weights only), a damaged zip, ...
        raise SavedModelError(
            f"{path}: not a tensor file torch can load with weights_only=True (a pickle naming code, or a "
            f"damaged file); refusing it ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        ) from exc
    if not isinstance(state, Mapping):
        raise SavedModelError(f"{path}: holds a {type(state).__name__}, not a mapping of tensor names to tensors")
    return state
