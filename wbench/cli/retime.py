"""``wbench retime RUN_DIR``: re-time a run's saved models in one interleaved pass.

Example::

    wbench retime results/mnist                 # writes results/mnist/retime.json
    wbench leaderboard results/mnist            # shows it as a section

Run it on otherwise idle cores: the point of the pass is that nothing but the machine's
own drift, shared by every model, moves the figures.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def add_retime_parser(subparsers: Any, parents: Sequence[argparse.ArgumentParser] = ()) -> argparse.ArgumentParser:
    """Add the ``retime`` sub-command to an ``argparse`` sub-parsers object."""
    from wbench.run.retime import RetimeOptions

    defaults = RetimeOptions()
    parser = subparsers.add_parser(
        "retime",
        parents=list(parents),
        help="time every saved model of a run again, all models and the exact LP in the same rounds",
        description="Load every saved model of RUN_DIR and time all their cost models (e, c, o), the exact "
        "LP and a float32 GEMM (the roofline's rate) in one interleaved series of rounds; write "
        "RUN_DIR/retime.json (records are not changed). "
        "Run it on otherwise idle cores.",
    )
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run folder with records.jsonl and models/")
    parser.add_argument("--rounds", type=int, default=defaults.rounds, help=f"rounds per timed call (>= 5; default {defaults.rounds})")
    parser.add_argument("--min-round-s", type=float, default=defaults.min_round_s,
                        help=f"seconds per round at least (default {defaults.min_round_s})")
    parser.add_argument("--threads", type=int, default=defaults.threads,
                        help=f"threads of models and exact LP alike (default {defaults.threads}: one core against one core)")
    parser.add_argument("--pairwise-n", type=int, default=None, metavar="N",
                        help="n of the n x n block c is timed on (default: the run's own, else 2048)")
    parser.add_argument("--all-milestones", action="store_true",
                        help="time every milestone's saved model (default: each method and seed at its last milestone; "
                        "the speed of a network does not depend on its weights)")
    parser.add_argument("--out", type=Path, default=None, metavar="FILE", help="default RUN_DIR/retime.json")
    parser.set_defaults(handler=run_retime)
    return parser


def run_retime(args: argparse.Namespace) -> int:
    """Run the pass described by ``args`` and print its leaderboard sections (Markdown)."""
    from wbench.plugin.manager import make_plugin_manager
    from wbench.run.retime import RetimeOptions, retime_run, retime_sections
    from wbench.sections import render_section

    options = RetimeOptions(rounds=args.rounds, min_round_s=args.min_round_s, threads=args.threads,
                            pairwise_n=args.pairwise_n, all_milestones=args.all_milestones)
    plugins = getattr(args, "plugins", None) or make_plugin_manager(getattr(args, "plugin", None) or [])
    written = retime_run(args.run_dir, options, registry=plugins.registry, out=args.out)
    print(f"wrote {written}", file=sys.stderr)
    if args.out is None:  # each method at its last milestone, as the default leaderboard shows it
        for section in retime_sections([args.run_dir]):
            print(render_section(section, "md"))
    return 0
