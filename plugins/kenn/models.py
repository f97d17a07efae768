"""Naive, DeepKENN and ODE-KENN surrogates of W2 on image grids.

All three share the CNN encoder of :mod:`wbench_plugins.kenn.encoder` and are embedding
surrogates: each distance is the Euclidean distance between two embeddings, so
``pairwise`` embeds every image once and the triangle inequality holds by construction.

* :class:`NaiveKENN` -- ``d(x, y) = |h(x) - h(y)|`` with ``h = tanh(Linear(encoder(x)))``.
* :class:`DeepKENN` -- ``d(x, y) = sqrt(sum_l w_l |f_l(x) - f_l(y)|^2)`` over the six
  flattened layer outputs (conv1, conv2, conv3, fc1, fc2, head), ``w_l = softplus(u_l)``;
  the embedding is the concatenation of ``sqrt(w_l) f_l(x)``.
* :class:`ODEKENN` -- ``z(0) = encoder(x)``, ``dz/dt = tanh(W z + b)`` solved by torchdiffeq
  (RK4 on a fixed grid by default) at ``t_k = k / 9``, ``k = 0..9``;
  ``d(x, y) = sqrt(sum_k w_k |z_x(t_k) - z_y(t_k)|^2 dt)``, ``dt = 1/9``,
  ``w_k = softplus(u_k)``; the embedding is the concatenation of ``sqrt(w_k dt) z(t_k)``.
  Both sides of a training pair go through one ``odeint`` call, stacked on the batch
  dimension (:meth:`wbench.surrogate.EmbeddingSurrogate.predict_w2` embeds them together).

Fit-time parameters (constructor keywords): ``width`` (1000 = the paper's layer sizes,
see :func:`~wbench_plugins.kenn.encoder.encoder_dims`), ``grid_shape`` (default 28x28;
:meth:`params_for` takes it from the data), and for ODE-KENN the solver used in training
(``method``, ``substeps``, ``rtol``, ``atol``). ODE-KENN's evaluation-time parameters are
the same four solver settings (defaulting to the fit-time ones), set with ``configure``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from wbench.budget import Budget
from wbench.data import LabelledPairs
from wbench.measures import MeasureBatch
from wbench.surrogate import (
    EmbeddingSurrogate,
    FitReport,
    InputKind,
    concat_measures,
    with_grid_shape,
)
from wbench.training import FrozenForward

from .encoder import (
    ENCODER_LAYERS,
    PAPER_GRID,
    PAPER_WIDTH,
    EncoderDims,
    KennEncoder,
    encoder_dims,
    grid_input,
)

DEEPKENN_LAYERS = (*ENCODER_LAYERS, "head")
N_TIMES = 10
"""ODE-KENN's time points: ``linspace(0, 1, 10)``, one learned weight each."""
FIXED_GRID_METHODS = ("euler", "midpoint", "heun2", "heun3", "rk4", "explicit_adams", "implicit_adams", "fixed_adams")
ADAPTIVE_METHODS = ("dopri5", "dopri8", "bosh3", "fehlberg2", "adaptive_heun")


def softplus_inverse(w: torch.Tensor) -> torch.Tensor:
    """``u`` with ``softplus(u) = w`` for ``w > 0`` (stable for tiny and large ``w``)."""
    return w + torch.log(-torch.expm1(-w))


def _head(dim: int) -> nn.Sequential:
    """The Linear(dim, dim) + Tanh head that matches the ODE vector field's parameter count."""
    return nn.Sequential(nn.Linear(dim, dim), nn.Tanh())


class NaiveNet(nn.Module):
    """Encoder + head; the embedding is the head's output ``(B, dim)``."""

    def __init__(self, dims: EncoderDims):
        super().__init__()
        self.encoder = KennEncoder(dims)
        self.head = _head(dims.dim)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


class DeepKENNNet(nn.Module):
    """Encoder + head with one softplus weight per layer output.

    ``u`` (6 trainable scalars) gives ``w = softplus(u)``; ``u_start`` (a buffer, saved
    with the model) keeps the values ``u`` had when the last fit started.
    """

    def __init__(self, dims: EncoderDims):
        super().__init__()
        self.encoder = KennEncoder(dims)
        self.head = _head(dims.dim)
        self.u = nn.Parameter(torch.zeros(len(DEEPKENN_LAYERS)))
        self.register_buffer("u_start", torch.zeros(len(DEEPKENN_LAYERS)))

    def layer_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The six flattened outputs conv1, conv2, conv3, fc1, fc2, head."""
        outputs = self.encoder.layers(x)
        outputs.append(self.head(outputs[-1]))
        return outputs

    def weights(self) -> torch.Tensor:
        """``w_l = softplus(u_l)`` ``(6,)``."""
        return F.softplus(self.u)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.weights().sqrt()
        if torch.is_grad_enabled():
            return torch.cat([f * scale[i] for i, f in enumerate(self.layer_outputs(x))], dim=1)
        return self._embed_inference(x, scale)

    def _embed_inference(self, x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """The same embedding without autograd, written in one pass per layer.

        Each scaled layer output goes straight into its slice of the preallocated
        embedding: the channels-last conv maps are read once and written in (C, H, W)
        order, instead of being copied by the flatten, again by the scaling and again by
        ``torch.cat``. Equal to the autograd path (same products, same order).
        """
        maps = self.encoder.feature_maps(x)
        maps.append(self.head(maps[-1]))
        batch = x.shape[0]
        sizes = [m[0].numel() for m in maps]
        out = torch.empty(batch, sum(sizes), dtype=maps[-1].dtype, device=maps[-1].device)
        start = 0
        for i, (m, size) in enumerate(zip(maps, sizes, strict=True)):
            torch.mul(m, scale[i], out=out[:, start : start + size].view(batch, *m.shape[1:]))
            start += size
        return out


class VectorField(nn.Module):
    """``dz/dt = tanh(W z + b)`` (autonomous)."""

    def __init__(self, dim: int):
        super().__init__()
        self.linear = nn.Linear(dim, dim)

    def forward(self, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.linear(z))


class ODEKENNNet(nn.Module):
    """Encoder + neural ODE with one softplus weight per time point.

    ``u`` (10 trainable scalars) gives ``w = softplus(u)``; ``u_start`` (a saved buffer)
    keeps their values when the last fit started.
    """

    def __init__(self, dims: EncoderDims):
        super().__init__()
        self.encoder = KennEncoder(dims)
        self.field = VectorField(dims.dim)
        self.u = nn.Parameter(torch.zeros(N_TIMES))
        self.register_buffer("u_start", torch.zeros(N_TIMES))
        self.register_buffer("times", torch.linspace(0.0, 1.0, N_TIMES), persistent=False)

    @property
    def dt(self) -> float:
        """Spacing of the time points (1/9), the quadrature weight of the distance."""
        return 1.0 / (N_TIMES - 1)

    def weights(self) -> torch.Tensor:
        """``w_k = softplus(u_k)`` ``(10,)``."""
        return F.softplus(self.u)

    def trajectory(self, z0: torch.Tensor, *, method: str, substeps: int, rtol: float, atol: float) -> torch.Tensor:
        """``z(t_k)`` ``(10, B, dim)`` from ``z(0) = z0`` ``(B, dim)``, in one ``odeint`` call.

        Fixed-grid methods step on ``linspace(0, 1, 9 * substeps + 1)`` (so every t_k is a
        grid point, nothing is interpolated); adaptive methods use ``rtol`` and ``atol``.
        """
        from torchdiffeq import odeint

        if method in FIXED_GRID_METHODS:
            grid = torch.linspace(0.0, 1.0, (N_TIMES - 1) * substeps + 1, device=z0.device, dtype=z0.dtype)
            return odeint(self.field, z0, grid, method=method)[::substeps]
        return odeint(self.field, z0, self.times.to(z0.dtype), method=method, rtol=rtol, atol=atol)

    def embed(self, x: torch.Tensor, solver: Mapping[str, Any]) -> torch.Tensor:
        z = self.trajectory(self.encoder(x), **solver)  # (T, B, d)
        scale = (self.weights() * self.dt).sqrt()
        return (z * scale[:, None, None]).permute(1, 0, 2).reshape(z.shape[1], -1)


class _KENNSurrogate(EmbeddingSurrogate):
    """Common parts: the width and grid options, the input, memory format, describe."""

    input_kind: ClassVar[InputKind] = "grid"
    width_param: ClassVar[str | None] = "width"
    authors_defaults: ClassVar[dict[str, Any]] = {"batch_size": 256}
    """The DeepKENN paper's training batch (its learning rate was lost in the text)."""
    channels_last_on_cpu: ClassVar[bool] = True
    """Run the convolutions in ``channels_last`` memory format on CPU (faster with oneDNN;
    the same computation, so the results agree to float32 rounding)."""
    frozen_inference_on_cpu: ClassVar[bool] = True
    """Embed through a frozen TorchScript graph (:class:`wbench.train.frozen.FrozenForward`) in
    evaluation without autograd on CPU: 1.1-1.7x the eager forward's images per second on 2
    cores, outputs equal to float round-off (checked on every graph built)."""
    embed_batch: ClassVar[int] = 256
    """Chunk of :meth:`embed_all`: the frozen graph's activations of 256 images stay in the
    2 MiB L2 cache; at 1,024 it loses its advantage over the eager forward."""

    def __init__(self, *, width: int = PAPER_WIDTH, grid_shape: tuple[int, int] | list[int] = PAPER_GRID, **extra: Any):
        grid = (int(grid_shape[0]), int(grid_shape[1]))
        super().__init__(width=width, grid_shape=grid, **extra)
        self.dims = encoder_dims(width, grid)
        self.model = self._build(self.dims)
        self.frozen = FrozenForward()
        self.to("cpu")

    def _build(self, dims: EncoderDims) -> nn.Module:
        raise NotImplementedError

    @property
    def grid_shape(self) -> tuple[int, int]:
        return self.dims.grid_shape

    @classmethod
    def params_for(cls, params: Mapping[str, Any], measures: MeasureBatch) -> dict[str, Any]:
        """Take ``grid_shape`` from the data unless given."""
        return with_grid_shape(cls, params, measures)

    def _input(self, x: MeasureBatch) -> torch.Tensor:
        return grid_input(x.to(self.device), self.grid_shape, channels_last=self.uses_channels_last())

    def embed(self, x: MeasureBatch) -> torch.Tensor:
        """Embeddings ``(B, k)``; their Euclidean distances are the model's W2 estimates (pixels)."""
        t = self._input(x)
        if self.frozen_inference_on_cpu and self.device.type == "cpu" and not self.model.training and not torch.is_grad_enabled():
            return self.frozen(self.model, self._network, t, context=self._network_context())
        return self._network(self.model, t)

    def _network(self, net: nn.Module, t: torch.Tensor) -> torch.Tensor:
        """The network's embedding of the grid input ``t`` ``(B, 1, H, W)``: ``(B, k)``."""
        return net.embed(t)

    def _network_context(self) -> Any:
        """What else :meth:`_network` depends on (a frozen graph is built per value)."""
        return None

    @property
    def embedding_dim(self) -> int:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {
            "architecture": self.dims.as_dict(),
            "width": self.params["width"],
            "embedding_dim": self.embedding_dim,
            "input": "weights * H * W (density relative to uniform)",
        }

    def write_artifacts(self, out_dir: Path) -> list[Path]:
        """Write method-specific plots into ``out_dir``; returns the files written."""
        return []


class NaiveKENN(_KENNSurrogate):
    """Naive baseline: the Euclidean distance between final embeddings (after the Linear+Tanh head).

    55,424 parameters at the paper's configuration.
    """

    def _build(self, dims: EncoderDims) -> nn.Module:
        return NaiveNet(dims)

    @property
    def embedding_dim(self) -> int:
        return self.dims.dim


class DeepKENN(_KENNSurrogate):
    """DeepKENN: softplus-weighted sum of squared distances over all six layer outputs.

    55,430 parameters at the paper's configuration. At the start of :meth:`fit` the layer
    weights are balanced so that each layer contributes about equally to the predicted
    W2^2 on a training batch (``w_l = mean W2^2 / (6 mean |f_l(x) - f_l(y)|^2)``): with
    every ``u_l = 0`` the conv1 term dominates and training starts far off. The starting
    and final weights are reported by :meth:`describe`.
    """

    model: DeepKENNNet

    def _build(self, dims: EncoderDims) -> nn.Module:
        return DeepKENNNet(dims)

    @property
    def embedding_dim(self) -> int:
        return sum(self.dims.flat_sizes) + self.dims.dim

    @torch.no_grad()
    def balance_layer_weights(self, pairs: LabelledPairs, *, n_pairs: int = 256, seed: int = 0) -> torch.Tensor:
        """Set ``w_l = mean W2^2 / (L mean |f_l(x) - f_l(y)|^2)`` on ``n_pairs`` random pairs.

        Each of the L = 6 layers then contributes about ``mean W2^2 / L`` to the predicted
        W2^2 on that batch. A layer whose outputs do not differ keeps ``w = log 2``.
        Also records the result as the starting weights. Returns the weights ``(6,)``.
        """
        if pairs.pairs.w2sq is None:
            raise ValueError("balancing the layer weights needs pairs with exact W2^2 (run the oracle first)")
        generator = torch.Generator().manual_seed(seed)
        idx = torch.randperm(len(pairs), generator=generator)[:n_pairs].numpy()
        a, b, w2sq = pairs.batch(idx)
        was_training = self.model.training
        self.model.eval()
        try:
            outputs = self.model.layer_outputs(self._input(concat_measures(a, b)))
        finally:
            self.model.train(was_training)
        n = len(idx)
        msd = torch.stack([(f[:n] - f[n:]).double().pow(2).sum(dim=1).mean() for f in outputs])
        target = float(w2sq.mean())
        w = torch.where(msd > 0, target / (len(outputs) * msd.clamp_min(1e-300)), torch.full_like(msd, math.log(2.0)))
        u = softplus_inverse(w.clamp(1e-30, 1e30)).to(self.model.u.dtype)
        self.model.u.copy_(u)
        self.model.u_start.copy_(u)
        return self.model.weights().detach().clone()

    def fit(self, train: LabelledPairs, val: LabelledPairs, budget: Budget) -> FitReport:
        """Balance the starting layer weights, then train with the shared loop."""
        self.to(budget.device)
        self.balance_layer_weights(train, n_pairs=budget.batch_size, seed=budget.seed)
        report = super().fit(train, val, budget)
        report.extra["layer_weights"] = self.layer_weights()
        return report

    def layer_weights(self) -> dict[str, Any]:
        """``{"layers", "flat_sizes", "start", "final"}``: softplus weights per layer (JSON-ready)."""
        return {
            "layers": list(DEEPKENN_LAYERS),
            "flat_sizes": [*self.dims.flat_sizes, self.dims.dim],
            "start": F.softplus(self.model.u_start).tolist(),
            "final": self.model.weights().tolist(),
        }

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "layer_weights": self.layer_weights()}

    def write_artifacts(self, out_dir: Path) -> list[Path]:
        """``deepkenn_layer_weights.png``: starting and final weight per layer (paper Fig. 1, bottom left)."""
        from .plots import plot_layer_weights

        weights = self.layer_weights()
        path = Path(out_dir) / "deepkenn_layer_weights.png"
        plot_layer_weights(weights["layers"], weights["start"], weights["final"], path)
        return [path]


class ODEKENN(_KENNSurrogate):
    """ODE-KENN: a neural ODE on the encoder's feature; weighted distance along the trajectory.

    55,434 parameters at the paper's configuration. ``method``, ``substeps``, ``rtol`` and
    ``atol`` are the training solver; ``configure(method=..., substeps=...)`` changes the
    solver used at evaluation only (defaults: the training ones). With a fixed-grid method
    the two sides of a pair give the same distance whether solved together or apart (rows
    are independent); an adaptive method chooses its steps for the whole stacked batch.
    """

    model: ODEKENNNet
    default_eval_params: ClassVar[Mapping[str, Any]] = {"method": "rk4", "substeps": 1, "rtol": 1e-6, "atol": 1e-8}

    def __init__(
        self,
        *,
        width: int = PAPER_WIDTH,
        grid_shape: tuple[int, int] | list[int] = PAPER_GRID,
        method: str = "rk4",
        substeps: int = 1,
        rtol: float = 1e-6,
        atol: float = 1e-8,
    ):
        solver = _check_solver({"method": method, "substeps": substeps, "rtol": rtol, "atol": atol})
        super().__init__(width=width, grid_shape=grid_shape, **solver)
        self.fit_solver: dict[str, Any] = solver
        self.eval_params.update(solver)

    def _build(self, dims: EncoderDims) -> nn.Module:
        return ODEKENNNet(dims)

    @property
    def embedding_dim(self) -> int:
        return N_TIMES * self.dims.dim

    def configure(self, **eval_params: Any) -> ODEKENN:
        """Set the evaluation solver (``method``, ``substeps``, ``rtol``, ``atol``)."""
        _check_solver({**self.eval_params, **eval_params})
        super().configure(**eval_params)
        return self

    def _solver(self) -> Mapping[str, Any]:
        """The training solver in train mode, the evaluation solver otherwise."""
        return self.fit_solver if self.model.training else self.eval_params

    def _network(self, net: nn.Module, t: torch.Tensor) -> torch.Tensor:
        """Embeddings ``(B, 10 * dim)`` of the grid input ``t`` with :meth:`_solver`'s solver."""
        return net.embed(t, self._solver())

    def _network_context(self) -> Any:
        return tuple(sorted(self._solver().items()))

    def fit(self, train: LabelledPairs, val: LabelledPairs, budget: Budget) -> FitReport:
        """Train with the shared loop; records the starting time weights."""
        with torch.no_grad():
            self.model.u_start.copy_(self.model.u)
        report = super().fit(train, val, budget)
        report.extra["time_weights"] = self.time_weights()
        return report

    def time_weights(self) -> dict[str, Any]:
        """``{"t", "dt", "start", "final"}``: softplus weight per time point (JSON-ready)."""
        return {
            "t": [k / (N_TIMES - 1) for k in range(N_TIMES)],
            "dt": self.model.dt,
            "start": F.softplus(self.model.u_start).tolist(),
            "final": self.model.weights().tolist(),
        }

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "time_weights": self.time_weights(),
            "solver": {"fit": dict(self.fit_solver), "eval": dict(self.eval_params)},
        }

    def write_artifacts(self, out_dir: Path) -> list[Path]:
        """``odekenn_time_weights.png``: starting and final weight per time point (paper Fig. 1, bottom right)."""
        from .plots import plot_time_weights

        weights = self.time_weights()
        path = Path(out_dir) / "odekenn_time_weights.png"
        plot_time_weights(weights["t"], weights["start"], weights["final"], path)
        return [path]


def _check_solver(solver: Mapping[str, Any]) -> dict[str, Any]:
    method, substeps = solver["method"], solver["substeps"]
    if method not in FIXED_GRID_METHODS + ADAPTIVE_METHODS:
        raise ValueError(f"unknown ODE method {method!r}; fixed-grid: {', '.join(FIXED_GRID_METHODS)}; adaptive: {', '.join(ADAPTIVE_METHODS)}")
    if isinstance(substeps, bool) or not isinstance(substeps, int) or substeps < 1:
        raise ValueError(f"substeps must be a positive integer (solver steps between time points), got {substeps!r}")
    for name in ("rtol", "atol"):
        if not (isinstance(solver[name], int | float) and solver[name] > 0):
            raise ValueError(f"{name} must be a positive number, got {solver[name]!r}")
    return {"method": method, "substeps": substeps, "rtol": float(solver["rtol"]), "atol": float(solver["atol"])}
