"""wbench's built-in plugins (import name ``wbench_plugins``).

They register through the ``wbench`` entry-point group exactly like a third-party
package: see ``[project.entry-points.wbench]`` in ``pyproject.toml``.
"""
