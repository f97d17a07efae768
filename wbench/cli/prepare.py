"""``wbench prepare``: build a dataset and compute (or load) its exact ground truth.

Example::

    wbench prepare --dataset mnist --param pairs_per_combination=100 --jobs 2
    wbench prepare --dataset mnist --scheduler tcp://scheduler-host:8786   # on a Dask cluster

prints the pairs per split, W2 min / median / max, the time, the pairs per second, the
cache file and whether it was a cache hit. Run it once before ``wbench run`` to fill the
cache outside any timed region, or to check an install.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from wbench.errors import WbenchError
from wbench.plugin.params import AssignmentError, parse_assignments, parse_value  # noqa: F401 (re-exported)


class DatasetParamsError(WbenchError, ValueError):
    """A dataset plugin rejected the parameters it was given."""


def add_prepare_parser(subparsers: Any, parents: Sequence[argparse.ArgumentParser] = ()) -> argparse.ArgumentParser:
    """Add the ``prepare`` sub-command to an ``argparse`` sub-parsers object."""
    parser = subparsers.add_parser(
        "prepare",
        parents=list(parents),
        help="build a dataset and compute (or load) its exact W2 ground truth",
        description="Build a dataset, compute its exact W2 ground truth in parallel (or load it "
        "from the cache) and print a summary.",
    )
    parser.add_argument("--dataset", required=True, metavar="NAME", help="dataset name (see `wbench list`)")
    parser.add_argument(
        "--param", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
        help="dataset parameters (repeatable, or several after one flag); VALUE is read as JSON when it "
        "can be, else as a string",
    )
    parser.add_argument("--cache-dir", type=Path, help="ground-truth cache (default $WBENCH_CACHE_DIR or ~/.cache/wbench)")
    parser.add_argument("--jobs", type=int, default=-1, metavar="N", help="oracle worker processes (default -1: all cores)")
    add_scheduler_option(parser)
    parser.set_defaults(handler=run_prepare)
    return parser


def add_scheduler_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--scheduler ADDRESS`` (a Dask scheduler address or scheduler file) to a parser."""
    parser.add_argument(
        "--scheduler", metavar="ADDRESS",
        help="run on a Dask cluster: scheduler address (tcp://host:8786) or scheduler file; "
        "default $WBENCH_SCHEDULER, else this machine (needs pip install \"wbench[dask]\")",
    )


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def run_prepare(args: argparse.Namespace) -> int:
    """Build the dataset named by ``args.dataset``, attach ground truth and print a summary."""
    import numpy as np

    from wbench.executor import executor_for, use_executor
    from wbench.oracle.groundtruth import compute_ground_truth
    from wbench.plugin.manager import make_plugin_manager
    from wbench.util.progress import progress_enabled

    plugins = getattr(args, "plugins", None) or make_plugin_manager(getattr(args, "plugin", None) or [])
    entry = plugins.registry.get("dataset", args.dataset)
    params = {**dict(entry.params), **parse_assignments(args.param)}
    cls = entry.load()
    try:
        plugin = cls(**params)
    except (TypeError, ValueError) as exc:  # unknown keyword or a value the plugin refuses
        raise DatasetParamsError(f"dataset {args.dataset!r} rejected its parameters {params}: {exc}") from exc
    t0 = time.perf_counter()
    dataset = plugin.build()
    build_s = time.perf_counter() - t0
    with executor_for(getattr(args, "scheduler", None), args.jobs) as executor, use_executor(executor):
        backend = executor.describe()
        gt = compute_ground_truth(dataset, cache_dir=args.cache_dir, n_jobs=args.jobs, progress=progress_enabled())
    ds = gt.dataset
    unit = ds.unit
    out = sys.stdout
    print(f"dataset   {ds.name}  {json.dumps(dict(ds.params), sort_keys=True, default=str)}", file=out)
    shape = f"grid {ds.measures.grid_shape[0]}x{ds.measures.grid_shape[1]}" if ds.measures.grid_shape else f"point clouds in {ds.measures.dim}-D"
    print(f"measures  {len(ds.measures):,} ({shape}), built in {build_s:.2f} s", file=out)
    w2_all = []
    for name, pairs in ds.pairs.items():
        w2 = pairs.w2
        w2_all.append(w2)
        stats = f"W2 min {_fmt(w2.min())}  median {_fmt(float(np.median(w2)))}  max {_fmt(w2.max())} {unit}" if len(w2) else "no pairs"
        print(f"  {name:<6} {len(pairs):>9,} pairs   {stats}", file=out)
    if w2_all and sum(len(w) for w in w2_all):
        w2 = np.concatenate(w2_all)
        print(f"  {'all':<6} {len(w2):>9,} pairs   W2 min {_fmt(w2.min())}  median {_fmt(float(np.median(w2)))}  max {_fmt(w2.max())} {unit}", file=out)
    if gt.cache.hit:
        print(f"oracle    cache hit: loaded {gt.n_pairs:,} pairs in {gt.seconds:.2f} s", file=out)
    else:
        rate = gt.n_pairs / gt.cache.seconds if gt.cache.seconds > 0 else float("inf")
        print(
            f"oracle    computed {gt.n_pairs:,} pairs in {gt.cache.seconds:.2f} s ({rate:,.0f} pairs/s, "
            f"{gt.backend or backend}); total {gt.seconds:.2f} s",
            file=out,
        )
    print(f"cache     {gt.cache.path if gt.cache.path else '(not written)'} ({'hit' if gt.cache.hit else 'miss'})", file=out)
    return 0
