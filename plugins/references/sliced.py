"""``sliced``: the sliced Wasserstein distance SW2 as an embedding of projected quantiles."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from ot.sliced import get_random_projections

from wbench.measures import MeasureBatch

from ._common import EmbeddingSolver


def evenly_spread_directions(n_projections: int) -> np.ndarray:
    """``L`` unit directions of the plane ``(2, L)`` float64 at angles ``pi l / L``, l = 0..L-1.

    Directions theta and -theta give the same projected W2, so half a turn covers them all;
    the mean over these directions is the midpoint rule for SW2's integral over angles.
    """
    angles = np.pi * np.arange(n_projections) / n_projections
    return np.stack([np.cos(angles), np.sin(angles)])


def random_directions(dim: int, n_projections: int, seed: int) -> np.ndarray:
    """Unit directions ``(dim, n_projections)`` float64, exactly as POT draws them.

    ``ot.sliced_wasserstein_distance(..., seed=np.random.RandomState(seed))`` uses the
    same directions.
    """
    return np.asarray(get_random_projections(dim, n_projections, seed=np.random.RandomState(seed)), dtype=np.float64)


def cell_average_quantiles(values: torch.Tensor, masses: torch.Tensor, n_levels: int) -> torch.Tensor:
    """Averages of the quantile function over the cells ``[k/K, (k+1)/K]``.

    :param values: ``(..., N)`` projected points (any order).
    :param masses: ``(..., N)`` non-negative masses summing to 1 along the last axis.
    :returns: ``(..., K)`` with ``K = n_levels``: ``K * int_{k/K}^{(k+1)/K} Q(t) dt``.
    """
    order = torch.argsort(values, dim=-1)
    return _cell_averages_sorted(torch.gather(values, -1, order), torch.gather(masses, -1, order), n_levels)


def _cell_averages_sorted(v: torch.Tensor, w: torch.Tensor, n_levels: int) -> torch.Tensor:
    """:func:`cell_average_quantiles` for values ``v`` sorted along the last axis.

    ``F(t) = int_0^t Q`` is piecewise linear with knots at the cumulative masses, so the
    cell integrals are exact differences of ``F`` at the cell edges.
    """
    v, w = torch.broadcast_tensors(v, w)
    cum_w = torch.cumsum(w, dim=-1)
    cum_vw = torch.cumsum(v * w, dim=-1)
    cum_w = (cum_w / cum_w[..., -1:]).contiguous()  # exactly 1 at the end despite rounding
    edges = torch.linspace(0.0, 1.0, n_levels + 1, dtype=v.dtype, device=v.device)
    edges = edges.expand(*v.shape[:-1], n_levels + 1).contiguous()
    # the segment j holding t: cum_w[j-1] < t <= cum_w[j]; F(t) = cum_vw[j-1] + v[j] (t - cum_w[j-1])
    j = torch.searchsorted(cum_w, edges).clamp(max=v.shape[-1] - 1)
    before = (j - 1).clamp(min=0)
    first = j == 0
    prev_w = torch.gather(cum_w, -1, before).masked_fill(first, 0.0)
    prev_vw = torch.gather(cum_vw, -1, before).masked_fill(first, 0.0)
    f = prev_vw + torch.gather(v, -1, j) * (edges - prev_w)
    return (f[..., 1:] - f[..., :-1]) * n_levels


class SlicedW2(EmbeddingSolver):
    """Sliced Wasserstein-2 distance, computed as a Euclidean distance between embeddings.

    For ``L = n_projections`` unit directions theta_l (in the plane, evenly spread over
    half a turn; in higher dimensions, seeded uniform on the sphere, drawn as POT draws them) and ``K = n_levels`` cells of [0, 1], a measure mu is embedded as the cell averages
    of the quantile functions of its projections ``<theta_l, x>``, scaled by
    ``1 / sqrt(L K)``. The Euclidean distance between two embeddings is then

        sqrt( (1/L) sum_l sum_k (1/K) |Qbar_l,k(mu) - Qbar_l,k(nu)|^2 ),

    the sliced W2 of POT's ``sliced_wasserstein_distance`` with the same directions, up
    to the quantile discretisation: cell averages project the quantile difference on
    piecewise constants, so the estimate never exceeds the exact SW2, and SW2 <= W2. The
    estimate is exact when every measure has uniform masses on a number of points
    dividing K. The discretisation error is bounded: ``0 <= SW2^2 - estimate^2 <=
    (1/L) sum_l (R_l(mu) + R_l(nu))^2 / K`` with ``R_l`` the spread (max - min) of the
    projected support, so it shrinks like 1/K. The unscaled estimate is a lower bound of
    W2; the fitted scale of :class:`EmbeddingSolver` (``fit_scale``, default on) turns it
    into a least-squares estimate of W2.

    Fit-time parameters: ``n_projections`` (default 64), ``n_levels`` (default 64),
    ``seed`` (directions), ``device`` (torch device of the embedding computation). The
    embedding has ``L * K`` coordinates, float64. ``n_parameters`` is 0.

    Failure contract: a non-finite distance (only from non-finite input) is NaN and
    counted in ``n_failed`` (:meth:`describe`), ``n_evaluated`` counts every distance.
    """

    input_kind = "any"

    def __init__(
        self,
        *,
        n_projections: int = 64,
        n_levels: int = 64,
        seed: int = 0,
        device: str = "cpu",
        fit_scale: bool = True,
        scale_pairs: int = 1000,
    ) -> None:
        if n_projections < 1 or n_levels < 1:
            raise ValueError(f"n_projections and n_levels must be positive, got {n_projections} and {n_levels}")
        super().__init__(
            n_projections=n_projections, n_levels=n_levels, seed=seed, device=device,
            fit_scale=fit_scale, scale_pairs=scale_pairs,
        )
        self.n_projections = int(n_projections)
        self.n_levels = int(n_levels)
        self.seed = int(seed)
        self.torch_device = torch.device(device)
        self._directions: dict[int, torch.Tensor] = {}

    def directions(self, dim: int) -> torch.Tensor:
        """The unit directions ``(dim, n_projections)`` float64 for measures in R^dim."""
        if dim not in self._directions:
            if dim == 2:
                theta = evenly_spread_directions(self.n_projections)
            else:
                theta = random_directions(dim, self.n_projections, self.seed)
            self._directions[dim] = torch.from_numpy(theta)
        return self._directions[dim]

    @torch.inference_mode()
    def embed_unscaled(self, x: MeasureBatch, batch_size: int = 256) -> torch.Tensor:
        """Embeddings ``(B, L * K)`` float64 on the CPU; ``|e(mu) - e(nu)|`` is the discretised SW2."""
        theta = self.directions(x.dim).to(self.torch_device)
        scale = 1.0 / math.sqrt(self.n_projections * self.n_levels)
        parts = []
        for start in range(0, len(x), batch_size):
            chunk = x.index(slice(start, start + batch_size)).to(self.torch_device, torch.float64)
            w = chunk.weights  # (b, N)
            if chunk.support.ndim == 2:  # shared grid: project and sort once for the whole batch
                proj = (chunk.support @ theta).T  # (L, N)
                order = torch.argsort(proj, dim=-1)
                v = torch.gather(proj, -1, order).unsqueeze(0)  # (1, L, N)
                q = _cell_averages_sorted(v, w[:, order], self.n_levels)  # (b, L, K)
            else:
                proj = torch.einsum("bnd,dl->bln", chunk.support, theta)
                masses = w.unsqueeze(1).expand(-1, self.n_projections, -1)
                q = cell_average_quantiles(proj, masses, self.n_levels)
            parts.append((q * scale).reshape(len(chunk), -1).cpu())
        if not parts:
            return torch.zeros(0, self.n_projections * self.n_levels, dtype=torch.float64)
        return torch.cat(parts)

    def describe(self) -> dict[str, Any]:
        info = {"n_projections": self.n_projections, "n_levels": self.n_levels, "seed": self.seed, "embedding_dim": self.n_projections * self.n_levels}
        return {**info, **super().describe()}
