"""The plugin system's public face: the registry that ``wbench_register_*`` hooks fill, the
plugin manager that loads plugins, and the helpers a plugin's own command uses.

The machinery is in :mod:`wbench.plugin` (registry, hook specifications, manager,
declared parameters, saved-model resolution).
"""

from __future__ import annotations

from wbench.plugin.manager import Plugins, make_plugin_manager
from wbench.plugin.params import AssignmentError, declared_params, parse_assignments
from wbench.plugin.registry import Entry, Registry

__all__ = [
    "AssignmentError",
    "Entry",
    "Plugins",
    "Registry",
    "declared_params",
    "make_plugin_manager",
    "parse_assignments",
]
