"""Oracle throughput of the local backend against a Dask cluster on the same cores.

Run as a script::

    python benchmarks/bench_dask_oracle.py --mnist-root /path/to/data --out results/oracle_dask_cpu.json

In one run and on the same pairs (by default the 55,000 pairs that ``wbench prepare
--dataset mnist`` computes: 1,000 per digit-class combination, the DeepKENN protocol), it
times :func:`wbench.oracle.solve.solve_pairs`

* ``local``: the default backend, a joblib pool of ``--workers`` processes (started and
  warmed before the timed call; the start-up is reported as ``startup_s``);
* ``dask``: a ``distributed.LocalCluster`` of ``--workers`` processes of one thread each
  on loopback, i.e. the same cores, reached through its scheduler address as a remote
  cluster would be (the cluster's start and the workers' first imports are outside the
  timed call and reported as ``startup_s``; the table's transfer to the workers is inside).

With ``--rounds R`` the two alternate (local, dask, dask, local, ...) so that a load that
drifts during the run weighs on both alike. It reports pairs per second for each, the
cluster's overhead ``1 - dask_rate / local_rate`` and whether the values are bitwise
identical, and writes a JSON file with the figures and their provenance (CPU count, load
averages before and after, versions, git commit). Without MNIST it falls back to
scikit-learn's digits (random pairs) and says so.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_oracle import machine_provenance, random_pairs  # noqa: E402  (same provenance style)


def load_pairs(mnist_root: str | None, pairs: int, seed: int) -> tuple[Any, np.ndarray, np.ndarray, str]:
    """``(support table, left, right, description)``: the MNIST prepare pairs (the first
    ``pairs`` of them), else random pairs of sklearn digits."""
    import torch

    from wbench.measures import MeasureBatch
    from wbench.oracle.solve import support_table

    root = mnist_root or os.environ.get("WBENCH_MNIST_ROOT")
    if root:
        from wbench_plugins.datasets.mnist import MnistDataset

        dataset = MnistDataset(root=root).build()
        left = np.concatenate([p.left for p in dataset.pairs.values()])[:pairs]
        right = np.concatenate([p.right for p in dataset.pairs.values()])[:pairs]
        measures = dataset.measures
        data = f"MNIST prepare pairs (DeepKENN protocol, {dataset.params}), first {len(left):,}"
    else:
        from sklearn.datasets import load_digits

        images = load_digits().images.astype(np.float64)
        measures = MeasureBatch.from_images(torch.from_numpy(images))
        left, right = random_pairs(len(images), pairs, seed)
        data = "sklearn digits 8x8, random pairs (MNIST not found: set --mnist-root or $WBENCH_MNIST_ROOT)"
    ids, local = np.unique(np.concatenate([left, right]), return_inverse=True)
    table = support_table(measures, ids)
    return table, local[: len(left)], local[len(left) :], data


def _cluster_tasks(table: Any, left: np.ndarray, right: np.ndarray, workers: int) -> dict[str, Any]:
    """How :func:`wbench.oracle.solve.solve_pairs` chunks these pairs for the cluster."""
    import wbench.oracle.solve as oracle

    k = len(table)
    keys = np.unique(np.minimum(left, right) * k + np.maximum(left, right))
    keys = keys[keys // k != keys % k]
    sizes = np.diff(table.offsets).astype(np.float64)
    na, nb = sizes[keys // k], sizes[keys % k]
    estimated = float(np.sum(na * nb * (na + nb))) * oracle._SECONDS_PER_WORK_UNIT
    size = oracle._cluster_chunk_size(len(keys), workers, estimated)
    return {"unique_pairs": len(keys), "estimated_single_core_s": estimated, "pairs_per_task": size,
            "tasks": -(-len(keys) // size)}


def _timed(fn: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def run(pairs: int, mnist_root: str | None, workers: int, rounds: int, seed: int) -> dict[str, Any]:
    """Run both backends on the same pairs and return the result dictionary."""
    import distributed

    import wbench.oracle.solve as oracle
    from wbench.executor import DaskExecutor, use_executor

    table, left, right, data = load_pairs(mnist_root, pairs, seed)
    n = len(left)
    load_before = os.getloadavg()
    oracle.PARALLEL_MIN_SECONDS = 0.0  # the warm-ups are small: send them to the workers too
    warm_l, warm_r = left[: 40 * workers], right[: 40 * workers]

    _, local_start = _timed(lambda: oracle.solve_pairs(table, warm_l, warm_r, n_jobs=workers, progress=False))

    began = time.perf_counter()
    cluster = distributed.LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    )
    dask = DaskExecutor(cluster.scheduler_address)
    with use_executor(dask):
        oracle.solve_pairs(table, warm_l, warm_r, progress=False)  # the workers import wbench, POT, torch
    dask_start = time.perf_counter() - began

    times: dict[str, list[float]] = {"local": [], "dask": []}
    values: dict[str, np.ndarray] = {}
    try:
        for r in range(rounds):
            order = ("local", "dask") if r % 2 == 0 else ("dask", "local")
            for name in order:
                with use_executor(dask) if name == "dask" else contextlib.nullcontext():
                    out, seconds = _timed(lambda: oracle.solve_pairs(table, left, right, n_jobs=workers, progress=False))
                times[name].append(seconds)
                values.setdefault(name, out)
                print(f"round {r + 1} {name:<5} {n:,} pairs in {seconds:.1f} s ({n / seconds:,.0f} pairs/s)", file=sys.stderr)
    finally:
        dask.close()
        cluster.close()

    rate = {name: n / statistics.mean(ts) for name, ts in times.items()}
    results = {
        name: {
            "backend": "joblib process pool (wbench default)" if name == "local" else "distributed.LocalCluster via its tcp address",
            "workers": workers, "threads_per_worker": 1, "pairs": n, "seconds": ts,
            "pairs_per_s": rate[name], "pairs_per_s_per_worker": rate[name] / workers,
            "startup_s": local_start if name == "local" else dask_start,
        }
        for name, ts in times.items()
    }
    sizes = np.diff(table.offsets)
    return {
        "benchmark": "exact W2 oracle: local backend against a Dask LocalCluster on the same cores",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "data": data,
        "pairs": n,
        "unique_measures": len(table),
        "support_points": {"min": int(sizes.min()), "median": float(np.median(sizes)), "max": int(sizes.max())},
        "rounds": rounds,
        "results": results,
        "dask_overhead": 1.0 - rate["dask"] / rate["local"],
        "bitwise_identical": bool(np.array_equal(values["local"], values["dask"])),
        "dask_tasks": _cluster_tasks(table, left, right, workers),
        "provenance": {
            **machine_provenance(load_before, packages=("dask", "distributed")),
            "note": "wall-clock timings (time.perf_counter) of whole solve_pairs calls on warm workers, the "
            "mean over rounds; both backends use the same number of single-threaded worker processes on the "
            "same machine; the CPU may be shared with other processes: see the load averages",
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=55_000, help="pairs (default 55,000: the MNIST prepare set)")
    parser.add_argument("--mnist-root", help="folder holding MNIST/raw/ (default $WBENCH_MNIST_ROOT)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes per backend (default: all cores)")
    parser.add_argument("--rounds", type=int, default=1, help="timed calls per backend, alternating (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random pairs (digits fallback)")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "oracle_dask_cpu.json", help="JSON output file")
    args = parser.parse_args(argv)
    os.environ.setdefault("WBENCH_PROGRESS", "0")
    result = run(args.pairs, args.mnist_root, args.workers, args.rounds, args.seed)
    r = result["results"]
    print(f"data: {result['data']}")
    for name in ("local", "dask"):
        print(f"{name:<6} {r[name]['pairs_per_s']:>8,.0f} pairs/s ({r[name]['workers']} workers, start-up {r[name]['startup_s']:.1f} s)")
    print(f"dask overhead {100 * result['dask_overhead']:.1f} %; bitwise identical: {result['bitwise_identical']}")
    p = result["provenance"]
    print(f"cpus {p['cpus_available']}, load average before {p['loadavg_before']}, after {p['loadavg_after']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
