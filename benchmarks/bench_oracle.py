"""Throughput of the exact W2 oracle on random pairs of MNIST test images.

Run as a script (the main use)::

    python benchmarks/bench_oracle.py --pairs 2000 --mnist-root /path/to/data --out results/oracle_cpu.json

It times, in one run and on the same pairs:

* ``wbench_1_worker`` — :func:`wbench.oracle.solve.exact_w2sq` in-process (``n_jobs=1``);
* ``wbench_all_workers`` — the same with ``n_jobs=-1`` (warm worker pool; the start-up of
  the pool is timed separately as ``pool_startup_s``);
* ``pot_emd2_support`` — a bare loop of ``ot.emd2(a, b, ot.dist(xa, xb))`` on the
  pre-extracted supports (POT's own cost, to show the harness's per-pair overhead);
* ``pot_emd2_full_grid`` — POT's ``emd2`` on the full grid (784 x 784 for MNIST), on the
  first ``--full-pairs`` pairs, checked equal to the support-restricted values.

It writes a JSON file with the figures and their provenance (CPU count, load average
before and after, package versions, git commit, date). Without MNIST (no ``--mnist-root``
and no ``$WBENCH_MNIST_ROOT``) it falls back to scikit-learn's 8x8 digits and says so in
the output. The CPU may be shared: the load averages are recorded with the figures.

The file also holds a small pytest-benchmark test (``pytest benchmarks/bench_oracle.py``).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def load_images(mnist_root: str | None) -> tuple[np.ndarray, str]:
    """``(images (n, H, W) float64, description)``: MNIST test images, else sklearn digits."""
    root = mnist_root or os.environ.get("WBENCH_MNIST_ROOT")
    if root:
        raw = Path(root) / "MNIST" / "raw"
        for name in ("t10k-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte"):
            path = raw / name
            if path.exists():
                opener = gzip.open if name.endswith(".gz") else open
                with opener(path, "rb") as f:
                    data = f.read()
                images = np.frombuffer(data, np.uint8, offset=16).reshape(-1, 28, 28).astype(np.float64)
                return images, f"MNIST test images ({path})"
        print(f"warning: no MNIST test images under {raw}; falling back to sklearn digits", file=sys.stderr)
    from sklearn.datasets import load_digits

    images = load_digits().images.astype(np.float64)
    return images, "sklearn digits 8x8 (MNIST not found: set --mnist-root or $WBENCH_MNIST_ROOT)"


def random_pairs(n: int, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` random pairs of distinct indices below ``n``."""
    rng = np.random.default_rng(seed)
    left = rng.integers(0, n, count)
    right = (left + rng.integers(1, n, count)) % n
    return left, right


def _versions(extra: tuple[str, ...] = ()) -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in ("numpy", "scipy", "ot", "joblib", "torch", "wbench", *extra):
        try:
            module = __import__(name)
            out["pot" if name == "ot" else name] = str(getattr(module, "__version__", "?"))
        except ImportError:
            out[name] = "not installed"
    return out


def _git() -> dict[str, Any]:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip())
        return {"commit": commit, "dirty": dirty}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}


_LAST_CPU: list[float] = [0.0]


def machine_provenance(load_before: tuple[float, ...], *, packages: tuple[str, ...] = ()) -> dict[str, Any]:
    """Where a benchmark ran: CPUs, load averages before (given) and now, scheduler setting,
    platform, package versions (the usual ones plus ``packages``) and git state."""
    return {
        "cpu_count": os.cpu_count(),
        "cpus_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "loadavg_before": list(load_before),
        "loadavg_after": list(os.getloadavg()),
        "sched_autogroup_enabled": _autogroup(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "versions": _versions(packages),
        "git": _git(),
    }


def _autogroup() -> str | None:
    """Linux's ``sched_autogroup_enabled``: when 1, CPU time is shared fairly between
    sessions, so on a busy machine more worker processes do not get more CPU."""
    try:
        return Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip()
    except OSError:
        return None


def _timed(fn: Any) -> tuple[Any, float]:
    """``(fn(), wall seconds)``; the process CPU seconds of the call go to ``_LAST_CPU[0]``."""
    cpu = time.process_time()
    start = time.perf_counter()
    out = fn()
    wall = time.perf_counter() - start
    _LAST_CPU[0] = time.process_time() - cpu
    return out, wall


def _rates(pairs: int, wall: float) -> dict[str, float]:
    """Wall-clock and CPU-time rates of an in-process measurement (CPU time is less
    sensitive to other processes sharing the cores)."""
    cpu = _LAST_CPU[0]
    return {
        "pairs": pairs, "seconds": wall, "pairs_per_s": pairs / wall, "ms_per_pair": 1e3 * wall / pairs,
        "cpu_seconds": cpu, "pairs_per_cpu_s": pairs / cpu if cpu > 0 else float("nan"),
    }


def run(pairs: int, full_pairs: int, mnist_root: str | None, jobs: int, seed: int) -> dict[str, Any]:
    """Run every measurement and return the result dictionary."""
    import ot
    import torch
    from joblib import effective_n_jobs

    import wbench.oracle.solve as oracle
    from wbench.measures import MeasureBatch, grid_coordinates

    images, data = load_images(mnist_root)
    n, h, w = images.shape
    left, right = random_pairs(n, pairs, seed)
    measures = MeasureBatch.from_images(torch.from_numpy(images))
    load_before = os.getloadavg()
    results: dict[str, Any] = {}

    ids, local = np.unique(np.concatenate([left, right]), return_inverse=True)
    table, t_support = _timed(lambda: oracle.support_table(measures, ids))
    sizes = np.diff(table.offsets)
    results["support_extraction"] = {"measures": len(ids), "seconds": t_support}

    warm = slice(0, min(50, pairs))  # first calls pay one-off costs (lazy imports, allocations)
    oracle.exact_w2sq(measures, left[warm], right[warm], n_jobs=1, progress=False)
    serial, t1 = _timed(lambda: oracle.exact_w2sq(measures, left, right, n_jobs=1, progress=False))
    results["wbench_1_worker"] = _rates(pairs, t1)

    workers = effective_n_jobs(jobs)
    saved = oracle.PARALLEL_MIN_SECONDS
    oracle.PARALLEL_MIN_SECONDS = 0.0  # always use the pool, even for a short benchmark
    try:
        warm_l, warm_r = random_pairs(n, 4 * workers * 16, seed + 1)
        _, t_start = _timed(lambda: oracle.exact_w2sq(measures, warm_l, warm_r, n_jobs=jobs, progress=False))
        parallel, tp = _timed(lambda: oracle.exact_w2sq(measures, left, right, n_jobs=jobs, progress=False))
    finally:
        oracle.PARALLEL_MIN_SECONDS = saved
    results["wbench_all_workers"] = {
        "workers": workers, "pairs": pairs, "seconds": tp, "pairs_per_s": pairs / tp,
        "pairs_per_s_per_worker": pairs / tp / workers, "pool_startup_s": t_start,
        "max_abs_diff_vs_1_worker": float(np.max(np.abs(parallel - serial))),
    }

    def bare_pot() -> np.ndarray:
        out = np.empty(pairs)
        for p, (i, j) in enumerate(zip(local[:pairs], local[pairs:], strict=True)):
            xa, wa = table.measure(int(i))
            xb, wb = table.measure(int(j))
            out[p] = ot.emd2(wa, wb, ot.dist(xa, xb))
        return out

    bare, tb = _timed(bare_pot)
    results["pot_emd2_support"] = {**_rates(pairs, tb), "max_abs_diff": float(np.max(np.abs(bare - serial)))}

    nf = min(full_pairs, pairs)
    grid = grid_coordinates(h, w, dtype=torch.float64).numpy()
    cost = ot.dist(grid, grid)
    flat = images.reshape(n, -1)

    def full_grid() -> np.ndarray:
        out = np.empty(nf)
        for p in range(nf):
            a, b = flat[left[p]] / flat[left[p]].sum(), flat[right[p]] / flat[right[p]].sum()
            out[p] = ot.emd2(a, b, cost, numItermax=10**7)
        return out

    full, tf = _timed(full_grid)
    results["pot_emd2_full_grid"] = {
        "grid": f"{h * w}x{h * w}", **_rates(nf, tf), "max_abs_diff_vs_support": float(np.max(np.abs(full - serial[:nf]))),
    }

    w2 = np.sqrt(serial)
    return {
        "benchmark": "exact W2 oracle throughput",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "data": data,
        "image_shape": [h, w],
        "seed": seed,
        "support_points": {"min": int(sizes.min()), "median": float(np.median(sizes)), "max": int(sizes.max())},
        "w2_pixels": {"min": float(w2.min()), "median": float(np.median(w2)), "max": float(w2.max())},
        "results": results,
        "provenance": {
            **machine_provenance(load_before),
            "jobs": jobs,
            "note": "wall-clock timings (time.perf_counter) of one run each, and for in-process variants "
            "also process CPU time (time.process_time); the CPU may be shared with other processes: see the "
            "load averages",
        },
    }


def _print(result: dict[str, Any]) -> None:
    r = result["results"]
    print(f"data: {result['data']}")
    print(f"support points per image: {result['support_points']}; W2 (pixels): {result['w2_pixels']}")
    print(f"support extraction: {r['support_extraction']['measures']} measures in {r['support_extraction']['seconds']:.3f} s")
    print(f"{'variant':<24}{'pairs':>7}{'pairs/s':>10}{'ms/pair':>9}{'pairs/CPU-s':>13}")
    for name in ("wbench_1_worker", "pot_emd2_support", "pot_emd2_full_grid"):
        print(f"{name:<24}{r[name]['pairs']:>7}{r[name]['pairs_per_s']:>10.0f}{r[name]['ms_per_pair']:>9.3f}"
              f"{r[name]['pairs_per_cpu_s']:>13.0f}")
    a = r["wbench_all_workers"]
    print(f"{'wbench_all_workers':<24}{a['pairs']:>7}{a['pairs_per_s']:>10.0f}{1e3 * a['seconds'] / a['pairs']:>9.3f}"
          f"   ({a['workers']} workers, {a['pairs_per_s_per_worker']:.0f}/s each, pool start-up {a['pool_startup_s']:.1f} s)")
    print(f"full grid vs support: max |diff| {r['pot_emd2_full_grid']['max_abs_diff_vs_support']:.2e}; "
          f"all workers vs 1: {a['max_abs_diff_vs_1_worker']:.2e}")
    p = result["provenance"]
    print(f"cpus {p['cpus_available']}, load average before {p['loadavg_before']}, after {p['loadavg_after']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=2000, help="random image pairs (default 2000)")
    parser.add_argument("--full-pairs", type=int, default=300, help="pairs for the full-grid POT timing (default 300)")
    parser.add_argument("--mnist-root", help="folder holding MNIST/raw/ (default $WBENCH_MNIST_ROOT)")
    parser.add_argument("--jobs", type=int, default=-1, help="workers for the parallel run (default -1: all cores)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO / "results" / "oracle_cpu.json", help="JSON output file")
    args = parser.parse_args(argv)
    os.environ.setdefault("WBENCH_PROGRESS", "0")
    result = run(args.pairs, args.full_pairs, args.mnist_root, args.jobs, args.seed)
    _print(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


# ------------------------------------------------------------------ pytest-benchmark


def test_oracle_pairs(benchmark: Any) -> None:
    """pytest-benchmark: 200 image pairs (MNIST if found, else digits) through the in-process oracle."""
    import torch

    from wbench.measures import MeasureBatch
    from wbench.oracle.solve import exact_w2sq

    images, _ = load_images(None) if not os.environ.get("WBENCH_MNIST_ROOT") else load_images(os.environ["WBENCH_MNIST_ROOT"])
    left, right = random_pairs(len(images), 200, 0)
    measures = MeasureBatch.from_images(torch.from_numpy(images))
    values = benchmark(lambda: exact_w2sq(measures, left, right, n_jobs=1, progress=False))
    assert values.shape == (200,) and np.all(values > 0)


if __name__ == "__main__":
    raise SystemExit(main())
