"""Generic statistics over several seeds: paired significance tests with Holm's correction,
the cross-dataset transfer matrix, and the small helpers they (and plugins' leaderboard
sections, e.g. the paper claims of ``wbench_plugins.claims``) share.

Everything takes a pandas DataFrame of records, one row per (dataset, method configuration,
seed), as :func:`wbench.board.leaderboard.records_frame` builds it: a ``method`` column (the row's
label), a ``seed`` column, optionally ``dataset``, ``method_name`` (the plugin name behind a
label), ``status`` (only ``"ok"`` rows are used) and ``n_parameters``, and the columns of
the registered metrics and of :mod:`wbench.timing.throughput`.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = [
    "by_dataset",
    "holm",
    "numeric",
    "ok_rows",
    "paired_test",
    "per_seed",
    "significance",
    "transfer_matrix",
]

def ok_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The rows whose ``status`` is ``"ok"`` (all rows when there is no ``status`` column)."""
    if "status" in df.columns:
        df = df[df["status"] == "ok"]
    return df


def numeric(series: pd.Series) -> pd.Series:
    """``series`` as floats; values that are not numbers become NaN."""
    return pd.to_numeric(series, errors="coerce")


def natural_key(label: object) -> tuple[tuple[int, int | str], ...]:
    """Sort key that orders the numbers inside a label by value: ``mnist-n500`` before
    ``mnist-n2000`` before ``mnist-n10000`` (plain string order puts ``n10000`` first)."""
    return tuple((0, int(part)) if part.isdigit() else (1, part)
                 for part in re.split(r"(\d+)", str(label)) if part)


def by_dataset(df: pd.DataFrame) -> list[tuple[str | None, pd.DataFrame]]:
    """``(dataset, rows)`` per dataset, in :func:`natural_key` order of the labels; ``[(None, df)]``
    without a ``dataset`` column."""
    if "dataset" not in df.columns:
        return [(None, df)]
    groups = [(str(name), group) for name, group in df.groupby("dataset", sort=False, dropna=False)]
    return sorted(groups, key=lambda item: natural_key(item[0]))


def per_seed(df: pd.DataFrame, metric: str, method: str) -> pd.Series:
    """Seed -> value of ``metric`` for one method (several rows of one seed are averaged)."""
    rows = df[df["method"] == method]
    values = pd.DataFrame({"seed": rows["seed"], "value": numeric(rows[metric])}).dropna()
    return values.groupby("seed")["value"].mean()


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1); NaN stays NaN."""
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full_like(p, np.nan)
    valid = np.flatnonzero(np.isfinite(p))
    m = len(valid)
    if m == 0:
        return out
    order = valid[np.argsort(p[valid], kind="stable")]
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out[order] = np.minimum(adjusted, 1.0)
    return out


def paired_test(best: np.ndarray, other: np.ndarray, test: str) -> tuple[float, float]:
    """(statistic, p-value) of a two-sided paired test of ``other`` against ``best`` (equal
    length, paired by position): ``test`` is ``"ttest"`` or ``"wilcoxon"``; identical samples
    give p = 1."""
    from scipy import stats

    diff = other - best
    if np.all(diff == 0):
        return 0.0, 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if test == "ttest":
            result = stats.ttest_rel(other, best)
        elif test == "wilcoxon":
            result = stats.wilcoxon(other, best)
        else:
            raise ValueError(f"unknown test {test!r}; choose 'ttest' or 'wilcoxon'")
    statistic, p = float(result.statistic), float(result.pvalue)
    if not math.isfinite(p):  # zero variance of non-zero differences: t is infinite
        p = 0.0 if math.isinf(statistic) else 1.0
    return statistic, p


def significance(
    df: pd.DataFrame,
    metric: str,
    *,
    primary_lower_is_better: bool = True,
    alpha: float = 0.05,
    test: str = "ttest",
) -> pd.DataFrame:
    """Is the best method significantly better than each other one? Paired tests over seeds.

    Per dataset (when a ``dataset`` column exists), the best method is the one with the best
    mean of ``metric``; each other method is compared with it on the seeds both have
    (paired: seed s of one against seed s of the other) with ``scipy.stats.ttest_rel``
    (``test="ttest"``) or the Wilcoxon signed-rank test (``test="wilcoxon"``; with 3 seeds
    its smallest two-sided p-value is 0.25, so it needs more seeds), two-sided. The p-values
    of one dataset are Holm-corrected together.

    :returns: one row per comparison: ``dataset``, ``best``, ``method``, ``n_seeds``
        (matched), ``best_mean``, ``method_mean``, ``difference`` (method minus best),
        ``statistic``, ``p_value``, ``p_holm``, ``significant`` (``p_holm < alpha``) and
        ``test`` (``"n/a: ..."`` with fewer than 2 matched seeds; such rows are never
        significant).
    """
    if metric not in df.columns:
        raise KeyError(f"no column {metric!r} in the records")
    df = ok_rows(df)
    rows = []
    for dataset, group in by_dataset(df):
        series = {m: per_seed(group, metric, m) for m in sorted(group["method"].dropna().unique())}
        series = {m: s for m, s in series.items() if len(s)}
        if len(series) < 2:
            continue
        means = {m: float(s.mean()) for m, s in series.items()}
        best = min(means, key=means.get) if primary_lower_is_better else max(means, key=means.get)
        block = []
        for method, values in series.items():
            if method == best:
                continue
            seeds = series[best].index.intersection(values.index)
            b, o = series[best][seeds].to_numpy(), values[seeds].to_numpy()
            if len(seeds) >= 2:
                statistic, p = paired_test(b, o, test)
                name = test
            else:
                statistic, p, name = math.nan, math.nan, "n/a: fewer than 2 matched seeds"
            block.append({
                "dataset": dataset, "best": best, "method": method, "n_seeds": len(seeds),
                "best_mean": means[best], "method_mean": means[method],
                "difference": means[method] - means[best],
                "statistic": statistic, "p_value": p, "test": name,
            })
        adjusted = holm([r["p_value"] for r in block])
        for r, p_adj in zip(block, adjusted, strict=True):
            r["p_holm"] = float(p_adj)
            r["significant"] = bool(math.isfinite(p_adj) and p_adj < alpha)
        rows.extend(block)
    columns = ["dataset", "best", "method", "n_seeds", "best_mean", "method_mean", "difference",
               "statistic", "p_value", "p_holm", "significant", "test"]
    return pd.DataFrame(rows, columns=columns)


# ----------------------------------------------------------------------------- transfer


def transfer_matrix(df: pd.DataFrame, *, metric: str = "w2.mse", include_in_domain: bool = True) -> pd.DataFrame:
    """Train-dataset x test-dataset matrix of a transfer metric per method (DWE paper, Table 1).

    Reads the columns ``transfer.<target>.<metric>`` (the model trained on the row's
    ``dataset``, evaluated on the test pairs of ``<target>``) and averages them over seeds.
    With ``include_in_domain`` the diagonal (trained and tested on the same dataset) comes
    from the row's own ``test.<metric>``.

    :returns: rows indexed by (``method``, ``train``), one column per test dataset (sorted),
        NaN where a combination was not run.
    """
    df = ok_rows(df)
    if "dataset" not in df.columns:
        raise KeyError("the records have no 'dataset' column")
    suffix = f".{metric}"
    targets = {c: c[len("transfer."):-len(suffix)] for c in df.columns
               if c.startswith("transfer.") and c.endswith(suffix) and len(c) > len("transfer.") + len(suffix)}
    long_rows = []
    for column, target in targets.items():
        values = numeric(df[column])
        for (method, train), value in zip(zip(df["method"], df["dataset"], strict=True), values, strict=True):
            if math.isfinite(value):
                long_rows.append((method, train, target, float(value)))
    own = f"test.{metric}"
    if include_in_domain and own in df.columns:
        for method, train, value in zip(df["method"], df["dataset"], numeric(df[own]), strict=True):
            if math.isfinite(value):
                long_rows.append((method, train, train, float(value)))
    if not long_rows:
        return pd.DataFrame(index=pd.MultiIndex.from_tuples([], names=["method", "train"]))
    long = pd.DataFrame(long_rows, columns=["method", "train", "test", "value"])
    matrix = long.pivot_table(index=["method", "train"], columns="test", values="value", aggfunc="mean")
    matrix = matrix.reindex(columns=sorted(matrix.columns))
    matrix.columns.name = "test"
    return matrix
