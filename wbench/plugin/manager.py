"""Build the plugin manager: entry points of the group ``wbench`` plus local plugin files.

Nothing happens at import time; call :func:`make_plugin_manager`. The built-in plugins of
``wbench_plugins`` come in through the same entry points as any third-party package. Every
hook is called through ``manager.hook.<name>(...)``, so pluggy's order (last registered
first, ``tryfirst``/``trylast``) and wrappers apply; for the register hooks each plain
implementation is wrapped so that the registry knows which plugin registers what, and a
plugin whose hook raises is marked unavailable instead of stopping the others.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy

from wbench import PROJECT_NAME
from wbench.errors import PluginError
from wbench.plugin import hookspecs
from wbench.plugin.registry import Registry

ENTRY_POINT_GROUP = "wbench"
DISABLE_ENV = "WBENCH_DISABLE_PLUGINS"
"""Comma-separated plugin names (entry-point names or local file stems) to skip."""

LOCAL_PLUGIN_PREFIX = "wbench_local_plugin_"
"""Module-name prefix of local plugin files (``--plugin FILE``) once imported."""

_REGISTER_HOOKS = ("wbench_register_surrogates", "wbench_register_datasets", "wbench_register_metrics")


@dataclass(frozen=True)
class PluginInfo:
    """What ``wbench plugins`` shows about one plugin.

    :param status: ``"ok"``, ``"unavailable"`` (import or hook failed) or ``"disabled"``.
    """

    name: str
    source: str
    distribution: str
    status: str
    error: str = ""


@dataclass
class Plugins:
    """The plugin manager together with the registry its plugins filled."""

    manager: pluggy.PluginManager
    registry: Registry
    infos: list[PluginInfo] = field(default_factory=list)


def disabled_plugin_names(environ: dict[str, str] | None = None) -> set[str]:
    """Plugin names listed in ``$WBENCH_DISABLE_PLUGINS`` (comma or space separated)."""
    raw = (environ if environ is not None else os.environ).get(DISABLE_ENV, "")
    return {part.strip() for part in raw.replace(",", " ").split() if part.strip()}


def load_plugin_file(path: str | os.PathLike[str]) -> ModuleType:
    """Import a local Python file as a plugin module; raise :class:`PluginError` if it fails."""
    file = Path(path)
    if not file.is_file():
        raise PluginError(f"plugin file not found: {file}")
    module_name = f"{LOCAL_PLUGIN_PREFIX}{file.stem}"
    spec = importlib.util.spec_from_file_location(module_name, file)
    if spec is None or spec.loader is None:
        raise PluginError(f"cannot import plugin file {file}: not a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        raise PluginError(f"plugin file {file} failed to import: {type(exc).__name__}: {exc}") from exc
    return module


def _distribution_label(ep: object) -> str:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return "unknown"
    return f"{dist.name} {dist.version}"


def _attributed(
    function: Callable[..., Any], plugin: str, hook_name: str, registry: Registry,
    distribution: str, failed: dict[str, str],
) -> Callable[..., Any]:
    """``function`` (one plugin's register hook) made to tell the registry who registers, and
    to turn a failure into an "unavailable" plugin (its entries dropped) instead of an error."""

    def call(*args: Any, **kwargs: Any) -> Any:
        if plugin in failed:  # an earlier hook of this plugin failed: skip the rest
            return None
        registry.current_plugin, registry.current_distribution = plugin, distribution
        try:
            return function(*args, **kwargs)
        except PluginError:
            raise
        except Exception as exc:
            failed[plugin] = f"{hook_name} raised {type(exc).__name__}: {exc}"
            registry.remove_plugin(plugin)
            return None

    return call


def _call_register_hook(
    manager: pluggy.PluginManager, hook_name: str, registry: Registry,
    sources: dict[str, tuple[str, str]], failed: dict[str, str],
) -> None:
    """Call one register hook through ``manager.hook`` (pluggy's order, ``tryfirst``/``trylast``
    and wrappers apply), each plain implementation attributed to its plugin."""
    caller = getattr(manager.hook, hook_name)
    for impl in caller.get_hookimpls():
        if not (impl.hookwrapper or impl.wrapper):
            distribution = sources.get(impl.plugin_name, ("", ""))[1]
            impl.function = _attributed(impl.function, impl.plugin_name, hook_name, registry, distribution, failed)
    caller(registry=registry)


def make_plugin_manager(
    plugin_files: Sequence[str | os.PathLike[str]] = (),
    *,
    disabled: Iterable[str] | None = None,
    use_entry_points: bool = True,
) -> Plugins:
    """Discover plugins, run their register hooks and return the filled registry.

    :param plugin_files: local ``.py`` files to load as extra plugins (``--plugin``).
    :param disabled: plugin names to skip; default ``$WBENCH_DISABLE_PLUGINS``.
    :param use_entry_points: load the ``wbench`` entry-point group (off only in tests).
    :raises PluginError: a local file fails to import, or two plugins register one name.
    """
    manager = pluggy.PluginManager(PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    skip = disabled_plugin_names() if disabled is None else set(disabled)
    infos: list[PluginInfo] = []
    sources: dict[str, tuple[str, str]] = {}

    if use_entry_points:
        for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            dist = _distribution_label(ep)
            if ep.name in skip:
                infos.append(PluginInfo(ep.name, ep.value, dist, "disabled", f"listed in ${DISABLE_ENV}"))
                continue
            if manager.has_plugin(ep.name):
                raise PluginError(f"duplicate plugin name {ep.name!r} in entry-point group {ENTRY_POINT_GROUP!r}")
            try:
                module = ep.load()
            except Exception as exc:
                infos.append(PluginInfo(ep.name, ep.value, dist, "unavailable", f"{type(exc).__name__}: {exc}"))
                continue
            manager.register(module, name=ep.name)
            sources[ep.name] = (ep.value, dist)

    for path in plugin_files:
        stem = Path(path).stem
        if stem in skip:
            infos.append(PluginInfo(stem, str(path), "local file", "disabled", f"listed in ${DISABLE_ENV}"))
            continue
        if manager.has_plugin(stem):
            raise PluginError(f"duplicate plugin name {stem!r}: a plugin of that name is already loaded")
        manager.register(load_plugin_file(path), name=stem)
        sources[stem] = (str(path), "local file")

    registry = Registry()
    failed: dict[str, str] = {}
    for hook_name in _REGISTER_HOOKS:
        _call_register_hook(manager, hook_name, registry, sources, failed)
    registry.current_plugin = registry.current_distribution = ""

    for name, (source, dist) in sources.items():
        status = "unavailable" if name in failed else "ok"
        infos.append(PluginInfo(name, source, dist, status, failed.get(name, "")))
    infos.sort(key=lambda info: info.name)
    return Plugins(manager=manager, registry=registry, infos=infos)
