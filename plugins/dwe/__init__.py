"""DWE (Deep Wasserstein Embedding, Courty et al. 2018): registration and the ``wbench dwe`` command.

Light on purpose: only names, ``"module:Class"`` strings and argparse definitions. The
model lives in :mod:`wbench_plugins.dwe.models`, the embedding-space tools (barycenters,
interpolation, principal geodesic analysis, POT reference barycenters) in
:mod:`wbench_plugins.dwe.tools`, the command handlers in :mod:`wbench_plugins.dwe.cli`.

Two surrogates:

* ``dwe``: the paper's network (803,576 parameters at 28x28, encoder + decoder; 79,976 at
  8x8). It has no width option, so in a suite with ``param_target`` give it
  ``match_budget = false``.
* ``dwe-matched``: the same network resized by ``width`` with a one-channel bottleneck,
  for matched parameter budgets (the matched count includes the decoder).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from wbench import hookimpl

if TYPE_CHECKING:
    from wbench.registry import Registry


@hookimpl
def wbench_register_surrogates(registry: Registry) -> None:
    """Register ``dwe`` (paper size) and ``dwe-matched`` (resizable)."""
    registry.add_surrogate(
        "dwe",
        "wbench_plugins.dwe.models:DWE",
        description="DWE (Courty et al. 2018): siamese CNN on W2^2 + KL decoder, paper size (no width option)",
        test_params={"width": 24},
    )
    registry.add_surrogate(
        "dwe-matched",
        "wbench_plugins.dwe.models:DWEMatched",
        description="DWE resized for matched budgets (width searched, 1-channel bottleneck; count includes decoder)",
        test_params={"width": 24},
    )


@hookimpl
def wbench_add_cli_commands(subparsers: Any) -> None:
    """Add ``wbench dwe barycenter|interpolate|pga``."""
    parser = subparsers.add_parser(
        "dwe",
        help="DWE embedding-space tools: barycenters, interpolation, principal geodesics",
        description="Decode barycenters, interpolations and principal geodesics computed in the "
        "embedding of a fitted DWE model (saved with TorchSurrogate.save) and write image grids.",
    )
    parser.set_defaults(handler=_print_help(parser))
    sub = parser.add_subparsers(dest="dwe_command", metavar="TOOL")

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--plugin", action="extend", nargs="+", default=[], metavar="FILE",
        help="load local plugin files (repeatable, or several after one flag)",
    )
    common.add_argument("--model", required=True, metavar="PATH", help="a DWE model written by TorchSurrogate.save")
    source = common.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", metavar="NAME", help="dataset whose images are used (see `wbench list`)")
    source.add_argument("--images", metavar="NPY", help="a .npy array of images (n, H, W) instead of a dataset")
    common.add_argument(
        "--param", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
        help="dataset parameters (repeatable, or several after one flag); VALUE is read as JSON when it can be",
    )
    common.add_argument("--indices", metavar="LIST", help="image indices, e.g. 0,5,10-19")
    common.add_argument("--label", type=int, metavar="L", help="use the images of this class (labelled datasets)")
    common.add_argument("--limit", type=int, metavar="N", help="use at most N of the selected images")
    common.add_argument("--out", required=True, metavar="PNG", help="image grid to write")
    common.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")

    p_bar = sub.add_parser("barycenter", parents=[common], help="psi(sum_i alpha_i phi(x_i)) of the selected images")
    p_bar.add_argument("--weights", metavar="LIST", help="barycentric weights alpha (default uniform); normalised to sum 1")
    p_bar.add_argument(
        "--reference", choices=["none", "free_support", "lp", "convolutional"], default="none",
        help="also compute a POT barycenter and print the W2 between it and the DWE barycenter",
    )
    p_bar.add_argument("--reg", type=float, default=1.0, help="entropic regularisation for --reference convolutional")
    p_bar.set_defaults(handler=_lazy("run_barycenter"))

    p_int = sub.add_parser("interpolate", parents=[common], help="psi((1-t) phi(x) + t phi(y)) between two images")
    p_int.add_argument("--steps", type=int, default=9, help="number of t values in [0, 1] (default 9)")
    p_int.set_defaults(handler=_lazy("run_interpolate"))

    p_pga = sub.add_parser("pga", parents=[common], help="principal geodesic analysis: PCA of phi(x) decoded by psi")
    p_pga.add_argument("--components", type=int, default=3, help="principal directions to show (default 3)")
    p_pga.add_argument("--steps", type=int, default=7, help="images per direction (default 7)")
    p_pga.add_argument("--span", type=float, default=2.0, help="walk +-span standard deviations (default 2)")
    p_pga.set_defaults(handler=_lazy("run_pga"))


def _lazy(name: str) -> Any:
    def handler(args: argparse.Namespace) -> int:
        from wbench_plugins.dwe import cli

        return int(getattr(cli, name)(args))

    handler.__name__ = name
    return handler


def _print_help(parser: argparse.ArgumentParser) -> Any:
    def handler(args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    return handler
