"""``wbench retime RUN_DIR``: the timing pass of a finished run folder, again (or for the first
time, for a run made with ``--no-timing``)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from wbench.board.timing_section import timing_sections
from wbench.plugin.manager import make_plugin_manager
from wbench.run.suite import EvaluationSpec
from wbench.run.timing_pass import TimingOptions, default_dataset_for, time_run
from wbench.sections import render_section


def add_retime_parser(subparsers: Any, parents: Sequence[argparse.ArgumentParser] = ()) -> argparse.ArgumentParser:
    """Add the ``retime`` sub-command to an ``argparse`` sub-parsers object."""
    parser = subparsers.add_parser(
        "retime",
        parents=list(parents),
        help="time every model of a run folder in one interleaved pass (the pass `wbench run` ends with)",
        description="Time every model of RUN_DIR (its saved models, and the methods that learn nothing, "
        "built again) and the exact LP in one interleaved series of rounds per dataset; write "
        "RUN_DIR/timing.json (records are not changed). Settings default to the run's suite. "
        "Run it on otherwise idle cores.",
    )
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run folder with records.jsonl")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per timed call (>= 3; default: the suite's)")
    parser.add_argument("--min-round-s", type=float, default=None, help="seconds per round at least")
    parser.add_argument("--threads", type=int, default=None, help="threads of models and exact LP alike (default 1)")
    parser.add_argument("--pairwise-n", type=int, default=None, metavar="N", help="n of the n x n block of c")
    parser.add_argument("--cache-dir", type=Path, default=None, help="ground-truth cache (default $WBENCH_CACHE_DIR)")
    parser.add_argument("--out", type=Path, default=None, metavar="FILE", help="default RUN_DIR/timing.json")
    parser.set_defaults(handler=run_retime)
    return parser


def options_for(args: argparse.Namespace) -> TimingOptions:
    """The run's suite's timing settings (``suite.json``), with the flags given on top."""
    suite_file = args.run_dir / "suite.json"
    base = TimingOptions()
    if suite_file.is_file():  # the suite as the run stored it (JSON of its fields)
        stored = json.loads(suite_file.read_text())["suite"]["evaluation"]
        known = {f.name for f in dataclasses.fields(EvaluationSpec)}
        base = TimingOptions.of_suite(EvaluationSpec(**{k: v for k, v in stored.items() if k in known}))
    given = {"rounds": args.rounds, "min_round_s": args.min_round_s, "threads": args.threads,
             "pairwise_n": args.pairwise_n}
    return TimingOptions(**{**base.__dict__, **{k: v for k, v in given.items() if v is not None}})


def run_retime(args: argparse.Namespace) -> int:
    """Run the pass described by ``args`` and print its section (Markdown)."""
    plugins = getattr(args, "plugins", None) or make_plugin_manager(getattr(args, "plugin", None) or [])
    registry = plugins.registry
    written = time_run(args.run_dir, options_for(args), registry=registry, out=args.out,
                       dataset_for=default_dataset_for(args.cache_dir, registry),
                       log=lambda line: print(line, file=sys.stderr, flush=True))
    print(f"wrote {written}", file=sys.stderr)
    if args.out is None:
        for section in timing_sections([args.run_dir]):
            print(render_section(section, "md"))
    return 0
