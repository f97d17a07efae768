"""The wire between a run and its method process (:mod:`wbench.run.sandbox`): messages as
pickles over a socket, errors that cross it, and the fit report a milestone hands over.

Both sides import this module; it imports neither.
"""

from __future__ import annotations

import pickle
import sys
import traceback
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from wbench.errors import WbenchError

SELF = "wbench-sandbox:self"
"""Stands for the surrogate itself in a reply (``configure`` returns ``self``)."""
CALLABLE = "wbench-sandbox:callable"
"""Stands for a method of the surrogate in a reply to an attribute look-up."""


class MethodProcessError(WbenchError):
    """An error raised in the method's process whose exception could not cross to the run as
    itself; the message is its ``Type: message`` and the traceback there."""


def dumps(message: Any, *, by_value: bool = False) -> bytes:
    """``message`` as bytes: a plain pickle, else cloudpickle (classes made at run time, or
    ``by_value``: local plugin files, whose modules the other process does not have)."""
    if not by_value:
        try:
            return pickle.dumps(message, protocol=5)
        except Exception:  # noqa: S110 (a lambda, a class built at run time: cloudpickle copes)
            pass
    import cloudpickle

    from wbench.plugin.manager import LOCAL_PLUGIN_PREFIX

    for name, module in list(sys.modules.items()):
        if name.startswith(LOCAL_PLUGIN_PREFIX) and module is not None:
            cloudpickle.register_pickle_by_value(module)
    return cloudpickle.dumps(message, protocol=5)


def send(conn: Connection, message: Any, *, by_value: bool = False) -> None:
    """Send one message (see :func:`dumps`)."""
    conn.send_bytes(dumps(message, by_value=by_value))


def receive(conn: Connection) -> Any:
    """The next message; ``EOFError`` or ``OSError`` when the other side is gone."""
    return pickle.loads(conn.recv_bytes())


@dataclass(frozen=True)
class PackedError:
    """An exception on its way across: its pickle (None when it has none) and its text."""

    pickled: bytes | None
    text: str

    @staticmethod
    def of(exc: BaseException) -> PackedError:
        """Pack ``exc``, its traceback in this process added as a note (it survives the pickle)."""
        tail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)[-3:]).strip()
        text = f"{type(exc).__name__}: {exc}\n{tail}"
        try:
            exc.add_note(f"in the method's process:\n{tail}")
            pickled: bytes | None = dumps(exc)
        except Exception:
            pickled = None
        return PackedError(pickled, text)

    def unpack(self) -> BaseException:
        """The exception as raised there, or a :class:`MethodProcessError` with its text."""
        if self.pickled is not None:
            try:
                exc = pickle.loads(self.pickled)
                if isinstance(exc, BaseException):
                    return exc
            except Exception:  # noqa: S110 (an exception class whose __init__ pickle cannot call)
                pass
        return MethodProcessError(self.text)


@dataclass(frozen=True)
class FitView:
    """What the run needs of a fit report made in the method's process: ``as_dict()`` and ``steps``."""

    data: dict[str, Any] = field(default_factory=dict)
    steps: int | None = None

    @staticmethod
    def of(report: Any) -> FitView:
        """The view of a plugin's fit report (any object with ``as_dict()``)."""
        steps = getattr(report, "steps", None)
        return FitView(dict(report.as_dict()), steps if isinstance(steps, int) else None)

    def as_dict(self) -> dict[str, Any]:
        """The report as its ``as_dict()`` gave it."""
        return dict(self.data)
