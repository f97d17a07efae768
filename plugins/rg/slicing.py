"""Sliced lower bounds and lifted upper bounds of W2, batched over pairs and projections.

For a direction theta, the 1-D optimal plan between the projections of mu and nu is the
monotone (quantile) coupling. Evaluated on the projected values it gives the projected
cost ``W2^2(theta#mu, theta#nu)`` (a lower bound of W2^2); lifted back to the points in
R^D it is a feasible plan between mu and nu, so its cost ``C(theta)`` is an upper bound
of W2^2 (the sliced Wasserstein generalized geodesics / projected Wasserstein cost).

Both come from one merge of the two measures' cumulative masses along each direction.
Everything that depends on one measure only (its projections sorted, their cumulative
masses, the sorting order) is computed once per measure (:func:`slice_measures`), so an
``n x m`` block costs ``n + m`` sorts and ``n m`` linear merges.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from wbench.measures import MeasureBatch

MERGE_BUDGET = 1 << 22
"""Elements of the merged (pair, projection, level) array per chunk: bounds the memory."""


def random_directions(dim: int, n_projections: int, seed: int) -> torch.Tensor:
    """Unit directions drawn uniformly on the sphere from a seeded generator.

    :param dim: D, the dimension of the ground space.
    :param n_projections: L, the number of directions.
    :param seed: seed of the ``torch.Generator`` (the budget's seed).
    :returns: ``(D, L)`` float64 on the CPU, unit columns (in 1-D: +1 or -1).
    """
    generator = torch.Generator().manual_seed(int(seed))
    theta = torch.randn(dim, n_projections, generator=generator, dtype=torch.float64)
    return theta / theta.norm(dim=0, keepdim=True).clamp_min(1e-300)


@dataclass(frozen=True)
class SlicedMeasures:
    """Per-measure sliced data of B measures on L directions (N points each, in R^D).

    :param values: ``(B or 1, L, N)`` projections sorted increasingly (1: a shared grid).
    :param order: ``(B or 1, L, N)`` int64 point index of each sorted projection.
    :param cum: ``(B, L, N)`` cumulative masses in sorted order, last entry exactly 1.
    :param points: ``(B or 1, N, D)`` support points (ground-cost units).
    """

    values: torch.Tensor
    order: torch.Tensor
    cum: torch.Tensor
    points: torch.Tensor

    def __len__(self) -> int:
        return int(self.cum.shape[0])

    def index(self, idx: torch.Tensor) -> SlicedMeasures:
        """The measures at ``idx`` (``(P,)`` int64), shared parts kept shared."""

        def pick(t: torch.Tensor) -> torch.Tensor:
            return t if t.shape[0] == 1 else t[idx]

        return SlicedMeasures(pick(self.values), pick(self.order), self.cum[idx], pick(self.points))


def slice_measures(batch: MeasureBatch, theta: torch.Tensor) -> SlicedMeasures:
    """Project, sort and accumulate every measure of ``batch`` on the directions ``theta``.

    :param batch: B measures, grid ``(N, D)`` or clouds ``(B, N, D)`` support.
    :param theta: ``(D, L)`` unit directions; its device and dtype are used throughout.
    :returns: the :class:`SlicedMeasures` (a shared grid is projected and sorted once).
    """
    batch = batch.to(theta.device, theta.dtype)
    w = batch.weights
    if batch.support.ndim == 2:
        proj = (batch.support @ theta).T  # (L, N)
        values, order = torch.sort(proj, dim=-1)
        masses = w[:, order]  # (B, L, N)
        values, order, points = values[None], order[None], batch.support[None]
    else:
        proj = torch.einsum("bnd,dl->bln", batch.support, theta)
        values, order = torch.sort(proj, dim=-1)
        masses = torch.gather(w[:, None, :].expand_as(order), -1, order)
        points = batch.support
    values, order, masses = _drop_empty_atoms(values, order, masses)
    cum = torch.cumsum(masses, dim=-1)
    cum = (cum / cum[..., -1:]).contiguous()
    return SlicedMeasures(values.contiguous(), order.contiguous(), cum, points)


def _drop_empty_atoms(
    values: torch.Tensor, order: torch.Tensor, masses: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The sorted atoms with mass first (in their sorted order), cut to the batch's largest
    count of atoms with mass.

    An atom without mass adds a zero-length segment to every merge, and a pair's merge
    costs in the number of atoms: an MNIST digit holds mass on about a fifth of its 784
    pixels, so dropping the others makes a merge about five times cheaper. The atoms kept
    past a measure's own count have no mass: their cumulative mass equals the last atom's,
    so no level falls in them (:func:`_gather_levels` takes the first atom reaching a level).

    :returns: ``values`` and ``order`` ``(B, L, K)`` (per measure now) and ``masses``
        ``(B, L, K)``, K the largest number of atoms with mass of one measure.
    """
    empty = masses <= 0
    keep = int((~empty).sum(-1).max()) if masses.numel() else 0
    if keep == masses.shape[-1]:
        return values, order, masses
    position = torch.sort(empty.to(torch.int8), dim=-1, stable=True).indices[..., : max(keep, 1)]
    shape = (masses.shape[0], -1, -1)
    values = torch.gather(values.expand(shape), -1, position)
    order = torch.gather(order.expand(shape), -1, position)
    return values, order, torch.gather(masses, -1, position)


def _gather_levels(t: torch.Tensor, cum: torch.Tensor, n: int) -> torch.Tensor:
    """Index ``(P, L, K)`` of the sorted point holding each level of ``t`` in ``cum``.

    The segment ``(t[k-1], t[k]]`` lies in the quantile cell of point j with
    ``cum[j-1] < t[k] <= cum[j]``: the first j with ``cum[j] >= t[k]``.
    """
    return torch.searchsorted(cum, t).clamp_(max=n - 1)


def _pick(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``table[p, l, index[p, l, k]]`` with ``table`` ``(P or 1, L, N)``."""
    return torch.gather(table.expand(index.shape[0], -1, -1), -1, index)


def _pair_costs(a: SlicedMeasures, b: SlicedMeasures) -> tuple[torch.Tensor, torch.Tensor]:
    """Projected and lifted costs of row-aligned pairs, one chunk (no memory guard)."""
    n_a, n_b = a.cum.shape[-1], b.cum.shape[-1]
    t, _ = torch.sort(torch.cat([a.cum, b.cum], dim=-1), dim=-1)  # (P, L, Na + Nb)
    dt = torch.diff(t, dim=-1, prepend=torch.zeros_like(t[..., :1]))
    ia, ib = _gather_levels(t, a.cum, n_a), _gather_levels(t, b.cum, n_b)
    projected = (dt * (_pick(a.values, ia) - _pick(b.values, ib)).pow(2)).sum(-1)
    pa, pb = _pick(a.order, ia), _pick(b.order, ib)  # point indices (P, L, K)
    xa = _points_at(a.points, pa)
    xb = _points_at(b.points, pb)
    lifted = (dt * (xa - xb).pow(2).sum(-1)).sum(-1)
    return projected, lifted


def _points_at(points: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``points[p, index[p, l, k]]``: ``(P, L, K, D)`` from ``(P or 1, N, D)`` points."""
    p, length, k = index.shape
    flat = index.reshape(p, length * k, 1).expand(-1, -1, points.shape[-1])
    picked = torch.gather(points.expand(p, -1, -1), 1, flat)
    return picked.reshape(p, length, k, points.shape[-1])


def pair_costs(
    a: SlicedMeasures,
    b: SlicedMeasures,
    ia: torch.Tensor | None = None,
    ib: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-direction projected and lifted squared costs of the pairs ``(a[ia[p]], b[ib[p]])``.

    :param a: sliced data of measures on L directions.
    :param b: sliced data of measures on the same directions.
    :param ia: ``(P,)`` int64 rows of ``a`` (default: every row, row-aligned with ``b``).
    :param ib: ``(P,)`` int64 rows of ``b`` (default: every row).
    :returns: ``projected (P, L)``, ``W2^2(theta_l#a_p, theta_l#b_p)`` (each <= W2^2), and
        ``lifted (P, L)``, the cost in R^D of the lifted monotone plan (each >= W2^2), in
        squared ground-cost units. Pairs are merged in chunks of bounded memory.
    """
    device = b.cum.device
    ia = torch.arange(len(a), device=device) if ia is None else ia.to(device)
    ib = torch.arange(len(b), device=device) if ib is None else ib.to(device)
    if ia.shape != ib.shape:
        raise ValueError(f"pair indices differ in length: {tuple(ia.shape)} and {tuple(ib.shape)}")
    n_dirs = b.cum.shape[1]
    width = (a.cum.shape[-1] + b.cum.shape[-1]) * (1 + a.points.shape[-1])
    step = max(1, MERGE_BUDGET // max(1, n_dirs * width))
    parts = [
        _pair_costs(a.index(ia[s : s + step]), b.index(ib[s : s + step]))
        for s in range(0, int(ia.shape[0]), step)
    ]
    if not parts:
        empty = b.cum.new_zeros(0, n_dirs)
        return empty, empty
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
