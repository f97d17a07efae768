"""Conformance checks for plugin authors: run them on your surrogate or dataset plugin.

Example (in your package's tests)::

    from wbench.testing import check_surrogate, check_dataset, toy_dataset

    def test_my_surrogate_conforms():
        check_surrogate(MySurrogate, {"width": 4})

Each check raises ``AssertionError`` with a message naming the broken rule. wbench's own
test suite runs them on every registered plugin with its ``test_params``.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wbench.budget import Budget
from wbench.data import DatasetPlugin, PairedDataset, PairSet
from wbench.measures import MeasureBatch
from wbench.metrics import sample_triplets, triangle_violations
from wbench.surrogate import FitReport, Surrogate, TorchSurrogate
from wbench.train.loop import seed_everything
from wbench.validate import InvalidPredictionError, check_predictions

TINY_BUDGET = Budget(epochs=None, steps=3, batch_size=16, lr=1e-3, seed=0)


def toy_images(n: int = 24, size: int = 8, seed: int = 0) -> torch.Tensor:
    """``(n, size, size)`` non-negative images: one or two Gaussian blobs each, seeded."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:size, 0:size]
    images = np.zeros((n, size, size))
    for k in range(n):
        for _ in range(rng.integers(1, 3)):
            cr, cc = rng.uniform(1, size - 2, size=2)
            width = rng.uniform(0.6, 1.5)
            images[k] += np.exp(-((rows - cr) ** 2 + (cols - cc) ** 2) / (2 * width**2))
    images[images < 1e-3] = 0.0
    return torch.tensor(images, dtype=torch.float32)


def toy_dataset(n: int = 24, size: int = 8, n_pairs: int = 80, seed: int = 0, *, point_clouds: bool = False) -> PairedDataset:
    """A tiny dataset with exact ground truth: blob images (or their point-cloud view).

    Pairs are split 60 % / 20 % / 20 %; W2^2 comes from the exact oracle.
    """
    from wbench.oracle.solve import exact_w2sq

    measures = MeasureBatch.from_images(toy_images(n, size, seed))
    if point_clouds:
        points, weights = measures.point_clouds()
        measures = MeasureBatch(weights.clone(), points.clone(), None)
    rng = np.random.default_rng(seed)
    left = rng.integers(0, n, size=n_pairs)
    right = (left + rng.integers(1, n, size=n_pairs)) % n
    w2sq = exact_w2sq(measures, left, right, n_jobs=1)
    cut1, cut2 = int(0.6 * n_pairs), int(0.8 * n_pairs)
    pairs = {
        "train": PairSet(left[:cut1], right[:cut1], w2sq[:cut1]),
        "val": PairSet(left[cut1:cut2], right[cut1:cut2], w2sq[cut1:cut2]),
        "test": PairSet(left[cut2:], right[cut2:], w2sq[cut2:]),
    }
    return PairedDataset("toy", {"n": n, "size": size, "seed": seed}, measures, pairs)


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def _valid(values: object, n: int | tuple[int, int], name: str, call: str) -> torch.Tensor:
    """The harness's own output check (:func:`wbench.validate.check_predictions`, no NaN
    allowed on the toy data), as an ``AssertionError``; the values as a float64 tensor."""
    try:
        return torch.from_numpy(check_predictions(values, n=n, method=name, call=call))
    except InvalidPredictionError as exc:
        raise AssertionError(str(exc)) from None


def check_width(cls: type[Surrogate], params: Mapping[str, Any], measures: MeasureBatch) -> None:
    """Check that a learned method can be built at a parameter target: it names a width option
    (``width_param``) and its parameter count grows with that width (the harness searches it
    by bisection, :func:`wbench.train.sizing.build_at_parameter_target`).

    :raises AssertionError: no width option, or the count does not grow from the width
        given (or the class default) to twice it.
    """
    name = cls.__name__
    width_param = cls.width_param
    _check(
        width_param is not None,
        f"{name} is trainable but has no width option (width_param): a suite builds every learned "
        "method at its parameter target by searching that width; set width_param, or run it with "
        "match_budget = false",
    )
    base = dict(cls.params_for(dict(params), measures))
    width = base.get(width_param)
    if width is None:
        from wbench.plugin.params import declared_params

        width = declared_params(cls).get(width_param)
    _check(
        isinstance(width, int) and not isinstance(width, bool) and width >= 1,
        f"{name}: width option {width_param!r} needs a positive int default or test value, got {width!r}",
    )
    small = cls(**{**base, width_param: width}).n_parameters
    large = cls(**{**base, width_param: 2 * width}).n_parameters
    _check(
        large > small,
        f"{name}: the parameter count does not grow with {width_param} ({small} at {width}, {large} at {2 * width})",
    )


def check_surrogate(
    cls: type[Surrogate],
    params: Mapping[str, Any] | None = None,
    dataset: PairedDataset | None = None,
    *,
    budget: Budget = TINY_BUDGET,
    rtol: float = 1e-4,
    match_budget: bool = True,
) -> Surrogate:
    """Check a surrogate class against what the harness demands; return the fitted instance.

    Checked: construction through ``params_for``; ``n_parameters`` (positive when
    trainable); a learned method has a width option and its parameter count grows with it
    (:func:`check_width`; skipped with ``match_budget=False``, for a method a suite runs at
    its own size); a fit under a tiny budget returns a :class:`FitReport`; ``distance``
    returns exactly ``(B,)`` finite non-negative values in W2 units, by the harness's own
    check (:func:`wbench.validate.check_predictions`; solvers: median ratio to the exact W2
    in [0.5, 2], which catches squared or halved outputs); symmetry; ``pairwise`` returns
    exactly ``(n, m)`` finite non-negative values that agree with ``distance``; evaluation
    parameters are validated; torch surrogates round-trip through save / load.

    :param match_budget: whether suites build the method at a parameter target (the default).
    """
    if dataset is None:
        dataset = toy_dataset(point_clouds=cls.input_kind == "cloud")
    _check(dataset.has_ground_truth, "the conformance dataset needs ground truth")
    surrogate = _check_construction(cls, params, dataset, match_budget=match_budget)
    _check_fit(cls, surrogate, dataset, budget)
    a, b, d_ab = _check_distance(cls, surrogate, dataset)
    _check_pairwise(cls, surrogate, dataset, rtol)
    if cls.metric_by_construction:
        _check_metric_claim(cls, surrogate, dataset)
    _check_eval_params(cls, surrogate)
    if isinstance(surrogate, TorchSurrogate):
        _check_save_load(cls, surrogate, a, b, d_ab)
    return surrogate


def _check_construction(
    cls: type[Surrogate], params: Mapping[str, Any] | None, dataset: PairedDataset, *, match_budget: bool
) -> Surrogate:
    """Seed 0, build ``cls`` through ``params_for`` and check its parameter count (and width)."""
    name = cls.__name__
    seed_everything(0)
    surrogate = cls(**cls.params_for(dict(params or {}), dataset.measures))
    n_params = surrogate.n_parameters
    _check(isinstance(n_params, int) and n_params >= 0, f"{name}.n_parameters must be a non-negative int, got {n_params!r}")
    _check(n_params > 0 or not cls.trainable, f"{name} is trainable but has 0 parameters")
    if cls.trainable and match_budget:
        check_width(cls, dict(params or {}), dataset.measures)
    return surrogate


def _check_fit(cls: type[Surrogate], surrogate: Surrogate, dataset: PairedDataset, budget: Budget) -> None:
    """Fit on the train / val splits; a :class:`FitReport` within the step budget must come back."""
    name = cls.__name__
    try:
        report = surrogate.fit(dataset.split("train"), dataset.split("val"), budget)
    except InvalidPredictionError as exc:  # the training loop checks outputs as the harness does
        raise AssertionError(f"{name}.fit: {exc}") from None
    _check(isinstance(report, FitReport), f"{name}.fit must return a FitReport, got {type(report).__name__}")
    if cls.trainable:
        _check(0 < report.steps <= budget.total_steps(len(dataset.pairs["train"])), f"{name}.fit took {report.steps} steps; budget allows {budget.total_steps(len(dataset.pairs['train']))}")


def _check_distance(cls: type[Surrogate], surrogate: Surrogate, dataset: PairedDataset) -> tuple[MeasureBatch, MeasureBatch, torch.Tensor]:
    """Check ``distance`` on the test pairs: valid ``(B,)`` W2 values, symmetric, and (solvers)
    a median ratio to the exact W2 in [0.5, 2]. Returns the batches ``a``, ``b`` and ``d(a, b)``."""
    name = cls.__name__
    test = dataset.pairs["test"]
    a, b = dataset.measures.index(test.left), dataset.measures.index(test.right)
    d_ab = _valid(surrogate.distance(a, b), len(test), name, "distance")
    d_ba = _valid(surrogate.distance(b, a), len(test), name, "distance")
    _check(torch.allclose(d_ab, d_ba, rtol=1e-3, atol=1e-5), f"{name}.distance is not symmetric: max diff {float((d_ab - d_ba).abs().max()):.3g}")
    if not cls.trainable:
        ratio = float(np.median(d_ab.numpy() / np.maximum(test.w2, 1e-12)))
        _check(0.5 <= ratio <= 2.0, f"{name}: median ratio to exact W2 is {ratio:.3g}; is the output in W2 units (not squared, not halved)?")
    return a, b, d_ab


def _check_pairwise(cls: type[Surrogate], surrogate: Surrogate, dataset: PairedDataset, rtol: float) -> None:
    """``pairwise`` of a 5 x 7 block must be valid and agree with row-aligned ``distance``."""
    name = cls.__name__
    x = dataset.measures.index(np.arange(min(5, len(dataset.measures))))
    y = dataset.measures.index(np.arange(min(7, len(dataset.measures))))
    matrix = _valid(surrogate.pairwise(x, y), (len(x), len(y)), name, "pairwise")
    rows = np.repeat(np.arange(len(x)), len(y))
    cols = np.tile(np.arange(len(y)), len(x))
    aligned = _valid(surrogate.distance(x.index(rows), y.index(cols)), len(rows), name, "distance").reshape(len(x), len(y))
    _check(
        torch.allclose(matrix, aligned, rtol=max(rtol, 1e-3), atol=1e-4),
        f"{name}.pairwise disagrees with distance: max diff {float((matrix - aligned).abs().max()):.3g}",
    )


def _check_metric_claim(cls: type[Surrogate], surrogate: Surrogate, dataset: PairedDataset) -> None:
    """A method that declares ``metric_by_construction`` (the leaderboard then skips its
    axiom audit) must give a zero diagonal and the triangle inequality on a block of measures."""
    name = cls.__name__
    x = dataset.measures.index(np.arange(min(8, len(dataset.measures))))
    d = _valid(surrogate.pairwise(x, x), (len(x), len(x)), name, "pairwise").double()
    scale = float(d.max()) or 1.0
    diagonal = float(d.diagonal().abs().max())
    _check(diagonal <= 1e-3 * scale, f"{name} declares metric_by_construction but d(x, x) reaches {diagonal:.3g}")
    triplets = sample_triplets(np.arange(len(x)), len(x) ** 3, np.random.default_rng(0))  # all of them
    i, j, k = triplets.T
    excess = triangle_violations(d[i, j].numpy(), d[j, k].numpy(), d[i, k].numpy())["max_excess"]
    _check(
        excess <= 1e-3 * scale,
        f"{name} declares metric_by_construction but violates the triangle inequality by {excess:.3g}",
    )


def _check_eval_params(cls: type[Surrogate], surrogate: Surrogate) -> None:
    """The default evaluation parameters are accepted and an unknown one is refused."""
    name = cls.__name__
    surrogate.configure(**dict(cls.default_eval_params))
    try:
        surrogate.configure(no_such_eval_parameter=1)
    except ValueError:
        pass
    else:
        raise AssertionError(f"{name}.configure accepted an unknown evaluation parameter")


def _check_save_load(cls: type[Surrogate], surrogate: TorchSurrogate, a: MeasureBatch, b: MeasureBatch, d_ab: torch.Tensor) -> None:
    """A torch surrogate saved and loaded again gives the same ``distance(a, b)`` as ``d_ab``."""
    name = cls.__name__
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.pt"
        surrogate.save(path)
        loaded = type(surrogate).load(path)
        again = _valid(loaded.distance(a, b), len(d_ab), name, "distance after save / load")
        _check(torch.allclose(d_ab, again, rtol=1e-5, atol=1e-6), f"{name}: distances change after save / load")


def check_dataset(cls: type[DatasetPlugin], params: Mapping[str, Any] | None = None) -> PairedDataset:
    """Check a dataset plugin: splits, index ranges, valid unit-mass measures, determinism."""
    name = cls.__name__
    built = cls(**dict(params or {})).build()
    _check(isinstance(built, PairedDataset), f"{name}.build must return a PairedDataset, got {type(built).__name__}")
    n = len(built.measures)
    _check(n > 1, f"{name} built {n} measures")
    for split in ("train", "val", "test"):
        _check(split in built.pairs, f"{name} has no {split!r} split")
        pairs = built.pairs[split]
        _check(len(pairs) > 0, f"{name}: split {split!r} is empty")
        _check(int(pairs.left.min()) >= 0 and int(max(pairs.left.max(), pairs.right.max())) < n, f"{name}: split {split!r} indexes outside 0..{n - 1}")
    weights = built.measures.weights
    _check(bool((weights >= 0).all()), f"{name}: negative mass")
    _check(torch.allclose(weights.sum(dim=1).double(), torch.ones(n, dtype=torch.float64), atol=1e-4), f"{name}: measures do not have unit mass")
    if built.labels is not None:
        _check(len(built.labels) == n, f"{name}: {len(built.labels)} labels for {n} measures")
    again = cls(**dict(params or {})).build()
    for split, pairs in built.pairs.items():
        _check(
            np.array_equal(pairs.left, again.pairs[split].left) and np.array_equal(pairs.right, again.pairs[split].right),
            f"{name}: build is not deterministic (split {split!r} differs between two builds)",
        )
    _check(torch.equal(weights, again.measures.weights), f"{name}: build is not deterministic (measures differ)")
    _check(math.isfinite(float(weights.sum())), f"{name}: non-finite masses")
    return built
