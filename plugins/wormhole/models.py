"""Wasserstein Wormhole (Haviv et al., 2024) run through the authors' package ``wassersteinwormhole``.

The encoder is the authors' Flax transformer (``wassersteinwormhole._utils_Transformer``):
a linear embedding of each point, ``num_layers`` pre-norm blocks of weighted multi-head
self-attention and a feed-forward network, a mass-weighted mean over the points and a final
feed-forward network. Squared Euclidean distances between encodings, averaged over the
``emb_dim`` coordinates, are trained to match OT costs divided by the package's ``ot_scale``
(the largest squared distance between the supports of 1,000 random training pairs, drawn
from the budget's seed).

**Units.** The package feeds raw coordinates to the network and only rescales the OT cost,
so ``mean((e_x - e_y)^2) ~ W2^2 / ot_scale``. This wrapper returns the embedding
``e * sqrt(ot_scale / emb_dim)``, whose Euclidean distances are W2 in the dataset's
ground-cost units (pixels for images).

**Weights.** Measures go in as weighted point clouds: zero-mass points (empty pixels) are
dropped and every cloud is padded with zero-mass points to the longest one. The package uses
the masses three ways: as a ``log(w / scale_weights)`` bias on every attention logit (zero
mass masked out; ``scale_weights`` is the mean effective support size of the training
clouds), as the weights of the mean pooling, and as the marginals of its OT targets.

**Targets** (fit-time ``target``):

* ``"s2"`` (default, the authors' way): the package's own ``Wormhole.train`` loop. Each step
  samples ``batch_clouds`` training measures and regresses on the entropic Sinkhorn
  divergence S2 (OTT-JAX, ``eps`` on the scaled cost, ``num_sinkhorn_iter`` iterations) of
  every pair in that batch. It ignores the harness's training pairs and their exact W2: it
  draws its own pairs among the measures those pairs touch (validation and test measures
  are never seen), ``batch_clouds`` is chosen so that ``b (b - 1) / 2`` pairs per step is
  closest to the budget's batch size, and the step count is the budget's. Validation MSE is
  measured once, after training (no best-epoch selection).
* ``"exact"``: the harness's pair protocol. The same model, optimiser and loss form, but the
  batches are the harness's training pairs and the targets their exact W2^2 (from the
  oracle) divided by ``ot_scale``; validation after every epoch, best epoch kept. This
  loop (:mod:`wbench_plugins.wormhole.exact_run`) takes budget milestones, checkpoints at
  each and resumes bit for bit, like the shared torch loop; ``"s2"`` takes none.

**Decoder.** The package can also train a decoder that rebuilds point clouds from
encodings (``coeff_dec``). Its first layer alone has ``emb_dim^2 x n_points`` parameters,
far beyond a matched budget, so it is switched off here (``coeff_dec = -1``: the package's
embedding-only mode) and reduced to a one-point output; ``n_parameters`` counts the
encoder, the only part a distance uses.

**Width.** ``width`` is the hidden size of the feed-forward networks (the package's
``mlp_dim``, 512 by default), the one knob searched for a matched parameter count;
``emb_dim`` (32 here, 128 in the package), ``num_heads`` (4) and ``num_layers`` (3) stay
fixed. The count is linear in ``width`` (``4 (2 emb_dim + 1)`` per unit), fine enough for a
1 % match, where ``emb_dim`` would move it in steps of several percent.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import io
import math
import time
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import numpy as np
import torch

from wbench.budget import Budget
from wbench.data import LabelledPairs
from wbench.measures import MeasureBatch
from wbench.surrogate import FitReport, Surrogate, pairwise_euclidean
from wbench.training import active_hooks, validation_mse
from wbench_plugins.wormhole import INSTALL_COMMAND

try:
    import jax
    import jax.numpy as jnp
    from wassersteinwormhole import Wormhole as PackageWormhole
    from wassersteinwormhole._utils_Transformer import Transformer
    from wassersteinwormhole.DefaultConfig import DefaultConfig

    from wbench_plugins.wormhole.exact_run import ExactTargetRun, encoder_only
except ImportError as exc:  # the optional extra is missing: the registry lists the reason
    raise ImportError(
        f"the wormhole surrogate needs the authors' package wassersteinwormhole (JAX, Flax, OTT-JAX); "
        f"install it with: {INSTALL_COMMAND} (import failed: {exc})"
    ) from exc

TARGETS = ("s2", "exact")
PACKAGE_VERSION = importlib.metadata.version("wassersteinwormhole")


def _quiet() -> contextlib.AbstractContextManager[Any]:
    """Silence the package's progress prints (it prints on every construction and step)."""
    return contextlib.redirect_stdout(io.StringIO())


@contextlib.contextmanager
def seeded_global_numpy(seed: int) -> Iterator[None]:
    """Seed NumPy's global generator with ``seed`` for the block, then give the caller's state back.

    The package draws the pairs behind its ``ot_scale`` (the largest squared distance between
    the supports of 1,000 random pairs of clouds) from ``np.random`` unseeded: two runs with
    the same seed could train on differently scaled targets, and a resumed run rebuild the
    package with another scale than the one it was checkpointed with.
    """
    saved = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(saved)


def _config(emb_dim: int, num_heads: int, num_layers: int, width: int, target: str, eps: float,
            num_sinkhorn_iter: int, dropout: float) -> DefaultConfig:
    """The package's configuration for these sizes, decoder off (embedding only).

    With exact targets no Sinkhorn runs: a fixed iteration count skips the package's
    automatic (costly) choice.
    """
    return DefaultConfig(
        emb_dim=emb_dim, num_heads=num_heads, num_layers=num_layers, mlp_dim=width,
        dist_func_enc="S2", dist_func_dec="S2", eps_enc=eps, eps_dec=eps,
        num_sinkhorn_iter=num_sinkhorn_iter if target == "s2" else 100, coeff_dec=-1, num_particles_output=1,
        attention_dropout_rate=dropout,
    )


@functools.lru_cache(maxsize=256)
def encoder_parameter_count(dim: int, emb_dim: int, num_heads: int, num_layers: int, width: int) -> int:
    """Number of parameters of the package's encoder for ``dim``-D points (shapes only, no compute)."""
    config = _config(emb_dim, num_heads, num_layers, width, "s2", 0.01, 100, 0.0)
    model = Transformer(config, num_particles_output=1, inp_dim=dim)
    shapes = jax.eval_shape(
        lambda key: model.init(
            rngs={"params": key}, dropout_rng=key, deterministic=True,
            inputs=jnp.zeros((1, 4, dim)), weights=jnp.full((1, 4), 0.25),
        ),
        jax.random.key(0),
    )
    return sum(int(np.prod(leaf.shape)) for leaf in jax.tree_util.tree_leaves(shapes["params"]["Encoder"]))


def padded_clouds(measures: MeasureBatch, n_points: int | None = None, *, multiple: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The measures as padded weighted clouds without their zero-mass points.

    :param n_points: length to pad to (default: the largest support in the batch, rounded
        up to a multiple of ``multiple``).
    :returns: ``points (B, n, D)`` float32 in ground-cost units and ``weights (B, n)``
        float32 (rows sum to 1; padding has mass 0).
    :raises ValueError: a measure has more than ``n_points`` points of positive mass.
    """
    points, weights = measures.point_clouds()
    weights = weights.detach().cpu().float()
    keep = weights > 0
    longest = int(keep.sum(dim=1).max())
    n = -(-longest // multiple) * multiple if n_points is None else n_points
    if longest > n:
        raise ValueError(f"a measure has {longest} points of positive mass; this model takes at most {n}")
    order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)[:, :n]
    w = torch.gather(weights, 1, order)
    if points.ndim == 3:
        pts = torch.gather(points.detach().cpu().float(), 1, order.unsqueeze(-1).expand(-1, -1, points.shape[-1]))
    else:
        pts = points.detach().cpu().float()[order]
    if n > order.shape[1]:  # pad beyond the stored length
        extra = n - order.shape[1]
        pts = torch.nn.functional.pad(pts, (0, 0, 0, extra))
        w = torch.nn.functional.pad(w, (0, extra))
    pts = torch.where(w.unsqueeze(-1) > 0, pts, torch.zeros_like(pts))
    w = w / w.sum(dim=1, keepdim=True)
    return pts.numpy(), w.numpy()


def closest_cloud_batch(pairs_per_step: int) -> int:
    """Clouds per step ``b >= 2`` whose ``b (b - 1) / 2`` in-batch pairs are closest to ``pairs_per_step``."""
    if pairs_per_step < 1:
        raise ValueError(f"pairs_per_step must be positive, got {pairs_per_step}")
    b = max(2, int(math.floor((1 + math.sqrt(1 + 8 * pairs_per_step)) / 2)))
    return min((b, b + 1), key=lambda k: (abs(k * (k - 1) // 2 - pairs_per_step), k))


class Wormhole(Surrogate):
    """Wasserstein Wormhole encoder (the authors' JAX package); ``d(x, y) = |h(x) - h(y)|`` in W2 units.

    :param dim: dimension of the points (filled from the data).
    :param width: hidden size of every feed-forward network (the package's ``mlp_dim``).
    :param emb_dim: embedding dimension (also the attention width).
    :param num_heads: attention heads (must divide ``emb_dim``).
    :param num_layers: encoder blocks.
    :param target: ``"s2"`` (the package's loop, in-batch Sinkhorn divergence targets) or
        ``"exact"`` (the harness's training pairs with exact W2^2).
    :param eps: entropic regularisation of the S2 targets, on the cost divided by ``ot_scale``.
    :param num_sinkhorn_iter: Sinkhorn iterations per target (-1: the package's automatic
        choice, which solves 100 pairs for up to 5,000 iterations first).
    :param batch_clouds: clouds per step in ``"s2"`` mode (default: from the budget's batch size).
    :param decay_steps: the package's learning-rate schedule, x0.99 every ``decay_steps`` steps.
    :param dropout: attention dropout during training (the package's default 0.1).
    """

    input_kind: ClassVar[str] = "cloud"
    width_param: ClassVar[str | None] = "width"
    authors_defaults: ClassVar[dict[str, Any]] = {
        "emb_dim": 128, "num_heads": 4, "num_layers": 3, "lr": 1e-4, "target": "s2",
    }
    """The package's ``DefaultConfig`` and ``Wormhole.train(init_lr=...)``, and its training loop."""
    evaluate_on_all_pairs: ClassVar[bool] = False
    metric_by_construction: ClassVar[bool] = True  # |h(x) - h(y)|, a Euclidean distance of embeddings

    def __init__(
        self,
        *,
        dim: int = 2,
        width: int = 128,
        emb_dim: int = 32,
        num_heads: int = 4,
        num_layers: int = 3,
        target: str = "s2",
        eps: float = 0.01,
        num_sinkhorn_iter: int = 200,
        batch_clouds: int | None = None,
        decay_steps: int = 2000,
        dropout: float = 0.1,
    ) -> None:
        for name, value in (("dim", dim), ("width", width), ("emb_dim", emb_dim), ("num_heads", num_heads),
                            ("num_layers", num_layers), ("decay_steps", decay_steps)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"Wormhole {name} must be a positive integer, got {value!r}")
        if emb_dim % num_heads:
            raise ValueError(f"Wormhole emb_dim ({emb_dim}) must be a multiple of num_heads ({num_heads})")
        if target not in TARGETS:
            raise ValueError(f"Wormhole target must be one of {TARGETS}, got {target!r}")
        if not (isinstance(eps, int | float) and eps > 0):
            raise ValueError(f"Wormhole eps must be positive, got {eps!r}")
        if not isinstance(num_sinkhorn_iter, int) or (num_sinkhorn_iter < 1 and num_sinkhorn_iter != -1):
            raise ValueError(f"Wormhole num_sinkhorn_iter must be a positive integer or -1, got {num_sinkhorn_iter!r}")
        if batch_clouds is not None and (not isinstance(batch_clouds, int) or batch_clouds < 2):
            raise ValueError(f"Wormhole batch_clouds must be an integer >= 2, got {batch_clouds!r}")
        if not 0 <= dropout < 1:
            raise ValueError(f"Wormhole dropout must be in [0, 1), got {dropout!r}")
        super().__init__(
            dim=dim, width=width, emb_dim=emb_dim, num_heads=num_heads, num_layers=num_layers,
            target=target, eps=float(eps), num_sinkhorn_iter=num_sinkhorn_iter, batch_clouds=batch_clouds,
            decay_steps=decay_steps, dropout=float(dropout),
        )
        self.package: PackageWormhole | None = None
        self.enc_params: Any = None
        self.n_points: int | None = None
        self.ot_scale: float | None = None
        self._encode: Any = None

    @classmethod
    def params_for(cls, params: Mapping[str, Any], measures: MeasureBatch) -> dict[str, Any]:
        """Set ``dim`` from the measures unless given."""
        out = dict(params)
        out.setdefault("dim", measures.dim)
        return out

    @property
    def n_parameters(self) -> int:
        """Trainable parameters of the encoder (the decoder is off and unused by distances)."""
        p = self.params
        return encoder_parameter_count(p["dim"], p["emb_dim"], p["num_heads"], p["num_layers"], p["width"])

    # ------------------------------------------------------------------ fitting

    def _build_package(self, train_measures: MeasureBatch, seed: int) -> None:
        """Construct the package's ``Wormhole`` on the training clouds (scales, Sinkhorn setup);
        ``seed`` fixes the random pairs behind its ``ot_scale``."""
        p = self.params
        points, weights = padded_clouds(train_measures)
        config = _config(p["emb_dim"], p["num_heads"], p["num_layers"], p["width"], p["target"], p["eps"],
                         p["num_sinkhorn_iter"], p["dropout"])
        with _quiet(), contextlib.redirect_stderr(io.StringIO()), seeded_global_numpy(seed):
            self.package = PackageWormhole(list(points), weights=list(weights), config=config)
        # The package builds its train state with an eager Flax init (hundreds of small XLA
        # compilations); the same function jitted gives the same parameters in a fraction of the time.
        self.package.create_train_state = jax.jit(
            self.package.create_train_state, static_argnames=("init_lr", "decay_steps")
        )
        self._encode = None
        self.n_points = int(self.package.point_clouds.shape[1])
        self.ot_scale = float(self.package.ot_scale_value)

    def fit(self, train: LabelledPairs, val: LabelledPairs, budget: Budget) -> FitReport:
        """Train within ``budget`` (``budget.total_steps`` steps at ``budget.lr``); see the module docstring."""
        if train.pairs.w2sq is None or val.pairs.w2sq is None:
            raise ValueError("training needs pairs with exact W2^2 (run the oracle first)")
        if len(train) == 0:
            raise ValueError("no training pairs")
        used = np.unique(np.concatenate([train.pairs.left, train.pairs.right]))
        if len(used) < 2:
            raise ValueError("Wormhole needs at least two distinct training measures")
        if self.params["target"] == "s2" and len(budget.milestone_list) > 1:
            raise ValueError(
                f"Wormhole target='s2' trains in the package's own loop, which has no milestones; give it a single "
                f"budget ({budget.unit} = {budget.milestone_list[-1]}) or use target='exact'"
            )
        started = time.perf_counter()
        self._build_package(train.measures.index(used), budget.seed)
        key = jax.random.key(budget.seed)
        if self.params["target"] == "s2":
            report = self._fit_s2(budget.total_steps(len(train)), budget, key)
            report.val_mse.append(validation_mse(self, val))
            report.best_epoch = 0
            report.wall_time_s = time.perf_counter() - started
        else:
            with _quiet():
                state = self.package.create_train_state(key, init_lr=budget.lr, decay_steps=self.params["decay_steps"])
            run = ExactTargetRun(self, state, key, train, val, budget, used, active_hooks(),
                                 setup_s=time.perf_counter() - started)
            report = run.fit()
        report.extra.update({
            "package": f"wassersteinwormhole {PACKAGE_VERSION}", "target": self.params["target"],
            "ot_scale": self.ot_scale, "n_points": self.n_points,
            "num_sinkhorn_iter": int(self.package.num_sinkhorn_iter),
        })
        return report

    def _fit_s2(self, steps: int, budget: Budget, key: Any) -> FitReport:
        """The package's own loop: in-batch pairs of sampled clouds, S2 targets."""
        package = self.package
        assert package is not None
        n_clouds = int(package.point_clouds.shape[0])
        clouds = self.params["batch_clouds"] or closest_cloud_batch(budget.batch_size)
        clouds = min(clouds, n_clouds)
        with _quiet(), contextlib.redirect_stderr(io.StringIO()):
            package.train(training_steps=steps, batch_size=clouds, verbose=max(steps, 1), init_lr=budget.lr,
                          decay_steps=self.params["decay_steps"], key=key)
        self.enc_params = package.params["Encoder"]
        losses = np.asarray([float(v) for v in package.enc_loss_curve])
        # one "epoch" = enough steps for every training cloud to be drawn once on average
        per_epoch = max(1, math.ceil(n_clouds / clouds))
        chunks = [losses[i : i + per_epoch] for i in range(0, len(losses), per_epoch)]
        report = FitReport(train_loss=[float(c.mean()) for c in chunks], steps=len(losses), epochs=len(chunks))
        report.extra["clouds_per_step"] = clouds
        report.extra["pairs_per_step"] = clouds * (clouds - 1) // 2
        if budget.time_limit_s is not None:
            report.extra["time_limit_ignored"] = "the package's loop has no time limit"
        return report

    # --------------------------------------------------------------- evaluation

    def embed(self, x: MeasureBatch, batch_size: int = 256) -> torch.Tensor:
        """Embeddings ``(B, emb_dim)`` whose Euclidean distances are W2 in ground-cost units.

        :raises RuntimeError: the model is not fitted.
        Clouds of any size are accepted (the encoder has no positional input): each call pads
        to its longest cloud, rounded up to a multiple of 32 to bound recompilations.

        :raises ValueError: wrong point dimension.
        """
        if self.enc_params is None or self.package is None or self.ot_scale is None:
            raise RuntimeError("this Wormhole is not fitted yet")
        if x.dim != self.params["dim"]:
            raise ValueError(f"this Wormhole was built for {self.params['dim']}-D points, got {x.dim}-D")
        points, weights = padded_clouds(x, multiple=32)
        if self._encode is None:
            self._encode = _encoder_fn(self.package.model)
        encode = self._encode
        parts = []
        for start in range(0, len(points), batch_size):
            pts, w = points[start : start + batch_size], weights[start : start + batch_size]
            real = len(pts)
            bucket = min(batch_size, 1 << max(0, real - 1).bit_length())  # few shapes, few compilations
            if real < bucket:  # pad with copies of the first cloud, dropped below
                pts = np.concatenate([pts, np.repeat(pts[:1], bucket - real, axis=0)])
                w = np.concatenate([w, np.repeat(w[:1], bucket - real, axis=0)])
            parts.append(np.asarray(encode(self.enc_params, pts, w))[:real])
        enc = np.concatenate(parts).astype(np.float64)
        return torch.from_numpy(enc * math.sqrt(self.ot_scale / self.params["emb_dim"]))

    def distance(self, a: MeasureBatch, b: MeasureBatch) -> torch.Tensor:
        """``(B,)`` W2 estimates between ``a[i]`` and ``b[i]``, in ground-cost units."""
        if len(a) != len(b):
            raise ValueError(f"distance needs row-aligned batches, got {len(a)} and {len(b)} measures")
        ea, eb = self.embed(a), self.embed(b)
        return (ea - eb).pow(2).sum(dim=1).sqrt()

    def pairwise(self, x: MeasureBatch, y: MeasureBatch) -> torch.Tensor:
        """``(n, m)`` W2 estimates; each measure is embedded once."""
        return pairwise_euclidean(self.embed(x), self.embed(y))

    def describe(self) -> dict[str, Any]:
        """Sizes, the package version and the fitted scales."""
        return {
            "package": f"wassersteinwormhole {PACKAGE_VERSION}",
            "ot_scale": self.ot_scale, "n_points": self.n_points,
            "sizes": {k: self.params[k] for k in ("emb_dim", "num_heads", "num_layers", "width")},
        }


def _encoder_fn(model: Any) -> Any:
    """A jitted ``(encoder_params, points, weights) -> encodings`` in evaluation mode."""

    @jax.jit
    def encode(enc_params: Any, points: Any, weights: Any) -> Any:
        return model.apply({"params": {"Encoder": enc_params}}, points, weights, True, None, method=encoder_only)

    return encode
