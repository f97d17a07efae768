"""Batches of discrete probability measures: grid histograms and weighted point clouds.

A batch holds ``weights`` of shape ``(B, N)`` (non-negative, each row summing to 1) on a
``support`` of shape ``(N, D)`` shared by the batch (a pixel grid) or ``(B, N, D)`` (one
point cloud per measure; padded points carry weight 0). Coordinates are in the ground
cost's units: pixels for images, so neighbouring pixels are at distance 1 and the exact
W2 is in pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from wbench.errors import InvalidMeasureError

IndexLike = int | slice | Sequence[int] | np.ndarray | torch.Tensor


def validate_weights(weights: torch.Tensor, *, normalise: bool = True, what: str = "weights") -> torch.Tensor:
    """Check a ``(B, N)`` mass array and return it normalised so that each row sums to 1.

    :raises InvalidMeasureError: wrong rank, a non-finite or negative entry, or a row with
        zero total mass; the message names the first offending row.
    """
    if weights.ndim != 2:
        raise InvalidMeasureError(f"{what} must have shape (B, N), got {tuple(weights.shape)}")
    if weights.shape[0] == 0 or weights.shape[1] == 0:
        raise InvalidMeasureError(f"{what} is empty: shape {tuple(weights.shape)}")
    finite = torch.isfinite(weights)
    if not bool(finite.all()):
        row = int((~finite).any(dim=1).nonzero()[0])
        raise InvalidMeasureError(f"{what}: measure {row} has a non-finite mass (NaN or inf)")
    if bool((weights < 0).any()):
        row = int((weights < 0).any(dim=1).nonzero()[0])
        raise InvalidMeasureError(f"{what}: measure {row} has negative mass {float(weights[row].min()):.3g}")
    totals = weights.sum(dim=1, keepdim=True)
    if bool((totals <= 0).any()):
        row = int((totals[:, 0] <= 0).nonzero()[0])
        raise InvalidMeasureError(f"{what}: measure {row} has zero total mass (an empty image?)")
    return weights / totals if normalise else weights


def grid_coordinates(height: int, width: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Pixel coordinates ``(row, col)`` of an ``height x width`` grid in row-major order: ``(H*W, 2)``."""
    rows, cols = torch.meshgrid(
        torch.arange(height, dtype=dtype), torch.arange(width, dtype=dtype), indexing="ij"
    )
    return torch.stack([rows.reshape(-1), cols.reshape(-1)], dim=1)


@dataclass(frozen=True)
class MeasureBatch:
    """A batch of B discrete measures.

    :param weights: ``(B, N)`` masses, non-negative, rows sum to 1.
    :param support: ``(N, D)`` points shared by all measures, or ``(B, N, D)`` per measure,
        in ground-cost units.
    :param grid_shape: ``(H, W)`` when ``support`` is the full pixel grid in row-major order
        (then ``weights`` reshape to images).
    """

    weights: torch.Tensor
    support: torch.Tensor
    grid_shape: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        w, s = self.weights, self.support
        if w.ndim != 2:
            raise InvalidMeasureError(f"weights must have shape (B, N), got {tuple(w.shape)}")
        if s.ndim == 2:
            if s.shape[0] != w.shape[1]:
                raise InvalidMeasureError(
                    f"support has {s.shape[0]} points but weights have {w.shape[1]} entries per measure"
                )
        elif s.ndim == 3:
            if s.shape[:2] != w.shape:
                raise InvalidMeasureError(
                    f"support shape {tuple(s.shape)} does not match weights shape {tuple(w.shape)}"
                )
        else:
            raise InvalidMeasureError(f"support must have shape (N, D) or (B, N, D), got {tuple(s.shape)}")
        if self.grid_shape is not None:
            h, wd = self.grid_shape
            if s.ndim != 2 or h * wd != s.shape[0]:
                raise InvalidMeasureError(f"grid_shape {self.grid_shape} does not match support {tuple(s.shape)}")

    @classmethod
    def from_images(cls, images: torch.Tensor | np.ndarray, *, normalise: bool = True) -> MeasureBatch:
        """Build a grid batch from images ``(B, H, W)`` or ``(B, 1, H, W)`` of non-negative intensities.

        Intensities are normalised to unit mass per image (unless ``normalise=False``).
        """
        images = torch.as_tensor(images)
        if images.ndim == 4 and images.shape[1] == 1:
            images = images[:, 0]
        if images.ndim != 3:
            raise InvalidMeasureError(f"images must have shape (B, H, W) or (B, 1, H, W), got {tuple(images.shape)}")
        if not images.is_floating_point():
            images = images.float()
        b, h, w = images.shape
        weights = validate_weights(images.reshape(b, h * w), normalise=normalise, what="images")
        return cls(weights, grid_coordinates(h, w, dtype=weights.dtype), (h, w))

    @classmethod
    def from_point_clouds(
        cls, points: torch.Tensor | np.ndarray, weights: torch.Tensor | np.ndarray | None = None
    ) -> MeasureBatch:
        """Build a batch from point clouds ``(B, N, D)`` and optional masses ``(B, N)`` (uniform if None)."""
        points = torch.as_tensor(points)
        if not points.is_floating_point():
            points = points.float()
        if points.ndim != 3:
            raise InvalidMeasureError(f"points must have shape (B, N, D), got {tuple(points.shape)}")
        if not bool(torch.isfinite(points).all()):
            raise InvalidMeasureError("points contain NaN or inf coordinates")
        if weights is None:
            weights = torch.full(points.shape[:2], 1.0 / points.shape[1], dtype=points.dtype)
        weights = validate_weights(torch.as_tensor(weights, dtype=points.dtype))
        return cls(weights, points, None)

    def __len__(self) -> int:
        return int(self.weights.shape[0])

    @property
    def n_points(self) -> int:
        """N, the number of support points per measure (padded)."""
        return int(self.weights.shape[1])

    @property
    def dim(self) -> int:
        """D, the dimension of the ground space."""
        return int(self.support.shape[-1])

    @property
    def is_grid(self) -> bool:
        """True when the measures are histograms on a shared pixel grid."""
        return self.grid_shape is not None

    @property
    def device(self) -> torch.device:
        return self.weights.device

    def index(self, idx: IndexLike) -> MeasureBatch:
        """The sub-batch of the measures at ``idx`` (an int keeps the batch dimension)."""
        if isinstance(idx, int):
            idx = [idx]
        if isinstance(idx, np.ndarray):
            idx = torch.from_numpy(idx)
        if isinstance(idx, torch.Tensor):
            idx = idx.to(self.weights.device)
        support = self.support if self.support.ndim == 2 else self.support[idx]
        return MeasureBatch(self.weights[idx], support, self.grid_shape)

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> MeasureBatch:
        """Move (and optionally cast) the batch."""
        return MeasureBatch(
            self.weights.to(device=device, dtype=dtype), self.support.to(device=device, dtype=dtype), self.grid_shape
        )

    def images(self) -> torch.Tensor:
        """The grid measures as images ``(B, 1, H, W)`` of unit mass."""
        if self.grid_shape is None:
            raise InvalidMeasureError("these measures are point clouds, not histograms on a grid")
        return self.weights.reshape(len(self), 1, *self.grid_shape)

    def point_clouds(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The measures as ``(points (B, N, D), weights (B, N))``; a shared grid is broadcast."""
        if self.support.ndim == 2:
            return self.support.unsqueeze(0).expand(len(self), -1, -1), self.weights
        return self.support, self.weights

    def measure(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Measure ``i`` restricted to its support, in float64: ``(points (k, D), masses (k,))``.

        Masses are renormalised in float64 so that they sum to 1 exactly enough for an LP.
        """
        w = self.weights[i].detach().cpu().double().numpy()
        pts = (self.support if self.support.ndim == 2 else self.support[i]).detach().cpu().double().numpy()
        keep = w > 0
        w = w[keep]
        return pts[keep], w / w.sum()


def concat_measures(a: MeasureBatch, b: MeasureBatch) -> MeasureBatch:
    """Stack two batches on the same support into one ``(len(a) + len(b), N)`` batch."""
    if a.support.ndim == 2 and b.support.ndim == 2:
        if a.support.shape != b.support.shape or not torch.equal(a.support, b.support.to(a.support.device)):
            raise ValueError("cannot stack measures on different grids")
        return MeasureBatch(torch.cat([a.weights, b.weights.to(a.device)]), a.support, a.grid_shape)
    pa, wa = a.point_clouds()
    pb, wb = b.point_clouds()
    n = max(pa.shape[1], pb.shape[1])
    pa, wa = _pad_cloud(pa, wa, n)
    pb, wb = _pad_cloud(pb, wb, n)
    return MeasureBatch(torch.cat([wa, wb.to(wa.device)]), torch.cat([pa, pb.to(pa.device)]), None)


def _pad_cloud(points: torch.Tensor, weights: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    extra = n - points.shape[1]
    if extra == 0:
        return points, weights
    points = torch.nn.functional.pad(points, (0, 0, 0, extra))
    weights = torch.nn.functional.pad(weights, (0, extra))
    return points, weights
