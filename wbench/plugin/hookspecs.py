"""The hook specifications of wbench: the only door through which plugins enter.

Every hook is prefixed ``wbench_``. Hooks are for discovery and lifecycle only; nothing
here is called per pair. A plugin is a module (named by an entry point in the group
``wbench``, or a local file given with ``--plugin``) that implements some of these
functions decorated with :data:`wbench.hookimpl`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

from wbench import PROJECT_NAME

if TYPE_CHECKING:
    import pandas as pd

    from wbench.plugin.registry import Registry
    from wbench.sections import Section, SectionContext

hookspec = pluggy.HookspecMarker(PROJECT_NAME)


@hookspec
def wbench_register_surrogates(registry: Registry) -> None:
    """Register surrogates and reference solvers.

    Call ``registry.add_surrogate(name, "package.module:Class", ...)`` once per method.
    The target is a string so that the module is imported only when the method is used:
    ``wbench list`` stays fast and a broken import marks only that method unavailable.

    :param registry: the :class:`wbench.plugin.registry.Registry` collecting all plugins.
    """


@hookspec
def wbench_register_datasets(registry: Registry) -> None:
    """Register datasets of measure pairs.

    Call ``registry.add_dataset(name, "package.module:Class", ...)``; the class follows
    :class:`wbench.data.DatasetPlugin`.

    :param registry: the :class:`wbench.plugin.registry.Registry` collecting all plugins.
    """


@hookspec
def wbench_register_metrics(registry: Registry) -> None:
    """Register evaluation metrics.

    Call ``registry.add_metric(name, "package.module:function", ...)``; the function takes
    a :class:`wbench.evaluation.EvaluationContext` and returns a mapping of column name to
    float.

    :param registry: the :class:`wbench.plugin.registry.Registry` collecting all plugins.
    """


@hookspec
def wbench_add_cli_commands(subparsers: Any) -> None:
    """Add sub-commands to the ``wbench`` command line.

    Call ``subparsers.add_parser(name, help=...)`` on the ``argparse`` sub-parsers object
    and ``parser.set_defaults(handler=function)``, where ``function(args) -> int`` runs the
    command (import heavy modules inside it, not at plugin import time).

    :param subparsers: the object returned by ``ArgumentParser.add_subparsers``.
    """


@hookspec
def wbench_record_finished(record: dict[str, Any]) -> None:
    """Called after each benchmark cell's record has been written to disk.

    Use it to forward results elsewhere (a tracker, a dashboard). The record is the JSON
    object that was written; mutating it has no effect on the stored file.

    :param record: the record, as written (see :mod:`wbench.records.store`).
    """


@hookspec
def wbench_leaderboard_sections(frame: pd.DataFrame, context: SectionContext) -> list[Section]:
    """Contribute extra sections to a Markdown leaderboard (below the ranked tables).

    Return a list of :class:`wbench.sections.Section` (a title and a display-ready
    DataFrame whose cells are text), or ``[]`` when the records hold nothing for you. The
    built-in ``claims`` plugin returns the papers' claims this way; the core then adds the
    cross-dataset transfer matrix when the records carry one. Import heavy modules inside
    the function, not at plugin import time.

    :param frame: the records, one row per (dataset, method configuration, seed), as
        :func:`wbench.board.leaderboard.records_frame` builds it (``dataset``, ``method``,
        ``method_name``, ``seed``, ``status``, ``trainable``, ``n_parameters``, every metric,
        throughput and ``transfer.*`` column); do not modify it.
    :param context: :class:`wbench.sections.SectionContext` (the ranking metric, the format).
    """
