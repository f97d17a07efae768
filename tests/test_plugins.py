"""The plugin system: entry points, local files, broken and duplicate plugins, disabling."""

from __future__ import annotations

import inspect
import sys
import warnings
from pathlib import Path

import pytest
from conftest import FIXTURES

from wbench.errors import PluginError, UnknownNameError
from wbench.plugin import hookspecs
from wbench.plugin.manager import make_plugin_manager

BUILTIN_PLUGINS = {"datasets", "kenn", "dwe", "deepsets", "references", "metrics", "claims"}


def test_builtin_plugins_come_through_entry_points() -> None:
    plugins = make_plugin_manager()
    by_name = {info.name: info for info in plugins.infos}
    assert set(by_name) >= BUILTIN_PLUGINS
    for name in BUILTIN_PLUGINS:
        assert by_name[name].distribution.startswith("wbench "), by_name[name]
        assert by_name[name].source == f"wbench_plugins.{name}"


def test_local_plugin_file_registers_its_entries() -> None:
    plugins = make_plugin_manager([FIXTURES / "local_plugin.py"], use_entry_points=False)
    registry = plugins.registry
    assert registry.names("surrogate") == ["failing", "local-centroid"]
    assert registry.names("dataset") == ["toy-blobs"]
    entry = registry.get("surrogate", "local-centroid")
    assert entry.plugin == "local_plugin" and entry.distribution == "local file"


def test_unknown_name_lists_the_known_names() -> None:
    registry = make_plugin_manager([FIXTURES / "local_plugin.py"], use_entry_points=False).registry
    with pytest.raises(UnknownNameError) as info:
        registry.get("surrogate", "nope")
    assert "unknown surrogate 'nope'" in str(info.value)
    assert "failing, local-centroid" in str(info.value)


def test_broken_target_is_unavailable_and_breaks_nothing_else() -> None:
    plugins = make_plugin_manager([FIXTURES / "broken_import.py", FIXTURES / "local_plugin.py"], use_entry_points=False)
    ghost = plugins.registry.get("surrogate", "ghost")
    available, reason = ghost.status()
    assert not available and "wbench_no_such_module" in reason
    with pytest.raises(PluginError, match="ghost.*unavailable"):
        ghost.load()
    assert plugins.registry.get("surrogate", "local-centroid").status() == (True, "")


def test_duplicate_names_are_an_error_naming_both_plugins() -> None:
    with pytest.raises(PluginError, match=r"duplicate surrogate name 'local-centroid'(?=.*'local_plugin')(?=.*'duplicate_plugin')"):
        make_plugin_manager([FIXTURES / "local_plugin.py", FIXTURES / "duplicate_plugin.py"], use_entry_points=False)


def test_environment_variable_disables_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WBENCH_DISABLE_PLUGINS", "local_plugin, kenn")
    plugins = make_plugin_manager([FIXTURES / "local_plugin.py"])
    status = {info.name: info.status for info in plugins.infos}
    assert status["local_plugin"] == "disabled" and status["kenn"] == "disabled"
    assert "local-centroid" not in plugins.registry.names("surrogate")
    assert "naive" not in plugins.registry.names("surrogate")


def test_missing_plugin_file_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(PluginError, match="plugin file not found"):
        make_plugin_manager([tmp_path / "absent.py"], use_entry_points=False)


def test_plugin_file_that_fails_to_import_names_the_cause(tmp_path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("raise ImportError('needs a package you do not have')\n")
    with pytest.raises(PluginError, match="bad.py failed to import: ImportError: needs a package"):
        make_plugin_manager([bad], use_entry_points=False)


def test_a_register_hook_that_raises_marks_only_that_plugin_unavailable(tmp_path) -> None:
    bad = tmp_path / "raising.py"
    bad.write_text(
        "from wbench import hookimpl\n"
        "@hookimpl\n"
        "def wbench_register_surrogates(registry):\n"
        "    registry.add_surrogate('half', 'math:sqrt')\n"
        "    raise RuntimeError('boom')\n"
    )
    plugins = make_plugin_manager([bad, FIXTURES / "local_plugin.py"], use_entry_points=False)
    status = {info.name: (info.status, info.error) for info in plugins.infos}
    assert status["raising"][0] == "unavailable" and "boom" in status["raising"][1]
    assert "half" not in plugins.registry.names("surrogate")
    assert "local-centroid" in plugins.registry.names("surrogate")


def test_every_hook_is_prefixed_and_documented() -> None:
    hooks = [f for name, f in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("wbench_")]
    assert len(hooks) >= 5
    for hook in hooks:
        doc = inspect.getdoc(hook) or ""
        assert len(doc) > 80, f"hook {hook.__name__} needs a real docstring"
    others = [n for n, f in inspect.getmembers(hookspecs, inspect.isfunction) if getattr(f, "wbench_spec", None)]
    assert all(n.startswith("wbench_") for n in others)


def test_manager_is_built_by_a_function_not_at_import() -> None:
    import wbench.plugin.manager as module

    assert not any(type(v).__name__ == "PluginManager" for v in vars(module).values())


def test_registry_reads_default_parameters_from_the_class() -> None:
    """Fit-time defaults are the keyword defaults of ``__init__`` (inherited through ``**params``)."""
    registry = make_plugin_manager().registry
    exact = registry.get("surrogate", "exact-lp")
    assert exact.legacy_params is None and exact.params == {"n_jobs": -1, "num_iter_max": 1_000_000}
    matched = registry.get("surrogate", "dwe-matched").params
    assert matched["bottleneck"] == 1 and matched["width"] == 77  # the subclass's own defaults win
    assert matched["embed_dim"] == 50 and matched["kl_weight"] == 10.0  # the rest from DWE
    assert registry.get("metric", registry.names("metric")[0]).params == {}


def test_params_keyword_still_works_with_a_deprecation_warning() -> None:
    from wbench.plugin.registry import Registry

    registry = Registry()
    registry.current_plugin = "old-style"
    with pytest.warns(DeprecationWarning, match=r"params= keyword of add_surrogate is deprecated"):
        entry = registry.add_surrogate("old", "wbench_plugins.references.exact:ExactLP", params={"n_jobs": 2})
    assert entry.params == {"n_jobs": 2}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert registry.add_surrogate("new", "wbench_plugins.references.exact:ExactLP").params["n_jobs"] == -1


def test_declared_params_needs_a_class() -> None:
    from wbench.plugin.params import declared_params

    with pytest.raises(TypeError, match="needs a class"):
        declared_params(object())

def test_register_hooks_go_through_pluggy_so_wrappers_and_order_apply(tmp_path: Path) -> None:
    wrapping = tmp_path / "wrapping.py"
    wrapping.write_text(
        "from wbench import hookimpl\n"
        "SEEN = []\n\n"
        "@hookimpl(wrapper=True)\n"
        "def wbench_register_surrogates(registry):\n"
        "    SEEN.append(sorted(registry.names('surrogate')))\n"
        "    result = yield\n"
        "    SEEN.append(sorted(registry.names('surrogate')))\n"
        "    return result\n"
    )
    plugins = make_plugin_manager([FIXTURES / "local_plugin.py", wrapping], use_entry_points=False)
    seen = sys.modules["wbench_local_plugin_wrapping"].SEEN
    local = sorted(plugins.registry.names("surrogate"))
    assert "local-centroid" in local
    assert seen == [[], local]  # around every plain implementation, as pluggy promises
    assert plugins.registry.get("surrogate", "local-centroid").plugin == "local_plugin"
