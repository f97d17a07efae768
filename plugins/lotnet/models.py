"""``lot-residual``: a residual MLP on LOT features that starts as the LOT embedding.

A measure nu gets its LOT feature ``f(nu)`` (:mod:`wbench_plugins.lotnet.features`: one
exact LP to a reference fitted on the training measures, ``K * D`` coordinates), scaled by
LOT's least-squares scale ``s`` into ``g = s f`` (ground-cost units). The embedding is

    ``e(nu) = g + c (W2 act(W1 (g / c) + b1) + b2)``

with ``act`` the GELU, hidden width ``width`` and ``c`` a fixed unit (the RMS feature
coordinate of the training measures, fitted with the reference: no trained parameter), so
the network reads and writes coordinates of order one. The output layer ``W2, b2`` starts
at zero, so the untrained model returns exactly the scaled LOT distances ``s |f(mu) - f(nu)|``; training on exact W2 (the harness's loop,
:func:`wbench.train.loop.train_on_pairs`, constant learning rate) then corrects them. The
weights used in evaluation are a Polyak (exponential moving) average of the training
iterates (``ema``, 0.995 per step by default): with the suite's constant learning rate the
last iterate is noisy, and the average stands in for a learning-rate decay.

Parameters counted (``n_parameters``): ``W1, b1, W2, b2``: ``(2 F + 1) width + F`` with
``F = K * D`` (400 on MNIST with the default 200-point reference; 55,669 at width 69). The
reference, the scale and the unit are fitted data held in buffers (saved with the model, not
trained), like LOT's, which counts 0 parameters; so is the weight average, which replaces
the four weights at evaluation with tensors of the same shapes (the count used at inference
is the same).

What is cached: during :meth:`LOTResidual.fit` only, the features of every training and
validation measure, keyed by a content hash (:class:`~wbench_plugins.lotnet.features.FeatureCache`):
each measure costs one LP however many epochs meet it. The cache is dropped when the fit
returns, so every later call (evaluation, timing) solves one LP per measure it embeds, as
LOT does: independent throughput is LP-bound; pairwise throughput is ``n + m`` LPs for an
``n x m`` matrix.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from wbench.budget import Budget
from wbench.data import LabelledPairs
from wbench.measures import MeasureBatch
from wbench.surrogate import EmbeddingSurrogate, FitReport, concat_measures
from wbench_plugins.references.lot import LOT

from .features import FeatureCache

LOSSES = ("mse", "relative")


class _ExactSizeLOT(LOT):
    """LOT whose mean reference always has exactly ``reference_size`` points.

    A mean image with fewer positive pixels than ``reference_size`` is completed by the
    next pixels of the grid in row-major order, each with a tiny mass (1e-3 of the lightest
    positive one), so the feature dimension, and hence the network's parameter count, is
    known before the data is seen. A mean image with enough positive pixels gives the same
    reference as ``lot``.
    """

    def _mean_image(self, measures: MeasureBatch) -> tuple[np.ndarray, np.ndarray]:
        weights = measures.weights.detach().double().cpu()
        mean = (weights / weights.sum(dim=1, keepdim=True)).mean(dim=0).numpy()
        k = self.reference_size or len(mean)
        if int((mean > 0).sum()) >= k:
            return super()._mean_image(measures)
        floor = 1e-3 * float(mean[mean > 0].min())
        order = np.sort(np.argsort(-mean, kind="stable")[:k])
        masses = np.maximum(mean[order], floor)
        points = measures.support.detach().cpu().double().numpy()[order]
        return points, masses / masses.sum()

    def _mean_cloud(self, measures: MeasureBatch) -> tuple[np.ndarray, np.ndarray]:
        points, masses = super()._mean_cloud(measures)
        if len(masses) != self.reference_size:
            raise ValueError(
                f"the training clouds have only {len(masses)} distinct points for a {self.reference_size}-point "
                "LOT reference: lower reference_size"
            )
        return points, masses


class LOTResidualNetwork(nn.Module):
    """``g + c (W2 act(W1 (g / c) + b1) + b2)`` on scaled LOT features ``g``; holds the fitted reference.

    With ``ema > 0`` the module also keeps an exponential moving average (Polyak averaging)
    of ``W1, b1, W2, b2`` in buffers: :meth:`update_average` (called once per training step)
    folds the current weights in, and in evaluation mode the forward pass uses the averaged
    weights (same shapes: the parameter count used at inference is unchanged). In training
    mode it uses the live weights.

    :param n_features: ``F = K * D``, the LOT feature dimension.
    :param width: hidden units.
    :param ref_size: ``K``, reference points.
    :param dim: ``D``, dimension of the ground space.
    :param ema: decay of the weight average per step (0: off; e.g. 0.995).
    """

    WEIGHTS = ("hidden.weight", "hidden.bias", "out.weight", "out.bias")

    def __init__(self, n_features: int, width: int, ref_size: int, dim: int, *, ema: float = 0.0) -> None:
        super().__init__()
        self.hidden = nn.Linear(n_features, width)
        self.out = nn.Linear(width, n_features)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.act = nn.GELU()
        self.ema = float(ema)
        self.register_buffer("ref_points", torch.zeros(ref_size, dim, dtype=torch.float64))
        self.register_buffer("ref_masses", torch.zeros(ref_size, dtype=torch.float64))
        self.register_buffer("lot_scale", torch.ones((), dtype=torch.float64))
        self.register_buffer("input_unit", torch.ones((), dtype=torch.float64))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))
        if self.ema > 0:
            self.register_buffer("average_steps", torch.zeros((), dtype=torch.int64))
            for name in self.WEIGHTS:
                self.register_buffer(_average_name(name), self.get_parameter(name).detach().clone())

    @torch.no_grad()
    def update_average(self) -> None:
        """Fold the current weights into their average: ``a <- d a + (1 - d) w`` with
        ``d = min(ema, (1 + t) / (10 + t))`` at step ``t`` (a short warm-up); no-op without ``ema``."""
        if self.ema <= 0:
            return
        self.average_steps += 1
        t = float(self.average_steps)
        decay = min(self.ema, (1.0 + t) / (10.0 + t))
        for name in self.WEIGHTS:
            self.get_buffer(_average_name(name)).mul_(decay).add_(self.get_parameter(name).detach(), alpha=1.0 - decay)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Embeddings ``(B, F)`` in ground-cost units from unscaled LOT features ``(B, F)``."""
        if self.ema > 0 and not self.training:
            w1, b1, w2, b2 = (self.get_buffer(_average_name(name)) for name in self.WEIGHTS)
        else:
            w1, b1, w2, b2 = self.hidden.weight, self.hidden.bias, self.out.weight, self.out.bias
        dtype = w1.dtype
        g = features.to(dtype) * self.lot_scale.to(dtype)
        unit = self.input_unit.to(dtype)
        hidden = self.act(nn.functional.linear(g / unit, w1, b1))
        return g + unit * nn.functional.linear(hidden, w2, b2)


def _average_name(name: str) -> str:
    return "average_" + name.replace(".", "_")


class LOTResidual(EmbeddingSurrogate):
    """A residual MLP on LOT features, initialised so that it returns LOT's distances.

    Fit-time parameters:

    :param width: hidden units of the residual MLP (the matched-budget knob).
    :param dim: dimension D of the ground space (filled from the data by :meth:`params_for`).
    :param reference: LOT reference, ``"mean"`` (of the training measures) or ``"grid"``.
    :param reference_size: K, points of the reference (clipped to the grid by :meth:`params_for`).
    :param jitter: reference jitter in lattice spacings (as ``lot``).
    :param ref_seed: seed of the jitter and of the k-means of cloud references.
    :param scale_pairs: training pairs LOT's least-squares scale is fitted on.
    :param loss: ``"mse"`` (on W2, the shared default) or ``"relative"`` (mean squared
        relative error ``((d - w) / w)^2``, pairs with ``w`` below 1e-6 of the median excluded).
    :param ema: per-step decay of the Polyak average of the weights used at evaluation
        (0: off, the last weights; see :class:`LOTResidualNetwork`). Default 0.995.
    :param n_jobs: worker processes for the LPs (-1: all cores; small batches run in-process).
    """

    method_class: ClassVar[str] = "hybrid"  # one LP per new measure (its LOT embedding)

    input_kind: ClassVar[str] = "any"
    width_param: ClassVar[str | None] = "width"

    def __init__(
        self,
        *,
        width: int = 69,
        dim: int = 2,
        reference: str = "mean",
        reference_size: int = 200,
        jitter: float = 0.1,
        ref_seed: int = 0,
        scale_pairs: int = 1000,
        loss: str = "mse",
        ema: float = 0.995,
        n_jobs: int = -1,
    ) -> None:
        for name, value in (("width", width), ("dim", dim), ("reference_size", reference_size), ("scale_pairs", scale_pairs)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"lot-residual {name} must be a positive integer, got {value!r}")
        if loss not in LOSSES:
            raise ValueError(f"lot-residual loss must be one of {LOSSES}, got {loss!r}")
        if not 0 <= float(ema) < 1:
            raise ValueError(f"lot-residual ema must lie in [0, 1), got {ema!r}")
        super().__init__(
            width=width, dim=dim, reference=reference, reference_size=reference_size, jitter=float(jitter),
            ref_seed=ref_seed, scale_pairs=scale_pairs, loss=loss, ema=float(ema), n_jobs=n_jobs,
        )
        # LOT validates reference, jitter; it builds the reference in fit.
        self._lot = _ExactSizeLOT(
            reference=reference, reference_size=reference_size, jitter=jitter, seed=ref_seed, n_jobs=n_jobs,
            scale_pairs=scale_pairs,
        )
        self.n_features = reference_size * dim
        self.model = LOTResidualNetwork(self.n_features, width, reference_size, dim, ema=float(ema))
        self._cache: FeatureCache | None = None
        self._caching = False
        self.n_lp = 0
        self.fit_cache_stats: dict[str, int] = {}

    @classmethod
    def params_for(cls, params: Mapping[str, Any], measures: MeasureBatch) -> dict[str, Any]:
        """Set ``dim`` from the measures and clip ``reference_size`` to the grid size, unless given."""
        out = dict(params)
        out.setdefault("dim", measures.dim)
        if measures.is_grid:
            out["reference_size"] = min(int(out.get("reference_size", 200)), measures.n_points)
        return out

    # ---------------------------------------------------------------- features
    def _reference(self) -> tuple[np.ndarray, np.ndarray]:
        if not bool(self.model.fitted):
            raise ValueError("lot-residual has no LOT reference yet: call fit with training data first")
        return self.model.ref_points.cpu().numpy(), self.model.ref_masses.cpu().numpy()

    def lot_features(self, x: MeasureBatch) -> torch.Tensor:
        """Unscaled LOT features ``(B, K * D)`` float64 on the CPU (NaN rows for failed LPs):
        during a fit from the fit's cache; afterwards one LP per distinct measure of the
        call (a measure repeated within one call, as in the pairs of an evaluation split,
        is solved once; nothing is kept between calls)."""
        ref_points, ref_masses = self._reference()
        cache = self._cache if self._cache is not None else FeatureCache(ref_points, ref_masses, n_jobs=self.params["n_jobs"])
        before = cache.n_lp
        out = cache.features(x)
        self.n_lp += cache.n_lp - before
        return out

    def embed(self, x: MeasureBatch) -> torch.Tensor:
        """Embeddings ``(B, K * D)`` in ground-cost units (differentiable in the network's weights)."""
        if x.dim != self.params["dim"]:
            raise ValueError(f"this lot-residual was built for {self.params['dim']}-D measures, got {x.dim}-D")
        return self.model(self.lot_features(x).to(self.device))

    @torch.inference_mode()
    def embed_all(self, x: MeasureBatch, batch_size: int = 1024) -> torch.Tensor:
        """Embed a large batch in evaluation mode: ``(B, K * D)``.

        The LOT features of the whole batch come from one call (its LPs spread over the
        workers at once, as ``lot`` does), then the network runs in chunks of ``batch_size``.
        """
        if x.dim != self.params["dim"]:
            raise ValueError(f"this lot-residual was built for {self.params['dim']}-D measures, got {x.dim}-D")
        was_training = self.model.training
        self.model.eval()
        try:
            features = self.lot_features(x)
            device = self.device
            parts = [self.model(features[i : i + batch_size].to(device)) for i in range(0, len(x), batch_size)]
        finally:
            self.model.train(was_training)
        return torch.cat(parts, dim=0) if parts else torch.zeros((0, self.n_features), device=self.device)

    def lot_distance(self, a: MeasureBatch, b: MeasureBatch) -> torch.Tensor:
        """LOT's own scaled distances ``s |f(a_i) - f(b_i)|`` ``(B,)`` float64 (the untrained model's)."""
        fa, fb = self.lot_features(a), self.lot_features(b)
        return float(self.model.lot_scale) * (fa - fb).pow(2).sum(dim=1).sqrt()

    # ---------------------------------------------------------------- training
    def training_loss(self, a: MeasureBatch, b: MeasureBatch, w2sq: torch.Tensor) -> torch.Tensor:
        """MSE on W2, or the mean squared relative error (``loss="relative"``), over the
        pairs whose LOT features are finite.

        Called once per optimiser step by the training loop: it first folds the weights of
        the previous step into the weight average (``ema``)."""
        self.model.update_average()
        features = self.lot_features(concat_measures(a, b))
        failed = ~torch.isfinite(features).all(dim=1)  # an LP that failed: NaN row, its pairs skipped
        embedded = self.model(features.masked_fill(failed[:, None], 0.0).to(self.device))
        diff = embedded[: len(a)] - embedded[len(a) :]
        keep = ~(failed[: len(a)] | failed[len(a) :]).to(self.device)
        pred = (diff.pow(2).sum(dim=1) + 1e-12).sqrt()[keep]
        target = w2sq.to(pred.dtype).clamp_min(0).sqrt()[keep]
        if self.params["loss"] == "mse":
            return (pred - target).pow(2).mean()
        keep = target > 1e-6 * target.median().clamp_min(1e-30)
        return ((pred[keep] - target[keep]) / target[keep]).pow(2).mean()

    def prepare(self, train: LabelledPairs) -> torch.Tensor:
        """Fix everything but the weights from the training measures: the LOT reference (from
        the measures the training pairs use), LOT's least-squares scale and the input unit.

        Afterwards the model (its output layer still at zero) returns LOT's scaled distances.

        :returns: the unscaled features ``(n, K * D)`` of the training measures used.
        """
        used = np.unique(np.concatenate([train.pairs.left, train.pairs.right]))
        train_measures = train.measures.index(used) if len(used) else train.measures
        self._lot.set_reference_from(train_measures)
        ref_points, ref_masses = self._lot.ref_points, self._lot.ref_masses
        assert ref_points is not None and ref_masses is not None
        if ref_points.shape != tuple(self.model.ref_points.shape):
            raise ValueError(f"LOT reference has shape {ref_points.shape}, expected {tuple(self.model.ref_points.shape)}")
        self.model.ref_points.copy_(torch.from_numpy(ref_points))
        self.model.ref_masses.copy_(torch.from_numpy(ref_masses))
        self.model.fitted.fill_(True)
        self._cache = FeatureCache(ref_points, ref_masses, n_jobs=self.params["n_jobs"]) if self._caching else None
        features = self.lot_features(train_measures)
        scale = self._least_squares_scale(train)
        self.model.lot_scale.fill_(scale)
        finite = features[torch.isfinite(features).all(dim=1)]
        rms = float((finite * scale).pow(2).mean().sqrt()) if len(finite) else 1.0
        self.model.input_unit.fill_(rms if math.isfinite(rms) and rms > 0 else 1.0)
        return features

    def fit(self, train: LabelledPairs, val: LabelledPairs, budget: Budget) -> FitReport:
        """:meth:`prepare` and the features of the validation measures, cached (one LP per
        measure), then training with :func:`wbench.train.loop.train_on_pairs`.

        The report's ``extra`` holds the scale, the input unit, the reference size,
        ``feature_seconds`` (reference and LPs), and the cache counts: ``lp_solved``,
        ``measures_cached`` and ``cache_hits``. The cache is dropped when the fit returns.
        """
        from wbench.training import train_on_pairs

        started = time.perf_counter()
        self._caching = True
        lp_before = self.n_lp
        try:
            self.prepare(train)
            assert self._cache is not None
            val_used = np.unique(np.concatenate([val.pairs.left, val.pairs.right]))
            if len(val_used):
                self.lot_features(val.measures.index(val_used))
            feature_seconds = time.perf_counter() - started
            report = train_on_pairs(self, train, val, budget)
            self.fit_cache_stats = {
                "lp_solved": self.n_lp - lp_before, "measures_cached": len(self._cache), "cache_hits": self._cache.n_hits,
            }
        finally:
            self._caching, self._cache = False, None  # later calls (evaluation, timing) solve one LP per measure
        report.extra.update(
            lot_scale=float(self.model.lot_scale), input_unit=float(self.model.input_unit),
            reference_points=self.params["reference_size"], feature_seconds=feature_seconds, **self.fit_cache_stats,
        )
        report.wall_time_s = time.perf_counter() - started
        return report

    def _least_squares_scale(self, train: LabelledPairs) -> float:
        """LOT's scale ``sum(d w) / sum(d^2)`` on up to ``scale_pairs`` training pairs (as ``lot``)."""
        n = len(train.pairs)
        if train.pairs.w2sq is None or n == 0:
            return 1.0
        chosen = np.arange(n)
        if n > self.params["scale_pairs"]:
            chosen = np.sort(np.random.default_rng(LOT.SCALE_SEED).permutation(n)[: self.params["scale_pairs"]])
        pairs = train.pairs.subset(chosen)
        fa = self.lot_features(train.measures.index(pairs.left))
        fb = self.lot_features(train.measures.index(pairs.right))
        d = (fa - fb).pow(2).sum(dim=1).sqrt().numpy()
        w = np.sqrt(np.maximum(np.asarray(pairs.w2sq, dtype=np.float64), 0.0))
        good = np.isfinite(d) & np.isfinite(w)
        denominator = float(np.sum(d[good] ** 2))
        if not good.any() or denominator == 0.0:
            return 1.0
        return float(np.sum(d[good] * w[good]) / denominator)

    def describe(self) -> dict[str, Any]:
        """Reference size, feature dimension, LOT scale, input unit, LPs solved and the fit's cache counts."""
        return {
            "reference": self.params["reference"],
            "reference_points": self.params["reference_size"],
            "feature_dim": self.n_features,
            "width": self.params["width"],
            "lot_scale": float(self.model.lot_scale),
            "input_unit": float(self.model.input_unit),
            "n_lp": self.n_lp,
            "fit_cache": dict(self.fit_cache_stats),
        }

