"""Reproduce paper 002's observations with the DeepSets surrogate on the 1-D families.

Paper 002 (a DeepSets encoder of sample sets with a 2-D output) reports that, for 1-D
distributions, the two embedding axes correlate with the distributions' mean and standard
deviation (strongly for W1; with W2 only the std axis in its appendix), and that the
encodings of ``N(0, 1/n)`` samples converge to the encoding of the Dirac at 0 as n grows.

This script trains DeepSets (``out_dim=2``) on exact W2 between sample sets of the
``distributions`` dataset (uniform, normal, beta, gamma, exponential, Laplace, log-normal;
500 samples per set by default), then reports:

* test accuracy of the W2 estimate (relative MAE, Pearson r);
* Pearson r of each embedding axis with the sets' mean and standard deviation (the
  populations' and the samples'), and two rotation-free versions (an embedding trained
  on distances may come out rotated): the multiple correlation R of the moment with both
  axes, and the correlations in the frame whose axis 0 follows the mean
  (:func:`aligned_correlations`);
* for ``n`` in 1, 2, 4, ..., the embedding distance between 500 samples of ``N(0, 1/n)``
  and the Dirac at 0, next to the exact W2 between them (``sqrt(mean x^2)``).

It writes ``paper002.json`` (configuration, provenance, figures) and ``paper002.png``
into ``--out`` (default ``runs/bench_deepsets_paper002``). Example (a small CPU budget)::

    python benchmarks/bench_deepsets_paper002.py --epochs 30 --n-pairs 3000
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

DIRAC_NS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 4096)


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson r between two ``(n,)`` arrays (NaN when one is constant)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.std() == 0 or y.std() == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def multiple_correlation(features: np.ndarray, target: np.ndarray) -> float:
    """R of the least-squares fit ``target ~ features @ w + c``: the best |r| over directions."""
    design = np.column_stack([features, np.ones(len(features))])
    coef, *_ = np.linalg.lstsq(design, target, rcond=None)
    return pearson(design @ coef, target)


def aligned_correlations(embedding: np.ndarray, mean: np.ndarray, std: np.ndarray) -> dict[str, float]:
    """Rotate the 2-D encodings so that axis 0 is the least-squares direction for the mean.

    An embedding trained on distances is defined up to a rotation; the paper's reading
    ("x follows the mean, y the standard deviation") is checked in this frame: r of the
    rotated axis 0 with the mean, and |r| of the perpendicular axis 1 with the std (its
    sign is arbitrary), plus the angle of the rotation (degrees).
    """
    centred = embedding - embedding.mean(axis=0)
    direction, *_ = np.linalg.lstsq(centred, mean - mean.mean(), rcond=None)
    u = direction / np.linalg.norm(direction)
    perpendicular = np.array([-u[1], u[0]])
    return {
        "axis0_vs_mean_r": pearson(centred @ u, mean),
        "axis1_vs_std_abs_r": abs(pearson(centred @ perpendicular, std)),
        "axis1_vs_mean_r": pearson(centred @ perpendicular, mean),
        "rotation_deg": float(np.degrees(np.arctan2(u[1], u[0]))),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (see ``--help``)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/bench_deepsets_paper002"), help="output folder")
    parser.add_argument("--sample-size", type=int, default=500, help="samples per set (paper: 500)")
    parser.add_argument("--sets-per-family", type=int, default=50, help="sets per 1-D family (paper: about 50)")
    parser.add_argument("--n-pairs", type=int, default=3000, help="pairs of sets with exact W2 (all splits)")
    parser.add_argument("--epochs", type=int, default=30, help="training epochs (paper: 500)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (paper: 1e-3)")
    parser.add_argument("--width", type=int, default=256, help="DeepSets width (256: the paper's layer sizes)")
    parser.add_argument("--translation-weight", type=float, default=0.0)
    parser.add_argument("--scaling-weight", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--jobs", type=int, default=-1, help="oracle worker processes")
    parser.add_argument("--cache-dir", type=Path, default=None, help="ground-truth cache (default: wbench's)")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Build the data (exact W2, cached), train, measure; write JSON + PNG; return the result dict."""
    import torch

    from wbench.budget import Budget
    from wbench.oracle.groundtruth import compute_ground_truth
    from wbench.provenance import provenance, utc_now
    from wbench.train.loop import predict_pairs, seed_everything
    from wbench_plugins.datasets.distributions import (
        FAMILIES_1D,
        DistributionsDataset,
        normal_shrinking_sets,
    )
    from wbench_plugins.deepsets.models import DeepSets

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    data_params = {
        "family": "1d", "n_sets": args.sets_per_family * len(FAMILIES_1D), "sample_size": args.sample_size,
        "n_pairs": args.n_pairs, "seed": args.seed,
    }
    started = time.perf_counter()
    truth = compute_ground_truth(DistributionsDataset(**data_params).build(), cache_dir=args.cache_dir, n_jobs=args.jobs)
    dataset = truth.dataset
    oracle_s = time.perf_counter() - started

    seed_everything(args.seed)
    model_params = DeepSets.params_for(
        {"out_dim": 2, "width": args.width, "translation_weight": args.translation_weight,
         "scaling_weight": args.scaling_weight},
        dataset.measures,
    )
    model = DeepSets(**model_params)
    budget = Budget(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed, device=args.device)
    report = model.fit(dataset.split("train"), dataset.split("val"), budget)

    test = dataset.pairs["test"]
    predicted = predict_pairs(model, dataset.split("test"))
    exact = test.w2
    accuracy = {
        "rel_mae": float(np.mean(np.abs(predicted - exact) / np.maximum(exact, 1e-12))),
        "mae": float(np.mean(np.abs(predicted - exact))),
        "pearson_w2": pearson(predicted, exact),
        "mean_exact_w2": float(exact.mean()),
    }

    embedding = model.embed_all(dataset.measures.to(args.device)).double().cpu().numpy()
    samples = dataset.measures.support[..., 0].double().numpy()
    moments = {
        "population_mean": np.asarray(dataset.metadata["mean"], np.float64),
        "population_std": np.asarray(dataset.metadata["std"], np.float64),
        "sample_mean": samples.mean(axis=1),
        "sample_std": samples.std(axis=1),
    }
    correlations = {
        name: {
            "axis0_r": pearson(embedding[:, 0], values),
            "axis1_r": pearson(embedding[:, 1], values),
            "multiple_R": multiple_correlation(embedding, values),
        }
        for name, values in moments.items()
    }

    correlations["aligned"] = aligned_correlations(embedding, moments["population_mean"], moments["population_std"])

    probe = normal_shrinking_sets(DIRAC_NS, args.sample_size, seed=args.seed + 1)
    codes = model.embed_all(probe.to(args.device)).double().cpu().numpy()
    probe_points = probe.support[..., 0].double().numpy()
    dirac = {
        "n": list(DIRAC_NS),
        "embedding_distance": [float(np.linalg.norm(codes[k] - codes[-1])) for k in range(len(DIRAC_NS))],
        "exact_w2": [float(np.sqrt(np.mean(probe_points[k] ** 2))) for k in range(len(DIRAC_NS))],
        "population_w2": [float(1.0 / np.sqrt(n)) for n in DIRAC_NS],
    }
    distances = np.array(dirac["embedding_distance"])
    dirac["monotone_decreasing"] = bool(np.all(np.diff(distances) <= 1e-9))
    dirac["spearman_with_exact"] = _spearman(distances, np.array(dirac["exact_w2"]))

    result = {
        "benchmark": "deepsets_paper002",
        "created": utc_now(),
        "config": {**vars(args), "out": str(args.out), "cache_dir": None if args.cache_dir is None else str(args.cache_dir)},
        "dataset": {"name": "distributions", "params": data_params, "n_sets": len(dataset.measures),
                    "pairs": {k: len(v) for k, v in dataset.pairs.items()}, "oracle_seconds": oracle_s,
                    "oracle_cache_hit": truth.cache.hit, "ground_truth": "exact W2 between the sample sets (POT emd)"},
        "model": {"params": model.params, "n_parameters": model.n_parameters, "describe": model.describe()},
        "budget": budget.as_dict(),
        "fit": report.as_dict(),
        "test": accuracy,
        "moment_correlations": correlations,
        "dirac_convergence": dirac,
        "provenance": provenance(args.device),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "paper002.json").write_text(json.dumps(_finite(result), indent=2, sort_keys=True))
    _plot(args.out / "paper002.png", embedding, dataset, moments, correlations, dirac, predicted, exact)
    return result


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _plot(path: Path, embedding, dataset, moments, correlations, dirac, predicted, exact) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(16, 3.6))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 5)
    names = dataset.metadata["label_names"]
    for k, name in enumerate(names):
        sel = dataset.labels == k
        axes[0].scatter(embedding[sel, 0], embedding[sel, 1], s=8, label=name)
    axes[0].set(title="DeepSets encodings (out_dim 2)", xlabel="axis 0", ylabel="axis 1")
    axes[0].legend(fontsize=6, markerscale=1.5)
    for ax, key, label in ((axes[1], "population_mean", "mean"), (axes[2], "population_std", "std")):
        c = correlations[key]
        best = 0 if abs(c["axis0_r"]) >= abs(c["axis1_r"]) else 1
        ax.scatter(moments[key], embedding[:, best], s=6)
        ax.set(title=f"axis {best} vs {label}: r={c[f'axis{best}_r']:.3f} (R={c['multiple_R']:.3f})",
               xlabel=f"population {label}", ylabel=f"axis {best}")
        ax.title.set_fontsize(8)
    axes[3].loglog(dirac["n"], dirac["embedding_distance"], "o-", label="|H(N(0,1/n)) - H(Dirac)|")
    axes[3].loglog(dirac["n"], dirac["exact_w2"], "s--", label="exact W2 (samples)")
    axes[3].set(title="convergence to the Dirac at 0", xlabel="n")
    axes[3].legend(fontsize=7)
    axes[4].scatter(exact, predicted, s=5)
    top = float(max(exact.max(), predicted.max()))
    axes[4].plot([0, top], [0, top], "k--", lw=0.8)
    axes[4].set(title="test pairs", xlabel="exact W2", ylabel="DeepSets W2")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a summary of its figures; returns the exit status."""
    result = run(parse_args(argv))
    summary = {
        "test": result["test"],
        "moment_correlations": result["moment_correlations"],
        "dirac_convergence": {k: result["dirac_convergence"][k] for k in ("n", "embedding_distance", "exact_w2", "monotone_decreasing")},
        "fit_seconds": result["fit"]["wall_time_s"],
    }
    print(json.dumps(_finite(summary), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
