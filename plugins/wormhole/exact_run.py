"""Wormhole's exact-target training loop: the harness's pair protocol in JAX, with budget
milestones, checkpoints and a bit-identical resume.

The loop is :class:`wbench.train.milestones.MilestoneLoop`, the shared torch loop's own (the
same batch order from a ``torch.Generator`` seeded by the budget, validation at every epoch
end or every few (``budget.val_every_steps``), the best validation kept, and the same milestone rule: a milestone's weights and
report are exactly what a run whose budget stops there gives). Only the model, optimiser
and loss are the package's.

A checkpoint (through :func:`wbench.train.checkpoint.milestone_hooks`) holds the package's
``TrainState`` (step, parameters, optax state) as a list of tensors in pytree order, the
JAX key, the batch-order generator, the epoch's order and position, its losses so far, the
running best and the report: tensors, numbers and lists only, as
:func:`wbench.train.checkpoint.save_checkpoint` stores them.

Bit for bit means at one CPU thread: XLA on CPU gives slightly different results from call
to call with more than one intra-op thread (jax-ml/jax#39741; seen here as 1e-4 apart after
5 steps on 2 loaded cores). A resumed run at several threads continues the same training,
as close to an uninterrupted one as two uninterrupted runs are to each other.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np
import torch

from wbench.budget import Budget
from wbench.data import LabelledPairs
from wbench.surrogate import FitReport
from wbench.training import (
    CheckpointError,
    MilestoneHooks,
    MilestoneLoop,
    check_finite,
    validation_mse,
)

if TYPE_CHECKING:
    from wbench_plugins.wormhole.models import Wormhole


def _to_tensors(tree: Any) -> list[torch.Tensor]:
    """The leaves of a JAX pytree as CPU tensors (copies), in pytree order."""
    return [torch.from_numpy(np.array(leaf)) for leaf in jax.tree_util.tree_leaves(tree)]


def _from_tensors(like: Any, tensors: list[torch.Tensor], what: str) -> Any:
    """A pytree shaped like ``like`` whose leaves are ``tensors`` (from :func:`_to_tensors`)."""
    leaves, treedef = jax.tree_util.tree_flatten(like)
    if len(tensors) != len(leaves):
        raise CheckpointError(f"the checkpoint's {what} has {len(tensors)} arrays, this model {len(leaves)}")
    out = []
    for leaf, tensor in zip(leaves, tensors, strict=True):
        value = tensor.numpy()
        if np.shape(leaf) != value.shape:
            raise CheckpointError(f"the checkpoint's {what} holds an array of shape {value.shape}, this model {np.shape(leaf)}")
        out.append(jnp.asarray(value, dtype=jnp.asarray(leaf).dtype))
    return jax.tree_util.tree_unflatten(treedef, out)


class ExactTargetRun(MilestoneLoop):
    """One exact-target training run of a :class:`Wormhole` whose package is built; its
    ``enc_params`` hold the selected weights after :meth:`fit`."""

    def __init__(self, wormhole: Wormhole, train_state: Any, key: Any, train: LabelledPairs, val: LabelledPairs,
                 budget: Budget, used: np.ndarray, hooks: MilestoneHooks | None, setup_s: float = 0.0) -> None:
        """
        :param train_state: the package's fresh ``TrainState`` (made with ``key``).
        :param key: the JAX key the steps split their dropout keys from.
        :param used: the measures (indices into ``train.measures``) the package was built on.
        :param setup_s: seconds already spent building the package (counted as training time).
        """
        super().__init__(len(train), budget, hooks, name="Wormhole", report=FitReport(wall_time_s=setup_s))
        package = wormhole.package
        assert package is not None and wormhole.ot_scale is not None
        self.wormhole, self.val = wormhole, val
        self.state, self.key = train_state, key
        lookup = np.full(len(train.measures), -1, dtype=np.int64)
        lookup[used] = np.arange(len(used))  # pairs index into the package's padded clouds
        self.left, self.right = lookup[train.pairs.left], lookup[train.pairs.right]
        self.targets = jnp.asarray(train.pairs.w2sq / wormhole.ot_scale, dtype=jnp.float32)
        self.step_fn = _step_function(package)

    def fit(self) -> FitReport:
        """Train (see :meth:`MilestoneLoop.run`); the wormhole keeps the selected weights."""
        report, params = self.run()
        if params is not None:
            self.wormhole.enc_params = params
        return report

    def train_step(self, idx: np.ndarray) -> float:
        self.key, sub = jax.random.split(self.key)
        self.state, loss = self.step_fn(self.state, jnp.asarray(self.left[idx]), jnp.asarray(self.right[idx]),
                                        self.targets[idx], sub)
        return check_finite(float(loss), self.report.steps)

    def validate(self) -> float:
        self.wormhole.enc_params = self.state.params["Encoder"]
        return validation_mse(self.wormhole, self.val)

    def snapshot(self) -> Any:
        return copy.deepcopy(jax.device_get(self.state.params["Encoder"]))

    def evaluate_with(self, index: int, report: FitReport, weights: Any) -> None:
        assert self.hooks is not None and self.hooks.evaluate is not None
        self.wormhole.enc_params = weights
        try:
            self.hooks.evaluate(index, report)
        finally:
            self.wormhole.enc_params = self.state.params["Encoder"]

    def framework_state(self) -> dict[str, Any]:
        return {
            "train_state": _to_tensors(self.state),
            "key": torch.from_numpy(np.asarray(jax.random.key_data(self.key)).astype(np.int64)),
            "best_params": None if self.best_weights is None else _to_tensors(self.best_weights),
            "ot_scale": self.wormhole.ot_scale,
        }

    def restore_framework(self, state: dict[str, Any]) -> None:
        saved_scale = state.get("ot_scale")  # absent from checkpoints written before it was stored
        if saved_scale is not None and saved_scale != self.wormhole.ot_scale:
            raise ValueError(
                f"cannot resume: the checkpoint was trained on targets divided by ot_scale {saved_scale!r}, "
                f"the rebuilt package has {self.wormhole.ot_scale!r} (other training measures or another seed)"
            )
        self.state = _from_tensors(self.state, state["train_state"], "training state")
        self.key = jax.random.wrap_key_data(jnp.asarray(state["key"].numpy().astype(np.uint32)))
        best = state["best_params"]
        self.best_weights = None if best is None else jax.device_get(
            _from_tensors(self.state.params["Encoder"], best, "best weights")
        )


def encoder_only(module: Any, inputs: Any, weights: Any, deterministic: bool, dropout_rng: Any) -> Any:
    """Run only the encoder of the package's ``Transformer`` (a ``Module.apply`` method)."""
    if dropout_rng is None:
        return module.Encoder(inputs=inputs, weights=weights, deterministic=deterministic)
    return module.Encoder(inputs=inputs, weights=weights, deterministic=deterministic, dropout_rng=dropout_rng)


def _step_function(package: Any) -> Any:
    """The jitted Adam step on a batch of pairs: MSE between the mean squared encoding
    difference and the scaled exact W2^2 (the package's loss form)."""
    table_pts, table_w = jnp.asarray(package.point_clouds), jnp.asarray(package.weights)
    model = package.model

    def loss_fn(params: Any, idx_a: Any, idx_b: Any, target: Any, rng: Any) -> Any:
        idx = jnp.concatenate([idx_a, idx_b])
        enc = model.apply({"params": params}, table_pts[idx], table_w[idx], False, rng, method=encoder_only)
        n = idx_a.shape[0]
        pred = jnp.mean(jnp.square(enc[:n] - enc[n:]), axis=1)
        return jnp.mean(jnp.square(pred - target))

    @jax.jit
    def step(state: Any, idx_a: Any, idx_b: Any, target: Any, rng: Any) -> tuple[Any, Any]:
        loss, grads = jax.value_and_grad(loss_fn)(state.params, idx_a, idx_b, target, rng)
        return state.apply_gradients(grads=grads), loss

    return step
