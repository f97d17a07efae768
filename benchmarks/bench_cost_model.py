"""Check the throughput cost model against direct timings, and the spread between seeds.

For each method, one fresh model per seed (initialised from that seed: the speed does not
depend on the weights); :func:`wbench.costmodel.measure_cost_models` measures every seed's
``e`` (s per measure), ``c`` (s per pair of the distance matrix) and ``o`` (s per
``pairwise`` call) and times the real ``pairwise`` call directly at every ``--sizes`` n,
all seeds in one interleaved series of rounds (so the machine's drift during the
measurement hits every seed alike and the spread between seeds is the seeds' own). The prediction ``n^2 / (o + 2 n e + n^2 c)`` must be
within ``--tolerance`` (15 %) of the measured pairs/s at every n tried; the script prints
each comparison, the roofline (FLOPs per image, the GEMM rate measured with the same
threads, the achieved fraction), and per method the spread of the independent pairs/s
``1 / (2 e + c)`` over the seeds (mean, standard deviation, coefficient of variation).
A size whose predicted call time exceeds ``--max-call-s`` is skipped (and said so).

Example::

    python benchmarks/bench_cost_model.py --methods naive,deepkenn,odekenn,dwe,dwe-matched \\
        --sizes 16,64,256,1024,4096,16384 --seeds 0,1,2 --threads 2 --out runs/bench_cost_model.json

Exit status 1 when any prediction misses by more than the tolerance. Figures taken on a
busy machine are not results: the load average before and after is written with them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from wbench.costmodel import measure_cost_model, measure_cost_models
from wbench.measures import MeasureBatch
from wbench.provenance import provenance, utc_now
from wbench.roofline import gemm_rate, roofline_of
from wbench.rounds import thread_limit
from wbench.surrogate import Surrogate
from wbench.testing import toy_images

MNIST_PARAMETER_TARGET = 55_430  # the mnist suite's matched budget (counted at inference)


def _models() -> dict[str, Callable[[], Surrogate]]:
    """Each method as the ``mnist`` suite builds it: at the matched parameter count (the
    paper-size ``dwe`` at its own size)."""
    from wbench.sizing import build_at_parameter_target
    from wbench_plugins.dwe.models import DWE, DWEMatched
    from wbench_plugins.kenn.models import ODEKENN, DeepKENN, NaiveKENN

    def matched(cls: type[Surrogate]) -> Callable[[], Surrogate]:
        return lambda: build_at_parameter_target(cls, {}, MNIST_PARAMETER_TARGET, tolerance=0.01, count="inference")

    return {
        "naive": matched(NaiveKENN), "deepkenn": matched(DeepKENN), "odekenn": matched(ODEKENN),
        "dwe": DWE, "dwe-matched": matched(DWEMatched),
    }


def load_measures(kind: str, n: int) -> MeasureBatch:
    """``n`` 28x28 measures: seeded blob images (``synthetic``) or MNIST test images (``mnist``)."""
    if kind == "synthetic":
        return MeasureBatch.from_images(toy_images(n, 28, seed=0))
    import numpy as np

    from wbench_plugins.datasets.mnist import load_part, resolve_root

    return MeasureBatch.from_images(load_part(resolve_root(None), "test")[0][:n].astype(np.float32))


def selected_methods(parser: argparse.ArgumentParser, text: str, models: Mapping[str, Any]) -> list[str]:
    """The comma-separated method names of ``text``; an unknown one is a usage error (exit 2)."""
    methods = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in methods if m not in models]
    if unknown:
        parser.error(f"unknown method(s) {unknown}; known: {', '.join(models)}")
    return methods


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns the exit status (1: a prediction missed)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", default="naive,dwe", help="comma-separated: " + ",".join(_models()))
    parser.add_argument("--sizes", default="16,64,256,1024,4096", help="n of the direct n x n timings")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--images", choices=("synthetic", "mnist"), default="synthetic")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--min-round-s", type=float, default=0.2)
    parser.add_argument("--tolerance", type=float, default=0.15)
    parser.add_argument("--max-call-s", type=float, default=20.0, help="skip sizes predicted to take longer per call")
    parser.add_argument("--out", type=Path, default=None, help="write every figure as JSON")
    args = parser.parse_args(argv)
    models = _models()
    methods = selected_methods(parser, args.methods, models)
    sizes, seeds = _ints(args.sizes), _ints(args.seeds)
    measures = load_measures(args.images, 4096)
    load_before = os.getloadavg()
    report: dict[str, Any] = {"started": utc_now(), "args": {k: str(v) for k, v in vars(args).items()}, "methods": {}}
    failures: list[str] = []
    with thread_limit(args.threads) as threads:
        gemm = gemm_rate(threads=threads, rounds=args.rounds, min_round_s=args.min_round_s)
        print(f"GEMM float32 1024^3 on {threads} thread(s): {gemm.gflops:.1f} GFLOP/s (IQR {gemm.gflops_iqr:.1f})")
        for method in methods:
            per_seed: list[dict[str, float]] = []
            surrogates = {}
            for seed in seeds:
                torch.manual_seed(seed)
                surrogates[str(seed)] = models[method]()
                surrogates[str(seed)].model.eval()
            first = surrogates[str(seeds[0])]
            # a first measurement without direct timings gives e, c and o to pick the sizes that fit
            probe = measure_cost_model(first, measures, pair_block=1024, rounds=3, min_round_s=0.05)
            fit = [n for n in sizes if (probe.call_s + 2 * n * probe.embed_s + n * n * probe.pair_s) <= args.max_call_s]
            skipped = sorted(set(sizes) - set(fit))
            # c at the largest size timed (c grows with the block beyond the caches), capped at 4096;
            # all seeds in one interleaved series, so the machine's drift does not tell them apart
            block = min(max(fit, default=1024), 4096)
            cost_models, _ = measure_cost_models(
                surrogates, measures, direct_n=fit, pair_block=block, rounds=args.rounds,
                min_round_s=args.min_round_s, device="cpu",
            )
            for seed in seeds:
                surrogate, model = surrogates[str(seed)], cost_models[str(seed)]
                line = roofline_of(surrogate, measures, model, gemm)  # FLOPs at e's batch
                record = {**model.to_record(), **line.to_record(),
                          "n_parameters_inference": float(surrogate.n_parameters_inference)}
                per_seed.append(record)
                print(
                    f"\n{method} seed {seed} ({surrogate.n_parameters_inference:,} parameters at inference): e = {model.embed_s * 1e6:.1f} us/image (IQR {model.embed.iqr_s * 1e6:.1f}), "
                    f"c = {model.pair_s * 1e9:.2f} ns/pair, o = {model.call_s * 1e3:.2f} ms/call; "
                    f"independent {model.independent_pairs_per_s():,.0f} pairs/s, asymptote {model.asymptote_pairs_per_s():,.0f}; "
                    f"{line.flops.per_item / 1e6:.2f} MFLOP/image = {line.fraction:.0%} of GEMM"
                )
                for d in model.direct:
                    ok = abs(d.relative_error) <= args.tolerance
                    print(
                        f"  n={d.n:>6}: measured {d.pairs_per_s:>14,.0f} predicted {d.predicted_pairs_per_s:>14,.0f} "
                        f"pairs/s  error {d.relative_error:+.1%}  {'ok' if ok else 'MISS'}"
                    )
                    if not ok:
                        failures.append(f"{method} seed {seed} n={d.n}: {d.relative_error:+.1%}")
                if skipped:
                    print(f"  skipped n={skipped}: predicted over {args.max_call_s:g} s per call")
            rates = [r["cost.independent_pairs_per_s"] for r in per_seed]
            mean = statistics.fmean(rates)
            sd = statistics.stdev(rates) if len(rates) > 1 else 0.0
            print(
                f"{method}: independent pairs/s over seeds {seeds}: "
                + ", ".join(f"{r:,.0f}" for r in rates)
                + f"; mean {mean:,.0f}, sd {sd:,.0f}, CV {sd / mean:.1%}"
            )
            report["methods"][method] = {"per_seed": per_seed, "independent_mean": mean, "independent_cv": sd / mean}
    report["load_average"] = {"before": load_before, "after": os.getloadavg()}
    report["provenance"] = provenance("cpu")
    report["failures"] = failures
    print(f"\nload average before {load_before}, after {report['load_average']['after']}")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2, sort_keys=True))
    if failures:
        print(f"{len(failures)} prediction(s) outside {args.tolerance:.0%}: " + "; ".join(failures))
        return 1
    print(f"every prediction within {args.tolerance:.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
