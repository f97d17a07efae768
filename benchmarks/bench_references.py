"""Speed and accuracy of the reference methods on random pairs of MNIST test images.

Run as a script::

    python benchmarks/bench_references.py --pairs 200 --out runs/bench_references.json
    python benchmarks/bench_references.py --quick          # a smaller set of settings

For each method setting (``exact-lp``; ``sinkhorn`` with POT at several ``reg`` and with
GeomLoss at several ``blur``, with and without debiasing; ``lot`` with the grid and the
mean reference; ``sliced``) it reports, on the same ``--pairs`` random pairs of distinct
images:

* ``independent``: ``distance(a, b)`` on the row-aligned pairs, pairs per second (the
  median over ``--rounds`` timed calls after one untimed warm-up call, which also starts
  joblib's worker pool);
* ``pairwise``: ``pairwise(x, y)`` on an ``n x n`` block (``--pairwise-solver`` for the
  solvers, ``--pairwise-embedding`` for the embedding methods), matrix entries per second;
* the error of the W2 estimates against the exact W2 (computed once, untimed, by the
  oracle): mean signed and mean / max absolute relative error, and the failed pairs.

The images are the MNIST test set from ``--mnist-root`` or ``$WBENCH_MNIST_ROOT``, else
scikit-learn's 8x8 digits (said in the output). The ``lot`` mean reference is fitted on
``--reference-images`` other images (never those of the timed pairs). The JSON output holds
every figure and the provenance: git commit, package versions, CPU, threads, and the load
average before and after (other processes on a shared machine slow every figure down).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wbench.data import LabelledPairs, PairSet
from wbench.measures import MeasureBatch
from wbench.oracle.solve import exact_w2sq_between
from wbench.provenance import provenance, utc_now


@dataclass(frozen=True)
class Setting:
    """One row of the benchmark: a registered method, its fit-time and evaluation-time parameters."""

    label: str
    method: str
    params: dict[str, Any]
    eval_params: dict[str, Any] = field(default_factory=dict)
    embedding: bool = False


def settings(quick: bool, n_jobs: int) -> list[Setting]:
    """The method settings to time (``--quick``: fewer regularisations)."""
    pot = {"backend": "pot", "n_jobs": n_jobs}
    geo = {"backend": "geomloss", "device": "cpu"}
    out = [Setting("exact-lp", "exact-lp", {"n_jobs": n_jobs})]
    regs = (4.0, 1.0) if quick else (4.0, 1.0, 0.25)
    out += [Setting(f"sinkhorn pot reg={r:g}", "sinkhorn", pot, {"reg": r}) for r in regs]
    out += [Setting("sinkhorn pot reg=1 debias", "sinkhorn", pot, {"reg": 1.0, "debias": True})]
    blurs = (1.0, 0.3) if quick else (1.0, 0.5, 0.1)
    out += [Setting(f"sinkhorn geomloss blur={b:g} debias", "sinkhorn", geo, {"blur": b, "debias": True}) for b in blurs]
    out += [Setting("sinkhorn geomloss blur=0.5", "sinkhorn", geo, {"blur": 0.5, "debias": False})]
    out += [
        Setting("lot grid", "lot", {"reference": "grid", "n_jobs": n_jobs}, embedding=True),
        Setting("lot grid 196", "lot", {"reference": "grid", "reference_size": 196, "n_jobs": n_jobs}, embedding=True),
        Setting("lot mean", "lot", {"reference": "mean", "n_jobs": n_jobs}, embedding=True),
        Setting("sliced 64x64", "sliced", {"n_projections": 64, "n_levels": 64}, embedding=True),
    ]
    if not quick:
        out.append(Setting("sliced 256x64", "sliced", {"n_projections": 256, "n_levels": 64}, embedding=True))
    return out


def load_images(mnist_root: str | None) -> tuple[np.ndarray, str]:
    """``(images (n, H, W) float64, description)``: MNIST test images, else sklearn digits."""
    root = mnist_root or os.environ.get("WBENCH_MNIST_ROOT")
    if root:
        from wbench_plugins.datasets.mnist import load_part, resolve_root

        images, _ = load_part(resolve_root(root), "test")
        return images.astype(np.float64), f"MNIST test images ({root})"
    from sklearn.datasets import load_digits

    return load_digits().images.astype(np.float64), "sklearn digits 8x8 (MNIST not found: set --mnist-root or $WBENCH_MNIST_ROOT)"


def _median_time(call: Any, rounds: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(rounds):
        start = time.perf_counter()
        out = call()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def run_setting(
    setting: Setting, a: MeasureBatch, b: MeasureBatch, exact_w2: np.ndarray, pool: MeasureBatch,
    reference_train: MeasureBatch, *, rounds: int, n_solver: int, n_embedding: int,
) -> dict[str, Any]:
    """Time one setting and measure its error; returns a JSON-ready dict."""
    from wbench.plugin.manager import make_plugin_manager

    entry = make_plugin_manager().registry.get("surrogate", setting.method)
    solver = entry.load()(**setting.params)
    if setting.eval_params:
        solver.configure(**setting.eval_params)
    fit_s = 0.0
    if setting.method == "lot":
        pairs = PairSet(np.arange(len(reference_train)), np.arange(len(reference_train)))
        start = time.perf_counter()
        solver.fit(LabelledPairs(reference_train, pairs), LabelledPairs(reference_train, pairs), None)
        fit_s = time.perf_counter() - start

    warm = min(len(a), 8)
    solver.distance(a.index(slice(0, warm)), b.index(slice(0, warm)))  # starts workers, caches
    with torch.inference_mode():
        seconds, estimate = _median_time(lambda: solver.distance(a, b), rounds)
    estimate = estimate.double().cpu().numpy()
    ok = np.isfinite(estimate)
    rel = estimate[ok] / exact_w2[ok] - 1.0

    n = n_embedding if setting.embedding else n_solver
    x, y = pool.index(slice(0, n)), pool.index(slice(n, 2 * n))
    with torch.inference_mode():
        pw_seconds, _ = _median_time(lambda: solver.pairwise(x, y), rounds)

    info = solver.describe()
    return {
        "label": setting.label,
        "method": setting.method,
        "params": setting.params,
        "eval_params": setting.eval_params,
        "independent": {"pairs": len(a), "median_s": seconds, "pairs_per_s": len(a) / seconds},
        "pairwise": {"rows": n, "cols": n, "median_s": pw_seconds, "pairs_per_s": n * n / pw_seconds},
        "fit_s": fit_s,
        "error": {
            "mean_signed_rel": float(rel.mean()) if rel.size else None,
            "mean_abs_rel": float(np.abs(rel).mean()) if rel.size else None,
            "max_abs_rel": float(np.abs(rel).max()) if rel.size else None,
            "n_failed": int((~ok).sum()),
        },
        "describe": info,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=200, help="random pairs timed and scored (default 200)")
    parser.add_argument("--rounds", type=int, default=1, help="timed calls per figure; the median is kept")
    parser.add_argument("--pairwise-solver", type=int, default=12, help="n of the n x n pairwise block for solvers")
    parser.add_argument("--pairwise-embedding", type=int, default=200, help="n of the n x n block for embeddings")
    parser.add_argument("--reference-images", type=int, default=500, help="images the lot mean reference is fitted on")
    parser.add_argument("--n-jobs", type=int, default=-1, help="joblib workers of the CPU solvers (-1: all cores)")
    parser.add_argument("--mnist-root", default=None, help="folder holding MNIST/raw (default $WBENCH_MNIST_ROOT)")
    parser.add_argument("--only", default="", help="comma-separated substrings: run the settings whose label matches")
    parser.add_argument("--quick", action="store_true", help="fewer settings")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default); 1 is steadier on a busy machine")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/bench_references.json", help="JSON output file")
    args = parser.parse_args(argv)

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    started = utc_now()
    images, source = load_images(args.mnist_root)
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(images))
    n_pool = max(2 * args.pairwise_embedding, 2 * args.pairwise_solver)
    need = 2 * args.pairs + n_pool + args.reference_images
    if need > len(images):
        raise SystemExit(f"need {need} images, the source has {len(images)}: lower --pairs or the block sizes")
    take = np.split(order[:need], np.cumsum([args.pairs, args.pairs, n_pool]))
    a, b, pool, ref = (MeasureBatch.from_images(torch.from_numpy(images[i])) for i in take)

    start = time.perf_counter()
    exact_w2 = np.sqrt(exact_w2sq_between(a, b, n_jobs=args.n_jobs))
    oracle_s = time.perf_counter() - start

    wanted = [s.strip() for s in args.only.split(",") if s.strip()]
    results = []
    for setting in settings(args.quick, args.n_jobs):
        if wanted and not any(w in setting.label for w in wanted):
            continue
        print(f"{setting.label} ...", file=sys.stderr, flush=True)
        row = run_setting(
            setting, a, b, exact_w2, pool, ref,
            rounds=args.rounds, n_solver=args.pairwise_solver, n_embedding=args.pairwise_embedding,
        )
        err = row["error"]
        print(
            f"  independent {row['independent']['pairs_per_s']:10.1f} pairs/s  pairwise {row['pairwise']['pairs_per_s']:12.1f} pairs/s"
            f"  rel.err {err['mean_signed_rel']:+.4f} (|.| {err['mean_abs_rel']:.4f}, max {err['max_abs_rel']:.4f})  failed {err['n_failed']}",
            file=sys.stderr, flush=True,
        )
        results.append(row)

    output = {
        "benchmark": "bench_references",
        "started": started,
        "finished": utc_now(),
        "data": {"source": source, "image_shape": list(images.shape[1:]), "pairs": args.pairs, "seed": args.seed},
        "exact_w2": {"median": float(np.median(exact_w2)), "min": float(exact_w2.min()), "max": float(exact_w2.max())},
        "oracle_untimed_s": oracle_s,
        "settings": results,
        "load_average_before": list(load_before),
        "load_average_after": list(os.getloadavg()),
        "provenance": provenance("cpu"),
        "argv": sys.argv[1:] if argv is None else argv,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(output, indent=2, allow_nan=False, default=_json_default))
    print(f"wrote {out}", file=sys.stderr)
    return 0


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


if __name__ == "__main__":
    raise SystemExit(main())
