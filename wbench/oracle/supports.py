"""Support tables: every measure's support points and masses, extracted once.

The exact oracle (:mod:`wbench.oracle.solve`) solves each pair on the supports of its two measures
only (the pixels or points with positive mass). :func:`support_table` extracts them, as
float64 arrays in one compact table (:class:`SupportTable`), with masses renormalised in
float64 so that each measure sums to 1; it also checks the masses (non-negative, finite,
positive total) and names the first bad measure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from wbench.errors import InvalidMeasureError
from wbench.measures import MeasureBatch

__all__ = ["SupportTable", "as_index_array", "check_masses", "support_table"]

_EXTRACT_BLOCK = 4096
"""Measures converted to dense float64 at a time while extracting supports (bounds memory)."""


@dataclass(frozen=True)
class SupportTable:
    """The supports of ``k`` measures, packed: measure ``i`` is ``points[offsets[i]:offsets[i+1]]``.

    :param points: ``(T, D)`` float64 support points with positive mass, ground-cost units.
    :param masses: ``(T,)`` float64 masses, positive, each measure's slice summing to 1.
    :param offsets: ``(k + 1,)`` int64, ``offsets[0] == 0`` and ``offsets[k] == T``.
    """

    points: np.ndarray
    masses: np.ndarray
    offsets: np.ndarray

    def __len__(self) -> int:
        return int(self.offsets.shape[0] - 1)

    @property
    def dim(self) -> int:
        return int(self.points.shape[1])

    def measure(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """``(points (n_i, D), masses (n_i,))`` of measure ``i``."""
        s, e = self.offsets[i], self.offsets[i + 1]
        return self.points[s:e], self.masses[s:e]

    def subset(self, ids: np.ndarray) -> SupportTable:
        """A table of the measures ``ids`` (in that order), copying only their slices."""
        ids = np.asarray(ids, dtype=np.int64)
        starts = self.offsets[ids]
        counts = self.offsets[ids + 1] - starts
        offsets = np.zeros(len(ids) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        gather = np.repeat(starts - offsets[:-1], counts) + np.arange(offsets[-1], dtype=np.int64)
        return SupportTable(self.points[gather], self.masses[gather], offsets)

    def concat(self, other: SupportTable) -> SupportTable:
        """This table followed by ``other`` (its measures numbered from ``len(self)``)."""
        if other.dim != self.dim:
            raise InvalidMeasureError(f"cannot pair measures of dimension {self.dim} with dimension {other.dim}")
        offsets = np.concatenate([self.offsets, other.offsets[1:] + self.offsets[-1]])
        return SupportTable(
            np.concatenate([self.points, other.points]), np.concatenate([self.masses, other.masses]), offsets
        )


def as_index_array(idx: object, n: int, what: str) -> np.ndarray:
    """A 1-D int64 index array with every entry in ``[0, n)``."""
    if isinstance(idx, torch.Tensor):
        idx = idx.detach().cpu().numpy()
    arr = np.asarray(idx)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise InvalidMeasureError(f"{what} must be a 1-D array of measure indices, got shape {arr.shape}")
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise InvalidMeasureError(f"{what} must hold integer measure indices, got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    bad = (arr < 0) | (arr >= n)
    if bad.any():
        raise InvalidMeasureError(
            f"{what}[{int(np.argmax(bad))}] = {int(arr[bad][0])} is not a measure index (there are {n} measures)"
        )
    return arr


def check_masses(weights: np.ndarray, ids: np.ndarray, what: str) -> None:
    """Raise :class:`InvalidMeasureError` naming the first measure with bad masses."""
    finite = np.isfinite(weights)
    if not finite.all():
        row = int(np.argmin(finite.all(axis=1)))
        raise InvalidMeasureError(f"{what}: measure {int(ids[row])} has a non-finite mass (NaN or inf)")
    negative = weights < 0
    if negative.any():
        row = int(np.argmax(negative.any(axis=1)))
        raise InvalidMeasureError(
            f"{what}: measure {int(ids[row])} has negative mass {float(weights[row].min()):.3g}"
        )
    totals = weights.sum(axis=1)
    if (totals <= 0).any():
        row = int(np.argmax(totals <= 0))
        raise InvalidMeasureError(f"{what}: measure {int(ids[row])} has zero total mass (an empty image?)")
    if not np.isfinite(totals).all():
        row = int(np.argmax(~np.isfinite(totals)))
        raise InvalidMeasureError(f"{what}: measure {int(ids[row])} has a total mass that overflows float64")


def support_table(measures: MeasureBatch, ids: Sequence[int] | np.ndarray | None = None, *, what: str = "measures") -> SupportTable:
    """Extract the float64 supports of ``measures[ids]`` (all measures when ``ids`` is None).

    :param measures: a batch of ``B`` measures (grid histograms or point clouds), any device.
    :param ids: ``(k,)`` indices of the measures to extract.
    :param what: how error messages name the batch.
    :returns: a :class:`SupportTable` of ``k`` measures, masses renormalised to sum 1.
    :raises InvalidMeasureError: a negative, non-finite or all-zero mass, or a non-finite
        support point carrying mass; the message names the measure by its index in ``measures``.
    """
    n = len(measures)
    ids = np.arange(n, dtype=np.int64) if ids is None else as_index_array(ids, n, "measure ids")
    if measures.support.ndim == 2 and not bool(torch.isfinite(measures.support).all()):
        raise InvalidMeasureError(f"{what}: the shared support has a non-finite coordinate")
    parts = [_extract_block(measures, ids[s : s + _EXTRACT_BLOCK], what) for s in range(0, len(ids), _EXTRACT_BLOCK)]
    offsets = np.zeros(len(ids) + 1, dtype=np.int64)
    if not parts:
        return SupportTable(np.zeros((0, measures.dim)), np.zeros(0), offsets)
    np.cumsum(np.concatenate([counts for _, _, counts in parts]), out=offsets[1:])
    points = np.concatenate([pts for pts, _, _ in parts])
    masses = np.concatenate([m for _, m, _ in parts])
    return SupportTable(np.ascontiguousarray(points), masses, offsets)


def _extract_block(measures: MeasureBatch, ids: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(points (T, D), masses (T,), counts (k,))`` of the measures ``ids``, masses normalised."""
    index = torch.from_numpy(ids).to(measures.weights.device)
    weights = measures.weights.detach()[index].to("cpu", torch.float64).numpy()
    check_masses(weights, ids, what)
    rows, cols = np.nonzero(weights)  # row-major: grouped by measure
    masses = weights[rows, cols]
    counts = np.bincount(rows, minlength=len(ids))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    masses = masses / np.repeat(np.add.reduceat(masses, starts), counts)
    if measures.support.ndim == 2:
        points = measures.support.detach().to("cpu", torch.float64).numpy()[cols]
    else:
        per_measure = measures.support.detach()[index].to("cpu", torch.float64).numpy()
        points = per_measure[rows, cols]
        finite = np.isfinite(points).all(axis=1)
        if not finite.all():
            bad = int(ids[rows[int(np.argmin(finite))]])
            raise InvalidMeasureError(f"{what}: measure {bad} has a non-finite support point with positive mass")
    return points, masses, counts
