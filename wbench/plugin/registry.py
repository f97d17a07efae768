"""The registry that plugins fill through the ``wbench_register_*`` hooks.

Entries store a ``"module:attribute"`` string and import it only on first use, so one
broken plugin is listed as unavailable with its reason and breaks nothing else.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from wbench.errors import PluginError, UnknownNameError

Kind = Literal["surrogate", "dataset", "metric"]
KINDS: tuple[Kind, ...] = ("surrogate", "dataset", "metric")


@dataclass
class Entry:
    """One registered surrogate, dataset or metric.

    :param name: the unique name used on the command line and in suites.
    :param kind: ``"surrogate"``, ``"dataset"`` or ``"metric"``.
    :param target: ``"package.module:attribute"``, imported lazily by :meth:`load`.
    :param plugin: name of the plugin (entry point or file) that registered it.
    :param distribution: ``"name version"`` of the installed distribution, or ``"local file"``.
    :param description: one line for ``wbench list``.
    :param legacy_params: defaults given with the deprecated ``params=`` keyword of
        ``add_surrogate`` / ``add_dataset`` (None: read from the class, see :attr:`params`).
    :param test_params: small parameters for the conformance tests and quick runs.
    """

    name: str
    kind: Kind
    target: str
    plugin: str = ""
    distribution: str = ""
    description: str = ""
    legacy_params: Mapping[str, Any] | None = None
    test_params: Mapping[str, Any] = field(default_factory=dict)
    _loaded: Any = field(default=None, repr=False)
    _error: str | None = field(default=None, repr=False)

    def load(self) -> Any:
        """Import and return the target; raise :class:`PluginError` naming the cause."""
        if self._loaded is not None:
            return self._loaded
        if self._error is not None:
            raise PluginError(f"{self.kind} {self.name!r} is unavailable: {self._error}")
        module_name, _, attribute = self.target.partition(":")
        try:
            obj = importlib.import_module(module_name)
            for part in attribute.split(".") if attribute else []:
                obj = getattr(obj, part)
        except Exception as exc:  # any failure of third-party code makes it unavailable
            self._error = f"{type(exc).__name__}: {exc}"
            raise PluginError(f"{self.kind} {self.name!r} is unavailable: {self._error}") from exc
        self._loaded = obj
        return obj

    @property
    def params(self) -> dict[str, Any]:
        """The default parameters, as the class declares them (:func:`wbench.plugin.params.declared_params`).

        Imports the class (raises :class:`PluginError` when it is unavailable); metrics have none.
        """
        if self.legacy_params is not None:
            return dict(self.legacy_params)
        if self.kind == "metric":
            return {}
        from wbench.plugin.params import declared_params

        return declared_params(self.load())

    def status(self) -> tuple[bool, str]:
        """Return ``(available, reason)``, importing the target if not yet done."""
        try:
            self.load()
        except PluginError:
            return False, self._error or "unknown error"
        return True, ""


class Registry:
    """Collects the entries registered by every plugin; names are unique per kind."""

    def __init__(self) -> None:
        self._entries: dict[Kind, dict[str, Entry]] = {kind: {} for kind in KINDS}
        self.current_plugin = ""
        self.current_distribution = ""

    def _add(self, kind: Kind, name: str, target: str, **info: Any) -> Entry:
        if not name or not isinstance(name, str):
            raise PluginError(f"plugin {self.current_plugin!r} registered a {kind} with no name")
        if ":" not in target:
            raise PluginError(f"{kind} {name!r}: target {target!r} must look like 'module:attribute'")
        if info.get("legacy_params") is not None:
            warnings.warn(
                f"{kind} {name!r} (plugin {self.current_plugin!r}): the params= keyword of add_{kind} is "
                f"deprecated; declare the defaults on the class (keyword defaults of __init__, or a "
                f"dataset's `defaults`), where the registry reads them",
                DeprecationWarning,
                stacklevel=3,
            )
        existing = self._entries[kind].get(name)
        if existing is not None:
            raise PluginError(
                f"duplicate {kind} name {name!r}: registered by plugin {existing.plugin!r} "
                f"and again by plugin {self.current_plugin!r}"
            )
        entry = Entry(
            name=name,
            kind=kind,
            target=target,
            plugin=self.current_plugin,
            distribution=self.current_distribution,
            **info,
        )
        self._entries[kind][name] = entry
        return entry

    def add_surrogate(
        self,
        name: str,
        target: str,
        *,
        description: str = "",
        params: Mapping[str, Any] | None = None,
        test_params: Mapping[str, Any] | None = None,
    ) -> Entry:
        """Register a surrogate or reference solver class (a :class:`wbench.surrogate.Surrogate`).

        Its default parameters are read from the class (:attr:`Entry.params`); ``params`` is
        deprecated (a :class:`DeprecationWarning`; given, it overrides what the class declares).
        """
        return self._add(
            "surrogate", name, target, description=description,
            legacy_params=None if params is None else dict(params), test_params=dict(test_params or {}),
        )

    def add_dataset(
        self,
        name: str,
        target: str,
        *,
        description: str = "",
        params: Mapping[str, Any] | None = None,
        test_params: Mapping[str, Any] | None = None,
    ) -> Entry:
        """Register a dataset class (a :class:`wbench.data.DatasetPlugin`).

        Its default parameters are read from the class's ``defaults`` (:attr:`Entry.params`);
        ``params`` is deprecated, as for :meth:`add_surrogate`.
        """
        return self._add(
            "dataset", name, target, description=description,
            legacy_params=None if params is None else dict(params), test_params=dict(test_params or {}),
        )

    def add_metric(self, name: str, target: str, *, description: str = "") -> Entry:
        """Register a metric function ``f(context) -> dict[str, float]``."""
        return self._add("metric", name, target, description=description)

    def get(self, kind: Kind, name: str) -> Entry:
        """Return the entry or raise :class:`UnknownNameError` listing the known names."""
        try:
            return self._entries[kind][name]
        except KeyError:
            raise UnknownNameError(kind, name, list(self._entries[kind])) from None

    def names(self, kind: Kind) -> list[str]:
        """Registered names of one kind, sorted."""
        return sorted(self._entries[kind])

    def entries(self, kind: Kind) -> Iterator[Entry]:
        """Entries of one kind, sorted by name."""
        for name in self.names(kind):
            yield self._entries[kind][name]

    def remove_plugin(self, plugin: str) -> None:
        """Drop every entry registered by ``plugin`` (used when its hook failed midway)."""
        for kind in KINDS:
            for name in [n for n, e in self._entries[kind].items() if e.plugin == plugin]:
                del self._entries[kind][name]
