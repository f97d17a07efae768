"""The command line: ``wbench`` and its sub-commands (:mod:`wbench.cli.main`), ``prepare``
and ``retime`` in their own modules. The top stage: nothing below imports it."""

from __future__ import annotations

from wbench.cli.main import main

__all__ = ["main"]
