"""How far the unscaled ``lot`` distance is from |v| for images and their integer translates.

For a weighted point cloud in general position the LOT distance to a translate is exactly
|v| (tested in ``tests/test_references.py``). On a pixel grid the optimal plan from the
reference is rarely unique, and the barycentric projection depends on which optimal plan
the LP returns, so the distance can miss |v|. wbench's tie-breaking rule is a seeded
jitter of the reference points (``jitter``, in pixels): in general position the plan is
unique and the error vanishes. This script measures the error with and without it:

* ``shapes``: the ``shapes`` dataset's translation family (integer translates of one
  rendering, W2 = |v| exactly), for each base shape, every pair of ``--measures`` images;
* ``mnist`` (with ``--mnist-root`` or ``$WBENCH_MNIST_ROOT``): test digits and a copy
  shifted by a random integer vector that keeps all mass on the grid.

Run::

    python benchmarks/bench_lot_translations.py --mnist-root /path/to/data --out results/shapes/lot-translation-error.json

Each configuration's reference is fitted on the images themselves, the scale is off.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wbench.data import LabelledPairs, PairSet
from wbench.measures import MeasureBatch
from wbench.provenance import provenance, utc_now
from wbench_plugins.datasets.shapes import SHAPES, ShapesDataset
from wbench_plugins.references.lot import LOT

CONFIGS: dict[str, dict[str, Any]] = {
    "mean K=200, jitter 0.1 (default)": {"reference": "mean", "reference_size": 200, "jitter": 0.1},
    "mean K=200, no jitter": {"reference": "mean", "reference_size": 200, "jitter": 0.0},
    "pixel grid, jitter 0.1": {"reference": "grid", "reference_size": None, "jitter": 0.1},
    "pixel grid, no jitter": {"reference": "grid", "reference_size": None, "jitter": 0.0},
}


def error_summary(estimate: np.ndarray, exact: np.ndarray) -> dict[str, float]:
    """Statistics of ``|estimate - exact|`` in pixels over pairs with ``exact > 0``."""
    keep = exact > 0
    err = np.abs(estimate[keep] - exact[keep])
    return {
        "pairs": int(keep.sum()),
        "median_abs_error_px": float(np.median(err)),
        "max_abs_error_px": float(err.max()),
        "max_rel_error": float(np.max(err / exact[keep])),
        "fraction_exact_1e-9": float(np.mean(err <= 1e-9)),
    }


def lot_distances(images: MeasureBatch, left: np.ndarray, right: np.ndarray, config: dict[str, Any]) -> tuple[np.ndarray, float]:
    """Unscaled LOT distances ``(P,)`` of the pairs, reference fitted on ``images``; and seconds."""
    solver = LOT(**config, fit_scale=False, n_jobs=-1)
    pairs = LabelledPairs(images, PairSet(left, right))
    start = time.perf_counter()
    solver.fit(pairs, pairs, budget=None)  # type: ignore[arg-type]
    emb = solver.embed(images)
    seconds = time.perf_counter() - start
    return (emb[left] - emb[right]).pow(2).sum(dim=1).sqrt().numpy(), seconds


def shapes_case(shape: str, n_measures: int) -> tuple[MeasureBatch, np.ndarray, np.ndarray, np.ndarray]:
    """Translation-family images, every pair of them, and |v| per pair."""
    data = ShapesDataset(family="translation", shape=shape, size=28, scale=5.0, n_measures=n_measures, n_pairs=100).build()
    left, right = np.triu_indices(n_measures, k=1)
    t = data.metadata["translations"]
    return data.measures, left, right, np.linalg.norm(t[left] - t[right], axis=1)


def mnist_case(root: str, n: int, seed: int) -> tuple[MeasureBatch, np.ndarray, np.ndarray, np.ndarray]:
    """``n`` test digits and shifted copies (all mass kept on the grid); |v| per pair."""
    from wbench_plugins.datasets.mnist import load_part, resolve_root

    images, _ = load_part(resolve_root(root), "test")
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(images), n, replace=False)
    left_images, right_images, shifts = [], [], []
    for k in chosen:
        img = images[k].astype(np.float64)
        rows, cols = np.flatnonzero(img.any(axis=1)), np.flatnonzero(img.any(axis=0))
        lo = np.array([-rows[0], -cols[0]])
        hi = np.array([img.shape[0] - 1 - rows[-1], img.shape[1] - 1 - cols[-1]])
        v = rng.integers(lo, hi + 1)
        left_images.append(img)
        right_images.append(np.roll(img, tuple(int(x) for x in v), axis=(0, 1)))
        shifts.append(float(np.linalg.norm(v)))
    measures = MeasureBatch.from_images(torch.tensor(np.array(left_images + right_images)))
    return measures, np.arange(n), np.arange(n, 2 * n), np.array(shifts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--measures", type=int, default=60, help="translation-family images per shape (all pairs)")
    parser.add_argument("--mnist-pairs", type=int, default=300, help="MNIST digits, each with one translate")
    parser.add_argument("--mnist-root", default=os.environ.get("WBENCH_MNIST_ROOT"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    cases: dict[str, tuple[MeasureBatch, np.ndarray, np.ndarray, np.ndarray]] = {
        f"shapes/{shape}": shapes_case(shape, args.measures) for shape in SHAPES
    }
    if args.mnist_root:
        cases["mnist"] = mnist_case(args.mnist_root, args.mnist_pairs, args.seed)
    else:
        print("no --mnist-root or $WBENCH_MNIST_ROOT: MNIST case skipped", file=sys.stderr)
    results: dict[str, Any] = {}
    for case, (measures, left, right, exact) in cases.items():
        results[case] = {}
        for label, config in CONFIGS.items():
            estimate, seconds = lot_distances(measures, left, right, config)
            results[case][label] = {**error_summary(estimate, exact), "embed_seconds": seconds}
            row = results[case][label]
            print(f"{case:16s} {label:34s} median {row['median_abs_error_px']:.2e} px  max {row['max_abs_error_px']:.2e} px  "
                  f"exact {row['fraction_exact_1e-9']:.0%}")
    report = {
        "benchmark": "LOT distance of images to their integer translates against |v| (unscaled, pixels)",
        "date": utc_now(),
        "command": "python benchmarks/bench_lot_translations.py" + (" --mnist-root ..." if args.mnist_root else ""),
        "settings": {"measures_per_shape": args.measures, "mnist_pairs": args.mnist_pairs, "seed": args.seed,
                     "shapes_grid": 28, "shapes_radius_px": 5.0},
        "configs": CONFIGS,
        "results": results,
        "provenance": provenance("cpu"),
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
