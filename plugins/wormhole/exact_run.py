"""Wormhole's exact-target training loop: the harness's pair protocol in JAX, with budget
milestones, checkpoints and a bit-identical resume.

The loop follows :class:`wbench.training._TrainingRun` step for step (the same batch
order from a ``torch.Generator`` seeded by the budget, validation at every epoch end, the
best validation kept, and the same milestone rule: at a milestone ``m`` the selection set
is the epoch-end validations up to ``m`` and the validation at ``m``, exactly what a run
whose budget stops at ``m`` selects). Only the model, optimiser and loss are the package's.

A checkpoint (through :func:`wbench.checkpoint.milestone_hooks`) holds the package's
``TrainState`` (step, parameters, optax state) as a list of tensors in pytree order, the
JAX key, the batch-order generator, the epoch's order and position, its losses so far, the
running best and the report: tensors, numbers and lists only, as
:func:`wbench.checkpoint.save_checkpoint` stores them.

Bit for bit means at one CPU thread: XLA on CPU gives slightly different results from call
to call with more than one intra-op thread (jax-ml/jax#39741; seen here as 1e-4 apart after
5 steps on 2 loaded cores). A resumed run at several threads continues the same training,
as close to an uninterrupted one as two uninterrupted runs are to each other.
"""

from __future__ import annotations

import copy
import math
import time
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np
import torch

from wbench.budget import Budget
from wbench.checkpoint import CheckpointError, MilestoneHooks
from wbench.data import LabelledPairs
from wbench.surrogate import FitReport

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


class ExactTargetRun:
    """One exact-target training run of a :class:`Wormhole` whose package is built."""

    def __init__(self, wormhole: Wormhole, train_state: Any, key: Any, train: LabelledPairs, val: LabelledPairs,
                 budget: Budget, used: np.ndarray, hooks: MilestoneHooks | None, setup_s: float = 0.0) -> None:
        """
        :param train_state: the package's fresh ``TrainState`` (made with ``key``).
        :param key: the JAX key the steps split their dropout keys from.
        :param used: the measures (indices into ``train.measures``) the package was built on.
        :param setup_s: seconds already spent building the package (counted as training time).
        """
        package = wormhole.package
        assert package is not None and wormhole.ot_scale is not None
        self.wormhole, self.val, self.budget, self.hooks = wormhole, val, budget, hooks
        self.state, self.key = train_state, key
        lookup = np.full(len(train.measures), -1, dtype=np.int64)
        lookup[used] = np.arange(len(used))  # pairs index into the package's padded clouds
        self.left, self.right = lookup[train.pairs.left], lookup[train.pairs.right]
        self.targets = jnp.asarray(train.pairs.w2sq / wormhole.ot_scale, dtype=jnp.float32)
        self.n_train = len(train)
        self.step_fn = _step_function(package)
        self.generator = torch.Generator().manual_seed(budget.seed)
        self.milestones = budget.milestone_steps(self.n_train)
        self.report = FitReport(wall_time_s=setup_s)
        self.best_mse, self.best_params = math.inf, None
        self.order: np.ndarray | None = None  # the current epoch's batch order (None: between epochs)
        self.position = 0
        self.epoch_losses: list[float] = []
        self.final: tuple[FitReport, Any] | None = None
        if hooks is not None and hooks.resume is not None:
            self._restore(hooks.resume)

    # ------------------------------------------------------------------ loop
    def run(self) -> FitReport:
        """Train to the last milestone (or the time limit); the wormhole keeps the selected weights."""
        budget, report = self.budget, self.report
        self.started = time.perf_counter() - report.wall_time_s
        while self.final is None and report.steps < self.milestones[-1] and report.stopped_by != "time_limit":
            if self.order is None:
                self.order = torch.randperm(self.n_train, generator=self.generator).numpy()
                self.position, self.epoch_losses = 0, []
            idx = self.order[self.position : self.position + budget.batch_size]
            self.position += len(idx)
            self._step(idx)
            report.wall_time_s = time.perf_counter() - self.started
            if budget.time_limit_s is not None and report.wall_time_s > budget.time_limit_s:
                report.stopped_by = "time_limit"
            if report.steps in self.milestones:
                self._milestone(self.milestones.index(report.steps))
            elif self.position >= len(self.order):
                self._end_epoch()
        if self.final is None:  # stopped by the time limit between milestones
            if self.order is not None:
                self._end_epoch()
            report.wall_time_s = time.perf_counter() - self.started
            self.final = (copy.deepcopy(report), self.best_params)
        final_report, params = self.final
        if params is not None:
            self.wormhole.enc_params = params
        return final_report

    def _step(self, idx: np.ndarray) -> None:
        self.key, sub = jax.random.split(self.key)
        self.state, loss = self.step_fn(self.state, jnp.asarray(self.left[idx]), jnp.asarray(self.right[idx]),
                                        self.targets[idx], sub)
        loss = float(loss)
        if not math.isfinite(loss):
            raise FloatingPointError(f"training loss became {loss} at step {self.report.steps}")
        self.epoch_losses.append(loss)
        self.report.steps += 1

    def _current_params(self) -> Any:
        return jax.device_get(self.state.params["Encoder"])

    def _validate(self) -> float:
        self.wormhole.enc_params = self.state.params["Encoder"]
        return self.wormhole._val_mse(self.val)

    def _end_epoch(self) -> None:
        """An epoch-end validation point: it joins the running best."""
        report = self.report
        report.epochs += 1
        report.train_loss.append(float(np.mean(self.epoch_losses)) if self.epoch_losses else math.nan)
        mse = self._validate()
        report.val_mse.append(mse)
        if mse < self.best_mse or self.best_params is None:
            self.best_mse, report.best_epoch = mse, report.epochs - 1
            self.best_params = copy.deepcopy(self._current_params())
        self.order = None

    def _milestone(self, index: int) -> None:
        """Select the milestone's weights, evaluate (all but the last), checkpoint."""
        last = index == len(self.milestones) - 1 or self.report.stopped_by == "time_limit"
        assert self.order is not None
        if self.position >= len(self.order):  # the milestone ends an epoch: an ordinary validation point
            self._end_epoch()
            chosen, chosen_params = copy.deepcopy(self.report), self.best_params
        else:  # mid-epoch: the validation at m counts for this milestone only
            chosen = copy.deepcopy(self.report)
            chosen.epochs += 1
            chosen.train_loss.append(float(np.mean(self.epoch_losses)))
            mse = self._validate()
            chosen.val_mse.append(mse)
            chosen_params = self.best_params
            if mse < self.best_mse or self.best_params is None:
                chosen.best_epoch = chosen.epochs - 1
                chosen_params = copy.deepcopy(self._current_params())
        hooks = self.hooks
        chosen.wall_time_s = self.report.wall_time_s = time.perf_counter() - self.started
        paused = time.perf_counter()  # evaluating and checkpointing are not training time
        if last:
            self.final = (chosen, chosen_params)
        elif hooks is not None and hooks.evaluate is not None:
            self.wormhole.enc_params = chosen_params
            try:
                hooks.evaluate(index, chosen)
            finally:
                self.wormhole.enc_params = self.state.params["Encoder"]
        if hooks is not None and hooks.checkpoint is not None:
            hooks.checkpoint(index, self._state())
        self.started += time.perf_counter() - paused

    # ------------------------------------------------------------ checkpoint
    def _state(self) -> dict[str, Any]:
        """What a continuing run needs (see the module docstring)."""
        return {
            "train_state": _to_tensors(self.state),
            "key": torch.from_numpy(np.asarray(jax.random.key_data(self.key)).astype(np.int64)),
            "generator": self.generator.get_state(),
            "order": None if self.order is None else torch.from_numpy(self.order.copy()),
            "position": self.position,
            "epoch_losses": list(self.epoch_losses),
            "best_mse": self.best_mse,
            "best_params": None if self.best_params is None else _to_tensors(self.best_params),
            "report": self.report.as_dict(),
            "milestones": list(self.milestones),
        }

    def _restore(self, state: dict[str, Any]) -> None:
        steps = int(state["report"]["steps"])
        if steps > self.milestones[-1]:
            raise ValueError(f"cannot resume at step {steps}: the budget ends at step {self.milestones[-1]}")
        self.state = _from_tensors(self.state, state["train_state"], "training state")
        self.key = jax.random.wrap_key_data(jnp.asarray(state["key"].numpy().astype(np.uint32)))
        self.generator.set_state(state["generator"])
        self.order = None if state["order"] is None else state["order"].numpy().copy()
        self.position = int(state["position"])
        self.epoch_losses = list(state["epoch_losses"])
        self.best_mse = float(state["best_mse"])
        best = state["best_params"]
        self.best_params = None if best is None else jax.device_get(
            _from_tensors(self.state.params["Encoder"], best, "best weights")
        )
        self.report = FitReport(**state["report"])


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
