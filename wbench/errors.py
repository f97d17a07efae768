"""Exceptions raised by wbench, each naming the problem for the user."""

from __future__ import annotations


class WbenchError(Exception):
    """Base class of every error wbench raises on purpose."""


class PluginError(WbenchError):
    """A plugin is unknown, duplicated, disabled or failed to load."""


class UnknownNameError(PluginError, KeyError):
    """A surrogate, dataset or metric name that no plugin registered."""

    def __init__(self, kind: str, name: str, known: list[str]):
        self.kind, self.name, self.known = kind, name, known
        listing = ", ".join(sorted(known)) or "(none)"
        super().__init__(f"unknown {kind} {name!r}; known {kind}s: {listing}")

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class InvalidMeasureError(WbenchError, ValueError):
    """A measure has negative, non-finite or zero mass, or a wrong shape."""


class SuiteError(WbenchError, ValueError):
    """A suite file is malformed; the message names the key or line."""


class CacheError(WbenchError):
    """A cache file is unreadable; callers recompute rather than trust it."""
