"""One cell as the input of a pure function (:class:`CellTask`), the labels that name a
cell's dataset and method in records, files and messages, and the key of a dataset."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from wbench.data import PairedDataset
from wbench.errors import WbenchError
from wbench.records.store import canonical_json
from wbench.run.suite import DatasetSpec, Suite, SurrogateSpec
from wbench.surrogate import Surrogate


def dataset_memo(name: str, params: Mapping[str, Any]) -> str:
    """The key of a dataset configuration (built once per run)."""
    return canonical_json([name, dict(params)])


def method_label(spec: SurrogateSpec, eval_params: Mapping[str, Any]) -> str:
    """Display name of a method row: its label or name, then its non-default settings."""
    base = spec.label or spec.name
    if spec.params and not spec.label:
        base += "(" + ",".join(f"{k}={v}" for k, v in sorted(spec.params.items())) + ")"
    if eval_params:
        base += "[" + ",".join(f"{k}={v}" for k, v in sorted(eval_params.items())) + "]"
    return base


def dataset_label(spec: DatasetSpec) -> str:
    """Display name of a dataset configuration."""
    return spec.label or spec.name


@dataclass(frozen=True)
class CellTask:
    """One cell as the input of a pure function: it runs the same here or on a Dask worker.

    :param suite: the resolved suite (budget, evaluation settings, device).
    :param dataset: the cell's dataset spec; ``datasets`` given to :func:`compute_cell` holds
        it and its transfer targets, ground truth attached.
    :param surrogate: the method spec.
    :param seed: the cell's seed.
    :param todo: ``(milestone_index, eval_params, identity)`` of each record still to
        compute (the index into ``suite.budget.milestone_list``; 0 when it has none).
    :param surrogate_cls: the loaded surrogate class.
    :param metrics: metric name -> loaded metric function.
    :param cache_dir: the ground-truth cache (exact blocks of the metrics).
    :param n_jobs: local processes for those blocks (bounded by the worker's threads on a worker).
    :param checkpoint_dir: where the training run is checkpointed at each milestone (None:
        not checkpointed, e.g. on a cluster, whose workers never write the run directory).
    :param resume: continue from this cell's latest checkpoint before its first missing record.
    """

    suite: Suite
    dataset: DatasetSpec
    surrogate: SurrogateSpec
    seed: int
    todo: tuple[tuple[int, Mapping[str, Any], dict[str, Any]], ...]
    surrogate_cls: type[Surrogate]
    metrics: Mapping[str, Callable[..., Mapping[str, float]]]
    cache_dir: str | None = None
    n_jobs: int = -1
    checkpoint_dir: str | None = None
    resume: bool = False

    def describe(self) -> str:
        """``dataset / method / seed N``, as messages name the cell."""
        return f"{dataset_label(self.dataset)} / {self.surrogate.label or self.surrogate.name} / seed {self.seed}"


def check_compatible(cls: type[Surrogate], name: str, dataset: PairedDataset, *, model: Surrogate | None = None) -> None:
    """Raise when a grid model meets point clouds, or a fitted model meets another grid."""
    if cls.input_kind == "grid" and not dataset.measures.is_grid:
        raise WbenchError(f"{name} needs images on a grid, but dataset {dataset.name!r} holds point clouds")
    if model is not None and cls.input_kind == "grid":
        fitted = getattr(model, "params", {}).get("grid_shape")
        if fitted is not None and tuple(fitted) != tuple(dataset.measures.grid_shape or ()):
            raise WbenchError(
                f"model was fitted on {tuple(fitted)} images; dataset {dataset.name!r} has {dataset.measures.grid_shape}"
            )
