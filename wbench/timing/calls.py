"""The calls a cost model times: an embedding batch (on new tensors each call), a distance
block, a one-pair ``pairwise``, a solver's row-aligned batch, and direct ``pairwise`` blocks."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from wbench.evaluation import is_embedding
from wbench.measures import MeasureBatch
from wbench.surrogate import pairwise_euclidean
from wbench.timing.throughput import independent_step, pairwise_step

if TYPE_CHECKING:
    from wbench.surrogate import Surrogate


def embedder(surrogate: Surrogate) -> Callable[[MeasureBatch], torch.Tensor]:
    """The embedding call that ``distance`` / ``pairwise`` use: ``embed_all`` when there is one
    (learned models: evaluation mode, chunks), else ``embed``; run under inference mode.

    :raises TypeError: the surrogate has no ``embed``.
    """
    if not is_embedding(surrogate):
        raise TypeError(f"{type(surrogate).__name__} has no embed(): it is a solver, time it with its pairs")
    function = getattr(surrogate, "embed_all", None) or surrogate.embed

    @torch.inference_mode()
    def run(x: MeasureBatch) -> torch.Tensor:
        return function(x)

    return run


def sample_measures(measures: MeasureBatch, n: int, *, seed: int = 0, device: str | torch.device = "cpu") -> MeasureBatch:
    """``n`` measures drawn from ``measures`` (without replacement when there are enough), on ``device``."""
    if n < 1:
        raise ValueError(f"need at least one measure, got n={n}")
    if len(measures) == 0:
        raise ValueError("cannot draw from an empty MeasureBatch")
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(measures), size=n, replace=n > len(measures))
    return measures.index(idx).to(device)


def embedding_calls(
    surrogate: Surrogate, measures: MeasureBatch, *, embed_batch: int, rows: int, cols: int, seed: int, dev: torch.device
) -> dict[str, Callable[[], Any]]:
    """The timed calls of an embedding method: ``embed`` (``embed_batch`` measures), ``pair``
    (the ``rows x cols`` distance matrix of embeddings) and ``call`` (one 1 x 1 ``pairwise``).

    Draws the measures (seeds ``seed``, ``seed + 1``, ``seed + 2``, ``seed + 5``) on ``dev`` and
    embeds the block's rows and columns now, outside the timed calls.
    """
    embed = embedder(surrogate)
    fresh_batch = fresh_copies(sample_measures(measures, embed_batch, seed=seed, device=dev))
    ex = embed(sample_measures(measures, rows, seed=seed + 1, device=dev))
    ey = embed(sample_measures(measures, cols, seed=seed + 2, device=dev))
    chunk = int(getattr(surrogate, "pairwise_chunk", 4096))
    fns: dict[str, Callable[[], Any]] = {}
    fns["embed"] = lambda: embed(fresh_batch())
    fns["copy"] = fresh_batch  # timed in the same rounds and subtracted from ``embed``
    fns["pair"] = lambda: pairwise_euclidean(ex, ey, chunk=chunk)
    one_x = fresh_copies(sample_measures(measures, 1, seed=seed + 5, device=dev))
    one_y = fresh_copies(sample_measures(measures, 1, seed=seed, device=dev))
    fns["call"] = lambda: pairwise_step(surrogate, one_x(), one_y())
    return fns


def fresh_copies(batch: MeasureBatch) -> Callable[[], MeasureBatch]:
    """A zero-argument callable returning a new copy of ``batch`` (new tensor storage) at every
    call, so that a timed call never gets the tensors of an earlier one: a method that caches
    its results by tensor identity or address gains nothing from the repeats of a timing round."""
    per_measure_support = batch.support.dim() == 3

    def copy() -> MeasureBatch:
        support = batch.support.clone() if per_measure_support else batch.support
        return replace(batch, weights=batch.weights.clone(), support=support)

    return copy


def perturbed(batch: MeasureBatch, *, seed: int) -> MeasureBatch:
    """``batch`` with every weight scaled by ``1 + 1e-6 u`` (``u`` uniform in [0, 1), seeded) and
    renormalised: measures no timing round has seen (a cache keyed by content misses), whose W2
    moves by about 1e-6 relative."""
    generator = torch.Generator().manual_seed(seed)
    noise = torch.rand(batch.weights.shape, generator=generator, dtype=batch.weights.dtype)
    weights = batch.weights * (1 + 1e-6 * noise.to(batch.weights.device))
    return replace(batch, weights=weights / weights.sum(dim=1, keepdim=True))


def solver_calls(
    surrogate: Surrogate, measures: MeasureBatch, *, solver_batch: int, seed: int, dev: torch.device
) -> dict[str, Callable[[], Any]]:
    """The timed call of a solver: ``pair``, one ``distance`` call on ``solver_batch`` row-aligned
    pairs (drawn with seeds ``seed + 1``, ``seed + 2`` on ``dev``)."""
    a = sample_measures(measures, solver_batch, seed=seed + 1, device=dev)
    b = sample_measures(measures, solver_batch, seed=seed + 2, device=dev)
    return {"pair": lambda: independent_step(surrogate, a, b)}


def check_request(
    surrogates: Mapping[str, Any], extra: Mapping[str, Any], batches: Mapping[str, int], solver_batch: int,
    block: tuple[int, int], direct_n: Sequence[int],
) -> None:
    """:raises ValueError: no surrogate and no extra callable, a bad size, or a ``/`` in a name."""
    for batch in batches.values() or [1024]:
        check_sizes(embed_batch=batch, solver_batch=solver_batch, rows=block[0], cols=block[1], direct_n=direct_n)
    if not surrogates and not extra:
        raise ValueError("measure_cost_models needs at least one surrogate or extra callable")
    bad = [name for name in [*surrogates, *extra] if "/" in name]
    if bad:
        raise ValueError(f"names must not contain '/': {bad}")


def check_sizes(*, embed_batch: int, solver_batch: int, rows: int, cols: int, direct_n: Sequence[int]) -> None:
    """Refuse a batch or block size that is not a positive integer (``ValueError`` naming it)."""
    for name, value in (("embed_batch", embed_batch), ("solver_batch", solver_batch), ("pair_block rows", rows), ("pair_block cols", cols)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    bad = [n for n in direct_n if int(n) < 1]
    if bad:
        raise ValueError(f"direct_n sizes must be positive, got {bad}")
