"""Command-line overrides of a suite run: output directory, resume, device, seeds, subsets."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from wbench.errors import PluginError, SuiteError
from wbench.run.suite import DatasetSpec, Suite, SurrogateSpec, check_seed, check_time_limit


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
    :param timing: end the run with its timing pass (``--no-timing``: not timed; ``wbench retime``
        times the folder later).
    :param cell_time_limit_s: override the suite's per-cell time limit (seconds).
    :param force: write into ``out_dir`` even when it is a non-empty folder that is not a
        wbench run folder (``--force``); without it such a folder is refused.
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
    force: bool = False
    cell_time_limit_s: float | None = None
    timing: bool = True


def select_specs(specs: Sequence[Any], names: Sequence[str] | None, make: Callable[[str], Any]) -> tuple[Any, ...]:
    """The specs named in ``names`` by plugin name or suite label (all when None); a name absent
    from the suite gets ``make(name)``."""
    if names is None:
        return tuple(specs)
    chosen = []
    for name in names:
        matches = [s for s in specs if name in (s.name, s.label)]
        chosen.extend(s for s in matches or [make(name)] if s not in chosen)
    return tuple(chosen)


def resolve_suite(suite: Suite, options: RunOptions) -> Suite:
    """Apply the command-line overrides to a suite.

    :raises SuiteError: a ``--seeds`` value that is not a non-negative integer below 2**32.
    """
    for seed in options.seeds or ():
        check_seed(seed, "--seeds")
    limit = check_time_limit(options.cell_time_limit_s, "--cell-time-limit")
    return replace(
        suite,
        datasets=select_specs(suite.datasets, options.datasets, lambda n: DatasetSpec(name=n)),
        surrogates=select_specs(suite.surrogates, options.surrogates, lambda n: SurrogateSpec(name=n)),
        seeds=options.seeds or suite.seeds,
        device=options.device or suite.device,
        cell_time_limit_s=limit if limit is not None else suite.cell_time_limit_s,
    )


def apply_dataset_params(suite: Suite, params: Mapping[str, Any], registry: Any) -> Suite:
    """Give each ``KEY=VALUE`` of ``params`` to every dataset of ``suite`` (and transfer
    target) whose class declares ``KEY`` (``wbench run --param root=/data``); a dataset
    class that declares no parameter at all takes every key.

    :param registry: a :class:`wbench.plugin.registry.Registry` (reads the declared parameters).
    :raises SuiteError: a key that no dataset of the run takes, listing their parameters.
    """
    if not params:
        return suite
    declared: dict[str, set[str] | None] = {}

    def takes(name: str, key: str) -> bool:
        if name not in declared:
            try:
                declared[name] = set(registry.get("dataset", name).params) or None  # None: declares nothing
            except PluginError:  # unavailable: its cells are recorded so; nothing to give it
                declared[name] = set()
        keys = declared[name]
        return keys is None or key in keys

    def given(name: str, own: Mapping[str, Any]) -> dict[str, Any]:
        return {**own, **{k: v for k, v in params.items() if takes(name, k)}}

    datasets = tuple(
        replace(
            d, params=given(d.name, d.params),
            transfer_to=tuple(replace(t, params=given(t.name, t.params)) for t in d.transfer_to),
        )
        for d in suite.datasets
    )
    names = sorted({d.name for d in suite.datasets} | {t.name for d in suite.datasets for t in d.transfer_to})
    for key in params:
        if not any(takes(n, key) for n in names):
            listing = "; ".join(f"{n}: {', '.join(sorted(declared[n] or ())) or '(none)'}" for n in names)
            raise SuiteError(f"--param {key}: no dataset of this run has a parameter {key!r} ({listing})")
    return replace(suite, datasets=datasets)
