"""The run's stand-in for a method that lives in its method process (:mod:`wbench.run.sandbox`).

A :class:`RemoteSurrogate` answers what the evaluation asks of a fitted surrogate: its
predictions (``distance``, ``pairwise``, ``embed``: measures go across, values come back on
the CPU), any attribute (``n_parameters``, ``describe()``, ``save(path)`` ...), each by a
request to the method process. Predictions on pairs of a dataset the process already holds
(:func:`wbench.train.loop.predict_pairs` calls :meth:`RemoteSurrogate.predict_pairs_remotely`)
send pair indices only. Its class carries the method class's class attributes
(``trainable``, ``method_class`` ...), so the checks that read them see the method's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from wbench.data import LabelledPairs
from wbench.run.sandbox_wire import CALLABLE, SELF

CLASS_FACTS = (
    "input_kind", "trainable", "method_class", "width_param", "default_eval_params",
    "evaluate_on_all_pairs", "metric_by_construction",
)
"""Class attributes of the method's class that its stand-in's class copies."""

Request = Callable[..., Any]


class RemoteSurrogate:
    """A fitted surrogate in the method process, seen from the run.

    :param request: sends one request to the method process and returns its reply's value.
    :param measures: ``id(measures) -> dataset key`` of the datasets the process holds.
    :param keep: those datasets (kept alive so that their ids stay theirs).
    """

    surrogate_class: ClassVar[type]
    device: ClassVar[None] = None  # inputs stay on the CPU here; the method process moves them

    def __init__(self, request: Request, measures: Mapping[int, str], keep: Sequence[Any] = ()) -> None:
        self._request = request
        self._measures = dict(measures)
        self._keep = list(keep)

    def _call(self, method: str, /, *args: Any, **kwargs: Any) -> Any:
        result = self._request("call", method, args, kwargs)
        return self if isinstance(result, str) and result == SELF else result

    def distance(self, a: Any, b: Any) -> Any:
        """The method's ``distance(a, b)``."""
        return self._call("distance", a, b)

    def pairwise(self, x: Any, y: Any) -> Any:
        """The method's ``pairwise(x, y)``."""
        return self._call("pairwise", x, y)

    def configure(self, **eval_params: Any) -> RemoteSurrogate:
        """The method's ``configure(**eval_params)``."""
        self._call("configure", **eval_params)
        return self

    def predict_pairs_remotely(self, pairs: LabelledPairs, *, batch_size: int, method: str, call: str) -> np.ndarray:
        """:func:`wbench.train.loop.predict_pairs` run in the method process: pair indices only
        when it holds ``pairs.measures``, else the measures too."""
        measures: Any = self._measures.get(id(pairs.measures), pairs.measures)
        options = {"batch_size": batch_size, "method": method, "call": call}
        return self._request("predict", measures, pairs.pairs.left, pairs.pairs.right, options)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        value = self._request("getattr", name)
        if isinstance(value, str) and value == CALLABLE:
            return lambda *args, **kwargs: self._call(name, *args, **kwargs)
        return value


def remote_class(cls: type) -> type[RemoteSurrogate]:
    """The stand-in class of method class ``cls``: its class attributes, and ``embed`` when it has one."""
    namespace: dict[str, Any] = {k: getattr(cls, k) for k in CLASS_FACTS if hasattr(cls, k)}
    namespace["surrogate_class"] = cls
    if callable(getattr(cls, "embed", None)):
        namespace["embed"] = lambda self, x: self._call("embed", x)
    return type(f"Remote{cls.__name__}", (RemoteSurrogate,), namespace)
