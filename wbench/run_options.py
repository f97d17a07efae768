"""Command-line overrides of a suite run: output directory, resume, device, seeds, subsets."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from wbench.suite import DatasetSpec, Suite, SurrogateSpec


@dataclass(frozen=True)
class RunOptions:
    """Command-line overrides of a suite run.

    :param out_dir: where ``records.jsonl``, plots and models go.
    :param resume: continue a run in ``out_dir``, skipping cells already ``ok``.
    :param device: override the suite's device.
    :param seeds: override the suite's seeds.
    :param surrogates: run only these methods (names not in the suite run at their defaults).
    :param datasets: run only these datasets (likewise).
    :param cache_dir: ground-truth cache directory (default ``$WBENCH_CACHE_DIR``).
    :param n_jobs: oracle worker processes (-1: all cores).
    :param scheduler: a Dask scheduler address or scheduler file: the ground truth and the
        cells run on that cluster (None: ``$WBENCH_SCHEDULER``, else this machine).
    """

    out_dir: Path
    resume: bool = False
    device: str | None = None
    seeds: tuple[int, ...] | None = None
    surrogates: tuple[str, ...] | None = None
    datasets: tuple[str, ...] | None = None
    cache_dir: Path | None = None
    n_jobs: int = -1
    scheduler: str | None = None


def select_specs(specs: Sequence[Any], names: Sequence[str] | None, make: Callable[[str], Any]) -> tuple[Any, ...]:
    """The specs named in ``names`` (all when None); a name absent from the suite gets ``make(name)``."""
    if names is None:
        return tuple(specs)
    chosen = []
    for name in names:
        matches = [s for s in specs if s.name == name]
        chosen.extend(matches or [make(name)])
    return tuple(chosen)


def resolve_suite(suite: Suite, options: RunOptions) -> Suite:
    """Apply the command-line overrides to a suite."""
    return replace(
        suite,
        datasets=select_specs(suite.datasets, options.datasets, lambda n: DatasetSpec(name=n)),
        surrogates=select_specs(suite.surrogates, options.surrogates, lambda n: SurrogateSpec(name=n)),
        seeds=options.seeds or suite.seeds,
        device=options.device or suite.device,
    )
