"""How far the CNN embeddings are from their roofline, shipped as they are and compiled.

For each method at the ``mnist`` suite's size (the paper-size DWE at its own), the
network's embedding of a batch of MNIST-like 28x28 images is timed three ways, all in one
interleaved series of rounds (:func:`wbench.timing.rounds.interleaved_rounds`), at every
``--threads``:

* ``shipped``: what ``distance`` and ``pairwise`` run, ``embed_all`` of the measures (its
  own chunks of ``embed_batch``; the KENN models through their frozen graphs on CPU,
  :mod:`wbench.train.frozen`), input conversion included;
* ``eager``: the network's own eager forward on the whole batch (channels-last
  convolutions on the CPU, the inference fast paths);
* ``frozen``: ``torch.jit.trace`` of that forward on the whole batch, frozen and passed
  through ``torch.jit.optimize_for_inference`` (oneDNN's fused convolution and ReLU);
* ``compiled``: ``torch.compile`` of the same forward (TorchInductor's C++ kernels; needs a
  C++ compiler; its compile time is left out of the rounds).

Each variant's output is checked against ``eager`` (largest difference over the largest
magnitude, at most ``--rtol``) before it is timed; a variant that fails or disagrees is
reported and not timed. Printed per method, threads and variant: seconds per image ``e``,
GFLOP/s (FLOPs counted at the same batch, :func:`wbench.timing.roofline.embedding_flops`) and the
fraction of the float32 GEMM rate measured with the same threads: issue 21's roofline.

Example::

    python benchmarks/bench_embed_variants.py --threads 1,2 --out runs/embed_variants.json

Figures taken on a busy machine are not results: the load average is written with them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from bench_cost_model import _models, load_measures, selected_methods

from wbench.provenance import provenance, utc_now
from wbench.surrogate import Surrogate
from wbench.timing.roofline import embedding_flops, gemm_rate
from wbench.timing.rounds import interleaved_rounds, thread_limit
from wbench.train.frozen import FrozenForward

VARIANTS = ("shipped", "eager", "frozen", "compiled")


class _Forward(torch.nn.Module):
    """The network forward of one surrogate as a module (what trace and compile take)."""

    def __init__(self, surrogate: Surrogate) -> None:
        super().__init__()
        self.net = surrogate.model
        self.solver = dict(getattr(surrogate, "eval_params", {}) or {}) if hasattr(surrogate.model, "trajectory") else None
        self.dwe = hasattr(surrogate.model, "encode")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.dwe:
            return self.net.encode(x)
        if self.solver is not None:
            return self.net.embed(x, self.solver)
        return self.net.embed(x)


def network_input(surrogate: Surrogate, measures: Any) -> torch.Tensor:
    """The tensor the network takes for ``measures``: the grid input of a KENN model
    (channels-last on the CPU), the images of DWE."""
    if hasattr(surrogate, "_input"):
        return surrogate._input(measures)
    return surrogate._images(measures)


def build_variants(
    surrogate: Surrogate, measures: Any, x: torch.Tensor
) -> tuple[dict[str, Callable[[], torch.Tensor]], dict[str, str]]:
    """The callables of each variant on ``measures`` (``x``: their network input) and, for a
    variant that could not be built, the reason."""
    forward = _Forward(surrogate).eval()
    fns: dict[str, Callable[[], torch.Tensor]] = {"eager": lambda: forward(x), "shipped": lambda: surrogate.embed_all(measures)}
    failed: dict[str, str] = {}
    frozen = FrozenForward()  # the same freezing recipe as the shipped KENN path, on the whole batch

    def run_module(module: torch.nn.Module, t: torch.Tensor) -> torch.Tensor:
        return module(t)

    with torch.no_grad():
        frozen(forward, run_module, x)  # builds the graph now, outside the timed rounds
    if frozen.disabled is None:
        fns["frozen"] = lambda: frozen(forward, run_module, x)
    else:
        failed["frozen"] = frozen.disabled
    try:
        compiled = torch.compile(forward)
        with torch.no_grad():
            compiled(x)  # compiles now, outside the timed rounds
        fns["compiled"] = lambda: compiled(x)
    except Exception as error:  # noqa: BLE001
        failed["compiled"] = f"{type(error).__name__}: {str(error).splitlines()[0][:160]}"
    return fns, failed


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns 0 (it reports, it does not judge)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", default="naive,deepkenn,odekenn,dwe-matched,dwe")
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    parser.add_argument("--batch", type=int, default=1024, help="images per timed call")
    parser.add_argument("--images", choices=("synthetic", "mnist"), default="synthetic")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--min-round-s", type=float, default=0.2)
    parser.add_argument("--rtol", type=float, default=1e-4, help="largest output difference over the largest magnitude")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    models = _models()
    methods = selected_methods(parser, args.methods, models)
    measures = load_measures(args.images, args.batch)
    report: dict[str, Any] = {"started": utc_now(), "args": {k: str(v) for k, v in vars(args).items()},
                              "load_before": os.getloadavg(), "results": []}
    for threads in [int(t) for t in args.threads.split(",") if t.strip()]:
        with thread_limit(threads):
            gemm = gemm_rate(threads=threads, rounds=args.rounds, min_round_s=args.min_round_s)
            print(f"\n{threads} thread(s): GEMM {gemm.gflops:.1f} GFLOP/s")
            for method in methods:
                torch.manual_seed(0)
                surrogate = models[method]()
                surrogate.model.eval()
                flops = embedding_flops(surrogate, measures, batch=args.batch)
                x = network_input(surrogate, measures)
                fns, failed = build_variants(surrogate, measures, x)
                with torch.no_grad():
                    reference = fns["eager"]()
                    for name in list(fns):
                        out = fns[name]()
                        error = float((out - reference).abs().max() / reference.abs().max())
                        if not error <= args.rtol:
                            failed[name] = f"output differs from eager by {error:.2e} of its scale"
                            del fns[name]
                    stats = interleaved_rounds(fns, rounds=args.rounds, min_round_s=args.min_round_s)
                for name in VARIANTS:
                    row: dict[str, Any] = {"method": method, "threads": threads, "variant": name,
                                           "flops_per_item": flops.per_item, "gemm_gflops": gemm.gflops}
                    if name in stats:
                        e = stats[name].median_s / args.batch
                        row.update({"embed_s": e, "embed_s_iqr": stats[name].iqr_s / args.batch,
                                    "gflops": flops.per_item / e / 1e9, "fraction": flops.per_item / e / 1e9 / gemm.gflops})
                        print(f"  {method:12s} {name:9s} e = {e * 1e6:7.1f} us/image (IQR {row['embed_s_iqr'] * 1e6:5.1f}), "
                              f"{row['gflops']:6.1f} GFLOP/s = {row['fraction']:5.1%} of GEMM")
                    else:
                        row["failed"] = failed.get(name, "not built")
                        print(f"  {method:12s} {name:9s} not timed: {row['failed']}")
                    report["results"].append(row)
    report["load_after"] = os.getloadavg()
    report["provenance"] = provenance("cpu")
    print(f"\nload average before {report['load_before']}, after {report['load_after']}")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
