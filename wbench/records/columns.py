"""Leaderboard columns: which record keys a leaderboard shows, under which headers, and how numbers print."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from wbench.errors import WbenchError


@dataclass(frozen=True)
class Column:
    """A leaderboard column: record column ``key``, header text, and whether lower is better."""

    key: str
    header: str
    lower_is_better: bool | None = True
    spread: bool = True
    replaces: tuple[str, ...] = ()
    """Older columns this one supersedes: hidden when every record that has them has this one."""
    whole: bool = False
    """Integers printed in full (a parameter count: ``803576``, not ``8.04e+05``)."""

    def text(self, value: float) -> str:
        """``value`` as the leaderboard prints it in this column ("" for NaN)."""
        if self.whole and value is not None and math.isfinite(value) and float(value).is_integer():
            return str(int(value))
        return _format_number(value)


COLUMNS: tuple[Column, ...] = (
    Column("n_parameters", "params", None, spread=False, whole=True),
    Column("n_parameters_trained", "trained params", None, spread=False, whole=True),
    Column("test.w2.mse", "MSE W2"),
    Column("test.w2.rel_mae", "rel. MAE W2"),
    Column("unseen.w2.rel_mae", "unseen rel. MAE W2"),
    Column("test.w2sq.mse", "MSE W2²"),
    Column("test.w2.pearson", "Pearson W2", False),
    Column("test.w2.spearman", "Spearman W2", False),
    Column("gap.w2.mse_ratio", "test/train MSE"),
    Column("fit.wall_time_s", "fit s"),
    Column("retrieval.recall@", "recall@k", False),
    Column("axioms.triangle_violation_rate", "triangle viol."),
    Column("axioms.symmetry_error", "symmetry err."),
    # speed: the run's timing pass (timing.json), one core against one core by default
    Column("cost.independent_pairs_per_s", "indep. pairs/s", False),
    Column("cost.pairwise_pairs_per_s@", "pairwise pairs/s n=@k", False),
    Column("speedup.one_core", "speed-up 1 core indep.", False),
    Column("speedup.pairwise@", "speed-up 1 core pairwise n=@k", False),
)
"""The columns shown by default, in order (absent ones are skipped)."""


def _stated(values: pd.Series) -> str:
    """One value as an integer string, or ``mixed`` when the rows disagree."""
    found = sorted({int(v) for v in pd.to_numeric(values, errors="coerce").dropna()})
    return str(found[0]) if len(found) == 1 else "mixed"


def cost_columns(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with its pairwise speed columns named at their ``n`` (``cost.pairwise_pairs_per_s``
    -> ``cost.pairwise_pairs_per_s@2048``, ``speedup.pairwise`` -> ``speedup.pairwise@2048``;
    ``@mixed`` when the rows were timed at different ``n``), so a header states it."""
    if "cost.pairwise_n" not in df.columns:
        return df
    n = _stated(df["cost.pairwise_n"])
    renamed = {k: f"{k}@{n}" for k in ("cost.pairwise_pairs_per_s", "speedup.pairwise") if k in df.columns}
    return df.rename(columns=renamed)


def speed_columns(columns: Sequence[str]) -> dict[str, tuple[str, str]]:
    """The throughput columns a speed chart draws, per mode (``independent``, ``pairwise``):
    the column key (without ``.mean``) and an axis label; a mode the summary lacks is left out.

    :param columns: the columns of a summary (``<key>.mean``) or of a records frame.
    """
    keys = {c.removesuffix(".mean") for c in columns}
    out = {}
    if "cost.independent_pairs_per_s" in keys:
        out["independent"] = ("cost.independent_pairs_per_s", "independent pairs per second (both sides per pair)")
    pairwise = sorted(k for k in keys if k.startswith("cost.pairwise_pairs_per_s@"))
    if pairwise:
        n = pairwise[0].removeprefix("cost.pairwise_pairs_per_s@")
        out["pairwise"] = (pairwise[0], f"pairwise pairs per second (n = m = {n})")
    return out


def _format_number(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    magnitude = abs(value)
    if magnitude != 0 and (magnitude >= 1e5 or magnitude < 1e-3):
        return f"{value:.3g}"
    if float(value).is_integer() and magnitude >= 100:
        return f"{value:.0f}"
    return f"{value:.4g}"


def resolve_columns(df: pd.DataFrame, columns: Sequence[Column]) -> list[Column]:
    """The columns present in ``df``; a key ending in ``@`` matches e.g. ``recall@10`` (its
    header's ``@k`` becomes ``@10``; ``cost.pairwise_pairs_per_s@1024``'s ``n=@k``, ``n=1024``).
    A column whose ``replaces`` are all covered (every row with a value there has one in the
    new column) hides them."""
    present = []
    for column in columns:
        if column.key.endswith("@"):
            matches = sorted(c for c in df.columns if c.startswith(column.key))
            if matches:
                k = matches[0].removeprefix(column.key)
                at = "@" if column.key.endswith("recall@") else ""
                present.append(Column(matches[0], column.header.replace("@k", f"{at}{k}"), column.lower_is_better,
                                      column.spread, column.replaces, column.whole))
        elif column.key in df.columns:
            present.append(column)
    hidden = {old for c in present for old in c.replaces if old in df.columns and _covers(df, c.key, old)}
    return [c for c in present if c.key not in hidden]


def _covers(df: pd.DataFrame, new: str, old: str) -> bool:
    """Whether every row with a value of ``old`` has one of ``new`` (an empty frame: yes)."""
    if df.empty:
        return True
    return bool((df[new].notna() | df[old].isna()).all())


class UnknownColumnError(WbenchError, ValueError):
    """A leaderboard column that is neither a known record key nor a known header."""


def select_columns(keys: Sequence[str]) -> tuple[Column, ...]:
    """The default columns restricted to ``keys``, each a record key (``retrieval.recall@``
    for recall@k) or a header as printed (``"rel. MAE W2"``), in the order given."""
    known = {c.key: c for c in COLUMNS} | {c.header: c for c in COLUMNS}
    unknown = [k for k in keys if k not in known]
    if unknown:
        listing = ", ".join(f"{c.key} ({c.header})" for c in COLUMNS)
        raise UnknownColumnError(f"unknown leaderboard column {unknown[0]!r}; known: {listing}")
    return tuple(known[k] for k in keys)


SPLITS = ("train", "val", "test", "unseen")
"""The split prefixes of pair-error columns (``unseen``: pairs of never-paired measures)."""


class UnknownMetricError(WbenchError, ValueError):
    """A ranking metric that no record, leaderboard column or metric plugin provides."""


def pair_metric_columns(prefixes: Iterable[str] = SPLITS) -> set[str]:
    """The columns :func:`wbench.metrics.pair_metrics` writes for each split prefix
    (``test.w2.mse``, ``test.w2sq.pearson``, ...), read from the function itself."""
    from wbench.metrics import pair_metrics

    pred = np.array([1.0, 2.0, 3.5, 4.0])
    true_sq = np.array([1.0, 4.5, 9.0, 17.0])
    columns: set[str] = set()
    for prefix in prefixes:
        columns.update(pair_metrics(pred, true_sq, prefix=prefix))
    return columns


def known_metric_columns(
    metric_functions: Mapping[str, Callable[..., Any]] | None = None, extra: Iterable[str] = ()
) -> set[str]:
    """Metric columns a ranking may use before any record exists: the leaderboard's default
    columns, the pair-error statistics of every split, the ``columns`` a metric function
    declares (an optional attribute, a sequence of names), and ``extra`` (e.g. the columns
    of records already written)."""
    known = {c.key for c in COLUMNS} | pair_metric_columns() | set(extra)
    for function in (metric_functions or {}).values():
        known.update(getattr(function, "columns", ()) or ())
    return known


def check_primary(primary: str, known: Iterable[str], *, where: str) -> None:
    """Refuse a ranking metric that is not among ``known`` (``recall@`` matches ``recall@10``).

    :param where: what names the metric in the message (``--primary``, ``[suite].primary_metric``).
    :raises UnknownMetricError: listing the known metrics.
    """
    names = sorted(set(known))
    if primary in names or any(k.endswith("@") and primary.startswith(k) for k in names):
        return
    shown = [n for n in names if not n.endswith("@")]
    raise UnknownMetricError(f"{where}: unknown metric {primary!r}; known metrics: {', '.join(shown)}")
