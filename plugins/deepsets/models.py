"""A permutation-invariant (DeepSets) encoder of weighted point sets trained so that the
Euclidean distance between encodings matches W2 (paper 002, appendix B).

``H(S) = rho( sum_i w_i phi(x_i) )`` with

* ``phi``: Linear 50, Linear 100, Linear 36, each followed by ELU;
* weighted sum pooling: the masses ``w_i`` (summing to 1) scale the pooled features, so a
  padded point of mass 0 contributes nothing and the encoding of ``n`` uniform samples
  does not grow with ``n``;
* ``rho``: Linear 30, Linear 30, Linear 10, each followed by ELU, then a linear output
  layer of dimension ``out_dim`` (2 in the paper, for plots; larger for accuracy).

Any :class:`~wbench.measures.MeasureBatch` is accepted: images become weighted clouds of
pixel coordinates (``phi`` then runs once on the shared grid, not once per image).
Coordinates are standardised inside the model, ``u = (x - coord_center) * coord_scale``,
and the output divided by ``coord_scale``, so the network works at unit scale while
encodings (and distances) stay in ground-cost units. :meth:`DeepSets.params_for` sets both
from the data (mean and 1 / standard deviation of the support coordinates).

Training minimises the MSE between ``|H(S_X) - H(S_Y)|`` and W2 (the shared default), plus
two optional regularisers of paper 002 (section 3.1), each with a fresh random draw per batch:

* translation (``translation_weight``): ``(|H(S_X + v) - H(S_Y + v)| - |H(S_X) - H(S_Y)|)^2``,
  ``v ~ N(0, translation_std^2 I)`` (default std: that of the data coordinates);
* scaling (``scaling_weight``): ``(|H(a S_X) - H(a S_Y)| - |a| |H(S_X) - H(S_Y)|)^2``,
  ``|a| ~ U(scale_range)`` with a random sign.

Both are off by default (weights 0).

Sizes: ``width`` is the total number of hidden units of the six hidden layers, shared in
the paper's proportions 50 : 100 : 36 : 30 : 30 : 10 by D'Hondt's method (``width=256`` is
the paper's network; each increment adds one unit to one layer, so the parameter count is
strictly increasing). The paper's network on 2-D points with ``out_dim=2`` has 11,258
parameters.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from wbench.measures import MeasureBatch
from wbench.surrogate import EmbeddingSurrogate
from wbench.training import apportion

PAPER_WIDTHS = (50, 100, 36, 30, 30, 10)
"""The paper's hidden sizes: phi (50, 100, 36), then rho (30, 30, 10)."""
PAPER_WIDTH = sum(PAPER_WIDTHS)


def _mlp(sizes: Sequence[int], *, last_activation: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for k in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[k], sizes[k + 1]))
        if k < len(sizes) - 2 or last_activation:
            layers.append(nn.ELU())
    return nn.Sequential(*layers)


class DeepSetsNetwork(nn.Module):
    """``rho(sum_i w_i phi(u_i))`` on standardised coordinates ``u``.

    :param dim: dimension D of the points.
    :param phi_sizes: hidden sizes of ``phi`` (last one is the pooled feature size).
    :param rho_sizes: hidden sizes of ``rho``.
    :param out_dim: encoding dimension.
    """

    def __init__(self, dim: int, phi_sizes: Sequence[int], rho_sizes: Sequence[int], out_dim: int) -> None:
        super().__init__()
        self.phi = _mlp([dim, *phi_sizes], last_activation=True)
        self.rho = _mlp([phi_sizes[-1], *rho_sizes, out_dim], last_activation=False)

    def forward(self, points: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Encode ``points`` ``(N, D)`` (shared by the batch) or ``(B, N, D)`` with masses ``(B, N)``."""
        features = self.phi(points)
        if points.ndim == 2:
            pooled = weights @ features
        else:
            pooled = torch.einsum("bn,bnk->bk", weights, features)
        return self.rho(pooled)


class DeepSets(EmbeddingSurrogate):
    """Paper 002's DeepSets encoder: ``d(x, y) = |H(x) - H(y)|``, W2 in ground-cost units.

    :param dim: dimension of the points (filled from the data by :meth:`params_for`).
    :param out_dim: encoding dimension (2 in the paper).
    :param width: total hidden units (256 = the paper's network; see the module docstring).
    :param coord_center: ``(D,)`` subtracted from coordinates before ``phi`` (default 0).
    :param coord_scale: coordinates are multiplied by it before ``phi`` and the encoding
        divided by it (default 1).
    :param translation_weight: weight of the translation regulariser (0: off).
    :param scaling_weight: weight of the scaling regulariser (0: off).
    :param translation_std: std of the random translations (default ``1 / coord_scale``).
    :param scale_range: ``(low, high)`` of the random scale magnitudes ``|a|``.
    """

    input_kind: ClassVar[str] = "cloud"
    width_param: ClassVar[str | None] = "width"
    authors_defaults: ClassVar[dict[str, Any]] = {"out_dim": 2, "lr": 1e-3}
    """Paper 002's encoding size and Adam learning rate."""

    def __init__(
        self,
        *,
        dim: int = 2,
        out_dim: int = 2,
        width: int = PAPER_WIDTH,
        coord_center: Sequence[float] | None = None,
        coord_scale: float = 1.0,
        translation_weight: float = 0.0,
        scaling_weight: float = 0.0,
        translation_std: float | None = None,
        scale_range: Sequence[float] = (0.5, 2.0),
    ) -> None:
        for name, value in (("dim", dim), ("out_dim", out_dim), ("width", width)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"DeepSets {name} must be a positive integer, got {value!r}")
        if not (math.isfinite(coord_scale) and coord_scale > 0):
            raise ValueError(f"DeepSets coord_scale must be positive, got {coord_scale!r}")
        center = [0.0] * dim if coord_center is None else [float(c) for c in coord_center]
        if len(center) != dim:
            raise ValueError(f"DeepSets coord_center has {len(center)} entries for dim {dim}")
        if translation_weight < 0 or scaling_weight < 0:
            raise ValueError("DeepSets regulariser weights must be non-negative")
        low, high = (float(v) for v in scale_range)
        if not 0 < low <= high:
            raise ValueError(f"DeepSets scale_range must satisfy 0 < low <= high, got {scale_range!r}")
        super().__init__(
            dim=dim, out_dim=out_dim, width=width, coord_center=center, coord_scale=float(coord_scale),
            translation_weight=float(translation_weight), scaling_weight=float(scaling_weight),
            translation_std=None if translation_std is None else float(translation_std),
            scale_range=[low, high],
        )
        sizes = apportion(width, PAPER_WIDTHS)
        self.layer_sizes = {"phi": sizes[:3], "rho": sizes[3:], "out_dim": out_dim}
        self.model = DeepSetsNetwork(dim, sizes[:3], sizes[3:], out_dim)
        self._set_coordinates()

    def _set_coordinates(self) -> None:
        """Cache the coordinate standardisation (centre tensor, scale) from ``self.params``."""
        center = torch.tensor(self.params["coord_center"], dtype=torch.float32)
        self._center = center
        self._scale = float(self.params["coord_scale"])

    @classmethod
    def params_for(cls, params: Mapping[str, Any], measures: MeasureBatch) -> dict[str, Any]:
        """Set ``dim`` and the coordinate standardisation from the measures, unless given.

        ``coord_center`` is the mean of the support coordinates (padding points excluded)
        and ``coord_scale`` the inverse of their standard deviation over all axes.
        """
        out = dict(params)
        out.setdefault("dim", measures.dim)
        if "coord_center" in out and "coord_scale" in out:
            return out
        support = measures.support
        points = support[measures.weights > 0] if support.ndim == 3 else support
        points = points.detach().double().cpu()
        center = points.mean(dim=0)
        std = float((points - center).pow(2).sum(dim=1).mean().div(points.shape[1]).sqrt())
        # six significant digits: short, JSON-stable values in records and saved headers
        out.setdefault("coord_center", [float(f"{float(c):.6g}") for c in center])
        out.setdefault("coord_scale", float(f"{1.0 / std:.6g}") if std > 0 else 1.0)
        return out

    def _encode(self, points: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        first = next(self.model.parameters())
        device, dtype = first.device, first.dtype
        u = (points.to(device, dtype) - self._center.to(device, dtype)) * self._scale
        return self.model(u, weights.to(device, dtype)) / self._scale

    def embed(self, x: MeasureBatch) -> torch.Tensor:
        """Encodings ``(B, out_dim)`` in ground-cost units (a shared grid is encoded once)."""
        if x.dim != self.params["dim"]:
            raise ValueError(f"this DeepSets was built for {self.params['dim']}-D points, got {x.dim}-D")
        return self._encode(x.support, x.weights)

    def training_loss(self, a: MeasureBatch, b: MeasureBatch, w2sq: torch.Tensor) -> torch.Tensor:
        """MSE on W2, plus the translation and scaling regularisers when their weights are positive."""
        # One call per side keeps a shared grid shared (phi evaluated once per side).
        ha = self._encode(a.support, a.weights)
        hb = self._encode(b.support, b.weights)
        dist = _norm(ha - hb)
        loss = (dist - w2sq.to(dist.dtype).clamp_min(0).sqrt()).pow(2).mean()
        t_weight, s_weight = self.params["translation_weight"], self.params["scaling_weight"]
        if t_weight > 0:
            std = self.params["translation_std"] or 1.0 / self._scale
            v = torch.randn(a.dim, device=ha.device) * std
            moved = _norm(self._encode(a.support + v.to(a.support), a.weights) - self._encode(b.support + v.to(b.support), b.weights))
            loss = loss + t_weight * (moved - dist).pow(2).mean()
        if s_weight > 0:
            low, high = self.params["scale_range"]
            magnitude = low + (high - low) * float(torch.rand(()))
            factor = magnitude if float(torch.rand(())) < 0.5 else -magnitude
            scaled = _norm(self._encode(a.support * factor, a.weights) - self._encode(b.support * factor, b.weights))
            loss = loss + s_weight * (scaled - magnitude * dist).pow(2).mean()
        return loss

    def describe(self) -> dict[str, Any]:
        """Layer sizes and the coordinate standardisation."""
        return {
            "layer_sizes": {k: list(v) if isinstance(v, list) else v for k, v in self.layer_sizes.items()},
            "coord_center": list(self.params["coord_center"]),
            "coord_scale": self.params["coord_scale"],
        }


def _norm(diff: torch.Tensor) -> torch.Tensor:
    return (diff.pow(2).sum(dim=1) + 1e-12).sqrt()
