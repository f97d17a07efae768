"""wbench: a benchmark harness for learned Wasserstein-2 surrogates.

The public surface is small: ``hookimpl`` to write plugins, the typed containers in
:mod:`wbench.measures` and :mod:`wbench.data`, the surrogate base classes in
:mod:`wbench.surrogate`, and :func:`wbench.plugins.make_plugin_manager`.
Nothing is imported or registered at import time.
"""

from __future__ import annotations

import pluggy

__version__ = "0.1.0"

PROJECT_NAME = "wbench"
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
"""Marker for plugin hook implementations: decorate ``wbench_register_*`` functions."""

__all__ = ["PROJECT_NAME", "__version__", "hookimpl"]
