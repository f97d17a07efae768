"""``sinkhorn``: entropic optimal transport, with POT (CPU, checked convergence) or GeomLoss.

Units: the ground cost is the squared Euclidean distance in the measures' coordinates
(pixel^2 for images), so POT's regularisation ``reg`` is in pixel^2. GeomLoss's cost is
``|x - y|^2 / 2`` with temperature ``blur^2``, so GeomLoss ``blur = b`` solves the same
entropic problem as POT ``reg = 2 b^2``, and GeomLoss's value is W2^2 / 2: it is doubled
here. Every result is returned as W2 (square root of the W2^2 estimate, clamped at 0).
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import ot
import torch
from scipy.special import xlogy

from wbench.measures import MeasureBatch

from ._common import (
    CountingSolver,
    Support,
    check_aligned,
    map_aligned,
    map_product,
    measure_supports,
    w2_from_w2sq,
)

BACKENDS = ("pot", "geomloss")
POT_METHODS = ("sinkhorn_epsilon_scaling", "sinkhorn_log", "sinkhorn_stabilized", "sinkhorn")
DEFAULT_MAX_ITER = {"sinkhorn_epsilon_scaling": 1000, "sinkhorn_log": 10_000, "sinkhorn_stabilized": 10_000, "sinkhorn": 10_000}
"""POT's ``numItermax`` when ``max_iter`` is None. For epsilon scaling it counts outer
(temperature) steps, each of at most 100 inner stabilised iterations."""

_SECONDS_PER_ENTRY = 3e-6
"""Rough single-core POT Sinkhorn time per cost-matrix entry (MNIST, epsilon scaling: ~70 ms
for 150 x 150), used only to decide whether starting worker processes pays."""


def _pot_pair(
    xa: np.ndarray, wa: np.ndarray, xb: np.ndarray, wb: np.ndarray,
    *, reg: float, method: str, max_iter: int, stop: float, entropic: bool,
) -> tuple[float, bool]:
    """One POT Sinkhorn solve: ``(value, converged)``.

    ``value`` is the transport cost of the entropic plan ``<P, M>`` (what ``ot.sinkhorn2``
    returns), or with ``entropic=True`` the full entropic objective
    ``<P, M> + reg * KL(P | a x b)`` used by the Sinkhorn divergence. ``converged`` is
    False when the last marginal error in POT's log is above ``stop`` (iteration limit hit,
    or a numerical break-down) or the plan is not finite.
    """
    cost = ot.dist(xa, xb, metric="sqeuclidean")
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            plan, log = ot.sinkhorn(wa, wb, cost, reg, method=method, numItermax=max_iter, stopThr=stop, log=True, warn=False)
        except (FloatingPointError, ValueError, ZeroDivisionError, OverflowError):
            return float("nan"), False
        errors = log.get("err", [])
        last = float(errors[-1]) if len(errors) else float("inf")
        converged = math.isfinite(last) and last <= stop and bool(np.all(np.isfinite(plan)))
        value = float(np.sum(plan * cost))
        if entropic:
            kl = float(np.sum(xlogy(plan, plan)) - np.sum(plan * (np.log(wa)[:, None] + np.log(wb)[None, :])))
            value += reg * kl
    return value, converged and math.isfinite(value)


class Sinkhorn(CountingSolver):
    """Entropic optimal transport between discrete measures, returned in W2 units.

    Two backends (fit-time ``backend``):

    * ``"pot"``: ``ot.sinkhorn`` on the supports of each pair (zero masses dropped: POT's
      solvers divide by the masses, so the full grid gives NaN), in float64, in parallel
      over pairs with joblib. The default method is ``"sinkhorn_epsilon_scaling"``
      (log-stabilised with a decreasing temperature): it converges at small
      regularisation where the plain solver underflows and the log-domain one needs
      thousands of iterations. Convergence is read from POT's ``log`` (the last marginal
      error must be at most ``stop_threshold``).
    * ``"geomloss"``: ``geomloss.SamplesLoss("sinkhorn", p=2, ...)`` on batches of
      weighted point clouds ``(B, N, D)`` / ``(B, N)`` (the supports, padded with zero
      masses; pairs are grouped by size to limit padding) on ``device`` (CPU or CUDA).
      GeomLoss runs a fixed annealing schedule from ``diameter`` down to ``blur`` and
      reports no convergence; its value (W2^2 / 2) is doubled.

    Non-debiased value: POT gives the transport cost of the entropic plan ``<P, M>``
    (``ot.sinkhorn2``; above W2^2), GeomLoss the entropic objective OT_eps (GeomLoss's
    ``debias=False``). Debiased (``debias=True``): the Sinkhorn divergence
    ``OT_eps(a, b) - (OT_eps(a, a) + OT_eps(b, b)) / 2`` with the full entropic objective
    ``OT_eps = <P, M> + eps KL(P | a x b)`` for both backends (Feydy et al. 2019), which
    tends to W2^2 as the regularisation goes to 0; POT solves the two self-transport
    problems once per measure per call.

    Failure contract: a pair whose solver did not converge within ``max_iter``, or whose
    value is not finite, is returned as NaN (never as a number) and counted in
    ``n_failed``; ``n_evaluated`` counts every pair returned; both are in
    :meth:`describe`. The evaluation drops and counts NaN pairs. A negative Sinkhorn
    divergence (rounding, at most a few ulps) is clamped to W2 = 0.

    Fit-time parameters (constructor)
    ---------------------------------
    backend : ``"pot"`` or ``"geomloss"``.
    method : POT solver, one of :data:`POT_METHODS` (POT backend only).
    n_jobs : joblib workers for the POT backend (-1: all cores).
    device : ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"`` (CUDA when available), GeomLoss backend.
    dtype : ``"float32"`` or ``"float64"``, GeomLoss backend.
    batch_size : pairs per GeomLoss call (default 16 on CPU, 256 on CUDA).
    diameter : GeomLoss's starting scale (pixels); None: the bounding-box diagonal of all
        measures of the call (GeomLoss's own estimate is wrong for batched clouds).

    Evaluation-time parameters (:meth:`configure`)
    ----------------------------------------------
    reg : POT regularisation epsilon in squared ground-cost units (pixel^2); default 1.0.
    blur : GeomLoss blur in ground-cost units (pixel). Giving ``blur`` sets
        ``reg = 2 blur^2`` and giving ``reg`` sets ``blur = sqrt(reg / 2)``: either spelling
        works with either backend, the last one given wins.
    debias : the Sinkhorn divergence instead of the raw entropic cost (default False).
    max_iter : POT ``numItermax`` (None: :data:`DEFAULT_MAX_ITER` of the method).
    stop_threshold : POT ``stopThr`` (default 1e-9): the bound on the marginal violation
        POT logs (its norm; for epsilon scaling the sum of both marginals' squared norms).
    scaling : GeomLoss annealing ratio in (0, 1) (default 0.9; closer to 1 is slower and
        more accurate).
    """

    input_kind = "any"
    default_eval_params: ClassVar[dict[str, Any]] = {
        "reg": 1.0,
        "blur": None,
        "debias": False,
        "max_iter": None,
        "stop_threshold": 1e-9,
        "scaling": 0.9,
    }

    def __init__(
        self,
        *,
        backend: str = "pot",
        method: str = "sinkhorn_epsilon_scaling",
        n_jobs: int = -1,
        device: str = "cpu",
        dtype: str = "float32",
        batch_size: int | None = None,
        diameter: float | None = None,
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if method not in POT_METHODS:
            raise ValueError(f"method must be one of {POT_METHODS}, got {method!r}")
        if dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
        super().__init__(
            backend=backend, method=method, n_jobs=n_jobs, device=device, dtype=dtype,
            batch_size=batch_size, diameter=diameter,
        )
        self.backend = backend
        self.method = method
        self.n_jobs = int(n_jobs)
        self.torch_device = _resolve_device(device) if backend == "geomloss" else torch.device("cpu")
        self.torch_dtype = torch.float32 if dtype == "float32" else torch.float64
        self.batch_size = int(batch_size) if batch_size else (256 if self.torch_device.type == "cuda" else 16)
        self.diameter = diameter

    # ---------------------------------------------------------------- parameters
    def configure(self, **eval_params: Any) -> Sinkhorn:
        """Set evaluation parameters; ``reg`` and ``blur`` are two spellings of one setting."""
        if "reg" in eval_params and "blur" in eval_params and None not in (eval_params["reg"], eval_params["blur"]):
            raise ValueError("give either reg (POT, pixel^2) or blur (GeomLoss, pixel), not both")
        for name in ("reg", "blur"):
            value = eval_params.get(name)
            if value is not None and not (float(value) > 0 and math.isfinite(float(value))):
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        scaling = eval_params.get("scaling")
        if scaling is not None and not 0 < float(scaling) < 1:
            raise ValueError(f"scaling must lie in (0, 1), got {scaling!r}")
        super().configure(**eval_params)
        if eval_params.get("reg") is not None:
            self.eval_params["blur"] = None
        elif eval_params.get("blur") is not None:
            self.eval_params["reg"] = None
        if self.eval_params["reg"] is None and self.eval_params["blur"] is None:
            self.eval_params["reg"] = self.default_eval_params["reg"]
        return self

    @property
    def reg(self) -> float:
        """POT's epsilon (squared ground-cost units) of the current setting."""
        blur = self.eval_params.get("blur")
        return 2.0 * float(blur) ** 2 if blur is not None else float(self.eval_params["reg"])

    @property
    def blur(self) -> float:
        """GeomLoss's blur (ground-cost units) of the current setting."""
        blur = self.eval_params.get("blur")
        return float(blur) if blur is not None else math.sqrt(float(self.eval_params["reg"]) / 2.0)

    def _max_iter(self) -> int:
        max_iter = self.eval_params.get("max_iter")
        return int(max_iter) if max_iter is not None else DEFAULT_MAX_ITER[self.method]

    # ---------------------------------------------------------------- interface
    def distance(self, a: MeasureBatch, b: MeasureBatch) -> torch.Tensor:
        """Row-aligned W2 estimates ``(B,)`` float64 in ground-cost units; NaN marks a failed pair."""
        check_aligned(a, b)
        sa, sb = measure_supports(a), measure_supports(b)
        if self.backend == "pot":
            w2sq, ok = self._pot(sa, sb, product=False)
        else:
            w2sq, ok = self._geomloss(sa, sb, np.arange(len(sa)), np.arange(len(sb)), _diameter(sa + sb))
        return self._count(w2_from_w2sq(w2sq, ok))

    def pairwise(self, x: MeasureBatch, y: MeasureBatch) -> torch.Tensor:
        """W2 estimates ``(n, m)`` float64 for all pairs; NaN marks a failed pair."""
        sx, sy = measure_supports(x), measure_supports(y)
        if self.backend == "pot":
            w2sq, ok = self._pot(sx, sy, product=True)
        else:
            rows, cols = np.divmod(np.arange(len(sx) * len(sy)), len(sy))
            w2sq, ok = self._geomloss(sx, sy, rows, cols, _diameter(sx + sy))
            w2sq, ok = w2sq.reshape(len(sx), len(sy)), ok.reshape(len(sx), len(sy))
        return self._count(w2_from_w2sq(w2sq, ok))

    def describe(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "backend": self.backend,
            "reg": self.reg,
            "blur": self.blur,
            "debias": bool(self.eval_params["debias"]),
        }
        if self.backend == "pot":
            info.update(method=self.method, max_iter=self._max_iter(), stop_threshold=float(self.eval_params["stop_threshold"]), n_jobs=self.n_jobs)
        else:
            info.update(
                scaling=float(self.eval_params["scaling"]), device=str(self.torch_device),
                dtype=str(self.torch_dtype).removeprefix("torch."), batch_size=self.batch_size, diameter=self.diameter,
            )
        return {**info, **super().describe()}

    # ---------------------------------------------------------------- POT
    def _pot(self, left: list[Support], right: list[Support], *, product: bool) -> tuple[np.ndarray, np.ndarray]:
        debias = bool(self.eval_params["debias"])
        fn = functools.partial(
            _pot_pair, reg=self.reg, method=self.method, max_iter=self._max_iter(),
            stop=float(self.eval_params["stop_threshold"]), entropic=debias,
        )
        solve = map_product if product else map_aligned
        opts = {"n_jobs": self.n_jobs, "min_per_task": 4, "seconds_per_entry": _SECONDS_PER_ENTRY}
        values, ok = solve(fn, left, right, **opts)
        if debias:
            self_l, ok_l = map_aligned(fn, left, left, **opts)
            self_r, ok_r = map_aligned(fn, right, right, **opts)
            if product:
                values = values - 0.5 * self_l[:, None] - 0.5 * self_r[None, :]
                ok = ok & ok_l[:, None] & ok_r[None, :]
            else:
                values = values - 0.5 * self_l - 0.5 * self_r
                ok = ok & ok_l & ok_r
        if not ok.all():
            self.last_failure = f"POT {self.method} did not converge within max_iter={self._max_iter()} (reg={self.reg:g})"
        return values, ok

    # ---------------------------------------------------------------- GeomLoss
    def _geomloss(
        self, left: Sequence[Support], right: Sequence[Support], li: np.ndarray, ri: np.ndarray, diameter: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """W2^2 for the pairs ``(left[li[p]], right[ri[p]])``: GeomLoss value times 2."""
        from geomloss import SamplesLoss

        diameter = float(self.diameter) if self.diameter is not None else max(diameter, self.blur)
        loss = SamplesLoss(
            "sinkhorn", p=2, blur=self.blur, scaling=float(self.eval_params["scaling"]),
            debias=bool(self.eval_params["debias"]), diameter=diameter, backend="tensorized",
        )
        sizes = np.maximum([len(left[i][1]) for i in li], [len(right[j][1]) for j in ri]) if len(li) else np.zeros(0)
        order = np.argsort(sizes, kind="stable")
        out = np.full(len(li), np.nan)
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                idx = order[start : start + self.batch_size]
                n = int(sizes[idx].max())
                xa, wa = self._pad([left[i] for i in li[idx]], n)
                xb, wb = self._pad([right[j] for j in ri[idx]], n)
                out[idx] = 2.0 * loss(wa, xa, wb, xb).reshape(-1).double().cpu().numpy()
        ok = np.isfinite(out)
        if not ok.all():
            self.last_failure = f"GeomLoss returned a non-finite value (blur={self.blur:g}, dtype={self.torch_dtype})"
        return out, ok

    def _pad(self, items: Sequence[Support], n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Point clouds ``(b, n, D)`` and masses ``(b, n)``; padding repeats a support point with mass 0."""
        dim = items[0][0].shape[1]
        points = np.empty((len(items), n, dim))
        masses = np.zeros((len(items), n))
        for k, (x, w) in enumerate(items):
            points[k, : len(w)] = x
            points[k, len(w) :] = x[0]
            masses[k, : len(w)] = w
        as_tensor = functools.partial(torch.as_tensor, device=self.torch_device, dtype=self.torch_dtype)
        return as_tensor(points), as_tensor(masses)


def _diameter(items: Sequence[Support]) -> float:
    """Diagonal of the bounding box of all support points (GeomLoss's starting blur)."""
    if not items:
        return 1.0
    lo = np.min([x.min(axis=0) for x, _ in items], axis=0)
    hi = np.max([x.max(axis=0) for x, _ in items], axis=0)
    return float(np.linalg.norm(hi - lo))


def _resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available (use 'cpu' or 'auto')")
    return resolved
