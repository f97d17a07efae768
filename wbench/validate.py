"""Validation of every prediction the harness consumes: one rule, applied at each boundary.

A surrogate's ``distance`` must return ``(B,)`` values and its ``pairwise`` ``(n, m)``: exactly
that shape (a ``(B, 1)`` result would broadcast silently into wrong metrics), finite and
non-negative. A :class:`~wbench.surrogate.Solver` (nothing to fit) may report a pair it could
not solve as NaN (``allow_missing``): the evaluation counts those pairs and the record's
``coverage`` says which fraction of the test pairs has a value. A learned method may not.

Callers: :func:`wbench.train.loop.predict_pairs` (training's validation, evaluation, transfer,
the metrics' pair distances), the default
:meth:`wbench.surrogate.TorchSurrogate.training_loss` (``training``),
:func:`wbench.evaluation.surrogate_matrix` (``pairwise``) and
:func:`wbench.run.timing_pass.check_timed_outputs` (before any timing).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from wbench.errors import WbenchError

__all__ = ["InvalidPredictionError", "allows_missing", "as_float64", "check_predictions"]


class InvalidPredictionError(WbenchError, ValueError):
    """A surrogate returned a prediction of the wrong shape, non-finite or negative.

    The message names the method, the call (``distance``, ``pairwise``, ``training`` ...)
    and the first bad pair (its index and value). Raised through metrics, so it fails the cell.
    """


def as_float64(values: Any) -> np.ndarray:
    """``values`` (a tensor, array or sequence) as a float64 NumPy array, shape unchanged."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().double().numpy()
    return np.asarray(values, dtype=np.float64)


def allows_missing(surrogate: Any) -> bool:
    """Whether ``surrogate`` may report unsolved pairs as NaN: a solver (``trainable = False``)."""
    return not getattr(type(surrogate), "trainable", True)


def _position(flat_index: int, shape: tuple[int, ...], offset: int) -> str:
    if len(shape) == 1:
        return f"pair {offset + flat_index}"
    i, j = np.unravel_index(flat_index, shape)
    return f"pair ({offset + int(i)}, {int(j)})"


def check_predictions(
    values: Any,
    *,
    n: int | tuple[int, int],
    method: str,
    call: str,
    allow_missing: bool = False,
    offset: int = 0,
) -> np.ndarray:
    """Check predicted W2 values and return them as a float64 array.

    :param values: what the surrogate returned (tensor or array): W2 in ground-cost units.
    :param n: the expected shape: ``B`` for ``(B,)`` (``distance``), ``(n, m)`` for a matrix.
    :param method: the method's name, for the message.
    :param call: which call produced them (``distance``, ``pairwise``, ``training`` ...).
    :param allow_missing: NaN marks a pair the method could not solve (solvers only);
        infinities and negative values are never allowed.
    :param offset: index of the first value within the caller's whole set of pairs (rows),
        so that the message names the pair as the caller numbers it.
    :returns: the values, float64, shape exactly as expected.
    :raises InvalidPredictionError: wrong shape (no broadcasting, no squeezing), a NaN when
        not allowed, an infinity, or a negative value; the message names the first bad pair.
    """
    expected = (int(n),) if isinstance(n, int | np.integer) else tuple(int(k) for k in n)
    array = as_float64(values)
    if array.shape != expected:
        raise InvalidPredictionError(
            f"{method}: {call} returned shape {tuple(array.shape)}, expected exactly {expected}"
        )
    missing = np.isnan(array)
    bad = (~missing & ~np.isfinite(array)) | (array < 0)
    if not allow_missing:
        bad |= missing
    if bad.any():
        first = int(np.flatnonzero(bad.reshape(-1))[0])
        value = float(array.reshape(-1)[first])
        what = "not a number" if np.isnan(value) else ("infinite" if np.isinf(value) else "negative")
        count = int(bad.sum())
        raise InvalidPredictionError(
            f"{method}: {call} returned an invalid W2 ({what}) at {_position(first, expected, offset)}: "
            f"{value!r} ({count} of {array.size} values invalid; W2 must be finite and >= 0"
            + ("" if allow_missing else "; only a solver may report an unsolved pair as NaN")
            + ")"
        )
    return array
