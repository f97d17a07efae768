"""The predictors of RG: sliced lower bounds and lifted upper bounds of W2.

All are computed from the per-direction costs of :func:`wbench_plugins.rg.slicing.pair_costs`
on the same L seeded directions (``projected`` ``P_l <= W2^2`` and ``lifted`` ``C_l >= W2^2``):

* ``sw``: sliced W2, ``sqrt(mean_l P_l)`` (lower bound).
* ``maxsw``: max-sliced W2 over the L directions, ``sqrt(max_l P_l)`` (lower bound; POT's
  ``max_sliced_wasserstein_distance`` also maximises over random directions).
* ``ebsw``: energy-based sliced W2 (Nguyen & Ho, 2023) with the importance-sampling
  estimator and energy ``f(x) = exp(x)``: ``sqrt(sum_l softmax(P)_l P_l)`` (lower bound).
* ``pw``: projected Wasserstein / lifted sliced W2, ``sqrt(mean_l C_l)`` (upper bound).
* ``minswgg``: min-SWGG (Mahey et al., 2023) over the L directions, ``sqrt(min_l C_l)``
  (upper bound; POT's ``min_sliced_transport_plan``).
* ``ebpw``: the lifted costs averaged under EBSW's slicing weights,
  ``sqrt(sum_l softmax(P)_l C_l)`` (upper bound: an average of feasible plans' costs).

With ``squared=True`` the predictors are the squares (bounds of W2^2).
"""

from __future__ import annotations

import torch

LOWER = ("sw", "maxsw", "ebsw")
UPPER = ("pw", "minswgg", "ebpw")
DEFAULT_PAIRS = "sw:pw,maxsw:minswgg,ebsw:ebpw"


def parse_pairs(spec: str) -> tuple[tuple[str, str], ...]:
    """``"sw:pw,maxsw:minswgg"`` -> ``(("sw", "pw"), ("maxsw", "minswgg"))``.

    :raises ValueError: an unknown bound, a lower bound on the right or an upper one on the
        left, a repeated bound, or no pair at all.
    """
    pairs = []
    for item in (part.strip() for part in spec.split(",")):
        lower, sep, upper = item.partition(":")
        if not sep or lower not in LOWER or upper not in UPPER:
            raise ValueError(
                f"bound pair {item!r} must be 'lower:upper', lower in {LOWER}, upper in {UPPER}"
            )
        pairs.append((lower, upper))
    names = [n for pair in pairs for n in pair]
    if not pairs or len(set(names)) != len(names):
        raise ValueError(f"bounds {spec!r}: give at least one pair and each bound once")
    return tuple(pairs)


def bound_features(projected: torch.Tensor, lifted: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every bound of W2^2 from the per-direction costs.

    :param projected: ``(P, L)`` projected squared costs (squared ground units).
    :param lifted: ``(P, L)`` lifted squared costs.
    :returns: name -> ``(P,)`` bound of W2^2 (squared ground units), names of
        :data:`LOWER` and :data:`UPPER`.
    """
    energy = torch.softmax(projected, dim=-1)  # exp(P_l) / sum exp(P), overflow-safe
    return {
        "sw": projected.mean(-1),
        "maxsw": projected.amax(-1),
        "ebsw": (energy * projected).sum(-1),
        "pw": lifted.mean(-1),
        "minswgg": lifted.amin(-1),
        "ebpw": (energy * lifted).sum(-1),
    }


def design(
    features: dict[str, torch.Tensor], pairs: tuple[tuple[str, str], ...], *, squared: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """The lower and upper predictors of the chosen pairs, in the regression's units.

    :param features: output of :func:`bound_features` (W2^2 units).
    :param pairs: K (lower, upper) names.
    :param squared: keep W2^2 units; otherwise square roots (W2, ground units).
    :returns: ``lower (P, K)`` and ``upper (P, K)``.
    """

    def unit(x: torch.Tensor) -> torch.Tensor:
        x = x.clamp_min(0)
        return x if squared else x.sqrt()

    lower = torch.stack([unit(features[lo]) for lo, _ in pairs], dim=1)
    upper = torch.stack([unit(features[up]) for _, up in pairs], dim=1)
    return lower, upper
