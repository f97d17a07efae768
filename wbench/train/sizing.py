"""Sizing models to a parameter budget: build a surrogate at a target parameter count, and
split a parameter or width budget between layers (D'Hondt apportionment)."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping, Sequence
from typing import Any

PARAM_COUNTS = {"inference": "n_parameters_inference", "trained": "n_parameters"}
"""``[budget] param_count`` -> the surrogate property a matched budget matches."""


def build_at_parameter_target(
    factory: Callable[..., Any],
    params: Mapping[str, Any],
    target: int,
    *,
    tolerance: float = 0.01,
    width_param: str | None = None,
    max_width: int = 1 << 16,
    count: str = "inference",
) -> Any:
    """Build ``factory(**params, width_param=w)`` with a parameter count within ``tolerance`` of ``target``.

    :param count: which count is matched: ``"inference"`` (``n_parameters_inference``, the
        parameters that compute distances; the default) or ``"trained"`` (``n_parameters``,
        everything training updates, e.g. DWE's decoder too).

    The parameter count is assumed non-decreasing in the integer width; the width is
    found by bisection and the closest count wins. Building is cheap (no training).

    :raises ValueError: the surrogate has no width option, or no width reaches the target
        within the tolerance (the message states the closest count found).
    """
    width_param = width_param or getattr(factory, "width_param", None)
    if width_param is None:
        raise ValueError(f"{getattr(factory, '__name__', factory)} has no width option; cannot match {target} parameters")

    if count not in PARAM_COUNTS:
        raise ValueError(f"parameter count {count!r} is not one of {', '.join(PARAM_COUNTS)}")
    attribute = PARAM_COUNTS[count]

    def count_at(width: int) -> int:
        return getattr(factory(**{**params, width_param: width}), attribute)

    lo, hi = 1, 2
    while count_at(hi) < target and hi < max_width:
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if count_at(mid) < target:
            lo = mid
        else:
            hi = mid
    best = min((lo, hi), key=lambda w: abs(count_at(w) - target))
    achieved = count_at(best)
    if abs(achieved - target) > tolerance * target:
        raise ValueError(
            f"{getattr(factory, '__name__', factory)}: no {width_param} gives {target} {count} parameters within "
            f"{tolerance:.1%}; closest is {achieved} at {width_param}={best}"
        )
    return factory(**{**params, width_param: best})


def apportion(total: int, base: Sequence[int]) -> list[int]:
    """Share ``total`` units among layers in the proportions ``base`` (D'Hondt's method).

    Every layer starts with one unit; each further unit goes to the layer with the largest
    quotient ``base[k] / (units[k] + 1)`` (ties to the first layer). The allocation for
    ``total + 1`` is the one for ``total`` plus one unit, and ``total = sum(base)`` gives
    ``base`` exactly.

    :param total: number of units; values below ``len(base)`` give one unit per layer.
    :param base: positive reference sizes.
    :returns: the units per layer, summing to ``max(total, len(base))``.
    """
    units = [1] * len(base)
    heap = [(-b / 2.0, k) for k, b in enumerate(base)]
    heapq.heapify(heap)
    for _ in range(total - len(base)):
        _, k = heapq.heappop(heap)
        units[k] += 1
        heapq.heappush(heap, (-base[k] / (units[k] + 1.0), k))
    return units
