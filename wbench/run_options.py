"""Command-line overrides of a suite run: output directory, resume, device, seeds, subsets."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from wbench.errors import PluginError, SuiteError
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
    :param dataset_params: dataset parameters from the command line (``--param KEY=VALUE``),
        given to every dataset of the run (transfer targets included) that declares ``KEY``.
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
    dataset_params: Mapping[str, Any] = field(default_factory=dict)


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


def apply_dataset_params(suite: Suite, params: Mapping[str, Any], registry: Any) -> Suite:
    """Give each ``KEY=VALUE`` of ``params`` to every dataset of ``suite`` (and transfer
    target) whose class declares ``KEY`` (``wbench run --param root=/data``).

    :param registry: a :class:`wbench.registry.Registry` (reads the declared parameters).
    :raises SuiteError: a key that no dataset of the run declares, listing theirs.
    """
    if not params:
        return suite
    declared: dict[str, set[str]] = {}

    def keys_of(name: str) -> set[str]:
        if name not in declared:
            try:
                declared[name] = set(registry.get("dataset", name).params)
            except PluginError:  # unavailable: its cells are recorded so; nothing to give it
                declared[name] = set()
        return declared[name]

    def given(name: str, own: Mapping[str, Any]) -> dict[str, Any]:
        return {**own, **{k: v for k, v in params.items() if k in keys_of(name)}}

    datasets = tuple(
        replace(
            d, params=given(d.name, d.params),
            transfer_to=tuple(replace(t, params=given(t.name, t.params)) for t in d.transfer_to),
        )
        for d in suite.datasets
    )
    names = {d.name for d in suite.datasets} | {t.name for d in suite.datasets for t in d.transfer_to}
    for key in params:
        if not any(key in keys_of(n) for n in names):
            listing = "; ".join(f"{n}: {', '.join(sorted(keys_of(n))) or '(none)'}" for n in sorted(names))
            raise SuiteError(f"--param {key}: no dataset of this run has a parameter {key!r} ({listing})")
    return replace(suite, datasets=datasets)
