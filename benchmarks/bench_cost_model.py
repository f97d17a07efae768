"""Check the throughput cost model against direct timings, and the spread between seeds.

For each method, one fresh model per seed (initialised from that seed: the speed does not
depend on the weights); :func:`wbench.timing.costmodel.measure_cost_models` measures every seed's
``e`` (s per measure), ``c`` (s per pair of the distance matrix) and ``o`` (s per
``pairwise`` call) and times the real ``pairwise`` call directly at every ``--sizes`` n,
all seeds in one interleaved series of rounds (so the machine's drift during the
measurement hits every seed alike and the spread between seeds is the seeds' own). The
prediction ``n^2 / (o + 2 n e + n^2 c(n))``, with ``c(n)`` the distance matrix of
precomputed embeddings timed on the same ``n x n`` block (``c`` depends on the block), must be
within ``--tolerance`` (15 %) of the measured pairs/s at every n tried; the script prints
each comparison, the roofline (FLOPs per image, the GEMM rate measured with the same
threads, the achieved fraction), and per method the spread of the independent pairs/s
``1 / (2 e + c)`` over the seeds (mean, standard deviation, coefficient of variation).
A size whose predicted call time exceeds ``--max-call-s`` is skipped (and said so).

Example::

    python benchmarks/bench_cost_model.py --methods naive,deepkenn,odekenn,dwe,dwe-matched \\
        --sizes 16,64,256,1024,4096,16384 --seeds 0,1,2 --threads 2 --out runs/bench_cost_model.json

Exit status 1 when any prediction misses by more than the tolerance. Figures taken on a
busy machine are not results: the load average before and after each method is written
with them. ``--out`` is rewritten after each method; ``--resume`` keeps the methods
already there (same settings and commit) and measures the rest, so a long run survives an
interruption between methods.
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

from wbench.measures import MeasureBatch
from wbench.provenance import provenance, utc_now
from wbench.surrogate import Surrogate
from wbench.testing import toy_images
from wbench.timing.costmodel import measure_cost_model, measure_cost_models
from wbench.timing.roofline import gemm_rate, roofline_of
from wbench.timing.rounds import thread_limit

MNIST_PARAMETER_TARGET = 55_430  # the mnist suite's matched budget (counted at inference)


def _models() -> dict[str, Callable[[], Surrogate]]:
    """Each method as the ``mnist`` suite builds it: at the matched parameter count (the
    paper-size ``dwe`` at its own size)."""
    from wbench.train.sizing import build_at_parameter_target
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


RESUME_KEYS = ("sizes", "seeds", "threads", "images", "rounds", "min_round_s", "max_call_s")


def read_report(path: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The report of an earlier run of this benchmark at ``path``, checked to have been made
    with the same settings as ``args`` (every ``RESUME_KEYS``; the methods may differ).

    :raises SystemExit: the file is not a report of this benchmark, or a setting differs
        (the message names the setting and both values).
    """
    try:
        report = json.loads(path.read_text())
        earlier = report["args"]
        report["methods"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SystemExit(f"--resume: {path} is not a report of this benchmark ({exc})") from exc
    commit = report.get("provenance", {}).get("git_commit")
    if commit is not None and commit != provenance("cpu")["git_commit"]:
        raise SystemExit(f"--resume: {path} was measured at commit {commit}, not this checkout's; start a new report")
    for key in RESUME_KEYS:
        if earlier.get(key) != str(getattr(args, key)):
            raise SystemExit(
                f"--resume: {path} was measured with --{key.replace('_', '-')} {earlier.get(key)}, "
                f"not {getattr(args, key)}; start a new report (another --out) instead"
            )
    return report


def write_report(path: Path, report: Mapping[str, Any]) -> None:
    """Write ``report`` as JSON to ``path`` whole (an interrupted write leaves the old file)."""
    from wbench.util.atomic import atomic_writer

    with atomic_writer(path) as handle:
        handle.write(json.dumps(report, indent=2, sort_keys=True).encode())


def failures_of(report: Mapping[str, Any], tolerance: float) -> list[str]:
    """Every direct timing of ``report`` whose prediction misses by more than ``tolerance``
    (a fraction), as ``"METHOD seed S n=N: +E%"``."""
    failures = []
    for method, entry in report["methods"].items():
        seeds = entry.get("seeds") or _ints(report["args"]["seeds"])
        for seed, record in zip(seeds, entry["per_seed"], strict=True):
            for key, error in record.items():
                if key.startswith("cost.direct_error.") and abs(error) > tolerance:
                    failures.append(f"{method} seed {seed} n={key.rsplit('.', 1)[1]}: {error:+.1%}")
    return failures


def measure_method(
    method: str, build: Callable[[], Surrogate], measures: MeasureBatch, gemm: Any, args: argparse.Namespace
) -> dict[str, Any]:
    """Time one method's models (one per seed, one interleaved series) and print the comparison.

    :returns: the method's report entry: ``per_seed`` (cost-model and roofline columns),
        ``seeds``, the independent pairs/s mean and CV over seeds, the load average before
        and after, and when it was measured.
    """
    sizes, seeds = _ints(args.sizes), _ints(args.seeds)
    load_before, started = os.getloadavg(), utc_now()
    surrogates = {}
    for seed in seeds:
        torch.manual_seed(seed)
        surrogates[str(seed)] = build()
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
    per_seed: list[dict[str, float]] = []
    for seed in seeds:
        surrogate, model = surrogates[str(seed)], cost_models[str(seed)]
        line = roofline_of(surrogate, measures, model, gemm)  # FLOPs at e's batch
        per_seed.append({**model.to_record(), **line.to_record(),
                         "n_parameters_inference": float(surrogate.n_parameters_inference)})
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
                f"pairs/s  error {d.relative_error:+.1%}  {'ok' if ok else 'MISS'}  (c = {model.pair_s_at(d.n) * 1e9:,.2f} ns/pair)"
            )
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
    return {
        "per_seed": per_seed, "seeds": seeds, "independent_mean": mean, "independent_cv": sd / mean,
        "skipped_sizes": skipped, "started": started, "finished": utc_now(),
        "load_average": {"before": load_before, "after": os.getloadavg()},
    }


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
    parser.add_argument("--out", type=Path, default=None, help="write every figure as JSON (rewritten after each method)")
    parser.add_argument(
        "--resume", action="store_true",
        help="keep the methods already in --out (measured with the same settings) and measure the others",
    )
    args = parser.parse_args(argv)
    models = _models()
    methods = selected_methods(parser, args.methods, models)
    if args.resume and args.out is None:
        parser.error("--resume needs --out")
    if args.resume and args.out.exists():
        report = read_report(args.out, args)
        report["args"]["methods"] = args.methods
    else:
        report = {"started": utc_now(), "args": {k: str(v) for k, v in vars(args).items()}, "methods": {}}
    report["args"].pop("resume", None)
    measures = load_measures(args.images, 4096)
    with thread_limit(args.threads) as threads:
        gemm = gemm_rate(threads=threads, rounds=args.rounds, min_round_s=args.min_round_s)
        print(f"GEMM float32 1024^3 on {threads} thread(s): {gemm.gflops:.1f} GFLOP/s (IQR {gemm.gflops_iqr:.1f})")
        for method in methods:
            if method in report["methods"]:
                print(f"\n{method}: kept from {args.out} (measured {report['methods'][method]['finished']})")
                continue
            report["methods"][method] = measure_method(method, models[method], measures, gemm, args)
            report["provenance"] = provenance("cpu")  # of the latest method (the commit must not change on resume)
            if args.out is not None:
                write_report(args.out, report)
    failures = failures_of(report, args.tolerance)
    report["failures"] = failures
    if args.out is not None:
        write_report(args.out, report)
    if failures:
        print(f"{len(failures)} prediction(s) outside {args.tolerance:.0%}: " + "; ".join(failures))
        return 1
    print(f"every prediction within {args.tolerance:.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
