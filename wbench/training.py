"""The training helpers a plugin uses: the shared training loop, what a fit reports, the
budget-milestone hooks of a custom loop, frozen inference graphs, and parameter sizing.

The machinery is in :mod:`wbench.train` (loop, milestones, checkpoints, fit report,
frozen graphs, sizing); this module is its public face.
"""

from __future__ import annotations

from wbench.train.checkpoint import CheckpointError, MilestoneHooks, active_hooks
from wbench.train.frozen import FrozenForward, eager_only
from wbench.train.loop import predict_pairs, seed_everything, train_on_pairs, validation_mse
from wbench.train.milestones import MilestoneLoop, check_finite
from wbench.train.report import FitReport
from wbench.train.sizing import apportion, build_at_parameter_target

__all__ = [
    "CheckpointError",
    "FitReport",
    "FrozenForward",
    "MilestoneHooks",
    "MilestoneLoop",
    "active_hooks",
    "apportion",
    "build_at_parameter_target",
    "check_finite",
    "eager_only",
    "predict_pairs",
    "seed_everything",
    "train_on_pairs",
    "validation_mse",
]
