"""The ``wbench`` command line: list, plugins, run, leaderboard, site, prepare (+ plugin commands)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from wbench.errors import WbenchError
from wbench.plugin.manager import Plugins, make_plugin_manager
from wbench.run.suite import DEFAULT_PRIMARY_METRIC

PRIMARY_DEFAULT = DEFAULT_PRIMARY_METRIC  # kept for callers of the old name


def _plugin_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--plugin", action="append", default=[], metavar="FILE",
        help="load a local plugin file (repeat the flag for several), e.g. --plugin my_surrogate.py",
    )


def _pre_parse_plugins(argv: Sequence[str]) -> list[str]:
    pre = argparse.ArgumentParser(add_help=False)
    _plugin_option(pre)
    known, _ = pre.parse_known_args(argv)
    return known.plugin


def build_parser(plugins: Plugins) -> argparse.ArgumentParser:
    """The full argument parser, including sub-commands that plugins add."""
    parser = argparse.ArgumentParser(prog="wbench", description="Benchmark learned Wasserstein-2 surrogates.")
    _plugin_option(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    common = argparse.ArgumentParser(add_help=False)
    _plugin_option(common)

    p_list = sub.add_parser("list", parents=[common], help="list surrogates, datasets and metrics with their status")
    p_list.set_defaults(handler=cmd_list)

    p_plugins = sub.add_parser("plugins", parents=[common], help="list plugins with their distributions")
    p_plugins.set_defaults(handler=cmd_plugins)

    _add_run_parser(sub, common)
    _add_leaderboard_parser(sub, common)
    _add_site_parser(sub, common)

    try:
        from wbench.cli.prepare import add_prepare_parser
    except ImportError:  # pragma: no cover - the prepare command ships with wbench
        pass
    else:
        add_prepare_parser(sub, parents=[common])
    from wbench.cli.retime import add_retime_parser

    add_retime_parser(sub, parents=[common])

    plugins.manager.hook.wbench_add_cli_commands(subparsers=sub)
    return parser


def _add_run_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the ``run`` sub-command (run a suite, print its leaderboard) to the subparsers ``sub``."""
    p_run = sub.add_parser("run", parents=[common], help="run a suite and print its leaderboard")
    p_run.add_argument("suite", nargs="?", default=None, help="suite file (.toml) or built-in suite name (default: quick)")
    p_run.add_argument(
        "--surrogate", action="extend", nargs="+", metavar="NAME",
        help="run only these methods, by name or suite label (repeatable, or several after one flag)",
    )
    p_run.add_argument(
        "--dataset", action="extend", nargs="+", metavar="NAME",
        help="run only these datasets, by name or suite label (repeatable, or several after one flag)",
    )
    p_run.add_argument(
        "--seeds", action="extend", nargs="+", type=int, metavar="SEED",
        help="override the suite's seeds (repeatable, or several after one flag)",
    )
    p_run.add_argument(
        "--param", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
        help="dataset parameter for every dataset of the run that has it, e.g. --param root=/data "
        "(repeatable); VALUE is read as JSON when it can be, else as a string",
    )
    p_run.add_argument("--device", help="cpu, cuda or cuda:N (overrides the suite)")
    p_run.add_argument("--out", type=Path, help="run directory (default runs/SUITE_NAME)")
    p_run.add_argument("--resume", action="store_true", help="continue a run, skipping finished cells")
    p_run.add_argument(
        "--no-timing", action="store_true",
        help="skip the timing pass at the end (`wbench retime RUN_DIR` times the folder later)",
    )
    p_run.add_argument(
        "--cell-time-limit", type=float, metavar="SECONDS",
        help="stop a cell (fit and evaluation) after SECONDS and record it as failed (overrides the suite)",
    )
    p_run.add_argument(
        "--force", action="store_true",
        help="write the run into an existing non-empty --out folder that is not a wbench run folder "
        "(refused by default: the run would overwrite its files)",
    )
    p_run.add_argument("--cache-dir", type=Path, help="ground-truth cache (default $WBENCH_CACHE_DIR or ~/.cache/wbench)")
    p_run.add_argument("--jobs", type=int, default=-1, help="oracle worker processes (default: all cores)")
    from wbench.cli.prepare import add_scheduler_option

    add_scheduler_option(p_run)
    p_run.set_defaults(handler=cmd_run)


def _add_leaderboard_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the ``leaderboard`` sub-command (render run directories) to the subparsers ``sub``."""
    p_lb = sub.add_parser("leaderboard", parents=[common], help="render a leaderboard from run directories")
    p_lb.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    p_lb.add_argument("--format", choices=["md", "csv", "html"], default="md")
    p_lb.add_argument(
        "--full", action="store_true",
        help="print the full tables and sections (default on a terminal: the compact table within 100 columns; "
        "--out, --format csv/html and --columns always give the full output)",
    )
    p_lb.add_argument("--out", type=Path, help="write to this file instead of standard output")
    p_lb.add_argument("--primary", default=PRIMARY_DEFAULT, help=f"ranking metric (default {PRIMARY_DEFAULT})")
    p_lb.add_argument(
        "--plots", type=Path, metavar="DIR",
        help="also write speed-against-accuracy charts and, for runs with milestones, learning curves (PNG) into DIR",
    )
    p_lb.add_argument(
        "--milestone", type=int, metavar="N",
        help="show the table at this training milestone of a run with milestones (default: the last)",
    )
    p_lb.add_argument("--columns", metavar="KEY,KEY", help="show only these columns (record keys), without the claims and transfer tables")
    p_lb.add_argument(
        "--keep-newest", action="store_true",
        help="when run directories share a cell (same key), keep its newest record with a warning "
        "instead of stopping with an error",
    )
    p_lb.set_defaults(handler=cmd_leaderboard)


def _add_site_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the ``site`` sub-command (build the static results website) to the subparsers ``sub``."""
    p_site = sub.add_parser("site", parents=[common], help="build the static results website from run directories")
    p_site.add_argument("results", type=Path, metavar="RESULTS",
                        help="a folder of run folders (each holding records.jsonl), or one run folder")
    p_site.add_argument("--out", type=Path, required=True, metavar="DIR", help="site folder to (re)build")
    p_site.add_argument(
        "--force", action="store_true",
        help="build into a non-empty DIR that `wbench site` did not build, replacing its contents "
        "(a run folder, or a folder inside or holding one, is refused even so)",
    )
    p_site.set_defaults(handler=cmd_site)


class OutputPathError(WbenchError):
    """An output path (``--out``, ``--plots``) cannot be written; the message names it."""


def _reason(exc: OSError) -> str:
    """The operating system's reason of ``exc`` with the path it names, e.g. ``Permission denied: 'x'``."""
    where = f": {exc.filename!r}" if exc.filename else ""
    return f"{type(exc).__name__}: {exc.strerror or exc}{where}"


def check_output_dir(path: Path, option: str) -> Path:
    """Create the folder ``path`` if needed and check that a file can be written in it.

    :raises OutputPathError: naming ``option``, the path and the operating system's reason.
    """
    from wbench.run.lock import RunDirNotWritableError, check_writable

    if path.exists() and not path.is_dir():
        raise OutputPathError(f"{option} {path}: exists and is not a folder")
    try:
        return check_writable(path)
    except RunDirNotWritableError as exc:
        cause = exc.__cause__
        reason = _reason(cause) if isinstance(cause, OSError) else str(exc)
        raise OutputPathError(f"{option} {path}: cannot write there ({reason}); choose another {option}") from exc


def check_output_file(path: Path, option: str) -> None:
    """Check that the file ``path`` can be written: not a folder, its folder writable (created
    if needed), and, when it exists, writable itself.

    :raises OutputPathError: naming ``option``, the path and the reason.
    """
    if path.is_dir():
        raise OutputPathError(f"{option} {path}: is a folder; give a file name")
    try:
        check_output_dir(path.parent, option)
    except OutputPathError as exc:
        raise OutputPathError(f"{option} {path}: its folder cannot be written ({exc})") from exc
    if path.exists() and not os.access(path, os.W_OK):
        raise OutputPathError(f"{option} {path}: the file is not writable; choose another {option}")


def cmd_list(args: argparse.Namespace) -> int:
    """Print every surrogate, dataset and metric with status, distribution and size."""
    from tabulate import tabulate

    plugins: Plugins = args.plugins
    registry = plugins.registry
    for kind in ("surrogate", "dataset", "metric"):
        rows = []
        for entry in registry.entries(kind):
            available, reason = entry.status()
            row: dict[str, Any] = {"name": entry.name, "status": "ok" if available else f"unavailable: {reason}"}
            if kind == "surrogate":
                row["parameters"] = _default_parameter_count(entry) if available else ""
            if kind == "dataset":
                row["unseen"] = _unseen_support(entry) if available else ""
            row["plugin"] = entry.plugin
            row["distribution"] = entry.distribution
            row["description"] = entry.description
            rows.append(row)
        print(f"{kind}s:")
        print(_fitted(rows, tabulate) if rows else "  (none)")
        print()
    broken = [i for i in plugins.infos if i.status != "ok"]
    for info in broken:
        print(f"plugin {info.name} ({info.distribution}): {info.status}: {info.error}")
    return 0


def _unseen_support(entry: Any) -> str:
    """``yes`` when the dataset offers an ``unseen`` pair set (parameter ``unseen``), else
    ``no: <the class's reason>``."""
    try:
        reason = getattr(entry.load(), "no_unseen_reason", "not declared by the plugin")
    except Exception as exc:  # a plugin that fails to load is listed unavailable already
        return f"? ({type(exc).__name__})"
    return "yes" if reason is None else f"no: {reason}"


def _default_parameter_count(entry: Any) -> str:
    try:
        cls = entry.load()
        if not getattr(cls, "trainable", True):
            return "0 (solver)"
        return f"{cls(**entry.params).n_parameters:,}"
    except Exception as exc:  # a plugin's constructor may fail; the listing must not
        return f"? ({type(exc).__name__})"


def cmd_plugins(args: argparse.Namespace) -> int:
    """Print every plugin (entry point or file) with its distribution and status."""
    from tabulate import tabulate

    rows = [
        {"plugin": i.name, "source": i.source, "distribution": i.distribution, "status": i.status, "error": i.error}
        for i in args.plugins.infos
    ]
    print(tabulate(rows, headers="keys", tablefmt="simple", disable_numparse=True) if rows else "no plugins found")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Run a suite, write records and leaderboards into the run directory, print the leaderboard."""
    from wbench.board.compact import terminal_leaderboard
    from wbench.board.frame import leaderboard_frame
    from wbench.board.report import leaderboard_text
    from wbench.plugin.params import parse_assignments
    from wbench.records.store import RecordStore
    from wbench.run.runner import RunOptions, run_suite
    from wbench.run.suite import load_suite

    suite = load_suite(args.suite)
    out_dir = args.out or Path("runs") / suite.name
    options = RunOptions(
        out_dir=out_dir, resume=args.resume, device=args.device,
        seeds=tuple(args.seeds) if args.seeds else None,
        surrogates=tuple(args.surrogate) if args.surrogate else None,
        datasets=tuple(args.dataset) if args.dataset else None,
        cache_dir=args.cache_dir, n_jobs=args.jobs, scheduler=args.scheduler,
        dataset_params=parse_assignments(args.param), force=args.force,
        cell_time_limit_s=args.cell_time_limit, timing=not args.no_timing,
    )
    run_suite(suite, args.plugins, options)
    frame = leaderboard_frame([out_dir])  # read once for the two files and the terminal
    for fmt, name in (("md", "leaderboard.md"), ("csv", "leaderboard.csv")):
        text = leaderboard_text([out_dir], fmt=fmt, primary=suite.primary_metric, plugins=args.plugins, frame=frame)
        (out_dir / name).write_text(text)
    sys.stdout.write(terminal_leaderboard([out_dir], suite.primary_metric, frame=frame))
    print(f"full tables: {out_dir / 'leaderboard.md'} and {out_dir / 'leaderboard.csv'}", file=sys.stderr)
    records = RecordStore(out_dir).load()
    counts = {status: sum(r.status == status for r in records) for status in ("ok", "failed", "unavailable")}
    print(
        f"wbench run: {len(records)} cells: {counts['ok']} ok, {counts['failed']} failed, "
        f"{counts['unavailable']} unavailable (records: {out_dir / 'records.jsonl'})",
        file=sys.stderr,
    )
    return 1 if counts["failed"] else 0


def _fitted(rows: list[dict[str, Any]], tabulate: Any, width: int = 100) -> str:
    """``rows`` as a plain table within ``width`` columns: the description column is cut
    (ending in an ellipsis) to what the other columns leave."""
    table = tabulate(rows, headers="keys", tablefmt="simple", disable_numparse=True)
    longest = max(len(line) for line in table.splitlines())
    if longest <= width or "description" not in rows[0]:
        return table
    room = max(12, max(len(str(r["description"])) for r in rows) - (longest - width))
    cut = [{**r, "description": r["description"] if len(r["description"]) <= room else r["description"][: room - 1] + "…"}
           for r in rows]
    return tabulate(cut, headers="keys", tablefmt="simple", disable_numparse=True)


def cmd_leaderboard(args: argparse.Namespace) -> int:
    """Render records of one or more run directories."""
    from wbench.board.compact import terminal_leaderboard
    from wbench.board.leaderboard import COLUMNS, leaderboard_frame, select_columns
    from wbench.board.report import leaderboard_text

    columns = select_columns([k.strip() for k in args.columns.split(",")]) if args.columns else COLUMNS
    if args.out:  # before reading the runs: a clear error, not a traceback after the work
        check_output_file(args.out, "--out")
    if args.plots:
        check_output_dir(args.plots, "--plots")
    frame = leaderboard_frame(args.run_dirs, keep_newest=args.keep_newest)  # read once for text and plots
    full = bool(args.out or args.full or args.format != "md" or args.columns)  # else a terminal's compact table
    if full:
        text = leaderboard_text(
            args.run_dirs, fmt=args.format, primary=args.primary, columns=columns, extras=not args.columns,
            plugins=args.plugins, keep_newest=args.keep_newest, milestone=args.milestone, frame=frame,
        )
    else:
        text = terminal_leaderboard(args.run_dirs, args.primary, args.milestone, frame=frame)
    if args.plots:
        from wbench.board.labels import write_label_curve_plot
        from wbench.board.leaderboard import write_speed_accuracy_plots
        from wbench.board.learning_curves import write_learning_curve_plots

        paths = write_speed_accuracy_plots(
            args.run_dirs, args.plots, primary=args.primary, milestone=args.milestone, frame=frame,
        )
        paths += write_learning_curve_plots(frame, args.plots, primary=args.primary)
        paths += write_label_curve_plot(frame, args.plots)
        for path in paths:
            print(f"wrote {path}", file=sys.stderr)
    if args.out:
        try:
            args.out.write_text(text)
        except OSError as exc:
            raise OutputPathError(f"--out {args.out}: cannot write the leaderboard ({_reason(exc)})") from exc
    else:
        sys.stdout.write(text)
        if not full:
            print("full tables and sections: --full (or --out FILE)", file=sys.stderr)
    return 0


def cmd_site(args: argparse.Namespace) -> int:
    """Build the static website of every run under ``args.results`` into ``args.out``."""
    from wbench.board.site import build_site

    try:
        files = build_site(args.results, args.out, force=args.force)
    except OSError as exc:  # a write refused midway (the folder was checked before any write)
        if isinstance(exc, WbenchError):
            raise
        raise OutputPathError(f"--out {args.out}: building the site failed ({_reason(exc)})") from exc
    print(f"wrote {len(files)} files to {args.out} (open {args.out / 'index.html'})", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``wbench`` console script; returns the exit status.

    Every command handler takes the parsed ``args``, with the loaded plugins in ``args.plugins``.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        plugins = make_plugin_manager(_pre_parse_plugins(argv))
        parser = build_parser(plugins)
        args = parser.parse_args(argv)
        if not getattr(args, "handler", None):
            parser.print_help()
            return 2
        args.plugins = plugins
        return int(args.handler(args) or 0)
    except (WbenchError, FileNotFoundError) as exc:
        print(f"wbench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("wbench: interrupted; finished records are kept (continue with --resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
